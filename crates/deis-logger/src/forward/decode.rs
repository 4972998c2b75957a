//! One Forward frame, whole, to log lines: the four event modes, the option
//! map (`chunk`, `compressed`), gzip with a cap on the decompressed size, and
//! event times.

use std::borrow::Cow;
use std::io::Read;

use chrono::{DateTime, Utc};
use deis_scheduler::LogLine;
use flate2::read::MultiGzDecoder;

use super::attribution::{Tag, decode_record, line};
use super::msgpack::{Reader, Value};

/// Why a connection is closed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// Not a Forward frame.
    #[error("malformed frame: {0}")]
    Malformed(Cow<'static, str>),
    /// A frame longer than the limit.
    #[error("frame larger than the {max}-byte limit")]
    Oversized { max: usize },
    /// Compressed entries that inflate past the limit (a gzip bomb?).
    #[error("gzip entries decompress to more than the {max}-byte limit")]
    InflatesTooMuch { max: usize },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed after {0} bytes of an unfinished frame")]
    Truncated(usize),
}

impl FrameError {
    pub(crate) fn malformed(reason: impl Into<Cow<'static, str>>) -> Self {
        FrameError::Malformed(reason.into())
    }
}

/// What a frame asked for beyond its records.
#[derive(Debug, Default)]
pub(crate) struct Decoded<'f> {
    /// The encoded `chunk` option (a str or bin, as sent), to echo in the
    /// ack.
    pub(crate) chunk: Option<&'f [u8]>,
    /// Records dropped because no app could be found for them.
    pub(crate) unattributed: u64,
    /// The frame's tag.
    pub(crate) tag: Cow<'f, str>,
    /// The `fluent_signal` of a frame skipped because it holds metrics or
    /// traces rather than logs.
    pub(crate) skipped_signal: Option<u64>,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum Compression {
    #[default]
    Text,
    Gzip,
}

#[derive(Debug, Default)]
struct Options<'f> {
    chunk: Option<&'f [u8]>,
    compressed: Compression,
    /// Fluent Bit's event type: 0 logs, 1 metrics, 2 traces.
    signal: u64,
}

/// Fluent Bit's `fluent_signal` for logs.
const LOGS: u64 = 0;

/// Decodes a whole frame and hands each of its lines to `deliver`, but only
/// once the whole frame is known to be valid: a malformed frame delivers
/// nothing. (The records are read twice, checked and then delivered, rather
/// than held: a frame's lines take several times its size in memory.)
/// `scratch` holds decompressed entries.
pub(crate) fn decode_frame<'f>(
    frame: &'f [u8],
    max: usize,
    scratch: &mut Vec<u8>,
    mut deliver: impl FnMut(LogLine),
) -> Result<Decoded<'f>, FrameError> {
    let mut r = Reader::new(frame);
    let len = match r.next()? {
        Value::Array(len @ 2..=4) => len,
        Value::Array(len) => {
            return Err(FrameError::malformed(format!(
                "a frame has 2 to 4 elements, this one {len}"
            )));
        }
        _ => return Err(FrameError::malformed("a frame must be an array")),
    };
    let tag = r
        .string()?
        .ok_or(FrameError::malformed("the tag must be a string"))?;
    let tag = String::from_utf8_lossy(tag);
    let second = r.next()?;
    let (events, options) = match second {
        // Forward: [tag, [[time, record], ...], option?]
        Value::Array(count) => {
            if len > 3 {
                return Err(FrameError::malformed("a Forward frame has 2 or 3 elements"));
            }
            let entries = r;
            r.skip_children(second)?;
            (Events::Array { entries, count }, options(&mut r, len == 3)?)
        }
        // PackedForward and CompressedPackedForward:
        // [tag, bin-or-str of [time, record] entries, option?]
        Value::Str(blob) | Value::Bin(blob) => {
            if len > 3 {
                return Err(FrameError::malformed("a PackedForward frame has 2 or 3 elements"));
            }
            let options = options(&mut r, len == 3)?;
            let blob = match options.compressed {
                _ if options.signal != LOGS => &[][..],
                Compression::Text => blob,
                Compression::Gzip => {
                    gunzip(blob, max, scratch)?;
                    scratch.as_slice()
                }
            };
            (Events::Packed(Reader::new(blob)), options)
        }
        // Message: [tag, time, record, option?]
        Value::UInt(_) | Value::Int(_) | Value::F32(_) | Value::F64(_) | Value::Ext(..) => {
            if len < 3 {
                return Err(FrameError::malformed("a Message frame needs a record"));
            }
            let time = event_time(second)?;
            let record = r;
            r.skip_value()?;
            (Events::One { time, record }, options(&mut r, len == 4)?)
        }
        _ => {
            return Err(FrameError::malformed(
                "the second element must be a time, an array of entries or a str/bin of packed entries",
            ));
        }
    };
    let mut unattributed = 0;
    let skipped_signal = (options.signal != LOGS).then_some(options.signal);
    if skipped_signal.is_none() {
        let tag = Tag::parse(&tag);
        // Check every event's shape first (and the packed entries'
        // MessagePack, a blob to the scanner), then read and deliver.
        events.for_each(check_record, |_, ()| {})?;
        events.for_each(decode_record, |time, fields| match line(&fields, time, &tag) {
            Some(line) => deliver(line),
            None => unattributed += 1,
        })?;
    }
    Ok(Decoded {
        chunk: options.chunk,
        unattributed,
        tag,
        skipped_signal,
    })
}

/// A frame's events, still encoded.
#[derive(Clone, Copy, Debug)]
enum Events<'b> {
    /// Message mode's one record.
    One { time: DateTime<Utc>, record: Reader<'b> },
    /// Forward mode's array of entries.
    Array { entries: Reader<'b>, count: u32 },
    /// PackedForward's entries, up to the end.
    Packed(Reader<'b>),
}

impl<'b> Events<'b> {
    /// Reads every event in order, the record with `record`, and hands
    /// them to `each`.
    fn for_each<R>(
        self,
        mut record: impl FnMut(&mut Reader<'b>) -> Result<R, FrameError>,
        mut each: impl FnMut(DateTime<Utc>, R),
    ) -> Result<(), FrameError> {
        match self {
            Events::One { time, record: mut r } => each(time, record(&mut r)?),
            Events::Array { mut entries, count } => {
                for _ in 0..count {
                    let time = entry_time(&mut entries)?;
                    each(time, record(&mut entries)?);
                }
            }
            Events::Packed(mut entries) => {
                while !entries.is_empty() {
                    let time = entry_time(&mut entries)?;
                    each(time, record(&mut entries)?);
                }
            }
        }
        Ok(())
    }
}

/// Checks that a record is a map, and skips it.
fn check_record(r: &mut Reader<'_>) -> Result<(), FrameError> {
    match r.next()? {
        record @ Value::Map(_) => r.skip_children(record),
        _ => Err(FrameError::malformed("a record must be a map")),
    }
}

/// The start of a `[time, record]` entry, up to its record. The time may
/// also come as `[time, metadata]`, the event format of Fluent Bit 2 and
/// later, whose `forward` output sends it (the metadata map is ignored).
fn entry_time(r: &mut Reader<'_>) -> Result<DateTime<Utc>, FrameError> {
    match r.next()? {
        Value::Array(2) => {}
        _ => return Err(FrameError::malformed("an entry must be [time, record]")),
    }
    let time = match r.next()? {
        Value::Array(2) => {
            let time = event_time(r.next()?)?;
            match r.next()? {
                metadata @ Value::Map(_) => r.skip_children(metadata)?,
                Value::Nil => {}
                _ => {
                    return Err(FrameError::malformed(
                        "an entry's [time, metadata] needs a metadata map",
                    ));
                }
            }
            time
        }
        time => event_time(time)?,
    };
    Ok(time)
}

/// The option map, when `present`. Only `chunk` and `compressed` matter;
/// `nil` counts as no options.
fn options<'f>(r: &mut Reader<'f>, present: bool) -> Result<Options<'f>, FrameError> {
    let mut options = Options::default();
    if !present {
        return Ok(options);
    }
    let count = match r.next()? {
        Value::Map(count) => count,
        Value::Nil => 0,
        _ => return Err(FrameError::malformed("the option must be a map")),
    };
    for _ in 0..count {
        let key = r.next()?;
        r.skip_children(key)?;
        match key.bytes() {
            Some(b"chunk") => {
                let raw = r.raw_value()?;
                if Reader::new(raw).next()?.bytes().is_none() {
                    return Err(FrameError::malformed("the chunk option must be a string"));
                }
                options.chunk = Some(raw);
            }
            Some(b"compressed") => {
                options.compressed = match r.string()? {
                    Some(b"gzip") => Compression::Gzip,
                    Some(b"text") => Compression::Text,
                    _ => {
                        return Err(FrameError::malformed(
                            "unsupported compression (only gzip and text are)",
                        ));
                    }
                }
            }
            Some(b"fluent_signal") => {
                options.signal = match r.next()? {
                    Value::UInt(signal) => signal,
                    _ => return Err(FrameError::malformed("fluent_signal must be an integer")),
                }
            }
            _ => r.skip_value()?,
        }
    }
    Ok(options)
}

/// Inflates one or more concatenated gzip members into `out`, refusing to
/// produce more than `max` bytes.
fn gunzip(blob: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    out.clear();
    if blob.is_empty() {
        return Ok(());
    }
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    MultiGzDecoder::new(blob)
        .take(limit)
        .read_to_end(out)
        .map_err(|e| FrameError::malformed(format!("bad gzip entries: {e}")))?;
    if out.len() > max {
        return Err(FrameError::InflatesTooMuch { max });
    }
    Ok(())
}

/// An event time: integer seconds, float seconds, or EventTime (ext type 0:
/// big-endian u32 seconds and u32 nanoseconds).
pub(crate) fn event_time(value: Value<'_>) -> Result<DateTime<Utc>, FrameError> {
    let time = match value {
        Value::UInt(secs) => i64::try_from(secs)
            .ok()
            .and_then(|secs| DateTime::from_timestamp(secs, 0)),
        Value::Int(secs) => DateTime::from_timestamp(secs, 0),
        Value::F64(secs) => float_time(secs),
        Value::F32(secs) => float_time(secs.into()),
        Value::Ext(0, data) => {
            let [s0, s1, s2, s3, n0, n1, n2, n3] = <[u8; 8]>::try_from(data)
                .map_err(|_| FrameError::malformed("an EventTime must be 8 bytes"))?;
            let nanos = u32::from_be_bytes([n0, n1, n2, n3]);
            if nanos >= 1_000_000_000 {
                None
            } else {
                DateTime::from_timestamp(u32::from_be_bytes([s0, s1, s2, s3]).into(), nanos)
            }
        }
        _ => {
            return Err(FrameError::malformed(
                "a time must be an integer, a float or an EventTime",
            ));
        }
    };
    time.ok_or(FrameError::malformed("time out of range"))
}

fn float_time(secs: f64) -> Option<DateTime<Utc>> {
    // Well inside chrono's range, and exactly representable bounds.
    const LIMIT: f64 = 1e15;
    if !secs.is_finite() || secs.abs() > LIMIT {
        return None;
    }
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
    DateTime::from_timestamp(whole as i64, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = |v| event_time(v).unwrap();
        assert_eq!(t(Value::UInt(5)).timestamp(), 5);
        assert_eq!(t(Value::Int(-5)).timestamp(), -5);
        let f = t(Value::F64(1.25));
        assert_eq!((f.timestamp(), f.timestamp_subsec_nanos()), (1, 250_000_000));
        let e = t(Value::Ext(0, &[0, 0, 0, 7, 0, 0, 0, 9]));
        assert_eq!((e.timestamp(), e.timestamp_subsec_nanos()), (7, 9));
        assert!(event_time(Value::Ext(0, &[0; 7])).is_err());
        assert!(event_time(Value::Ext(0, &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])).is_err());
        assert!(event_time(Value::F64(f64::NAN)).is_err());
        assert!(event_time(Value::UInt(u64::MAX)).is_err());
        assert!(event_time(Value::Nil).is_err());
    }
}
