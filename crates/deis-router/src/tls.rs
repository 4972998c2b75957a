//! TLS for HTTPS listeners: certificates chosen by SNI, refused without a match.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::SniCertificate;
use crate::router::ApplyError;

/// Builds the TLS configuration of one HTTPS listener (ring provider, ALPN
/// `h2` and `http/1.1`), checking every certificate and key.
///
/// A certificate that cannot be served (unparsable, or its key is not the
/// certificate's) is left out with a warning: only its server names lose
/// TLS (their handshakes are refused, as for an unknown name), and every
/// other certificate is still served. One app's bad upload must not freeze
/// the HTTPS configuration of all the others.
pub(crate) fn server_config(
    listener: &str,
    certificates: &[SniCertificate],
) -> Result<Arc<ServerConfig>, ApplyError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut resolver = SniResolver::default();
    for certificate in certificates {
        let key = match certified_key(certificate, &provider) {
            Ok(key) => Arc::new(key),
            Err(reason) => {
                tracing::warn!(
                    listener,
                    domains = %certificate.server_names.join(","),
                    %reason,
                    "skipped a certificate that cannot be served; its domains get no TLS"
                );
                continue;
            }
        };
        for name in &certificate.server_names {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            match name.strip_prefix('*') {
                // `*.example.com` is kept as `.example.com`.
                Some(suffix) if suffix.starts_with('.') => {
                    resolver
                        .wildcard
                        .entry(suffix.to_owned())
                        .or_insert_with(|| Arc::clone(&key));
                }
                _ => {
                    resolver.exact.entry(name).or_insert_with(|| Arc::clone(&key));
                }
            }
        }
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApplyError::Tls {
            listener: listener.to_owned(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn certified_key(certificate: &SniCertificate, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(certificate.certificate_chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate chain is not valid PEM ({e})"))?;
    if chain.is_empty() {
        return Err("the certificate chain holds no PEM certificate".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(certificate.private_key.as_bytes())
        .map_err(|e| format!("the private key is not valid PEM ({e})"))?;
    let key = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| format!("the key or certificate is unusable ({e})"))?;
    // `from_der` skips the check when the key type cannot tell its public
    // key; parse the leaf anyway so a corrupt certificate is refused here.
    if let Err(e) = key.keys_match()
        && !matches!(
            e,
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)
        )
    {
        return Err(format!("the key or certificate is unusable ({e})"));
    }
    Ok(key)
}

/// Chooses a certificate by SNI: exact name first, then the longest
/// `*.suffix` wildcard (one or more leading labels, as Envoy's
/// `server_names`). No SNI or no match: no certificate, so the handshake
/// fails.
#[derive(Debug, Default)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix with its leading dot.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl SniResolver {
    fn lookup(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(key) = self.exact.get(&name) {
            return Some(Arc::clone(key));
        }
        let mut rest = name.as_str();
        while let Some(dot) = rest.find('.') {
            // Skip empty labels: `.example.com` is no name.
            if dot > 0
                && let Some(key) = rest.get(dot..).and_then(|suffix| self.wildcard.get(suffix))
            {
                return Some(Arc::clone(key));
            }
            rest = rest.get(dot + 1..)?;
        }
        None
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let key = self.lookup(client_hello.server_name()?);
        if key.is_none() {
            tracing::debug!(sni = client_hello.server_name(), "no certificate for server name");
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused() {
        let cert = SniCertificate {
            server_names: vec!["a.example.com".into()],
            certificate_chain: "not a certificate".into(),
            private_key: "not a key".into(),
        };
        let provider = rustls::crypto::ring::default_provider();
        let err = certified_key(&cert, &provider).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        // The listener is still built, without that certificate.
        assert!(server_config("https", &[cert]).is_ok());
    }
}
