//! Controller URL normalisation.

use std::fmt;

use tonic::transport::Uri;

use crate::ClientError;

/// The builder's SSH port when the platform does not say otherwise (Deis's
/// hard-coded `git push` port).
pub const DEFAULT_BUILDER_PORT: u16 = 2222;

/// A controller address in canonical form: `http://host[:port]` or
/// `https://host[:port]`, without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerUrl {
    text: String,
    https: bool,
    host: String,
    port: Option<u16>,
}

impl ControllerUrl {
    /// Parses what a user typed: `http://h:p`, `https://h`, or a bare `h:p`
    /// (taken as `http://`). A path other than `/`, a query or user
    /// credentials are refused because gRPC cannot use them.
    pub fn parse(input: &str) -> Result<Self, ClientError> {
        let trimmed = input.trim();
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: trimmed.to_owned(),
            reason: reason.to_owned(),
        };
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        let with_scheme = match trimmed.split_once("://") {
            Some((scheme, _)) => {
                let scheme = scheme.to_ascii_lowercase();
                if scheme != "http" && scheme != "https" {
                    return Err(invalid("only http:// and https:// are supported"));
                }
                trimmed.to_owned()
            }
            None => format!("http://{trimmed}"),
        };
        let uri: Uri = with_scheme
            .parse()
            .map_err(|_| invalid("it is not a valid URL"))?;
        let https = uri.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("https"));
        let authority = uri.authority().ok_or_else(|| invalid("it has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("it must not contain user credentials"));
        }
        let host = authority.host().to_ascii_lowercase();
        if host.is_empty() {
            return Err(invalid("it has no host"));
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(invalid("it must not contain a path"));
        }
        if uri.query().is_some() {
            return Err(invalid("it must not contain a query"));
        }
        let port = authority.port_u16();
        let scheme = if https { "https" } else { "http" };
        let text = match port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        Ok(Self {
            text,
            https,
            host,
            port,
        })
    }

    /// The canonical URL, e.g. `http://127.0.0.1:8000`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the scheme is https.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host name or address, lower-cased (IPv6 keeps its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The explicit port, if the URL has one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port in use: explicit, else 443 for https and 80 for http.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(if self.https { 443 } else { 80 })
    }
}

impl fmt::Display for ControllerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> ControllerUrl {
        match ControllerUrl::parse(input) {
            Ok(url) => url,
            Err(err) => panic!("{input:?} should parse: {err}"),
        }
    }

    #[test]
    fn bare_host_port_means_http() {
        let url = ok("127.0.0.1:8000");
        assert_eq!(url.as_str(), "http://127.0.0.1:8000");
        assert!(!url.is_https());
        assert_eq!(url.host(), "127.0.0.1");
        assert_eq!(url.port(), Some(8000));
    }

    #[test]
    fn bare_host_without_port_uses_scheme_default() {
        let url = ok("deis.example.com");
        assert_eq!(url.as_str(), "http://deis.example.com");
        assert_eq!(url.effective_port(), 80);
    }

    #[test]
    fn https_is_kept_and_defaults_to_443() {
        let url = ok("https://Deis.Example.com/");
        assert_eq!(url.as_str(), "https://deis.example.com");
        assert!(url.is_https());
        assert_eq!(url.effective_port(), 443);
    }

    #[test]
    fn scheme_is_case_insensitive_and_whitespace_trimmed() {
        assert_eq!(ok("  HTTP://localhost:8000  ").as_str(), "http://localhost:8000");
    }

    #[test]
    fn ipv6_keeps_brackets() {
        let url = ok("http://[::1]:8000");
        assert_eq!(url.host(), "[::1]");
        assert_eq!(url.as_str(), "http://[::1]:8000");
    }

    #[test]
    fn rejects_other_schemes_paths_and_garbage() {
        for bad in [
            "",
            "   ",
            "ftp://x",
            "ssh://git@x:2222",
            "http://x/v2",
            "http://x?a=1",
            "http://u:p@x",
            "http://",
        ] {
            assert!(ControllerUrl::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn error_names_the_url() {
        let Err(err) = ControllerUrl::parse("ftp://x") else {
            panic!("ftp must be rejected");
        };
        let text = err.to_string();
        assert!(text.contains("ftp://x"), "{text}");
        assert!(text.contains("http://"), "{text}");
    }
}
