//! Memory and CPU limits (`deis limits:set`), enforced where this machine
//! lets us: control groups (v2, or v1's memory and cpu controllers) when
//! they are writable; otherwise a data-segment rlimit approximates the
//! memory limit and CPU limits are recorded but not enforced. What is
//! enforced is reported, so `deis limits` can say so.

use std::path::{Path, PathBuf};

use deis_scheduler::{Capabilities, Enforcement};

/// Where control groups live.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Clone, Debug)]
enum Cgroups {
    /// cgroup v2: one directory per process with memory.max and cpu.max.
    V2 {
        base: PathBuf,
        memory: bool,
        cpu: bool,
    },
    /// cgroup v1: a directory per process in each controller's hierarchy.
    V1 {
        memory: Option<PathBuf>,
        cpu: Option<PathBuf>,
    },
    None,
}

/// The limits machinery of this machine.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    cgroups: Cgroups,
    prlimit: bool,
}

/// What one process needs applied: cgroup `procs` files its launcher joins
/// before exec, and a `prlimit` prefix for the rlimit fallback.
#[derive(Clone, Debug, Default)]
pub(crate) struct Applied {
    pub(crate) join: Vec<PathBuf>,
    pub(crate) prefix: Vec<String>,
    dirs: Vec<PathBuf>,
}

/// Bytes of a Deis memory value's limit part: `512M`, `1G`, `256M/512M`.
pub(crate) fn memory_bytes(value: &str) -> Option<u64> {
    let limit = value.rsplit('/').next()?.trim().to_ascii_uppercase();
    let limit = limit.trim_end_matches('B');
    let (digits, unit) = limit.split_at(limit.find(|c: char| !c.is_ascii_digit()).unwrap_or(limit.len()));
    let number: u64 = digits.parse().ok()?;
    let factor: u64 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor).filter(|b| *b > 0)
}

/// Thousandths of a CPU of a Deis cpu value's limit part: `500m`, `1`, `250m/1.5`.
pub(crate) fn cpu_millis(value: &str) -> Option<u64> {
    let limit = value.rsplit('/').next()?.trim().to_ascii_lowercase();
    let millis = match limit.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok()?,
        None => limit.parse::<f64>().ok()? * 1000.0,
    };
    (millis.is_finite() && millis >= 1.0).then_some(millis as u64)
}

fn writable_dir(path: &Path) -> bool {
    std::fs::create_dir_all(path).is_ok() && {
        let probe = path.join("deis-probe");
        let ok = std::fs::create_dir(&probe).is_ok() || probe.is_dir();
        let _ = std::fs::remove_dir(&probe);
        ok
    }
}

impl Limits {
    /// Finds out what this machine can enforce; cgroups go under `name`.
    pub(crate) fn detect(name: &str) -> Limits {
        let root = Path::new(CGROUP_ROOT);
        let cgroups = if root.join("cgroup.controllers").is_file() {
            let base = root.join(name);
            if writable_dir(&base) {
                let _ = std::fs::write(base.join("cgroup.subtree_control"), "+memory +cpu");
                let enabled =
                    std::fs::read_to_string(base.join("cgroup.subtree_control")).unwrap_or_default();
                Cgroups::V2 {
                    memory: enabled.contains("memory"),
                    cpu: enabled.contains("cpu"),
                    base,
                }
            } else {
                Cgroups::None
            }
        } else {
            let memory = Some(root.join("memory").join(name)).filter(|p| writable_dir(p));
            let cpu = Some(root.join("cpu").join(name)).filter(|p| writable_dir(p));
            if memory.is_none() && cpu.is_none() {
                Cgroups::None
            } else {
                Cgroups::V1 { memory, cpu }
            }
        };
        let prlimit = std::process::Command::new("prlimit")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        Limits { cgroups, prlimit }
    }

    pub(crate) fn capabilities(&self) -> Capabilities {
        let (memory, cpu) = match &self.cgroups {
            Cgroups::V2 { memory, cpu, .. } => (*memory, *cpu),
            Cgroups::V1 { memory, cpu } => (memory.is_some(), cpu.is_some()),
            Cgroups::None => (false, false),
        };
        Capabilities {
            memory_limits: if memory {
                Enforcement::Enforced
            } else if self.prlimit {
                Enforcement::Approximated
            } else {
                Enforcement::NotEnforced
            },
            cpu_limits: if cpu {
                Enforcement::Enforced
            } else {
                Enforcement::NotEnforced
            },
            // Processes on one machine: the number of them is the user's.
            autoscaling: Enforcement::NotEnforced,
        }
    }

    /// Prepares the limits of one process (named `process`, unique while it runs).
    pub(crate) fn apply(&self, process: &str, memory: Option<&str>, cpu: Option<&str>) -> Applied {
        let memory = memory.and_then(memory_bytes);
        let cpu = cpu.and_then(cpu_millis);
        let mut applied = Applied::default();
        if memory.is_none() && cpu.is_none() {
            return applied;
        }
        let mut memory_done = false;
        match &self.cgroups {
            Cgroups::V2 {
                base,
                memory: has_memory,
                cpu: has_cpu,
            } => {
                let dir = base.join(process);
                if std::fs::create_dir_all(&dir).is_ok() {
                    if let (Some(bytes), true) = (memory, has_memory) {
                        memory_done = std::fs::write(dir.join("memory.max"), bytes.to_string()).is_ok();
                        let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                    }
                    if let (Some(millis), true) = (cpu, has_cpu) {
                        let _ = std::fs::write(dir.join("cpu.max"), format!("{} 100000", millis * 100));
                    }
                    applied.join.push(dir.join("cgroup.procs"));
                    applied.dirs.push(dir);
                }
            }
            Cgroups::V1 {
                memory: memory_root,
                cpu: cpu_root,
            } => {
                if let (Some(bytes), Some(root)) = (memory, memory_root) {
                    let dir = root.join(process);
                    if std::fs::create_dir_all(&dir).is_ok() {
                        memory_done =
                            std::fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string()).is_ok();
                        applied.join.push(dir.join("cgroup.procs"));
                        applied.dirs.push(dir);
                    }
                }
                if let (Some(millis), Some(root)) = (cpu, cpu_root) {
                    let dir = root.join(process);
                    if std::fs::create_dir_all(&dir).is_ok() {
                        let _ = std::fs::write(dir.join("cpu.cfs_period_us"), "100000");
                        let _ = std::fs::write(dir.join("cpu.cfs_quota_us"), (millis * 100).to_string());
                        applied.join.push(dir.join("cgroup.procs"));
                        applied.dirs.push(dir);
                    }
                }
            }
            Cgroups::None => {}
        }
        if let (Some(bytes), false, true) = (memory, memory_done, self.prlimit) {
            applied.prefix = vec!["prlimit".into(), format!("--data={bytes}"), "--".into()];
        }
        applied
    }

    /// Removes a process's cgroups once it is gone.
    pub(crate) fn release(&self, applied: &Applied) {
        for dir in &applied.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deis_values_convert() {
        assert_eq!(memory_bytes("512M"), Some(512 << 20));
        assert_eq!(memory_bytes("256M/1G"), Some(1 << 30));
        assert_eq!(memory_bytes("64MB"), Some(64 << 20));
        assert_eq!(memory_bytes("0"), None);
        assert_eq!(memory_bytes("lots"), None);
        assert_eq!(cpu_millis("500m"), Some(500));
        assert_eq!(cpu_millis("250m/1.5"), Some(1500));
        assert_eq!(cpu_millis("x"), None);
    }
}
