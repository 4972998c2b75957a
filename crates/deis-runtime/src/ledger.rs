//! A record of the process groups this runtime started, kept on disk, so
//! that after a crash (or SIGKILL) of the platform the next start can kill
//! whatever the previous run left behind before starting apps again.

use std::collections::BTreeMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    /// What the process was (for the log).
    name: String,
    /// The process's start time in clock ticks since boot (/proc/<pid>/stat
    /// field 22): a recycled pid has a different one.
    start_ticks: u64,
}

/// Process groups started and not yet reaped.
pub(crate) struct Ledger {
    path: PathBuf,
    entries: Mutex<BTreeMap<i32, Entry>>,
}

/// A process's start time, if it exists.
fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it are
    // counted from the closing parenthesis.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Ledger {
    /// Opens the ledger at `path` and kills every process group the previous
    /// run recorded that is still the same process.
    pub(crate) fn open_and_reap(path: PathBuf) -> Ledger {
        let previous: BTreeMap<i32, Entry> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        for (pgid, entry) in &previous {
            if start_ticks(*pgid) == Some(entry.start_ticks) {
                tracing::warn!(process = %entry.name, pgid, "killing a process left over from the previous run");
                let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
            }
        }
        let ledger = Ledger {
            path,
            entries: Mutex::new(BTreeMap::new()),
        };
        ledger.save(&BTreeMap::new());
        ledger
    }

    /// Records a started process group.
    pub(crate) fn add(&self, pgid: i32, name: &str) {
        let Some(start_ticks) = start_ticks(pgid) else {
            return;
        };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(
            pgid,
            Entry {
                name: name.to_owned(),
                start_ticks,
            },
        );
        self.save(&entries);
    }

    /// Forgets a process group that is gone.
    pub(crate) fn remove(&self, pgid: i32) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.remove(&pgid).is_some() {
            self.save(&entries);
        }
    }

    fn save(&self, entries: &BTreeMap<i32, Entry>) {
        let Ok(bytes) = serde_json::to_vec(entries) else {
            return;
        };
        let tmp = self.path.with_extension("tmp");
        // Private: with app users, the runtime's directory is searchable.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| std::io::Write::write_all(&mut file, &bytes));
        if written.and_then(|()| std::fs::rename(&tmp, &self.path)).is_err() {
            tracing::warn!(path = %self.path.display(), "cannot write the process ledger");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn leftovers_of_a_previous_run_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("processes.json");
        let mut child = std::process::Command::new("sleep")
            .arg("600")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let ledger = Ledger::open_and_reap(path.clone());
        ledger.add(pid, "app-web-1");
        let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&path).unwrap());
        assert_eq!(mode & 0o777, 0o600, "the ledger is private");
        // A new run reads the ledger and kills the group.
        drop(ledger);
        let _again = Ledger::open_and_reap(path);
        let status = child.wait().unwrap();
        assert!(!status.success());
    }

    #[test]
    fn a_recycled_pid_is_not_killed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("processes.json");
        let me = i32::try_from(std::process::id()).unwrap();
        let stale = BTreeMap::from([(
            me,
            Entry {
                name: "old".into(),
                start_ticks: 1,
            },
        )]);
        std::fs::write(&path, serde_json::to_vec(&stale).unwrap()).unwrap();
        Ledger::open_and_reap(path);
        // Still alive: we got here.
        assert!(start_ticks(me).is_some());
    }
}
