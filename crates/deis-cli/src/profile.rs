//! The client profile (`~/.deis/client.json`), compatible with Deis's file.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

/// Deis's default page size for list commands.
pub(crate) const DEFAULT_RESPONSE_LIMIT: i32 = 100;

/// The profile used when neither `-c` nor `DEIS_PROFILE` names one.
pub(crate) const DEFAULT_PROFILE: &str = "client";

/// The error when there is no usable profile.
pub(crate) const NOT_LOGGED_IN: &str =
    "Not logged in. Run `deis login <controller>` or `deis register <controller>`.";

/// A saved login. The first five fields are Deis's; the rest are learnt from
/// `GetPlatformInfo` at login so the CLI can build git remotes offline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Profile {
    /// Who is logged in.
    #[serde(default)]
    pub(crate) username: String,
    /// Verify the controller's TLS certificate.
    #[serde(default = "default_true")]
    pub(crate) ssl_verify: bool,
    /// Controller URL, e.g. `http://127.0.0.1:8000`.
    #[serde(default)]
    pub(crate) controller: String,
    /// API token sent as `authorization: token <token>`.
    #[serde(default)]
    pub(crate) token: String,
    /// Page size for list commands; 0 or less means the default.
    #[serde(default = "default_limit")]
    pub(crate) response_limit: i32,
    /// Host that receives `git push`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) builder_host: Option<String>,
    /// Port that receives `git push`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) builder_port: Option<u16>,
    /// Apps answer at `<app>.<platform_domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) platform_domain: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_limit() -> i32 {
    DEFAULT_RESPONSE_LIMIT
}

impl Profile {
    /// The page size to request.
    pub(crate) fn limit(&self) -> i32 {
        if self.response_limit > 0 {
            self.response_limit
        } else {
            DEFAULT_RESPONSE_LIMIT
        }
    }

    /// Whether the profile holds a login.
    pub(crate) fn is_logged_in(&self) -> bool {
        !self.controller.trim().is_empty() && !self.token.trim().is_empty()
    }
}

/// Where the profile named by `selector` (from `-c` or `DEIS_PROFILE`) lives.
///
/// A value ending in `.json` is a path used as given; anything else is a
/// profile name under `~/.deis/`. `home` is only needed for names.
pub(crate) fn resolve_path(selector: Option<&str>, home: Option<&Path>) -> Result<PathBuf> {
    let selector = selector
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_PROFILE);
    if selector.ends_with(".json") {
        return Ok(PathBuf::from(selector));
    }
    if selector.contains(['/', '\\']) {
        bail!("invalid profile {selector:?}: give a name (like `client`) or a path ending in .json");
    }
    let home = home.ok_or_else(|| anyhow!("HOME is not set; cannot find the profile {selector:?}"))?;
    Ok(home.join(".deis").join(format!("{selector}.json")))
}

/// Reads the profile; a missing or empty one means "not logged in".
pub(crate) fn load(path: &Path) -> Result<Profile> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => bail!(NOT_LOGGED_IN),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    let profile: Profile = serde_json::from_str(&text).map_err(|err| {
        anyhow!(
            "{} is not a valid profile ({err}); run `deis login <controller>` again",
            path.display()
        )
    })?;
    if !profile.is_logged_in() {
        bail!(NOT_LOGGED_IN);
    }
    Ok(profile)
}

/// Reads the profile if there is a valid one, without complaining otherwise.
pub(crate) fn load_optional(path: &Path) -> Option<Profile> {
    load(path).ok()
}

/// Writes the profile readable by the owner only (it holds a token),
/// creating its directory with mode 0700. The write goes through a temporary
/// file so a crash never leaves half a profile.
pub(crate) fn save(path: &Path, profile: &Profile) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut text = serde_json::to_string_pretty(profile)?;
    text.push('\n');
    let tmp = path.with_extension("json.tmp");
    write_private(&tmp, text.as_bytes()).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Removes the profile; a missing one is fine.
pub(crate) fn delete(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot remove {}", path.display())),
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        // Only tighten our own directory, never a user-chosen parent.
        if dir.file_name().is_some_and(|n| n == ".deis") {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// Writes `bytes` to a fresh file with mode 0600.
#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` only applies to new files; an existing file keeps its bits.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes `bytes` to a file (no permission bits off Unix).
#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> PathBuf {
        PathBuf::from("/home/alice")
    }

    #[test]
    fn default_profile_is_client_json() -> Result<()> {
        assert_eq!(
            resolve_path(None, Some(&home()))?,
            home().join(".deis/client.json")
        );
        assert_eq!(
            resolve_path(Some("  "), Some(&home()))?,
            home().join(".deis/client.json")
        );
        Ok(())
    }

    #[test]
    fn bare_name_maps_under_dot_deis() -> Result<()> {
        assert_eq!(
            resolve_path(Some("staging"), Some(&home()))?,
            home().join(".deis/staging.json")
        );
        Ok(())
    }

    #[test]
    fn json_path_is_used_literally() -> Result<()> {
        assert_eq!(
            resolve_path(Some("/tmp/p.json"), None)?,
            PathBuf::from("/tmp/p.json")
        );
        assert_eq!(
            resolve_path(Some("rel/p.json"), None)?,
            PathBuf::from("rel/p.json")
        );
        assert_eq!(resolve_path(Some("p.json"), None)?, PathBuf::from("p.json"));
        Ok(())
    }

    #[test]
    fn names_need_home_and_no_slashes() {
        assert!(resolve_path(Some("client"), None).is_err());
        assert!(resolve_path(Some("a/b"), Some(&home())).is_err());
    }

    #[test]
    fn deis_file_without_extras_loads_with_defaults() -> Result<()> {
        let profile: Profile = serde_json::from_str(
            r#"{"username":"alice","ssl_verify":false,"controller":"http://d.example.com","token":"abc","response_limit":0}"#,
        )?;
        assert_eq!(profile.limit(), DEFAULT_RESPONSE_LIMIT);
        assert!(profile.is_logged_in());
        assert_eq!(profile.builder_host, None);
        let minimal: Profile = serde_json::from_str(r#"{"controller":"x","token":"t"}"#)?;
        assert!(minimal.ssl_verify);
        assert_eq!(minimal.response_limit, DEFAULT_RESPONSE_LIMIT);
        Ok(())
    }

    #[test]
    fn save_load_delete_round_trip() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = resolve_path(None, Some(dir.path()))?;
        assert_eq!(
            load(&path).err().map(|e| e.to_string()),
            Some(NOT_LOGGED_IN.to_owned())
        );
        let profile = Profile {
            username: "alice".into(),
            ssl_verify: true,
            controller: "http://127.0.0.1:8000".into(),
            token: "t0k3n".into(),
            response_limit: 100,
            builder_host: Some("127.0.0.1".into()),
            builder_port: Some(2222),
            platform_domain: None,
        };
        save(&path, &profile)?;
        assert_eq!(load(&path)?, profile);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
            let dir_mode = fs::metadata(dir.path().join(".deis"))?.permissions().mode() & 0o777;
            assert_eq!(dir_mode, 0o700);
        }
        let text = fs::read_to_string(&path)?;
        assert!(text.contains("\"response_limit\": 100"), "{text}");
        assert!(!text.contains("platform_domain"), "{text}");
        delete(&path)?;
        delete(&path)?;
        assert!(load(&path).is_err());
        Ok(())
    }

    #[test]
    fn corrupt_profile_says_so() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("p.json");
        fs::write(&path, "{not json")?;
        let message = load(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("not a valid profile"), "{message}");
        Ok(())
    }
}
