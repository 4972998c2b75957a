//! `buildtools/bench registry`: skopeo pushes and pulls to the registry in
//! the release `deis-workflow up` and to Debian's `docker-registry`
//! (Distribution 2.8) with filesystem storage on the same filesystem, side
//! by side in one run:
//!
//! - a 50 MB image of one layer of random (incompressible) bytes;
//! - an image of 100 small layers (10–50 KiB of random bytes each).
//!
//! Target: our median ≤ 1.0× Distribution's for each case and direction.
//!
//! Every iteration makes a new OCI layout with fresh random content, so each
//! push really uploads every blob (none is already in either registry) and
//! goes to a fresh tag (`bench:v1`, `bench:v2`, ...); each pull goes to an
//! empty directory. The same layout is pushed to both registries (separate
//! stores), ours and Distribution's iterations interleaved, the one going
//! first alternating, so machine noise and warm caches fall on both alike.
//! One warm-up iteration per case is not counted.
//!
//! Ours is reached as a user would: registered with the release `deis` CLI,
//! the app `bench` created, its owner's username and `deis auth:token` as
//! skopeo's credentials. Distribution runs without auth.
//!
//! Needs `DEIS_WORKFLOW_BIN` and `DEIS_BIN`, `skopeo`, `docker-registry`
//! and `python3` (makes the layouts); `buildtools/bench registry` provides
//! them.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::bench_e2e::{binary, deis, start_up};
use crate::{Samples, exec, free_port, ms};

const WARMUPS: usize = 1;
const ITERATIONS: usize = 7;
/// The app, hence the repository, on both registries.
const APP: &str = "bench";
const USER: &str = "bench";
const PASSWORD: &str = "bench-pw-123";

/// Makes an OCI image layout: `DIR LAYERS MIN_KIB MAX_KIB`, each layer a
/// gzip'd tar of one file of random bytes (a random size in the range),
/// tagged `v1` (real-peers.md, appendix C).
const MAKE_LAYOUT: &str = r#"
import gzip, hashlib, io, json, os, random, sys, tarfile
out, layers, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
def put(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{digest}", "wb") as f:
        f.write(data)
    return digest
descriptors, diff_ids = [], []
for n in range(layers):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        data = os.urandom(random.randint(lo, hi) * 1024)
        info = tarfile.TarInfo(f"app/blob{n}.bin")
        info.size = len(data)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(data))
    diff_ids.append("sha256:" + hashlib.sha256(raw.getvalue()).hexdigest())
    layer = gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)
    descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": "sha256:" + put(layer), "size": len(layer)})
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Cmd": ["/app/run.sh"], "Env": ["PORT=5000"]},
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": "sha256:" + put(config), "size": len(config)},
    "layers": descriptors}).encode()
digest = put(manifest)
with open(f"{out}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + digest, "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, f)
with open(f"{out}/oci-layout", "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
"#;

struct Case {
    name: &'static str,
    layers: usize,
    min_kib: usize,
    max_kib: usize,
}

const CASES: [Case; 2] = [
    Case {
        name: "50 MB, 1 layer",
        layers: 1,
        min_kib: 50 * 1024,
        max_kib: 50 * 1024,
    },
    Case {
        name: "100 layers of 10-50 KiB",
        layers: 100,
        min_kib: 10,
        max_kib: 50,
    },
];

/// A registry under test.
struct Target {
    name: &'static str,
    addr: String,
    /// skopeo's `user:password`, when the registry wants them.
    creds: Option<String>,
}

/// Distribution's `docker-registry serve`, stopped on drop.
struct Distribution {
    child: Child,
    addr: String,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status line of `GET /v2/` at `addr`, if anything answers.
fn version_check(addr: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.lines().next().map(str::to_owned)
}

/// Starts Distribution with filesystem storage under `root`, on a free
/// loopback port, deletes enabled, logging warnings only, no auth.
fn start_distribution(root: &Path) -> Result<Distribution> {
    std::fs::create_dir_all(root)?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let config = root.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            root.join("storage").display()
        ),
    )?;
    let log_path = root.join("registry.log");
    let log = std::fs::File::create(&log_path)?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start docker-registry (buildtools/bench registry installs it)")?;
    let mut distribution = Distribution { child, addr };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if version_check(&distribution.addr).is_some_and(|status| status.contains(" 200 ")) {
            return Ok(distribution);
        }
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(status) = distribution.child.try_wait()? {
            bail!("docker-registry exited ({status}):\n{}", log());
        }
        ensure!(
            Instant::now() < deadline,
            "docker-registry did not answer on {} within 20 s:\n{}",
            distribution.addr,
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Our registry's address, as `deis-workflow status` reports it
/// (`start_up` keeps only the controller's line of the banner).
fn our_registry_addr(controller_url: &str, data: &Path) -> Result<String> {
    let out = Command::new(binary("DEIS_WORKFLOW_BIN")?)
        .args(["status", "--controller-url", controller_url])
        .arg("--data-dir")
        .arg(data)
        .env_remove("DEIS_PLATFORM_SECRET")
        .output()
        .context("running deis-workflow status")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|line| line.split_whitespace().next() == Some("registry"))
        .and_then(|line| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix("http://"))
        })
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "`deis-workflow status` reported no registry address:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn make_layout(dir: &Path, case: &Case) -> Result<()> {
    exec(
        Command::new("python3")
            .arg("-c")
            .arg(MAKE_LAYOUT)
            .arg(dir)
            .args([case.layers, case.min_kib, case.max_kib].map(|n| n.to_string())),
    )?;
    Ok(())
}

fn skopeo(home: &Path, args: &[&str]) -> Result<()> {
    exec(
        Command::new("skopeo")
            .args(args)
            .env("HOME", home)
            .stdin(Stdio::null()),
    )?;
    Ok(())
}

fn push(home: &Path, target: &Target, layout: &Path, tag: &str) -> Result<Duration> {
    let source = format!("oci:{}:v1", layout.display());
    let dest = format!("docker://{}/{APP}:{tag}", target.addr);
    let mut args = vec!["copy", "--quiet", "--dest-tls-verify=false"];
    if let Some(creds) = &target.creds {
        args.extend(["--dest-creds", creds]);
    }
    args.extend([source.as_str(), dest.as_str()]);
    let started = Instant::now();
    skopeo(home, &args).with_context(|| format!("pushing to {}", target.name))?;
    Ok(started.elapsed())
}

fn pull(home: &Path, target: &Target, tag: &str, into: &Path) -> Result<Duration> {
    let source = format!("docker://{}/{APP}:{tag}", target.addr);
    let dest = format!("oci:{}:v1", into.display());
    let mut args = vec!["copy", "--quiet", "--src-tls-verify=false"];
    if let Some(creds) = &target.creds {
        args.extend(["--src-creds", creds]);
    }
    args.extend([source.as_str(), dest.as_str()]);
    let started = Instant::now();
    skopeo(home, &args).with_context(|| format!("pulling from {}", target.name))?;
    Ok(started.elapsed())
}

/// The blobs of an OCI layout (layers, config, manifest).
fn blob_count(layout: &Path) -> Result<usize> {
    Ok(std::fs::read_dir(layout.join("blobs/sha256"))?.count())
}

/// Median and p90 of ours and theirs for one case and direction.
struct Row {
    name: String,
    ours: Samples,
    theirs: Samples,
}

fn ratio(row: &Row) -> f64 {
    row.ours.median().as_secs_f64() / row.theirs.median().as_secs_f64().max(f64::MIN_POSITIVE)
}

pub(crate) fn run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (data, home, images) = (
        dir.path().join("data"),
        dir.path().join("home"),
        dir.path().join("images"),
    );
    std::fs::create_dir_all(&home)?;
    std::fs::create_dir_all(&images)?;

    let up = start_up(&data)?;
    let distribution = start_distribution(&dir.path().join("distribution"))?;
    deis(
        &home,
        &home,
        &[
            "register",
            &up.controller_url,
            &format!("--username={USER}"),
            &format!("--password={PASSWORD}"),
            "--email=bench@example.com",
        ],
    )?;
    deis(&home, &home, &["create", APP, "--no-remote"])?;
    let token = deis(&home, &home, &["auth:token"])?.trim().to_owned();
    ensure!(!token.is_empty(), "`deis auth:token` printed nothing");
    let ours = Target {
        name: "ours",
        addr: our_registry_addr(&up.controller_url, &data)?,
        creds: Some(format!("{USER}:{token}")),
    };
    let theirs = Target {
        name: "Distribution",
        addr: distribution.addr.clone(),
        creds: None,
    };
    println!(
        "ours: {} (deis-workflow up); Distribution: {} ({}); data under {}",
        ours.addr,
        theirs.addr,
        exec(Command::new("docker-registry").arg("--version"))?.trim(),
        dir.path().display()
    );

    let mut rows = Vec::new();
    let mut tag_number = 0;
    for case in &CASES {
        let mut pushes = Row {
            name: format!("push {}", case.name),
            ours: Samples::new(),
            theirs: Samples::new(),
        };
        let mut pulls = Row {
            name: format!("pull {}", case.name),
            ours: Samples::new(),
            theirs: Samples::new(),
        };
        for round in 0..WARMUPS + ITERATIONS {
            tag_number += 1;
            let tag = format!("v{tag_number}");
            let layout = images.join(&tag);
            make_layout(&layout, case)?;
            let blobs = blob_count(&layout)?;
            // Alternate who goes first.
            let order = if round % 2 == 0 {
                [(&ours, true), (&theirs, false)]
            } else {
                [(&theirs, false), (&ours, true)]
            };
            let mut pushed = [Duration::ZERO; 2];
            for (target, is_ours) in order {
                pushed[usize::from(!is_ours)] = push(&home, target, &layout, &tag)?;
            }
            let mut pulled = [Duration::ZERO; 2];
            for (target, is_ours) in order {
                let into = images.join(format!("{tag}-pulled-{}", target.name));
                pulled[usize::from(!is_ours)] = pull(&home, target, &tag, &into)?;
                ensure!(
                    blob_count(&into)? == blobs,
                    "pulling {tag} from {} gave {} blobs, not {blobs}",
                    target.name,
                    blob_count(&into)?
                );
                std::fs::remove_dir_all(&into)?;
            }
            std::fs::remove_dir_all(&layout)?;
            let warmup = round < WARMUPS;
            println!(
                "{:<36} {tag:<4} push ours {:>10} Distribution {:>10}  pull ours {:>10} Distribution {:>10}{}",
                case.name,
                ms(pushed[0]),
                ms(pushed[1]),
                ms(pulled[0]),
                ms(pulled[1]),
                if warmup { "  (warm-up)" } else { "" }
            );
            if !warmup {
                pushes.ours.0.push(pushed[0]);
                pushes.theirs.0.push(pushed[1]);
                pulls.ours.0.push(pulled[0]);
                pulls.theirs.0.push(pulled[1]);
            }
        }
        rows.extend([pushes, pulls]);
    }

    println!();
    println!(
        "{:<36} {:>12} {:>12} {:>7} {:>12} {:>12}  target ours <= 1.0x",
        "case (n per side)", "ours p50", "Distr. p50", "ratio", "ours p90", "Distr. p90"
    );
    for row in &rows {
        let ratio = ratio(row);
        println!(
            "{:<36} {:>12} {:>12} {:>6.2}x {:>12} {:>12}  {}",
            format!("{} (n={})", row.name, row.ours.0.len()),
            ms(row.ours.median()),
            ms(row.theirs.median()),
            ratio,
            ms(row.ours.percentile(90.0)),
            ms(row.theirs.percentile(90.0)),
            if ratio <= 1.0 { "met" } else { "NOT met" }
        );
    }
    drop(distribution);
    drop(up);
    Ok(())
}
