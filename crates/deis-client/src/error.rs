//! Errors, each rendered as one sentence a user can act on.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use tonic::{Code, Status};

use crate::ControllerUrl;

/// What can go wrong talking to the controller.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The controller address cannot be used.
    #[error("invalid controller URL {url:?}: {reason}")]
    InvalidUrl {
        /// What the user gave.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// Nothing answered at the controller address.
    #[error("cannot reach the controller at {url}: {reason} — is `deis-workflow up` running?")]
    Unreachable {
        /// The normalised controller URL.
        url: String,
        /// The lower-level cause, e.g. "connection refused".
        reason: String,
    },
    /// The token contains characters that cannot travel in a header.
    #[error("the stored token is not valid header text; run `deis login <controller>` again")]
    InvalidToken,
    /// The controller answered a call with an error.
    #[error("{}", describe_status(.0))]
    Status(#[from] Status),
}

impl ClientError {
    /// The error for a failed connection attempt, with the most useful cause.
    pub(crate) fn unreachable(
        url: &ControllerUrl,
        err: &(dyn StdError + 'static),
        timeout: Duration,
    ) -> Self {
        Self::Unreachable {
            url: url.as_str().to_owned(),
            reason: connect_reason(err, timeout),
        }
    }

    /// The gRPC status code, when the controller answered.
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Status(status) => Some(status.code()),
            _ => None,
        }
    }
}

/// Walks the error chain for the innermost cause and words it briefly.
fn connect_reason(err: &(dyn StdError + 'static), timeout: Duration) -> String {
    let mut innermost: &(dyn StdError + 'static) = err;
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                io::ErrorKind::TimedOut => return format!("no answer within {}s", timeout.as_secs()),
                io::ErrorKind::ConnectionReset => return "connection reset".into(),
                _ => {}
            }
        }
        innermost = e;
        current = e.source();
    }
    let text = innermost.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("timed out") || lower.contains("elapsed") {
        format!("no answer within {}s", timeout.as_secs())
    } else if lower.contains("dns") || lower.contains("lookup") || lower.contains("resolve") {
        format!("the host name could not be resolved ({text})")
    } else if text.is_empty() {
        "connection failed".into()
    } else {
        text
    }
}

/// Turns a gRPC status into the sentence shown to a user.
///
/// Validation and lookup errors (`INVALID_ARGUMENT`, `NOT_FOUND`,
/// `ALREADY_EXISTS`, …) carry the controller's own message, which is shown
/// as-is. `UNAUTHENTICATED` adds how to log in again; transport-level codes
/// get a short explanation because their raw text is meant for developers.
pub fn describe_status(status: &Status) -> String {
    let message = status.message().trim();
    let or = |fallback: &str| {
        if message.is_empty() {
            fallback.to_owned()
        } else {
            message.to_owned()
        }
    };
    if went_quiet(status) {
        return "The controller accepted the connection but stopped answering; \
                check that it is running and not stuck (`deis-workflow status` on its machine)."
            .into();
    }
    match status.code() {
        // The hint only where the controller has not already said how.
        Code::Unauthenticated if message.contains("deis login") || message.contains("log in again") => {
            terminate(message)
        }
        Code::Unauthenticated => format!(
            "{} Run `deis login <controller>` to log in again.",
            terminate(&or("Not authenticated."))
        ),
        Code::PermissionDenied => or("You do not have permission to perform this action."),
        Code::NotFound => or("Not found."),
        Code::Unavailable => {
            if message.is_empty() {
                "The controller is unavailable; try again in a moment.".into()
            } else {
                format!("The controller is unavailable: {message}")
            }
        }
        Code::DeadlineExceeded => format!(
            "The controller did not answer in time{}",
            if message.is_empty() {
                ".".to_owned()
            } else {
                format!(": {message}")
            }
        ),
        Code::Unimplemented => format!(
            "The controller does not support this call{}",
            if message.is_empty() {
                "; it may be older than this client.".to_owned()
            } else {
                format!(": {message}")
            }
        ),
        Code::Internal | Code::Unknown | Code::DataLoss if message.is_empty() => {
            "The controller failed with an internal error.".into()
        }
        code => or(&format!("The controller refused the request ({code:?}).")),
    }
}

/// Whether the call failed because the connection's keep-alive pings went
/// unanswered: a controller that is stopped or stuck, whose kernel still
/// holds the connection open.
fn went_quiet(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.to_string().contains("keep-alive timed out") {
            return true;
        }
        source = error.source();
    }
    false
}

/// Ends `text` with a full stop unless it already ends a sentence.
pub fn terminate(text: &str) -> String {
    let text = text.trim_end();
    if text.ends_with(['.', '!', '?']) {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_message_is_shown_as_is() {
        let status = Status::invalid_argument("App name must start with an alphabetic character.");
        assert_eq!(
            describe_status(&status),
            "App name must start with an alphabetic character."
        );
    }

    #[test]
    fn not_found_message_is_shown_as_is() {
        let status = Status::not_found("No App matches the given query.");
        assert_eq!(describe_status(&status), "No App matches the given query.");
    }

    #[test]
    fn the_login_hint_is_not_repeated() {
        assert_eq!(
            describe_status(&Status::unauthenticated(
                "Invalid token; log in again with `deis login`."
            )),
            "Invalid token; log in again with `deis login`."
        );
    }

    #[test]
    fn unauthenticated_hints_at_login() {
        let text = describe_status(&Status::unauthenticated("Invalid token"));
        assert_eq!(
            text,
            "Invalid token. Run `deis login <controller>` to log in again."
        );
        let empty = describe_status(&Status::unauthenticated(""));
        assert!(empty.starts_with("Not authenticated."), "{empty}");
    }

    #[test]
    fn empty_messages_get_a_sentence() {
        assert!(!describe_status(&Status::internal("")).is_empty());
        assert!(!describe_status(&Status::unavailable("")).is_empty());
        assert!(describe_status(&Status::failed_precondition("")).contains("FailedPrecondition"));
    }

    #[test]
    fn client_error_displays_status_sentence() {
        let err = ClientError::from(Status::already_exists("Application with this id already exists."));
        assert_eq!(err.to_string(), "Application with this id already exists.");
        assert_eq!(err.code(), Some(Code::AlreadyExists));
    }

    #[test]
    fn connect_reason_prefers_io_kind() {
        let io = io::Error::new(io::ErrorKind::ConnectionRefused, "os error 111");
        assert_eq!(connect_reason(&io, Duration::from_secs(5)), "connection refused");
        let io = io::Error::new(io::ErrorKind::TimedOut, "slow");
        assert_eq!(connect_reason(&io, Duration::from_secs(5)), "no answer within 5s");
    }
}
