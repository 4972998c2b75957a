//! Git remotes that point at the builder, and app detection from them.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use deis_client::{ControllerUrl, DEFAULT_BUILDER_PORT};
use regex::Regex;

use crate::profile::Profile;

/// Where `git push` goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Builder {
    host: String,
    port: u16,
}

impl Builder {
    /// A builder at `host:port`.
    pub(crate) fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into().to_ascii_lowercase(),
            port,
        }
    }

    /// The builder recorded in the profile at login, else the controller's
    /// host on Deis's port 2222.
    pub(crate) fn from_profile(profile: &Profile) -> Self {
        let host = profile
            .builder_host
            .clone()
            .filter(|h| !h.trim().is_empty())
            .or_else(|| {
                ControllerUrl::parse(&profile.controller)
                    .ok()
                    .map(|u| u.host().to_owned())
            })
            .unwrap_or_else(|| "localhost".to_owned());
        Self::new(
            host,
            profile
                .builder_port
                .filter(|p| *p != 0)
                .unwrap_or(DEFAULT_BUILDER_PORT),
        )
    }

    /// `ssh://git@<host>:<port>/<app>.git`.
    pub(crate) fn repo_url(&self, app: &str) -> String {
        format!("ssh://git@{}:{}/{app}.git", self.host, self.port)
    }

    /// The app a remote URL designates, if the URL points at this builder.
    pub(crate) fn app_from_url(&self, url: &str) -> Option<String> {
        let (host, port, path) = split_ssh_url(url)?;
        if !host.eq_ignore_ascii_case(&self.host) || port != self.port {
            return None;
        }
        let last = path.trim_end_matches('/').rsplit('/').next()?;
        let app = last.strip_suffix(".git").unwrap_or(last);
        (!app.is_empty()).then(|| app.to_owned())
    }
}

/// Splits `ssh://[user@]host[:port]/path` or scp-like `[user@]host:path`
/// into host, port (22 when absent) and path.
fn split_ssh_url(url: &str) -> Option<(String, u16, String)> {
    let url = url.trim();
    if let Some(rest) = url.strip_prefix("ssh://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
        let (host, port) = split_host_port(host_port)?;
        return Some((host, port, path.to_owned()));
    }
    if url.contains("://") {
        return None;
    }
    // scp-like syntax has no port; the path follows the first colon after
    // the host (IPv6 hosts are bracketed).
    let rest = url.rsplit_once('@').map_or(url, |(_, r)| r);
    let (host, path) = if let Some(stripped) = rest.strip_prefix('[') {
        let (host, after) = stripped.split_once(']')?;
        (format!("[{host}]"), after.strip_prefix(':')?.to_owned())
    } else {
        let (host, path) = rest.split_once(':')?;
        (host.to_owned(), path.to_owned())
    };
    Some((host, 22, path))
}

fn split_host_port(host_port: &str) -> Option<(String, u16)> {
    if let Some(stripped) = host_port.strip_prefix('[') {
        let (host, after) = stripped.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => 22,
        };
        return Some((format!("[{host}]"), port));
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((host_port.to_owned(), 22)),
    }
}

/// A git remote (push URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Remote {
    /// Remote name, e.g. `deis`.
    pub(crate) name: String,
    /// Push URL.
    pub(crate) url: String,
}

/// Parses `git remote -v` output, keeping push URLs.
pub(crate) fn parse_remotes(output: &str) -> Vec<Remote> {
    output
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (name, url, kind) = (parts.next()?, parts.next()?, parts.next()?);
            (kind == "(push)").then(|| Remote {
                name: name.to_owned(),
                url: url.to_owned(),
            })
        })
        .collect()
}

/// The remotes of the repository around the current directory; none outside
/// a repository or without git.
pub(crate) fn remotes() -> Vec<Remote> {
    match Command::new("git").args(["remote", "-v"]).output() {
        Ok(out) if out.status.success() => parse_remotes(&String::from_utf8_lossy(&out.stdout)),
        _ => Vec::new(),
    }
}

/// Runs `git <args>`, turning a failure into git's own message.
fn git(args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args(args)
        .output()
        .context("cannot run git; is it installed and on PATH?")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = stderr
            .trim()
            .trim_start_matches("fatal: ")
            .trim_start_matches("error: ");
        if message.contains("not a git repository") {
            bail!("the current directory is not a git repository; run `git init` first or pass --no-remote");
        }
        bail!("git {} failed: {message}", args.join(" "));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Adds remote `name` with `url`.
pub(crate) fn add_remote(name: &str, url: &str) -> Result<()> {
    git(&["remote", "add", name, url]).map(drop)
}

/// Removes remote `name`.
pub(crate) fn remove_remote(name: &str) -> Result<()> {
    git(&["remote", "remove", name]).map(drop)
}

/// The push URL of remote `name`, if it exists.
pub(crate) fn remote_url(name: &str) -> Option<String> {
    remotes().into_iter().find(|r| r.name == name).map(|r| r.url)
}

/// Removes every remote pointing at `app` on `builder`; returns their names.
pub(crate) fn remove_app_remotes(builder: &Builder, app: &str) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for remote in remotes() {
        if builder.app_from_url(&remote.url).as_deref() == Some(app) && !removed.contains(&remote.name) {
            remove_remote(&remote.name)?;
            removed.push(remote.name);
        }
    }
    Ok(removed)
}

/// Where the app name came from, to explain mistakes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AppSource {
    /// `-a/--app`.
    Flag,
    /// A git remote pointing at the builder.
    Remote(String),
    /// The current directory's name.
    Directory,
}

/// The app a command acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AppRef {
    /// App id.
    pub(crate) name: String,
    /// How it was found.
    pub(crate) source: AppSource,
}

impl AppRef {
    /// A hint to append to "not found" errors when the name was guessed.
    pub(crate) fn hint(&self) -> Option<String> {
        match &self.source {
            AppSource::Flag => None,
            AppSource::Remote(remote) => Some(format!(
                "The app name `{}` comes from git remote `{remote}`; pass -a <app> to choose another.",
                self.name
            )),
            AppSource::Directory => Some(format!(
                "The app name `{}` was guessed from the current directory; pass -a <app> or run this inside the app's git checkout.",
                self.name
            )),
        }
    }
}

/// Whether `name` is a valid app id (Deis's rule).
pub(crate) fn is_app_name(name: &str) -> bool {
    name.len() <= 63 && Regex::new(r"^[a-z]([a-z0-9-]*[a-z0-9])?$").is_ok_and(|re| re.is_match(name))
}

/// Picks the app: the flag, else a remote pointing at the builder (one named
/// `deis` first), else the lower-cased directory name.
pub(crate) fn pick_app(
    flag: Option<&str>,
    remotes: &[Remote],
    builder: &Builder,
    dir: Option<&Path>,
) -> Result<AppRef> {
    if let Some(name) = flag.map(str::trim).filter(|n| !n.is_empty()) {
        return Ok(AppRef {
            name: name.to_owned(),
            source: AppSource::Flag,
        });
    }
    let mut matches: Vec<(&Remote, String)> = remotes
        .iter()
        .filter_map(|r| builder.app_from_url(&r.url).map(|app| (r, app)))
        .collect();
    matches.sort_by_key(|(r, _)| r.name != "deis");
    if let Some((remote, app)) = matches.into_iter().next() {
        return Ok(AppRef {
            name: app,
            source: AppSource::Remote(remote.name.clone()),
        });
    }
    let dir_name = dir
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if !is_app_name(&dir_name) {
        bail!(
            "cannot tell which app to use: no git remote points at the builder ({}:{}) and the directory name `{dir_name}` is not an app name; pass -a <app>",
            builder.host,
            builder.port
        );
    }
    Ok(AppRef {
        name: dir_name,
        source: AppSource::Directory,
    })
}

/// [`pick_app`] for the current directory and repository.
pub(crate) fn detect_app(flag: Option<&str>, builder: &Builder) -> Result<AppRef> {
    if flag.is_some_and(|f| !f.trim().is_empty()) {
        return pick_app(flag, &[], builder, None);
    }
    let cwd = std::env::current_dir().ok();
    pick_app(None, &remotes(), builder, cwd.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> Builder {
        Builder::new("deis.example.com", 2222)
    }

    fn remote(name: &str, url: &str) -> Remote {
        Remote {
            name: name.into(),
            url: url.into(),
        }
    }

    #[test]
    fn repo_url_is_deis_style() {
        assert_eq!(
            builder().repo_url("myapp"),
            "ssh://git@deis.example.com:2222/myapp.git"
        );
    }

    #[test]
    fn app_from_builder_urls() {
        let b = builder();
        assert_eq!(
            b.app_from_url("ssh://git@deis.example.com:2222/myapp.git")
                .as_deref(),
            Some("myapp")
        );
        assert_eq!(
            b.app_from_url("ssh://git@DEIS.example.com:2222/myapp").as_deref(),
            Some("myapp")
        );
        assert_eq!(
            b.app_from_url("ssh://git@deis.example.com:2222/a/b/other.git/")
                .as_deref(),
            Some("other")
        );
    }

    #[test]
    fn other_hosts_ports_and_schemes_do_not_match() {
        let b = builder();
        for url in [
            "ssh://git@deis.example.com:22/myapp.git",
            "ssh://git@elsewhere.com:2222/myapp.git",
            "git@github.com:me/myapp.git",
            "https://deis.example.com:2222/myapp.git",
            "ssh://git@deis.example.com:2222/.git",
            "ssh://git@deis.example.com:notaport/myapp.git",
        ] {
            assert_eq!(b.app_from_url(url), None, "{url}");
        }
    }

    #[test]
    fn scp_like_and_ipv6_urls() {
        assert_eq!(
            Builder::new("host", 22)
                .app_from_url("git@host:myapp.git")
                .as_deref(),
            Some("myapp")
        );
        let v6 = Builder::new("[::1]", 2222);
        assert_eq!(
            v6.app_from_url("ssh://git@[::1]:2222/myapp.git").as_deref(),
            Some("myapp")
        );
        assert_eq!(v6.repo_url("x"), "ssh://git@[::1]:2222/x.git");
    }

    #[test]
    fn builder_from_profile_falls_back_to_controller_host() {
        let mut profile = Profile {
            controller: "http://127.0.0.1:8000".into(),
            ..Default::default()
        };
        assert_eq!(Builder::from_profile(&profile), Builder::new("127.0.0.1", 2222));
        profile.builder_host = Some("git.example.com".into());
        profile.builder_port = Some(2223);
        assert_eq!(
            Builder::from_profile(&profile),
            Builder::new("git.example.com", 2223)
        );
    }

    #[test]
    fn parses_git_remote_v() {
        let out = "deis\tssh://git@h:2222/a.git (fetch)\ndeis\tssh://git@h:2222/a.git (push)\norigin\tgit@github.com:x/y.git (push)\n";
        assert_eq!(
            parse_remotes(out),
            vec![
                remote("deis", "ssh://git@h:2222/a.git"),
                remote("origin", "git@github.com:x/y.git")
            ]
        );
    }

    #[test]
    fn flag_wins_then_remote_then_directory() -> Result<()> {
        let b = builder();
        let remotes = vec![
            remote("origin", "git@github.com:me/site.git"),
            remote("other", "ssh://git@deis.example.com:2222/second.git"),
            remote("deis", "ssh://git@deis.example.com:2222/first.git"),
        ];
        let dir = Path::new("/src/My-Project");
        assert_eq!(
            pick_app(Some("x"), &remotes, &b, Some(dir))?.source,
            AppSource::Flag
        );
        let from_remote = pick_app(None, &remotes, &b, Some(dir))?;
        assert_eq!(
            from_remote,
            AppRef {
                name: "first".into(),
                source: AppSource::Remote("deis".into())
            }
        );
        let from_dir = pick_app(None, &remotes[..1], &b, Some(dir))?;
        assert_eq!(
            from_dir,
            AppRef {
                name: "my-project".into(),
                source: AppSource::Directory
            }
        );
        assert!(from_dir.hint().is_some_and(|h| h.contains("-a <app>")));
        Ok(())
    }

    #[test]
    fn unusable_directory_name_asks_for_flag() {
        let err = pick_app(None, &[], &builder(), Some(Path::new("/tmp/my project")));
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("pass -a <app>"), "{message}");
    }

    #[test]
    fn app_name_rule() {
        assert!(is_app_name("my-app2"));
        for bad in ["", "2app", "app-", "App", "a_b", &"a".repeat(64)] {
            assert!(!is_app_name(bad), "{bad}");
        }
    }
}
