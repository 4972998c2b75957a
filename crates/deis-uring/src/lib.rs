//! TCP sockets whose reads and writes go through an io_uring, one ring per
//! thread, inside that thread's tokio runtime.
//!
//! Why: a proxy on loopback spends most of its time in the kernel, and a
//! good part of that is the cost of each system call and of being
//! preempted on its way back to user space by the peer it just woke. Here
//! a read or write only queues an entry; a driver task, scheduled behind
//! the tasks that are ready, submits everything queued in one
//! `io_uring_enter` and reaps what completed. One system call then carries
//! the sends and receives of many connections.
//!
//! The ring's file descriptor is registered with tokio's reactor, so the
//! runtime still sleeps in one place, and timers, channels and ordinary
//! sockets work as before.
//!
//! Writes are accepted as soon as they are queued (the bytes are copied);
//! an error surfaces on the next write or on `flush`, which waits until
//! everything written has reached the socket.

use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use io_uring::{IoUring, opcode, squeue, types};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// Submission queue entries per ring; a full queue is submitted at once.
const ENTRIES: u32 = 1024;
/// The receive buffer a socket starts with: enough for a request head, and
/// small, because an idle keep-alive connection keeps its receive queued.
const READ_MIN: usize = 2 * 1024;
/// The most a receive buffer grows to, doubling each time a receive fills
/// it (a response body streaming through). A receive that would have fit
/// the smallest buffer shrinks it back: the stream has gone quiet.
const READ_MAX: usize = 64 * 1024;
/// A write buffer that grew beyond this is given back once sent, so an idle
/// connection does not keep the copy of a large response.
const WRITE_KEEP: usize = 16 * 1024;
/// Passes of the driver before it lets other tasks run.
const DRIVER_BUDGET: usize = 8;

const READ: u64 = 0;
const WRITE: u64 = 1;

/// One thread's ring, its sockets and the driver that submits and reaps.
pub struct Ring {
    /// The ring's descriptor as tokio sees it: readable when completions
    /// are waiting. Declared first so it is deregistered before the ring
    /// (in `state`) closes the descriptor.
    ready: AsyncFd<RingFd>,
    state: Mutex<State>,
}

struct RingFd(RawFd);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

struct State {
    // Declared first so it is dropped first: closing the ring cancels what
    // is in flight before any buffer is freed.
    ring: IoUring,
    sockets: Vec<Socket>,
    free: Vec<usize>,
    /// Entries queued and not yet submitted.
    queued: bool,
    driver: Option<Waker>,
    /// The driver was woken and has not run since.
    driver_woken: bool,
    /// Completions being applied (kept to reuse its allocation).
    completions: Vec<(u64, i32)>,
}

struct Socket {
    /// `None` once closed: the slot is free.
    stream: Option<std::net::TcpStream>,
    /// The `UringStream` for this slot still exists.
    held: bool,
    read: ReadSide,
    write: WriteSide,
}

struct ReadSide {
    buf: Box<[u8]>,
    /// Received and not yet handed out: `buf[start..end]`.
    start: usize,
    end: usize,
    in_flight: bool,
    /// The size of the next receive's buffer, when not the current one's.
    resize: Option<usize>,
    eof: bool,
    error: Option<i32>,
    waker: Option<Waker>,
}

struct WriteSide {
    buf: Vec<u8>,
    /// How much of `buf` has reached the socket.
    sent: usize,
    in_flight: bool,
    error: Option<i32>,
    waker: Option<Waker>,
}

impl Socket {
    fn idle(&self) -> bool {
        !self.read.in_flight && !self.write.in_flight
    }
}

impl Ring {
    /// A ring for the calling thread. Must be called inside a tokio
    /// runtime, which must then run [`Ring::drive`].
    pub fn new() -> io::Result<Arc<Ring>> {
        // Cooperative task running: completions are posted when the thread
        // next enters the kernel, which it does at least to wait, instead
        // of interrupting it.
        let ring = IoUring::builder()
            .setup_coop_taskrun()
            .build(ENTRIES)
            .or_else(|_| IoUring::new(ENTRIES))?;
        // SAFETY: the descriptor belongs to `ring`, which lives in the same
        // `Ring` as the `AsyncFd` and is dropped after it (field order).
        let ready = unsafe { AsyncFd::register_with_interest(RingFd(ring.as_raw_fd()), Interest::READABLE) }?;
        Ok(Arc::new(Ring {
            state: Mutex::new(State {
                ring,
                sockets: Vec::new(),
                free: Vec::new(),
                queued: false,
                driver: None,
                driver_woken: false,
                completions: Vec::new(),
            }),
            ready,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Submits what the ring's sockets queued and wakes those whose
    /// operations completed. Runs as long as the runtime does; returns only
    /// if the ring fails.
    pub async fn drive(self: Arc<Self>) -> io::Error {
        poll_fn(|cx| self.poll_drive(cx)).await
    }

    fn poll_drive(&self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let mut wakers = Vec::new();
        for _ in 0..DRIVER_BUDGET {
            let again = {
                let mut state = self.lock();
                state.driver_woken = false;
                if !state.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    state.driver = Some(cx.waker().clone());
                }
                if state.queued {
                    state.queued = false;
                    if let Err(e) = submit(&mut state.ring) {
                        return Poll::Ready(e);
                    }
                }
                state.reap(&mut wakers);
                state.queued
            };
            wakers.drain(..).for_each(Waker::wake);
            if again {
                continue;
            }
            match self.ready.poll_read_ready(cx) {
                Poll::Ready(Ok(mut guard)) => guard.clear_ready(),
                Poll::Ready(Err(e)) => return Poll::Ready(e),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Completions keep coming: let the tasks they woke run first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Wakes the driver, after the caller queued an entry.
    fn kick(state: &mut State) -> Option<Waker> {
        state.queued = true;
        if state.driver_woken {
            return None;
        }
        state.driver_woken = true;
        state.driver.clone()
    }
}

/// `io_uring_enter` for what is queued; an interrupted or busy call is
/// simply made again later.
fn submit(ring: &mut IoUring) -> io::Result<()> {
    match ring.submit() {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(code) if code == EINTR || code == EBUSY || code == EAGAIN) => {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

const EINTR: i32 = 4;
const EAGAIN: i32 = 11;
const EBUSY: i32 = 16;

impl State {
    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry queued here points into a buffer owned by
            // a socket slot (`ReadSide::buf`, `WriteSide::buf`). A slot's
            // buffers are not touched, moved or freed while its operation
            // is in flight (`in_flight` guards every access, a slot is
            // freed only when nothing is in flight, and `Drop for State`
            // leaks the buffers of operations still in flight).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            // Full: submit what is there to make room.
            self.ring.submit()?;
        }
    }

    /// The slot's socket and its descriptor, while it is open.
    fn open_socket(&mut self, slot: usize) -> io::Result<(&mut Socket, RawFd)> {
        let socket = self
            .sockets
            .get_mut(slot)
            .ok_or_else(|| io::Error::other("no such socket"))?;
        let fd = socket
            .stream
            .as_ref()
            .ok_or_else(|| io::Error::other("socket closed"))?
            .as_raw_fd();
        Ok((socket, fd))
    }

    fn queue_read(&mut self, slot: usize) -> io::Result<()> {
        let (socket, fd) = self.open_socket(slot)?;
        socket.read.start = 0;
        socket.read.end = 0;
        if let Some(size) = socket.read.resize.take() {
            socket.read.buf = vec![0; size].into_boxed_slice();
        }
        let len = u32::try_from(socket.read.buf.len()).unwrap_or(u32::MAX);
        let entry = opcode::Recv::new(types::Fd(fd), socket.read.buf.as_mut_ptr(), len)
            .build()
            .user_data(user_data(slot, READ));
        self.push(&entry)?;
        self.mark_in_flight(slot, READ);
        Ok(())
    }

    fn queue_write(&mut self, slot: usize) -> io::Result<()> {
        let (socket, fd) = self.open_socket(slot)?;
        let rest = socket.write.buf.get(socket.write.sent..).unwrap_or_default();
        let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
        let entry = opcode::Send::new(types::Fd(fd), rest.as_ptr(), len)
            .flags(MSG_NOSIGNAL)
            .build()
            .user_data(user_data(slot, WRITE));
        self.push(&entry)?;
        self.mark_in_flight(slot, WRITE);
        Ok(())
    }

    /// Only once the entry is queued: an entry that could not be queued
    /// leaves the socket as it was, so it can still be closed and freed.
    fn mark_in_flight(&mut self, slot: usize, kind: u64) {
        if let Some(socket) = self.sockets.get_mut(slot) {
            if kind == READ {
                socket.read.in_flight = true;
            } else {
                socket.write.in_flight = true;
            }
        }
    }

    /// Applies every completion; gathers the wakers to call once the lock
    /// is released.
    fn reap(&mut self, wakers: &mut Vec<Waker>) {
        let mut completions = std::mem::take(&mut self.completions);
        completions.clear();
        completions.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
        for &(data, result) in &completions {
            let slot = usize::try_from(data >> 1).unwrap_or(usize::MAX);
            let Some(socket) = self.sockets.get_mut(slot) else {
                continue;
            };
            if data & 1 == READ {
                let read = &mut socket.read;
                read.in_flight = false;
                match usize::try_from(result) {
                    Ok(0) => read.eof = true,
                    Ok(n) => {
                        let size = read.buf.len();
                        read.end = n.min(size);
                        read.resize = if n >= size && size < READ_MAX {
                            Some(size.saturating_mul(2).min(READ_MAX))
                        } else if n <= READ_MIN && size > READ_MIN {
                            Some(READ_MIN)
                        } else {
                            None
                        };
                    }
                    Err(_) => read.error = Some(-result),
                }
                wakers.extend(read.waker.take());
            } else {
                let held = socket.held;
                let write = &mut socket.write;
                write.in_flight = false;
                match usize::try_from(result) {
                    Ok(n) if n > 0 => write.sent = write.sent.saturating_add(n).min(write.buf.len()),
                    Ok(_) => write.error = Some(EPIPE),
                    Err(_) => write.error = Some(-result),
                }
                if write.error.is_none() && write.sent < write.buf.len() && held {
                    // A short send: the rest goes next.
                    match self.queue_write(slot) {
                        Ok(()) => {
                            self.queued = true;
                            continue;
                        }
                        Err(e) => {
                            if let Some(socket) = self.sockets.get_mut(slot) {
                                socket.write.error = e.raw_os_error().or(Some(EIO));
                            }
                        }
                    }
                }
                if let Some(socket) = self.sockets.get_mut(slot) {
                    let write = &mut socket.write;
                    if write.buf.capacity() > WRITE_KEEP {
                        write.buf = Vec::new();
                        write.sent = 0;
                    }
                    wakers.extend(write.waker.take());
                }
            }
            self.release_if_done(slot);
        }
        self.completions = completions;
    }

    /// Closes and frees a slot whose stream is gone once nothing of it is
    /// in flight.
    fn release_if_done(&mut self, slot: usize) {
        if let Some(socket) = self.sockets.get_mut(slot)
            && !socket.held
            && socket.idle()
            && socket.stream.take().is_some()
        {
            socket.read.waker = None;
            socket.write.waker = None;
            self.free.push(slot);
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        for socket in &mut self.sockets {
            if socket.read.in_flight {
                std::mem::forget(std::mem::take(&mut socket.read.buf));
            }
            if socket.write.in_flight {
                std::mem::forget(std::mem::take(&mut socket.write.buf));
            }
        }
    }
}

const MSG_NOSIGNAL: i32 = 0x4000;
const EIO: i32 = 5;
const EPIPE: i32 = 32;

fn user_data(slot: usize, kind: u64) -> u64 {
    (u64::try_from(slot).unwrap_or(u64::MAX >> 1) << 1) | kind
}

/// A connected TCP socket served by a [`Ring`].
pub struct UringStream {
    ring: Arc<Ring>,
    slot: usize,
}

impl UringStream {
    /// Moves a tokio socket onto the ring (out of tokio's reactor).
    pub fn new(stream: tokio::net::TcpStream, ring: &Arc<Ring>) -> io::Result<UringStream> {
        let stream = stream.into_std()?;
        // The ring waits for readiness itself; a blocking socket lets it.
        stream.set_nonblocking(false)?;
        let mut state = ring.lock();
        let socket = Socket {
            stream: Some(stream),
            held: true,
            read: ReadSide {
                buf: Box::default(),
                start: 0,
                end: 0,
                in_flight: false,
                resize: None,
                eof: false,
                error: None,
                waker: None,
            },
            write: WriteSide {
                buf: Vec::new(),
                sent: 0,
                in_flight: false,
                error: None,
                waker: None,
            },
        };
        let slot = match state.free.pop() {
            Some(slot) => {
                if let Some(old) = state.sockets.get_mut(slot) {
                    // Keep the old slot's buffers: no allocation per socket.
                    let read = std::mem::take(&mut old.read.buf);
                    let mut write = std::mem::take(&mut old.write.buf);
                    write.clear();
                    *old = socket;
                    old.read.buf = read;
                    old.write.buf = write;
                }
                slot
            }
            None => {
                state.sockets.push(socket);
                state.sockets.len() - 1
            }
        };
        if let Some(socket) = state.sockets.get_mut(slot)
            && socket.read.buf.len() != READ_MIN
        {
            socket.read.buf = vec![0; READ_MIN].into_boxed_slice();
        }
        drop(state);
        Ok(UringStream {
            ring: Arc::clone(ring),
            slot,
        })
    }

    /// For an idle keep-alive connection: starts a read, so that the peer
    /// closing it, or sending something unasked, is noticed without a
    /// system call of its own, and so that the next response finds its
    /// read already waiting.
    pub fn watch(&self) {
        let mut state = self.ring.lock();
        let Some(socket) = state.sockets.get(self.slot) else {
            return;
        };
        if socket.read.in_flight
            || socket.read.eof
            || socket.read.error.is_some()
            || socket.read.start < socket.read.end
        {
            return;
        }
        let kick = state
            .queue_read(self.slot)
            .ok()
            .and_then(|()| Ring::kick(&mut state));
        drop(state);
        if let Some(waker) = kick {
            waker.wake();
        }
    }

    /// Whether an idle connection is still open and silent: nothing
    /// arrived, no end of stream and no error since it was last read.
    pub fn idle_and_open(&self) -> bool {
        let state = self.ring.lock();
        state.sockets.get(self.slot).is_some_and(|socket| {
            let read = &socket.read;
            !read.eof && read.error.is_none() && read.start == read.end && !socket.write.in_flight
        })
    }
}

impl Drop for UringStream {
    fn drop(&mut self) {
        let mut state = self.ring.lock();
        let Some(socket) = state.sockets.get_mut(self.slot) else {
            return;
        };
        socket.held = false;
        socket.read.waker = None;
        socket.write.waker = None;
        if !socket.idle()
            && let Some(stream) = &socket.stream
        {
            // Ends what is in flight at once (a read waiting for data would
            // otherwise wait for ever); the slot is freed when it completes.
            let _ = stream.shutdown(Shutdown::Both);
        }
        state.release_if_done(self.slot);
    }
}

fn os_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl AsyncRead for UringStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut state = this.ring.lock();
        let Some(socket) = state.sockets.get_mut(this.slot) else {
            return Poll::Ready(Err(io::Error::other("socket closed")));
        };
        let read = &mut socket.read;
        if read.start < read.end {
            let available = read.buf.get(read.start..read.end).unwrap_or_default();
            let n = available.len().min(out.remaining());
            out.put_slice(available.get(..n).unwrap_or_default());
            read.start += n;
            return Poll::Ready(Ok(()));
        }
        if let Some(code) = read.error {
            return Poll::Ready(Err(os_error(code)));
        }
        if read.eof {
            return Poll::Ready(Ok(()));
        }
        if !read.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            read.waker = Some(cx.waker().clone());
        }
        if read.in_flight {
            return Poll::Pending;
        }
        if let Err(e) = state.queue_read(this.slot) {
            return Poll::Ready(Err(e));
        }
        let kick = Ring::kick(&mut state);
        drop(state);
        if let Some(waker) = kick {
            waker.wake();
        }
        Poll::Pending
    }
}

impl UringStream {
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        fill: impl FnOnce(&mut Vec<u8>) -> usize,
    ) -> Poll<io::Result<usize>> {
        let mut state = self.ring.lock();
        let Some(socket) = state.sockets.get_mut(self.slot) else {
            return Poll::Ready(Err(io::Error::other("socket closed")));
        };
        let write = &mut socket.write;
        if let Some(code) = write.error {
            return Poll::Ready(Err(os_error(code)));
        }
        if write.in_flight {
            if !write.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                write.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        write.buf.clear();
        write.sent = 0;
        let n = fill(&mut write.buf);
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        if let Err(e) = state.queue_write(self.slot) {
            return Poll::Ready(Err(e));
        }
        let kick = Ring::kick(&mut state);
        drop(state);
        if let Some(waker) = kick {
            waker.wake();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for UringStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(cx, |buf| {
            buf.extend_from_slice(data);
            data.len()
        })
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(cx, |buf| {
            bufs.iter()
                .map(|slice| {
                    buf.extend_from_slice(slice);
                    slice.len()
                })
                .sum()
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut state = this.ring.lock();
        let Some(socket) = state.sockets.get_mut(this.slot) else {
            return Poll::Ready(Err(io::Error::other("socket closed")));
        };
        let write = &mut socket.write;
        if write.in_flight {
            if !write.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                write.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        match write.error {
            Some(code) => Poll::Ready(Err(os_error(code))),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.as_mut().poll_flush(cx))?;
        let state = self.ring.lock();
        match state
            .sockets
            .get(self.slot)
            .and_then(|socket| socket.stream.as_ref())
        {
            Some(stream) => Poll::Ready(stream.shutdown(Shutdown::Write)),
            None => Poll::Ready(Err(io::Error::other("socket closed"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn pair(ring: &Arc<Ring>) -> (UringStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (UringStream::new(server, ring).unwrap(), client)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_writes_large_transfers_and_end_of_stream() {
        let ring = Ring::new().unwrap();
        tokio::spawn(Arc::clone(&ring).drive());
        let (mut ours, mut theirs) = pair(&ring).await;

        theirs.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        ours.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");

        // More than the socket buffers hold: short sends must be resumed.
        let big: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let expected = big.clone();
        let reader = tokio::spawn(async move {
            let mut back = Vec::new();
            theirs.read_to_end(&mut back).await.unwrap();
            back
        });
        ours.write_all(&big).await.unwrap();
        ours.shutdown().await.unwrap();
        let back = reader.await.unwrap();
        assert_eq!(back.len(), expected.len());
        assert!(back == expected, "bytes arrived changed");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn buffers_grow_for_a_stream_and_shrink_once_it_is_quiet() {
        let ring = Ring::new().unwrap();
        tokio::spawn(Arc::clone(&ring).drive());
        let (mut ours, mut theirs) = pair(&ring).await;
        let sizes = |ring: &Ring, slot: usize| {
            let state = ring.lock();
            let socket = &state.sockets[slot];
            (socket.read.buf.len(), socket.write.buf.capacity())
        };

        let big = vec![1u8; 4 * 1024 * 1024];
        let writer = tokio::spawn(async move {
            theirs.write_all(&big).await.unwrap();
            theirs
        });
        let mut got = vec![0u8; 4 * 1024 * 1024];
        let mut largest = 0;
        let mut filled = 0;
        while filled < got.len() {
            let n = ours.read(&mut got[filled..]).await.unwrap();
            assert_ne!(n, 0, "the stream ended early");
            filled += n;
            largest = largest.max(sizes(&ring, ours.slot).0);
        }
        assert_eq!(largest, READ_MAX, "the receive buffer never grew");
        let mut theirs = writer.await.unwrap();

        // A small message after the stream: the next receive is small again.
        theirs.write_all(b"quiet").await.unwrap();
        let mut five = [0u8; 5];
        ours.read_exact(&mut five).await.unwrap();
        ours.watch();
        assert_eq!(sizes(&ring, ours.slot).0, READ_MIN);

        // A large response is not kept once it has gone out.
        let reader = tokio::spawn(async move {
            let mut sink = vec![0u8; 1024 * 1024];
            theirs.read_exact(&mut sink).await.unwrap();
        });
        ours.write_all(&vec![2u8; 1024 * 1024]).await.unwrap();
        ours.flush().await.unwrap();
        reader.await.unwrap();
        assert!(sizes(&ring, ours.slot).1 <= WRITE_KEEP);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_reset_peer_fails_writes_and_the_ring_keeps_serving() {
        let ring = Ring::new().unwrap();
        tokio::spawn(Arc::clone(&ring).drive());
        let (mut ours, theirs) = pair(&ring).await;
        // An abortive close: the peer's kernel answers with a reset.
        theirs.set_zero_linger().unwrap();
        drop(theirs);
        let chunk = [7u8; 64 * 1024];
        let failed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                if let Err(e) = async {
                    ours.write_all(&chunk).await?;
                    ours.flush().await
                }
                .await
                {
                    return e;
                }
            }
        })
        .await
        .expect("writes to a reset connection kept succeeding");
        assert!(
            matches!(
                failed.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{failed}"
        );
        let mut rest = Vec::new();
        assert!(ours.read_to_end(&mut rest).await.is_err() || rest.is_empty());
        drop(ours);

        let (mut next, mut peer) = pair(&ring).await;
        next.write_all(b"still here").await.unwrap();
        next.flush().await.unwrap();
        let mut got = [0u8; 10];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"still here");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn watched_idle_socket_notices_the_peer_closing() {
        let ring = Ring::new().unwrap();
        tokio::spawn(Arc::clone(&ring).drive());
        let (mut ours, theirs) = pair(&ring).await;
        ours.watch();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(ours.idle_and_open());
        drop(theirs);
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while ours.idle_and_open() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the close was not noticed");
        let mut rest = Vec::new();
        assert_eq!(ours.read_to_end(&mut rest).await.unwrap(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn dropping_a_stream_with_a_read_in_flight_frees_its_slot() {
        let ring = Ring::new().unwrap();
        tokio::spawn(Arc::clone(&ring).drive());
        let (ours, mut theirs) = pair(&ring).await;
        ours.watch();
        tokio::task::yield_now().await;
        drop(ours);
        // The peer sees the connection end, and the slot comes free.
        let mut rest = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(5), theirs.read_to_end(&mut rest))
            .await
            .expect("the peer never saw the end")
            .unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while ring.lock().free.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the slot was never freed");
        // The freed slot serves the next socket.
        let (mut again, mut peer) = pair(&ring).await;
        assert_eq!(again.slot, 0);
        peer.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        again.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"x");
    }
}
