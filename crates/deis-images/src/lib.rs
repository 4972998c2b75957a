//! What the components that handle container images share: finding the
//! image tools (buildah, podman, skopeo) and handing them a registry login
//! in a file, never on a command line where `ps` would show it.

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The first `name` on `PATH` that is an executable file.
pub fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Where buildah and podman keep their run-time state (locks, sockets) for
/// the storage in `storage`: containers/storage refuses a run root longer
/// than 50 characters, which a data directory under a home directory
/// easily is, so it lives under `/tmp` named by a hash of `storage`.
pub fn run_root(storage: &Path) -> PathBuf {
    // FNV-1a: stable across builds and Rust versions, unlike std's hasher.
    let hash = storage
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        });
    PathBuf::from(format!("/tmp/deis-run-{hash:016x}"))
}

/// A containers-auth.json (the `--authfile` of buildah, podman and skopeo)
/// with one registry login.
pub fn registry_auth_json(host: &str, username: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    serde_json::json!({ "auths": { host: { "auth": auth } } }).to_string()
}

/// Writes `text` to a new file only its owner can read.
pub fn write_private_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_roots_are_short_and_stable() {
        let long =
            Path::new("/home/someone/with/a/rather/long/path/.local/share/deis-workflow/runtime/containers");
        let root = run_root(long);
        assert!(root.as_os_str().len() <= 50, "{}", root.display());
        assert_eq!(root, run_root(long));
        assert_ne!(root, run_root(Path::new("/other")));
    }

    #[test]
    fn auth_files_name_the_registry_host() {
        let json: serde_json::Value =
            serde_json::from_str(&registry_auth_json("127.0.0.1:5000", "deis", "pw")).unwrap();
        assert_eq!(json["auths"]["127.0.0.1:5000"]["auth"], "ZGVpczpwdw==");
    }

    #[test]
    fn private_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("deis-core-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("auth.json");
        let _ = std::fs::remove_file(&path);
        write_private_file(&path, "{}").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(write_private_file(&path, "{}").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-here").is_none());
    }
}
