//! Just enough MessagePack for the Forward protocol, zero-copy and without
//! panics on any input: a [`Reader`] over a complete frame that hands out
//! borrowed strings, and a resumable [`FrameScanner`] that finds where a
//! frame ends in a growing buffer without decoding it.
//!
//! Neither recurses: nested containers are skipped by counting the values
//! still owed, so hostile nesting depth costs nothing.

use rmp::Marker;

use super::decode::FrameError;

/// A value's head: scalars in full, the lengths of strings, binaries and
/// extensions (whose payload follows), the element counts of containers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Head {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    Str(u32),
    Bin(u32),
    Array(u32),
    Map(u32),
    Ext(i8, u32),
}

impl Head {
    /// Bytes of payload after the head.
    fn payload_len(self) -> usize {
        match self {
            Head::Str(n) | Head::Bin(n) | Head::Ext(_, n) => n as usize,
            _ => 0,
        }
    }
}

/// Values a container holds directly (a map's keys and values).
fn children(count: Head) -> u64 {
    match count {
        Head::Array(n) => u64::from(n),
        Head::Map(n) => 2 * u64::from(n),
        _ => 0,
    }
}

/// The first `N` bytes of `rest`, if there are that many.
fn take<const N: usize>(rest: &[u8]) -> Option<[u8; N]> {
    rest.get(..N)?.try_into().ok()
}

/// Reads the head at the start of `bytes`, returning it with its length in
/// bytes, or `None` when `bytes` ends first.
fn read_head(bytes: &[u8]) -> Result<Option<(Head, usize)>, FrameError> {
    let Some((&first, rest)) = bytes.split_first() else {
        return Ok(None);
    };
    let marker = Marker::from_u8(first);
    if marker == Marker::Reserved {
        return Err(FrameError::malformed("reserved MessagePack marker 0xc1"));
    }
    Ok(head_after_marker(marker, rest).map(|(head, len)| (head, len + 1)))
}

/// The head announced by `marker`, given the bytes after it, and how many of
/// those bytes it uses.
fn head_after_marker(marker: Marker, rest: &[u8]) -> Option<(Head, usize)> {
    Some(match marker {
        Marker::FixPos(n) => (Head::UInt(n.into()), 0),
        Marker::FixNeg(n) => (Head::Int(n.into()), 0),
        Marker::Null | Marker::Reserved => (Head::Nil, 0),
        Marker::True => (Head::Bool(true), 0),
        Marker::False => (Head::Bool(false), 0),
        Marker::U8 => (Head::UInt(u8::from_be_bytes(take(rest)?).into()), 1),
        Marker::U16 => (Head::UInt(u16::from_be_bytes(take(rest)?).into()), 2),
        Marker::U32 => (Head::UInt(u32::from_be_bytes(take(rest)?).into()), 4),
        Marker::U64 => (Head::UInt(u64::from_be_bytes(take(rest)?)), 8),
        Marker::I8 => (Head::Int(i8::from_be_bytes(take(rest)?).into()), 1),
        Marker::I16 => (Head::Int(i16::from_be_bytes(take(rest)?).into()), 2),
        Marker::I32 => (Head::Int(i32::from_be_bytes(take(rest)?).into()), 4),
        Marker::I64 => (Head::Int(i64::from_be_bytes(take(rest)?)), 8),
        Marker::F32 => (Head::F32(f32::from_be_bytes(take(rest)?)), 4),
        Marker::F64 => (Head::F64(f64::from_be_bytes(take(rest)?)), 8),
        Marker::FixStr(n) => (Head::Str(n.into()), 0),
        Marker::Str8 => (Head::Str(u8::from_be_bytes(take(rest)?).into()), 1),
        Marker::Str16 => (Head::Str(u16::from_be_bytes(take(rest)?).into()), 2),
        Marker::Str32 => (Head::Str(u32::from_be_bytes(take(rest)?)), 4),
        Marker::Bin8 => (Head::Bin(u8::from_be_bytes(take(rest)?).into()), 1),
        Marker::Bin16 => (Head::Bin(u16::from_be_bytes(take(rest)?).into()), 2),
        Marker::Bin32 => (Head::Bin(u32::from_be_bytes(take(rest)?)), 4),
        Marker::FixArray(n) => (Head::Array(n.into()), 0),
        Marker::Array16 => (Head::Array(u16::from_be_bytes(take(rest)?).into()), 2),
        Marker::Array32 => (Head::Array(u32::from_be_bytes(take(rest)?)), 4),
        Marker::FixMap(n) => (Head::Map(n.into()), 0),
        Marker::Map16 => (Head::Map(u16::from_be_bytes(take(rest)?).into()), 2),
        Marker::Map32 => (Head::Map(u32::from_be_bytes(take(rest)?)), 4),
        Marker::FixExt1 => (Head::Ext(i8::from_be_bytes(take(rest)?), 1), 1),
        Marker::FixExt2 => (Head::Ext(i8::from_be_bytes(take(rest)?), 2), 1),
        Marker::FixExt4 => (Head::Ext(i8::from_be_bytes(take(rest)?), 4), 1),
        Marker::FixExt8 => (Head::Ext(i8::from_be_bytes(take(rest)?), 8), 1),
        Marker::FixExt16 => (Head::Ext(i8::from_be_bytes(take(rest)?), 16), 1),
        Marker::Ext8 => {
            let [len, ty] = take::<2>(rest)?;
            (Head::Ext(i8::from_be_bytes([ty]), len.into()), 2)
        }
        Marker::Ext16 => {
            let [l0, l1, ty] = take::<3>(rest)?;
            (
                Head::Ext(i8::from_be_bytes([ty]), u16::from_be_bytes([l0, l1]).into()),
                3,
            )
        }
        Marker::Ext32 => {
            let [l0, l1, l2, l3, ty] = take::<5>(rest)?;
            (
                Head::Ext(i8::from_be_bytes([ty]), u32::from_be_bytes([l0, l1, l2, l3])),
                5,
            )
        }
    })
}

/// One decoded value. Containers carry their element count: their elements
/// are the values that follow.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value<'a> {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(u32),
    Map(u32),
    Ext(i8, &'a [u8]),
}

impl<'a> Value<'a> {
    /// The bytes of a str or a bin.
    pub(crate) fn bytes(self) -> Option<&'a [u8]> {
        match self {
            Value::Str(bytes) | Value::Bin(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// Values this one holds directly.
    fn children(self) -> u64 {
        match self {
            Value::Array(n) => u64::from(n),
            Value::Map(n) => 2 * u64::from(n),
            _ => 0,
        }
    }
}

const TRUNCATED: &str = "truncated MessagePack value";

/// Reads values one by one from a complete buffer. Running out of bytes is
/// an error (the buffer is supposed to hold whole values).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Whether every byte has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// The next value (for a container, only its count).
    pub(crate) fn next(&mut self) -> Result<Value<'a>, FrameError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let (head, head_len) = read_head(rest)?.ok_or(FrameError::malformed(TRUNCATED))?;
        let start = self.pos.saturating_add(head_len);
        let end = start.saturating_add(head.payload_len());
        let payload = self
            .bytes
            .get(start..end)
            .ok_or(FrameError::malformed(TRUNCATED))?;
        self.pos = end;
        Ok(match head {
            Head::Nil => Value::Nil,
            Head::Bool(b) => Value::Bool(b),
            Head::UInt(n) => Value::UInt(n),
            Head::Int(n) => Value::Int(n),
            Head::F32(f) => Value::F32(f),
            Head::F64(f) => Value::F64(f),
            Head::Str(_) => Value::Str(payload),
            Head::Bin(_) => Value::Bin(payload),
            Head::Array(n) => Value::Array(n),
            Head::Map(n) => Value::Map(n),
            Head::Ext(ty, _) => Value::Ext(ty, payload),
        })
    }

    /// Skips the elements of a container just read by [`Reader::next`]
    /// (nothing for other values).
    pub(crate) fn skip_children(&mut self, value: Value<'a>) -> Result<(), FrameError> {
        self.skip_values(value.children())
    }

    /// Skips the next value, whole.
    pub(crate) fn skip_value(&mut self) -> Result<(), FrameError> {
        self.skip_values(1)
    }

    /// Skips `count` whole values. Every value takes at least one byte, so
    /// this ends (with an error) soon after the buffer does, whatever the
    /// counts claim.
    pub(crate) fn skip_values(&mut self, mut count: u64) -> Result<(), FrameError> {
        while count > 0 {
            let value = self.next()?;
            count = (count - 1).saturating_add(value.children());
        }
        Ok(())
    }

    /// The next value if it is a str or a bin; anything else is skipped.
    pub(crate) fn string(&mut self) -> Result<Option<&'a [u8]>, FrameError> {
        let value = self.next()?;
        self.skip_children(value)?;
        Ok(value.bytes())
    }

    /// The encoded bytes of the next value, whole.
    pub(crate) fn raw_value(&mut self) -> Result<&'a [u8], FrameError> {
        let start = self.pos;
        self.skip_value()?;
        self.bytes
            .get(start..self.pos)
            .ok_or(FrameError::malformed(TRUNCATED))
    }
}

/// Where a frame ends, found incrementally.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The buffer starts with a whole frame of this many bytes.
    Complete(usize),
    /// More bytes are needed; the frame is at least this long.
    Incomplete(usize),
}

/// Finds the end of the MessagePack value at the start of a buffer that
/// grows between calls, resuming where the previous call stopped (so a frame
/// arriving in many reads is scanned once). The value must be an array: a
/// Forward frame.
#[derive(Debug, Default)]
pub(crate) struct FrameScanner {
    /// Bytes of the frame already scanned.
    pos: usize,
    /// Values still to scan (0 between frames).
    pending: u64,
}

impl FrameScanner {
    /// Scans `buf`, which holds the frame's start and whatever has arrived
    /// since (the same bytes as before, plus more). A frame longer than
    /// `max` bytes is an error as soon as its length is known to exceed it.
    pub(crate) fn scan(&mut self, buf: &[u8], max: usize) -> Result<Scan, FrameError> {
        if self.pending == 0 {
            self.pos = 0;
            match buf.first().map(|&b| Marker::from_u8(b)) {
                None => return Ok(Scan::Incomplete(1)),
                Some(Marker::FixArray(_) | Marker::Array16 | Marker::Array32) => self.pending = 1,
                Some(_) => {
                    return Err(FrameError::malformed(
                        "a frame must be a MessagePack array (is this a Forward client?)",
                    ));
                }
            }
        }
        while self.pending > 0 {
            let rest = buf.get(self.pos..).unwrap_or_default();
            let Some((head, head_len)) = read_head(rest)? else {
                // Heads are at most 9 bytes.
                return Ok(Scan::Incomplete(self.pos.saturating_add(9).min(max)));
            };
            let end = self
                .pos
                .saturating_add(head_len)
                .saturating_add(head.payload_len());
            if end > max {
                return Err(FrameError::Oversized { max });
            }
            if end > buf.len() {
                return Ok(Scan::Incomplete(end));
            }
            self.pos = end;
            self.pending = (self.pending - 1).saturating_add(children(head));
            // Every value takes at least a byte.
            if self.pending > max.saturating_sub(self.pos) as u64 {
                return Err(FrameError::Oversized { max });
            }
        }
        let len = self.pos;
        self.pos = 0;
        Ok(Scan::Complete(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Vec<u8> {
        let mut buf = Vec::new();
        rmp::encode::write_array_len(&mut buf, 3).unwrap();
        rmp::encode::write_str(&mut buf, "tag").unwrap();
        rmp::encode::write_u32(&mut buf, 1_700_000_000).unwrap();
        rmp::encode::write_map_len(&mut buf, 2).unwrap();
        rmp::encode::write_str(&mut buf, "log").unwrap();
        rmp::encode::write_bin(&mut buf, &[0xff; 300]).unwrap();
        rmp::encode::write_str(&mut buf, "nested").unwrap();
        rmp::encode::write_array_len(&mut buf, 2).unwrap();
        rmp::encode::write_ext_meta(&mut buf, 8, 0).unwrap();
        buf.extend_from_slice(&[0; 8]);
        rmp::encode::write_f64(&mut buf, 1.5).unwrap();
        buf
    }

    #[test]
    fn scanner_resumes_byte_by_byte() {
        let frame = frame();
        let mut twice = frame.clone();
        twice.extend_from_slice(&frame);
        let mut scanner = FrameScanner::default();
        for end in 0..frame.len() {
            assert!(matches!(
                scanner.scan(&twice[..end], 1 << 20).unwrap(),
                Scan::Incomplete(_)
            ));
        }
        assert_eq!(
            scanner.scan(&twice, 1 << 20).unwrap(),
            Scan::Complete(frame.len())
        );
        assert_eq!(
            scanner.scan(&twice[frame.len()..], 1 << 20).unwrap(),
            Scan::Complete(frame.len())
        );
    }

    #[test]
    fn scanner_limits() {
        let frame = frame();
        let mut scanner = FrameScanner::default();
        assert!(matches!(
            scanner.scan(&frame, 100),
            Err(FrameError::Oversized { .. })
        ));
        let mut scanner = FrameScanner::default();
        // An array claiming 2^32-1 elements in a 10-byte frame.
        assert!(scanner.scan(&[0xdd, 0xff, 0xff, 0xff, 0xff], 1000).is_err());
        let mut scanner = FrameScanner::default();
        assert!(scanner.scan(b"{\"json\": 1}", 1000).is_err());
    }

    #[test]
    fn reader_reads_and_skips() {
        let frame = frame();
        let mut r = Reader::new(&frame);
        assert_eq!(r.next().unwrap(), Value::Array(3));
        assert_eq!(r.string().unwrap(), Some(&b"tag"[..]));
        assert_eq!(r.next().unwrap(), Value::UInt(1_700_000_000));
        let map = r.next().unwrap();
        r.skip_children(map).unwrap();
        assert!(r.is_empty());
        for end in 0..frame.len() {
            let mut r = Reader::new(&frame[..end]);
            assert!(r.skip_value().is_err());
        }
    }
}
