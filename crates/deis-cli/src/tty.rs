//! The local terminal for `deis run --tty`: whether there is one, its size,
//! and raw mode that is undone however the command ends.

use std::io::{self, IsTerminal};

use nix::sys::termios::{self, SetArg, Termios};

/// Whether stdin and stdout are both terminals.
pub(crate) fn is_interactive() -> bool {
    io::stdin().is_terminal() && io::stdout().is_terminal()
}

/// The terminal's size as (columns, rows), from stdout, else stdin.
pub(crate) fn size() -> Option<(u16, u16)> {
    terminal_size::terminal_size_of(io::stdout())
        .or_else(|| terminal_size::terminal_size_of(io::stdin()))
        .map(|(width, height)| (width.0, height.0))
}

/// Stdin's terminal in raw mode until dropped: every key goes to the remote
/// command as typed (Ctrl-C and Ctrl-D included), nothing is echoed locally,
/// and output is not post-processed (the remote terminal already did).
///
/// Dropping restores the saved settings, so every way out of `run --tty`
/// (exit, error, panic unwinding, a terminating signal handled by the
/// caller) leaves the terminal as it was.
pub(crate) struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Switches stdin's terminal to raw mode.
    pub(crate) fn enable() -> io::Result<RawMode> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // TCSADRAIN: what was written in raw mode is shown first. Nothing
        // useful can be done if this fails (the terminal is gone).
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}
