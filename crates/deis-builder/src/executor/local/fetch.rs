//! Fetching a buildpack named by URL (`BUILDPACK_URL`, `.buildpacks`).

use std::path::{Path, PathBuf};

use super::super::BuildError;
use super::process::{Cmd, Output, Session};

/// A buildpack reference: a git URL or path, and the `#ref` after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BuildpackRef {
    pub(super) url: String,
    pub(super) git_ref: Option<String>,
}

impl BuildpackRef {
    pub(super) fn parse(spec: &str) -> Self {
        let spec = spec.trim();
        match spec.rsplit_once('#') {
            Some((url, git_ref)) if !url.is_empty() => Self {
                url: url.to_owned(),
                git_ref: Some(git_ref.trim().to_owned()).filter(|r| !r.is_empty()),
            },
            _ => Self {
                url: spec.to_owned(),
                git_ref: None,
            },
        }
    }

    /// A readable name: the last path element without `.git`.
    pub(super) fn display_name(&self) -> String {
        let trimmed = self.url.trim_end_matches('/');
        let last = trimmed
            .rsplit(['/', ':'])
            .next()
            .unwrap_or(trimmed)
            .trim_end_matches(".git");
        if last.is_empty() {
            self.url.clone()
        } else {
            last.to_owned()
        }
    }

    /// A URL with a scheme (`file://`, `https://`, ...) or an scp-like
    /// `user@host:path`: cloned with `--depth 1`.
    fn is_remote(&self) -> bool {
        if self.url.contains("://") {
            return true;
        }
        match self.url.split_once(':') {
            Some((host, _)) => !host.contains('/') && host.contains('@'),
            None => false,
        }
    }
}

/// Makes the buildpack `spec` available and returns its directory.
///
/// A local directory that is a buildpack but not a git repository (relative
/// paths are taken from the build directory) is used where it is. Anything
/// else is cloned into `dest`: shallowly at the ref when that works (a
/// branch or tag), else fully and then checked out (a commit).
pub(super) async fn fetch(
    session: &mut Session,
    spec: &str,
    dest: &Path,
    build_dir: &Path,
) -> Result<PathBuf, BuildError> {
    let bp = BuildpackRef::parse(spec);
    if bp.url.is_empty() {
        return Err(BuildError::Failed(format!("Invalid buildpack URL {spec:?}")));
    }
    if !bp.is_remote() {
        let local = build_dir.join(&bp.url);
        if local.join("bin").join("compile").is_file() && !local.join(".git").exists() {
            if bp.git_ref.is_some() {
                session
                    .say(format!(
                        "       {} is not a git repository; ignoring #{}",
                        bp.url,
                        bp.git_ref.as_deref().unwrap_or_default()
                    ))
                    .await?;
            }
            return Ok(local);
        }
    }
    if tokio::fs::try_exists(dest).await? {
        tokio::fs::remove_dir_all(dest).await?;
    }
    let cwd = build_dir.to_path_buf();
    let clone = |shallow: bool, git_ref: Option<&str>| {
        let mut cmd = git(&cwd, "git clone").arg("clone").arg("--quiet");
        if shallow && bp.is_remote() {
            cmd = cmd.arg("--depth").arg("1");
        }
        if let Some(git_ref) = git_ref {
            cmd = cmd.arg("--branch").arg(git_ref);
        }
        cmd.arg("--").arg(&bp.url).arg(dest.as_os_str())
    };
    match bp.git_ref.as_deref() {
        None => {
            session.run(clone(true, None)).await?.check("git clone")?;
        }
        Some(git_ref) => {
            // A branch or a tag clones shallowly; a commit needs the history.
            let shallow = session
                .run(clone(true, Some(git_ref)).stderr(Output::Discard))
                .await?;
            if !shallow.status.success() {
                if tokio::fs::try_exists(dest).await? {
                    tokio::fs::remove_dir_all(dest).await?;
                }
                session.run(clone(false, None)).await?.check("git clone")?;
                session
                    .run(
                        git(&cwd, "git checkout")
                            .arg("-C")
                            .arg(dest.as_os_str())
                            .arg("-c")
                            .arg("advice.detachedHead=false")
                            .arg("checkout")
                            .arg("--quiet")
                            .arg(git_ref)
                            .arg("--"),
                    )
                    .await?
                    .check(&format!("git checkout {git_ref}"))?;
            }
        }
    }
    if dest.join(".gitmodules").is_file() {
        session
            .run(
                git(&cwd, "git submodule update")
                    .arg("-C")
                    .arg(dest.as_os_str())
                    .arg("submodule")
                    .arg("update")
                    .arg("--init")
                    .arg("--recursive")
                    .arg("--quiet"),
            )
            .await?
            .check("git submodule update")?;
    }
    Ok(dest.to_path_buf())
}

fn git(cwd: &Path, step: &str) -> Cmd {
    Cmd::new(step, "git", cwd.to_path_buf())
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdout(Output::Stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_and_names() {
        let r = BuildpackRef::parse("https://github.com/heroku/heroku-buildpack-python.git#v1.2");
        assert_eq!(r.url, "https://github.com/heroku/heroku-buildpack-python.git");
        assert_eq!(r.git_ref.as_deref(), Some("v1.2"));
        assert_eq!(r.display_name(), "heroku-buildpack-python");
        assert!(r.is_remote());

        let r = BuildpackRef::parse("/srv/buildpacks/mine");
        assert_eq!(r.git_ref, None);
        assert_eq!(r.display_name(), "mine");
        assert!(!r.is_remote());

        let r = BuildpackRef::parse("git@example.com:me/bp.git#");
        assert_eq!(r.git_ref, None);
        assert!(r.is_remote());
        assert_eq!(r.display_name(), "bp");

        let r = BuildpackRef::parse("file:///tmp/bp#feature/x");
        assert_eq!(r.url, "file:///tmp/bp");
        assert_eq!(r.git_ref.as_deref(), Some("feature/x"));
        assert!(!BuildpackRef::parse("./vendor/bp").is_remote());
    }
}
