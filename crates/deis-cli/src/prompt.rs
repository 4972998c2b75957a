//! Questions to the user.
//!
//! On a terminal these are ordinary prompts (passwords without echo). When
//! stdin is not a terminal, answers are read line by line from stdin, so
//! scripts and tests can pipe them; end of input is an error naming the flag
//! that avoids the question, never a hang.

use std::io::{self, BufRead, IsTerminal, Write};

use anyhow::{Result, bail};

/// Whether stdin is a terminal.
pub(crate) fn stdin_is_tty() -> bool {
    io::stdin().is_terminal()
}

/// Asks for a line; `None` at end of input.
pub(crate) fn line(label: &str) -> Result<Option<String>> {
    ask(label);
    read_stdin_line()
}

/// Asks for a value that must not be empty; `flag` says how to pass it
/// instead (e.g. `--username`).
pub(crate) fn required(label: &str, what: &str, flag: &str) -> Result<String> {
    match line(label)? {
        Some(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
        _ => bail!("{what} is required; pass {flag}"),
    }
}

/// Asks for a secret without echo on a terminal, or reads a line from
/// piped stdin.
pub(crate) fn password(label: &str, flag: &str) -> Result<String> {
    let value = if stdin_is_tty() {
        rpassword::prompt_password(label)?
    } else {
        ask(label);
        let value = read_stdin_line()?;
        if value.is_some() {
            // The piped answer was not echoed; end the prompt line.
            let _ = writeln!(io::stderr());
        }
        value.unwrap_or_default()
    };
    if value.is_empty() {
        bail!("a password is required; pass {flag}");
    }
    Ok(value)
}

/// Asks a password twice and insists both match.
pub(crate) fn new_password(label: &str, flag: &str, mismatch: &str) -> Result<String> {
    let first = password(&format!("{label}: "), flag)?;
    let second = password(&format!("{label} (confirm): "), flag)?;
    if first != second {
        bail!("{mismatch}");
    }
    Ok(first)
}

/// A yes/no question answered "no" by default.
pub(crate) fn confirm(label: &str) -> Result<bool> {
    Ok(line(label)?.is_some_and(|answer| matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")))
}

fn ask(label: &str) {
    let mut stderr = io::stderr().lock();
    let _ = write!(stderr, "{label}");
    let _ = stderr.flush();
}

fn read_stdin_line() -> Result<Option<String>> {
    let mut buffer = String::new();
    if io::stdin().lock().read_line(&mut buffer)? == 0 {
        return Ok(None);
    }
    Ok(Some(buffer.trim_end_matches(['\n', '\r']).to_owned()))
}
