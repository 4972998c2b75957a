//! The operating-system users slug apps and buildpack builds run as on one
//! machine (`--app-users`): one per app, and one per build, so that their
//! code can read neither the platform's files nor another app's.
//!
//! The users need no entry in `/etc/passwd`: processes get a numeric uid and
//! a gid of the same number. Uids are never handed out twice, even after an
//! app is destroyed, so a new app cannot inherit files an old one left in
//! `/tmp`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The first app's uid: above the ranges systemd reserves for system,
/// regular, dynamic and container users (0x70000000).
pub const APP_UIDS: u32 = 1_879_048_192;
/// The first build's uid (0x71000000).
pub const BUILD_UIDS: u32 = APP_UIDS + UIDS;
/// How many uids each range holds.
const UIDS: u32 = 1 << 24;

/// The user (and group, of the same number) one app or build runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OsUser {
    pub uid: u32,
}

impl OsUser {
    /// The command prefix that runs what follows as this user, with no
    /// supplementary groups and no way to regain privileges (setuid
    /// binaries do not raise them).
    pub fn setpriv(&self) -> Vec<String> {
        vec![
            "setpriv".into(),
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.uid),
            "--clear-groups".into(),
            "--no-new-privs".into(),
            "--".into(),
        ]
    }

    /// Gives `dir` and everything under it to this user, clearing setuid
    /// and setgid bits. Never follows a symbolic link; `dir` must be one
    /// that only root can change while this runs.
    pub fn give(&self, dir: &Path) -> std::io::Result<()> {
        for entry in walk(dir)? {
            std::os::unix::fs::lchown(&entry, Some(self.uid), Some(self.uid))?;
            let meta = std::fs::symlink_metadata(&entry)?;
            if !meta.file_type().is_symlink() && meta.mode() & 0o6000 != 0 {
                std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(meta.mode() & 0o1777))?;
            }
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }

    /// `program` run as this user (through [`OsUser::setpriv`]); its
    /// arguments follow.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut command = std::process::Command::new("setpriv");
        command.args(self.setpriv().iter().skip(1)).arg(program);
        command
    }

    /// A command that kills every process of this user at once (`kill -1`
    /// run as the user itself signals exactly those), so that nothing it
    /// started outlives a build.
    pub fn kill_everything(&self) -> std::process::Command {
        // bash's own kill: util-linux's does not take -1 for "all".
        let mut command = self.command("bash");
        command
            .args(["-c", "kill -s KILL -1"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command
    }
}

/// Refuses, unless this process runs as root (only root can run others as
/// users of their own).
pub fn require_root() -> std::io::Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(std::io::Error::other(
            "running apps and builds as users of their own (--app-users) needs the platform to run as root",
        ))
    }
}

/// `dir` and every entry under it, children first (symbolic links are
/// listed, not followed).
fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        if std::fs::symlink_metadata(&next)?.is_dir() {
            for entry in std::fs::read_dir(&next)? {
                pending.push(entry?.path());
            }
        }
        found.push(next);
    }
    found.reverse();
    Ok(found)
}

/// Which name (an app, a build) has which uid, kept in a file of
/// `name uid` lines after a `next N` line.
pub struct OsUsers {
    file: PathBuf,
    /// The range's first uid.
    first: u32,
    assigned: Mutex<Assigned>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Assigned {
    by_name: BTreeMap<String, u32>,
    next: u32,
}

impl OsUsers {
    /// Reads the assignments kept in `file` (none if it does not exist);
    /// new uids come from `first` ([`APP_UIDS`], [`BUILD_UIDS`]) on.
    pub fn open(file: PathBuf, first: u32) -> std::io::Result<OsUsers> {
        let assigned = match std::fs::read_to_string(&file) {
            Ok(text) => parse(&text).ok_or_else(|| {
                std::io::Error::other(format!("{} is not a list of app users", file.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Assigned {
                by_name: BTreeMap::new(),
                next: first,
            },
            Err(e) => return Err(e),
        };
        Ok(OsUsers {
            file,
            first,
            assigned: Mutex::new(assigned),
        })
    }

    /// The user `name` runs as, assigned (and recorded) on first use.
    pub fn user(&self, name: &str) -> std::io::Result<OsUser> {
        let mut assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&uid) = assigned.by_name.get(name) {
            return Ok(OsUser { uid });
        }
        let uid = assigned.next;
        if uid < self.first || uid >= self.first.saturating_add(UIDS) {
            return Err(std::io::Error::other(format!(
                "every uid from {} has been handed out",
                self.first
            )));
        }
        let mut changed = assigned.clone();
        changed.by_name.insert(name.to_owned(), uid);
        changed.next = uid + 1;
        self.save(&changed)?;
        *assigned = changed;
        Ok(OsUser { uid })
    }

    /// The user `name` was given, if any (nothing is assigned).
    pub fn assigned(&self, name: &str) -> Option<OsUser> {
        let assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
        assigned.by_name.get(name).map(|&uid| OsUser { uid })
    }

    /// Forgets a destroyed app or a finished build (its uid is not handed
    /// out again).
    pub fn forget(&self, name: &str) -> std::io::Result<()> {
        let mut assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
        if !assigned.by_name.contains_key(name) {
            return Ok(());
        }
        let mut changed = assigned.clone();
        changed.by_name.remove(name);
        self.save(&changed)?;
        *assigned = changed;
        Ok(())
    }

    /// Writes `assigned` whole, then renames it into place: a crash leaves
    /// the old list or the new one.
    fn save(&self, assigned: &Assigned) -> std::io::Result<()> {
        let mut text = format!("next {}\n", assigned.next);
        for (name, uid) in &assigned.by_name {
            text.push_str(&format!("{name} {uid}\n"));
        }
        let partial = self.file.with_extension("partial");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&partial, &self.file)
    }
}

fn parse(text: &str) -> Option<Assigned> {
    let mut lines = text.lines();
    let next = lines.next()?.strip_prefix("next ")?.parse().ok()?;
    let mut by_name = BTreeMap::new();
    for line in lines {
        let (name, uid) = line.split_once(' ')?;
        by_name.insert(name.to_owned(), uid.parse().ok()?);
    }
    Some(Assigned { by_name, next })
}

/// Checks that a user other than root can reach into `dir`: every
/// directory above it is searchable by others, as app users must reach
/// their slugs.
pub fn reachable_by_others(dir: &Path) -> Result<(), String> {
    for ancestor in dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(ancestor) else {
            continue;
        };
        if meta.mode() & 0o001 == 0 {
            return Err(format!(
                "app users cannot reach {}: {} is not searchable by others (mode {:o}); \
                 choose a data directory outside it, for example --data-dir /var/lib/deis-workflow",
                dir.display(),
                ancestor.display(),
                meta.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

/// Makes `dir` searchable but not listable by others, and every entry in
/// it except `open` (names of entries apps must reach) private to root.
pub fn lock_down(dir: &Path, open: &[&str]) -> std::io::Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if open.iter().any(|name| entry.file_name() == *name) {
            continue;
        }
        let meta = std::fs::symlink_metadata(entry.path())?;
        let mode = if meta.is_dir() {
            0o700
        } else if meta.is_file() {
            0o600
        } else {
            continue;
        };
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_kept_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app-users");
        let users = OsUsers::open(file.clone(), APP_UIDS).unwrap();
        let a = users.user("a").unwrap();
        let b = users.user("b").unwrap();
        assert_eq!(a.uid, APP_UIDS);
        assert_eq!(b.uid, APP_UIDS + 1);
        assert_eq!(users.user("a").unwrap(), a);
        assert_eq!(users.assigned("a"), Some(a));
        assert_eq!(users.assigned("c"), None, "looking does not assign");
        users.forget("a").unwrap();
        assert_eq!(users.assigned("a"), None);

        let reopened = OsUsers::open(file.clone(), APP_UIDS).unwrap();
        assert_eq!(reopened.user("b").unwrap(), b);
        assert_eq!(
            reopened.user("a").unwrap().uid,
            APP_UIDS + 2,
            "a forgotten uid is not reused"
        );
        let mode = std::fs::metadata(&file).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);

        std::fs::write(&file, "garbage").unwrap();
        assert!(OsUsers::open(file, APP_UIDS).is_err());
    }

    #[test]
    fn setpriv_drops_to_the_user_with_no_groups() {
        let user = OsUser { uid: APP_UIDS + 7 };
        assert_eq!(
            user.setpriv().join(" "),
            "setpriv --reuid=1879048199 --regid=1879048199 --clear-groups --no-new-privs --"
        );
    }

    #[test]
    fn a_locked_down_directory_keeps_only_the_named_entries_open() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("open")).unwrap();
        std::fs::create_dir(d.join("closed")).unwrap();
        std::fs::write(d.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("secret", d.join("link")).unwrap();
        let mode = |name: &str| std::fs::symlink_metadata(d.join(name)).unwrap().mode() & 0o7777;
        let open_before = mode("open");
        lock_down(d, &["open"]).unwrap();
        assert_eq!(std::fs::metadata(d).unwrap().mode() & 0o777, 0o711);
        assert_eq!(mode("open"), open_before);
        assert_eq!(mode("closed"), 0o700);
        assert_eq!(mode("secret"), 0o600);
    }

    #[test]
    fn giving_a_tree_changes_owners_clears_setuid_and_follows_no_link() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: changing owners needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "root's").unwrap();
        let slug = dir.path().join("slug");
        std::fs::create_dir_all(slug.join("bin")).unwrap();
        std::fs::write(slug.join("bin/tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(slug.join("bin/tool"), std::fs::Permissions::from_mode(0o6755)).unwrap();
        std::os::unix::fs::symlink(&outside, slug.join("bin/link")).unwrap();
        let user = OsUser { uid: APP_UIDS + 3 };
        user.give(&slug).unwrap();
        for path in [
            slug.clone(),
            slug.join("bin"),
            slug.join("bin/tool"),
            slug.join("bin/link"),
        ] {
            assert_eq!(
                std::fs::symlink_metadata(&path).unwrap().uid(),
                user.uid,
                "{}",
                path.display()
            );
        }
        assert_eq!(
            std::fs::metadata(slug.join("bin/tool")).unwrap().mode() & 0o7777,
            0o755
        );
        assert_eq!(std::fs::metadata(&slug).unwrap().mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::metadata(&outside).unwrap().uid(),
            0,
            "the link's target stays root's"
        );
    }

    #[test]
    fn everything_a_user_runs_is_killed_and_nothing_else() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: running as another user needs root");
            return;
        }
        let user = OsUser { uid: BUILD_UIDS + 99 };
        let mut theirs = user.command("sleep").arg("30").spawn().unwrap();
        let mut ours = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        user.kill_everything().status().unwrap();
        let killed = theirs.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&killed), Some(9));
        assert!(ours.try_wait().unwrap().is_none(), "root's process lives on");
        ours.kill().unwrap();
        ours.wait().unwrap();
    }

    #[test]
    fn unreachable_directories_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let closed = dir.path().join("closed");
        std::fs::create_dir(&closed).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let error = reachable_by_others(&closed.join("data")).unwrap_err();
        assert!(error.contains("is not searchable by others"), "{error}");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        assert!(reachable_by_others(&closed.join("data")).is_ok());
    }
}
