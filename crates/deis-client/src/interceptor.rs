//! Adds the caller's token to every request.

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::ClientError;

/// Adds `authorization: token <key>` (the Deis header) to each request when
/// a token is set; requests without a token pass through unchanged so
/// `Register`, `Login` and `GetPlatformInfo` work before logging in.
#[derive(Clone, Debug, Default)]
pub struct TokenInterceptor {
    header: Option<AsciiMetadataValue>,
}

impl TokenInterceptor {
    /// An interceptor for `token`; an empty token counts as none.
    pub fn new(token: Option<&str>) -> Result<Self, ClientError> {
        let header = match token.map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) => {
                let mut value: AsciiMetadataValue = MetadataValue::try_from(format!("token {token}"))
                    .map_err(|_| ClientError::InvalidToken)?;
                // Keep the secret out of debug output and HPACK tables.
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Self { header })
    }

    /// Whether requests will carry a token.
    pub fn has_token(&self) -> bool {
        self.header.is_some()
    }
}

impl Interceptor for TokenInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request.metadata_mut().insert("authorization", header.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intercept(token: Option<&str>) -> Request<()> {
        let mut interceptor = match TokenInterceptor::new(token) {
            Ok(i) => i,
            Err(err) => panic!("valid token refused: {err}"),
        };
        match interceptor.call(Request::new(())) {
            Ok(request) => request,
            Err(status) => panic!("interceptor failed: {status}"),
        }
    }

    #[test]
    fn adds_token_header() {
        let request = intercept(Some("abc123"));
        let value = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        assert_eq!(value, Some("token abc123"));
    }

    #[test]
    fn no_token_no_header() {
        assert!(intercept(None).metadata().get("authorization").is_none());
        assert!(intercept(Some("  ")).metadata().get("authorization").is_none());
        assert!(!TokenInterceptor::default().has_token());
    }

    #[test]
    fn replaces_an_existing_header() {
        let mut interceptor = match TokenInterceptor::new(Some("new")) {
            Ok(i) => i,
            Err(err) => panic!("{err}"),
        };
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", MetadataValue::from_static("token old"));
        let request = match interceptor.call(request) {
            Ok(r) => r,
            Err(status) => panic!("{status}"),
        };
        let values: Vec<_> = request.metadata().get_all("authorization").iter().collect();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].to_str().ok(), Some("token new"));
    }

    #[test]
    fn rejects_tokens_that_cannot_be_headers() {
        assert!(matches!(
            TokenInterceptor::new(Some("bad\ntoken")),
            Err(ClientError::InvalidToken)
        ));
    }
}
