//! The SSH server's host keys: generated once into the data directory and
//! reused, so clients never see a changed host key after a restart.

use std::io::Write;
use std::path::Path;

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, EcdsaCurve, PrivateKey};

/// Loads the host keys from `dir`, generating missing ones: Ed25519 first
/// (preferred), then ECDSA P-256 for older clients.
pub fn load_or_generate(dir: &Path) -> std::io::Result<Vec<PrivateKey>> {
    std::fs::create_dir_all(dir)?;
    let wanted = [
        ("ssh_host_ed25519_key", Algorithm::Ed25519),
        (
            "ssh_host_ecdsa_key",
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
        ),
    ];
    let mut keys = Vec::new();
    for (name, algorithm) in wanted {
        let path = dir.join(name);
        let key = match std::fs::read_to_string(&path) {
            Ok(text) => PrivateKey::from_openssh(text.as_bytes()).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("host key {}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = PrivateKey::random(&mut russh::keys::key::safe_rng(), algorithm)
                    .map_err(|e| std::io::Error::other(format!("cannot generate a host key: {e}")))?;
                let text = key
                    .to_openssh(LineEnding::LF)
                    .map_err(|e| std::io::Error::other(format!("cannot encode a host key: {e}")))?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                options.open(&path)?.write_all(text.as_bytes())?;
                key
            }
            Err(e) => return Err(e),
        };
        keys.push(key);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_generated_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(dir.path()).unwrap();
        let second = load_or_generate(dir.path()).unwrap();
        assert_eq!(first.len(), 2);
        for (a, b) in first.iter().zip(&second) {
            assert_eq!(a.public_key(), b.public_key());
        }
        assert_eq!(first[0].algorithm(), Algorithm::Ed25519);
    }
}
