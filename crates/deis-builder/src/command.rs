//! Parsing the command an SSH client asks to run. Only git's two transport
//! commands on `<app>.git` are accepted; nothing is ever run through a shell.

/// Which side of the git transport the client wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GitService {
    /// `git push`.
    ReceivePack,
    /// `git clone` / `git fetch`.
    UploadPack,
}

impl GitService {
    /// The git subcommand that serves it.
    pub fn subcommand(self) -> &'static str {
        match self {
            GitService::ReceivePack => "receive-pack",
            GitService::UploadPack => "upload-pack",
        }
    }
}

/// An accepted command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitCommand {
    /// What to run.
    pub service: GitService,
    /// The app named by the repository path.
    pub app: String,
}

/// Longest command accepted.
const MAX_COMMAND: usize = 1024;

/// Parses `git-receive-pack '<app>.git'` (and the `git receive-pack`,
/// leading-`/`, unquoted and `.git`-less variants). The error is the
/// one-line refusal shown to the client.
pub fn parse(command: &[u8]) -> Result<GitCommand, String> {
    if command.len() > MAX_COMMAND {
        return Err("refused: command too long".into());
    }
    let text = std::str::from_utf8(command).map_err(|_| "refused: command is not UTF-8".to_owned())?;
    let text = text.trim();
    if text.chars().any(char::is_control) {
        return Err("refused: command contains control characters".into());
    }
    let (verb, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let service = match verb {
        "git-receive-pack" => GitService::ReceivePack,
        "git-upload-pack" => GitService::UploadPack,
        "git" => match rest.trim_start().split_once(char::is_whitespace) {
            Some(("receive-pack", _)) => {
                return parse(format!("git-receive-pack {}", after_word(rest)).as_bytes());
            }
            Some(("upload-pack", _)) => {
                return parse(format!("git-upload-pack {}", after_word(rest)).as_bytes());
            }
            _ => return Err(format!("refused: {}", shown(text))),
        },
        _ => return Err(format!("refused: {}", shown(text))),
    };
    let app = repository_app(rest.trim())?;
    Ok(GitCommand { service, app })
}

fn after_word(text: &str) -> &str {
    text.trim_start()
        .split_once(char::is_whitespace)
        .map_or("", |(_, rest)| rest)
}

/// The app of a repository argument: quotes, one leading `/`, a `.git`
/// suffix removed; anything but an app id is refused.
fn repository_app(arg: &str) -> Result<String, String> {
    let unquoted = match arg.as_bytes() {
        [b'\'', .., b'\''] | [b'"', .., b'"'] if arg.len() >= 2 => {
            arg.get(1..arg.len() - 1).unwrap_or_default()
        }
        _ => arg,
    };
    if unquoted.is_empty() {
        return Err("refused: no repository given".into());
    }
    if unquoted.contains("..") {
        return Err(format!("refused: invalid repository name {}", shown(unquoted)));
    }
    let name = unquoted.strip_prefix('/').unwrap_or(unquoted);
    let name = name.strip_suffix(".git").unwrap_or(name);
    if !is_app_id(name) {
        return Err(format!("refused: invalid repository name {}", shown(unquoted)));
    }
    Ok(name.to_owned())
}

/// Whether `name` is an app id (lower-case letters, digits and dashes,
/// starting with a letter, at most 63 bytes): safe as a file name.
pub(crate) fn is_app_id(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
}

/// User input as shown back: cut short.
fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(80).collect();
    if text.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(cmd: &str) -> (GitService, String) {
        let parsed = parse(cmd.as_bytes()).unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        (parsed.service, parsed.app)
    }

    #[test]
    fn accepts_every_form_git_sends() {
        use GitService::*;
        assert_eq!(ok("git-receive-pack 'myapp.git'"), (ReceivePack, "myapp".into()));
        assert_eq!(ok("git-receive-pack '/myapp.git'"), (ReceivePack, "myapp".into()));
        assert_eq!(ok("git-receive-pack myapp"), (ReceivePack, "myapp".into()));
        assert_eq!(ok("git-upload-pack \"myapp.git\""), (UploadPack, "myapp".into()));
        assert_eq!(
            ok("git receive-pack 'my-app-2.git'"),
            (ReceivePack, "my-app-2".into())
        );
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "rm -rf /",
            "ls",
            "git-receive-pack '../etc.git'",
            "git-receive-pack 'a/../b.git'",
            "git-receive-pack '/srv/repos/app.git'",
            "git-receive-pack 'App.git'",
            "git-receive-pack ''",
            "git-receive-pack",
            "git-upload-archive 'app.git'",
            "git-receive-pack 'app.git'; rm -rf /",
            "git-receive-pack 'app.git\n'",
            "git-receive-pack `id`",
            "git-receive-pack $(id)",
        ] {
            let err = parse(bad.as_bytes()).expect_err(bad);
            assert!(err.starts_with("refused:"), "{bad}: {err}");
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
        assert!(parse(&[0xff, 0xfe]).is_err());
        assert!(parse("x".repeat(5000).as_bytes()).is_err());
    }
}
