//! One-off processes attached to a client: output streams back while the
//! command runs, and with a terminal, input and window changes stream in.

use tokio::sync::mpsc;

/// Output of an attached process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutput {
    /// Bytes on stdout (with a terminal: everything the terminal shows).
    Stdout(Vec<u8>),
    /// Bytes on stderr (never with a terminal).
    Stderr(Vec<u8>),
}

/// Input to an attached process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunInput {
    /// Bytes for stdin.
    Stdin(Vec<u8>),
    /// The client's terminal changed size.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// No more input.
    Eof,
}

/// A terminal's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TtySize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

/// The client's side of an attached run. Dropping `output`'s receiver (the
/// client went away) ends the process after its grace period.
pub struct RunIo {
    /// Where output goes.
    pub output: mpsc::Sender<RunOutput>,
    /// Where input comes from, when the client sends any.
    pub input: Option<mpsc::Receiver<RunInput>>,
    /// Run under a pseudo-terminal of this size.
    pub tty: Option<TtySize>,
}
