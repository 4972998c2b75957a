//! `keys:*`: SSH public keys that authenticate `git push`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Subcommand;
use deis_client::v2::{AddKeyRequest, ListKeysRequest, RemoveKeyRequest};

use crate::cli::LimitArg;
use crate::context::{Ctx, call};
use crate::output;
use crate::prompt;

/// `keys:*` commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// List your SSH keys
    #[command(name = "keys:list", alias = "keys")]
    List {
        #[command(flatten)]
        limit: LimitArg,
    },
    /// Add an SSH public key
    ///
    /// The name defaults to the key's comment, else the file name. Without a
    /// file, offers the keys found in ~/.ssh/*.pub.
    #[command(name = "keys:add")]
    Add {
        /// A name for the key, or the key file
        name: Option<String>,
        /// The public key file, e.g. ~/.ssh/id_ed25519.pub
        file: Option<String>,
    },
    /// Remove an SSH key
    #[command(name = "keys:remove")]
    Remove {
        /// The key's name (see keys:list)
        #[arg(value_name = "KEY")]
        id: String,
    },
}

/// An OpenSSH public key read from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PublicKey {
    /// Suggested name: the comment, else the file name without extension.
    pub(crate) id: String,
    /// `type base64 [comment]`, as uploaded.
    pub(crate) public: String,
    /// The file it came from.
    pub(crate) file: PathBuf,
}

/// Runs a `keys:*` command.
pub(crate) async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = ctx.session()?;
    match cmd {
        Cmd::List { limit } => {
            let page = call(s.client().await?.keys().list_keys(ListKeysRequest {
                limit: s.limit(limit.limit),
                offset: 0,
            }))
            .await?;
            if ctx.out.json_mode() {
                return ctx.out.json(&page);
            }
            ctx.out.page_header(
                format!("{} Keys", s.profile.username),
                page.results.len(),
                page.count,
            );
            if !page.results.is_empty() {
                ctx.out.line(
                    ctx.out
                        .kv_table(page.results.iter().map(|k| (k.id.clone(), abbreviate(&k.public)))),
                );
            }
            Ok(())
        }
        Cmd::Add { name, file } => {
            let (name, file) = order_arguments(name, file);
            let key = match file {
                Some(file) => read_key(Path::new(&file))?,
                None => choose_key()?,
            };
            let id = name.unwrap_or_else(|| key.id.clone());
            let file_name = key
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let label = format!("Uploading {file_name} to deis...");
            let request = AddKeyRequest {
                id,
                public: key.public,
            };
            let added = ctx
                .out
                .step(&label, call(s.client().await?.keys().add_key(request)))
                .await?;
            if ctx.out.json_mode() {
                ctx.out.json(&added.key.unwrap_or_default())?;
            }
            Ok(())
        }
        Cmd::Remove { id } => {
            let label = format!("Removing {id} SSH Key...");
            ctx.out
                .step(
                    &label,
                    call(s.client().await?.keys().remove_key(RemoveKeyRequest { id })),
                )
                .await?;
            Ok(())
        }
    }
}

/// Accepts `[name] [file]` in either order: an argument naming an existing
/// file is the file, else one that looks like a path (so a mistyped path
/// is reported, not taken for a name and followed by the key picker).
fn order_arguments(name: Option<String>, file: Option<String>) -> (Option<String>, Option<String>) {
    let is_file = |p: &str| Path::new(p).is_file();
    let as_file = |p: &str| is_file(p) || looks_like_path(p);
    match (name, file) {
        (Some(only), None) if as_file(&only) => (None, Some(only)),
        (Some(a), Some(b)) if is_file(&a) && !is_file(&b) => (Some(b), Some(a)),
        (Some(a), Some(b)) if !is_file(&b) && looks_like_path(&a) && !looks_like_path(&b) => {
            (Some(b), Some(a))
        }
        other => other,
    }
}

/// Whether `arg` reads as a file path rather than a key name: it has a
/// directory part, starts with `.` or `~`, or ends in `.pub`.
fn looks_like_path(arg: &str) -> bool {
    arg.contains('/') || arg.starts_with(['.', '~']) || arg.ends_with(".pub")
}

/// `ssh-ed25519 AAAAC3Nza...` → `ssh-ed25519 AAAA...0dh2l9GKJl` (Deis's
/// first 16 and last 10 characters).
fn abbreviate(public: &str) -> String {
    output::shorten(public, 16, 10, "...")
}

/// Parses the text of a public key file; `file` names it in errors and
/// gives the fallback id.
pub(crate) fn parse_key(text: &str, file: &Path) -> Result<PublicKey> {
    let invalid = || anyhow!("{} is not a valid ssh key", file.display());
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(invalid)?;
    let mut fields = line.split_whitespace();
    let (kind, blob) = (
        fields.next().ok_or_else(invalid)?,
        fields.next().ok_or_else(invalid)?,
    );
    let known = [
        "ssh-rsa",
        "ssh-dss",
        "ssh-ed25519",
        "ecdsa-sha2-",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-",
    ];
    if !known.iter().any(|k| kind.starts_with(k)) || BASE64.decode(blob).is_err() {
        return Err(invalid());
    }
    let comment = fields.collect::<Vec<_>>().join(" ");
    let fallback = file
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .split('.')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default();
    let id = if comment.is_empty() { fallback } else { comment };
    Ok(PublicKey {
        id,
        public: line.to_owned(),
        file: file.to_owned(),
    })
}

fn read_key(file: &Path) -> Result<PublicKey> {
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            bail!("The key file {} does not exist.", file.display())
        }
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", file.display())),
    };
    parse_key(&text, file)
}

/// Offers the keys in `~/.ssh/*.pub`; the answer is read from the terminal
/// or from piped stdin.
fn choose_key() -> Result<PublicKey> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("HOME is not set"))?;
    let dir = home.join(".ssh");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "pub"));
    files.sort();
    let keys: Vec<PublicKey> = files.iter().filter_map(|f| read_key(f).ok()).collect();
    if keys.is_empty() {
        bail!(
            "no SSH public keys found in {}; pass a key file: deis keys:add ~/.ssh/id_ed25519.pub",
            dir.display()
        );
    }
    let mut menu = String::from("Found the following SSH public keys:\n");
    for (index, key) in keys.iter().enumerate() {
        let name = key
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        menu.push_str(&format!("{}) {name} {}\n", index + 1, key.id));
    }
    menu.push_str("0) Enter path to pubfile (or use keys:add <key_path>)\n");
    eprint!("{menu}");
    let answer = prompt::line("Which would you like to use with Deis? ")?
        .ok_or_else(|| anyhow!("no key chosen; pass a key file: deis keys:add <file>"))?;
    let choice: usize = answer
        .trim()
        .parse()
        .map_err(|_| anyhow!("{} is not a valid integer", answer.trim()))?;
    match choice {
        0 => {
            let path = prompt::required(
                "Enter the path to the pubkey file: ",
                "a path",
                "the file as an argument",
            )?;
            read_key(Path::new(&path))
        }
        n => keys
            .into_iter()
            .nth(n - 1)
            .ok_or_else(|| anyhow!("{n} is not a valid option")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    #[test]
    fn id_is_comment_else_file_stem() -> Result<()> {
        let with_comment = parse_key(
            &format!("{ED25519} alice@laptop\n"),
            Path::new("/h/.ssh/id_ed25519.pub"),
        )?;
        assert_eq!(with_comment.id, "alice@laptop");
        assert_eq!(with_comment.public, format!("{ED25519} alice@laptop"));
        let bare = parse_key(ED25519, Path::new("/h/.ssh/deploy.key.pub"))?;
        assert_eq!(bare.id, "deploy");
        Ok(())
    }

    #[test]
    fn rejects_non_keys() {
        for bad in [
            "",
            "hello world",
            "ssh-rsa",
            "ssh-rsa not*base64",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        ] {
            assert!(parse_key(bad, Path::new("k.pub")).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_path_is_the_file_not_a_name() {
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            order_arguments(some("/nonexistent.pub"), None),
            (None, some("/nonexistent.pub"))
        );
        assert_eq!(order_arguments(some("laptop"), None), (some("laptop"), None));
        assert_eq!(
            order_arguments(some("keys/work.pub"), some("work")),
            (some("work"), some("keys/work.pub"))
        );
        assert_eq!(
            order_arguments(some("work"), some("keys/work.pub")),
            (some("work"), some("keys/work.pub"))
        );
        let dir = std::env::temp_dir();
        let missing = dir.join("deis-cli-no-such-key.pub");
        let err = read_key(&missing)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert_eq!(err, format!("The key file {} does not exist.", missing.display()));
    }

    #[test]
    fn abbreviates_like_deis() {
        assert_eq!(abbreviate(ED25519), "ssh-ed25519 AAAA...0dh2l9GKJl");
        assert_eq!(abbreviate("short"), "short");
    }
}
