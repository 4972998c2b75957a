//! The bare git repositories, one per app, that pushes land in.

use std::path::{Path, PathBuf};

use tokio::process::Command;

/// How the `pre-receive` hook calls back into the builder: a program and
/// its leading arguments (`deis-workflow hook pre-receive` in production).
#[derive(Clone, Debug)]
pub struct HookCommand {
    /// The executable.
    pub program: PathBuf,
    /// Arguments before anything git passes.
    pub args: Vec<String>,
}

/// The repositories under one directory.
#[derive(Clone, Debug)]
pub struct Repos {
    root: PathBuf,
    hook: HookCommand,
    max_push_bytes: u64,
}

/// Quotes a string for a POSIX shell script.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

async fn git(repo: &Path, args: &[&str]) -> std::io::Result<()> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .env_remove("GIT_DIR")
        .output()
        .await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Repos {
    /// Repositories under `root`, refusing pushes over `max_push_bytes`.
    pub fn new(root: PathBuf, hook: HookCommand, max_push_bytes: u64) -> Repos {
        Repos {
            root,
            hook,
            max_push_bytes,
        }
    }

    /// Where an app's repository lives.
    pub fn path(&self, app: &str) -> PathBuf {
        self.root.join(format!("{app}.git"))
    }

    /// Creates the app's bare repository if needed and (re)writes its
    /// settings and hook, so they always match this builder.
    pub async fn ensure(&self, app: &str) -> std::io::Result<PathBuf> {
        let path = self.path(app);
        if !path.join("HEAD").exists() {
            tokio::fs::create_dir_all(&self.root).await?;
            let out = Command::new("git")
                .args(["init", "--quiet", "--bare", "--initial-branch=main"])
                .arg(&path)
                .env_remove("GIT_DIR")
                .output()
                .await?;
            if !out.status.success() {
                return Err(std::io::Error::other(format!(
                    "git init failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        // Corrupt or malicious objects are refused on receipt; pushes are
        // bounded; branches cannot be deleted by a push.
        git(&path, &["config", "receive.fsckObjects", "true"]).await?;
        git(
            &path,
            &["config", "receive.maxInputSize", &self.max_push_bytes.to_string()],
        )
        .await?;
        git(&path, &["config", "receive.denyDeletes", "true"]).await?;
        git(&path, &["config", "gc.auto", "0"]).await?;
        let mut script =
            String::from("#!/bin/sh\n# Written by the deis builder: hands the push to the build.\nexec");
        for part in
            std::iter::once(self.hook.program.display().to_string()).chain(self.hook.args.iter().cloned())
        {
            script.push(' ');
            script.push_str(&sh_quote(&part));
        }
        script.push('\n');
        let hook = path.join("hooks/pre-receive");
        tokio::fs::create_dir_all(path.join("hooks")).await?;
        tokio::fs::write(&hook, script).await?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).await?;
        }
        Ok(path)
    }

    /// Removes an app's repository.
    pub async fn remove(&self, app: &str) -> std::io::Result<()> {
        match tokio::fs::remove_dir_all(self.path(app)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("/a b/it's"), r"'/a b/it'\''s'");
    }

    #[tokio::test]
    async fn ensure_creates_a_configured_bare_repo() {
        let dir = tempfile::tempdir().unwrap();
        let hook = HookCommand {
            program: "/usr/bin/deis-workflow".into(),
            args: vec!["hook".into(), "pre-receive".into()],
        };
        let repos = Repos::new(dir.path().join("repos"), hook, 1024);
        let path = repos.ensure("myapp").await.unwrap();
        assert!(path.join("HEAD").exists());
        let config = std::fs::read_to_string(path.join("config")).unwrap();
        assert!(config.contains("fsckObjects = true"), "{config}");
        assert!(config.contains("maxInputSize = 1024"), "{config}");
        let script = std::fs::read_to_string(path.join("hooks/pre-receive")).unwrap();
        assert!(
            script.ends_with("exec '/usr/bin/deis-workflow' 'hook' 'pre-receive'\n"),
            "{script}"
        );
        repos.ensure("myapp").await.unwrap();
        repos.remove("myapp").await.unwrap();
        assert!(!path.exists());
    }
}
