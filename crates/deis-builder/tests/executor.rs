//! End-to-end tests of the local build executor and the built-in buildpacks:
//! every build goes through `LocalExecutor::build`, and the slug it produces
//! is unpacked (and, for the sample apps, run) somewhere else.
//!
//! Only the Python test needs the network (PyPI, for `six`); the Go and Rust
//! tests are skipped, with a note, when the toolchain is missing.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use deis_builder::executor::{BuildError, BuildJob, BuildOutput, LocalExecutor};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tempfile::TempDir;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

struct Harness {
    tmp: TempDir,
    executor: LocalExecutor,
    builds: usize,
}

impl Harness {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let executor = LocalExecutor::with_builtin_buildpacks(tmp.path().join("buildpacks")).unwrap();
        Self {
            tmp,
            executor,
            builds: 0,
        }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// A job building a copy of `app` in a fresh work dir.
    fn job(&mut self, app: &Path) -> BuildJob {
        self.builds += 1;
        let work_dir = self.path().join(format!("work-{}", self.builds));
        let source = work_dir.join("src");
        std::fs::create_dir_all(&work_dir).unwrap();
        copy_dir(app, &source);
        BuildJob {
            app: "sample".to_owned(),
            sha: SHA.to_owned(),
            source,
            work_dir,
            env: BTreeMap::new(),
            buildpack_url: None,
            cache: Some(self.path().join("cache")),
            timeout: Duration::from_secs(300),
            max_slug_bytes: 500 * 1024 * 1024,
        }
    }

    /// A job for an app made of `files` (path, content; `bin/*` and
    /// `*.sh` are made executable).
    fn job_with_files(&mut self, files: &[(&str, &str)]) -> BuildJob {
        let app = self.path().join(format!("app-{}", self.builds + 1));
        write_files(&app, files);
        self.job(&app)
    }

    async fn build(&self, job: BuildJob) -> (Result<BuildOutput, BuildError>, Vec<String>) {
        build_with(&self.executor, job).await
    }

    /// Unpacks a slug into a fresh directory (not where it was built).
    fn unpack(&self, output: &BuildOutput) -> PathBuf {
        let dest = self
            .path()
            .join(format!("unpacked-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dest).unwrap();
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(&output.slug)
            .arg("-C")
            .arg(&dest)
            .status()
            .unwrap();
        assert!(status.success());
        dest
    }
}

async fn build_with(
    executor: &LocalExecutor,
    job: BuildJob,
) -> (Result<BuildOutput, BuildError>, Vec<String>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let collector = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
        lines
    });
    let result = executor.build(job, tx).await;
    let lines = collector.await.unwrap();
    (result, lines)
}

/// The build's output; its log is printed when `SHOW_BUILD_LOG` is set.
fn ok(result: Result<BuildOutput, BuildError>, lines: &[String]) -> BuildOutput {
    if std::env::var_os("SHOW_BUILD_LOG").is_some() {
        eprintln!("--- build log ---\n{}\n---", lines.join("\n"));
    }
    match result {
        Ok(output) => output,
        Err(e) => panic!("build failed: {e}\n--- log ---\n{}", lines.join("\n")),
    }
}

fn has_line(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

fn position(lines: &[String], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the log:\n{}", lines.join("\n")))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("tests run under cargo"))
        .join("tests/fixtures/apps")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            // fs::copy keeps the permission bits.
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        let executable = path
            .parent()
            .is_some_and(|p| p.file_name().is_some_and(|n| n == "bin"))
            || path.extension().is_some_and(|e| e == "sh");
        if executable {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=Builder Tests",
            "-c",
            "user.email=builder@example.com",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A buildpack directory with the given scripts (`None` leaves one out).
fn write_buildpack(dir: &Path, detect: Option<&str>, compile: &str, release: Option<&str>) {
    let mut files = vec![("bin/compile", compile)];
    if let Some(detect) = detect {
        files.push(("bin/detect", detect));
    }
    if let Some(release) = release {
        files.push(("bin/release", release));
    }
    write_files(dir, &files);
}

/// A git repository holding a buildpack, committed on `main`.
fn buildpack_repo(
    root: &Path,
    name: &str,
    detect: Option<&str>,
    compile: &str,
    release: Option<&str>,
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "--quiet", "-b", "main"]);
    write_buildpack(&dir, detect, compile, release);
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "--quiet", "-m", "buildpack"]);
    dir
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

// ---------------------------------------------------------------------------
// Running what a slug declares
// ---------------------------------------------------------------------------

/// A process started from an unpacked slug; its process group is killed on
/// drop.
struct Running {
    child: std::process::Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `command` the way the runtime does: in the slug dir, HOME set to
/// it, `.profile.d/*` sourced, a clean environment.
fn start(slug_dir: &Path, command: &str, port: u16, env: &[(&str, &str)]) -> Running {
    let script = format!("for f in .profile.d/*.sh; do [ -f \"$f\" ] && . \"$f\"; done; exec {command}");
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .current_dir(slug_dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", slug_dir)
        .env("PORT", port.to_string())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    if let Ok(root) = std::env::var("PYENV_ROOT") {
        cmd.env("PYENV_ROOT", root);
    }
    Running {
        child: cmd.spawn().unwrap(),
    }
}

/// `GET /` on 127.0.0.1:`port`, retried until the server answers.
fn http_get(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            if stream
                .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .is_ok()
            {
                let mut response = String::new();
                if stream.read_to_string(&mut response).is_ok() && !response.is_empty() {
                    return response;
                }
            }
        }
        assert!(Instant::now() < deadline, "nothing answered on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the slug's `web` process and returns its answer to `GET /`.
async fn serve_once(slug_dir: PathBuf, command: String, env: Vec<(String, String)>) -> String {
    tokio::task::spawn_blocking(move || {
        let port = free_port();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let _running = start(&slug_dir, &command, port, &env);
        http_get(port)
    })
    .await
    .unwrap()
}

/// No `.profile.d` script may mention where the slug was built.
fn assert_relocatable(slug_dir: &Path, job: &BuildJob) {
    let profile_d = slug_dir.join(".profile.d");
    for entry in std::fs::read_dir(&profile_d).unwrap() {
        let text = read(entry.unwrap().path());
        let work_dir = job.work_dir.to_string_lossy();
        assert!(
            !text.contains(work_dir.as_ref()),
            "{text} mentions the build path {work_dir}"
        );
        assert!(text.contains("$HOME"), "{text}");
    }
}

// ---------------------------------------------------------------------------
// Built-in buildpacks, end to end
// ---------------------------------------------------------------------------

#[tokio::test]
async fn python_app_installs_requirements_into_a_relocatable_slug() {
    let mut h = Harness::new();
    let job = h.job(&fixture("python"));
    let (result, lines) = h.build(job.clone()).await;
    let output = ok(result, &lines);

    assert_eq!(output.buildpack, "Python");
    assert_eq!(output.procfile["web"], "python3 app.py");
    assert_eq!(output.procfile.len(), 1);
    assert!(has_line(&lines, "-----> Python app detected"));
    assert!(has_line(&lines, "-----> Installing requirements with pip"));
    assert!(has_line(&lines, "Default process types for Python -> web"));
    assert!(has_line(&lines, "-----> Compiled slug size is"));
    assert_eq!(output.slug_bytes, std::fs::metadata(&output.slug).unwrap().len());
    assert_eq!(output.slug, job.work_dir.join("slug.tgz"));

    let slug = h.unpack(&output);
    assert!(slug.join(".heroku/python-packages/six.py").is_file());
    assert!(slug.join("app.py").is_file());
    let release = read(slug.join(".release"));
    assert!(release.starts_with("---"), "{release}");
    assert!(release.contains("default_process_types:"), "{release}");
    assert!(release.contains("web: python3 app.py"), "{release}");
    assert_eq!(read(slug.join("Procfile")).trim(), "web: python3 app.py");
    assert!(slug.join(".profile.d/python.sh").is_file());
    assert_relocatable(&slug, &job);

    // The package resolves from the unpacked slug through .profile.d.
    let out = Command::new("bash")
        .arg("-c")
        .arg(
            ". .profile.d/python.sh && cd / && python3 -c 'import six; print(six.__version__, six.__file__)'",
        )
        .current_dir(&slug)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &slug)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("1.16.0 "), "{stdout}");
    assert!(stdout.contains(&*slug.to_string_lossy()), "{stdout}");

    // And the app answers, with its config.
    let answer = serve_once(
        slug,
        output.procfile["web"].clone(),
        vec![("GREETING".into(), "and welcome".into())],
    )
    .await;
    assert!(answer.contains("Hello from Python and welcome"), "{answer}");
    assert!(answer.contains("X-Six-Version: 1.16.0"), "{answer}");

    // A second build with the same requirements reuses the installed
    // packages from the build cache, without pip, and still works.
    let job = h.job(&fixture("python"));
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    assert!(h.path().join("cache/pip").is_dir());
    assert!(has_line(
        &lines,
        "-----> Requirements unchanged: reusing the installed packages from the build cache"
    ));
    assert!(!has_line(&lines, "-----> Installing requirements with pip"));
    let slug = h.unpack(&output);
    assert!(slug.join(".heroku/python-packages/six.py").is_file());

    // Changed requirements go through pip again.
    let job = h.job_with_files(&[
        ("app.py", &read(fixture("python").join("app.py"))),
        ("requirements.txt", "six==1.16.0\n# pinned\n"),
    ]);
    let (result, lines) = h.build(job).await;
    ok(result, &lines);
    assert!(has_line(&lines, "-----> Installing requirements with pip"));
}

#[tokio::test]
async fn python_pyproject_is_installed_as_a_package() {
    let mut h = Harness::new();
    let pyproject = r#"[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "hello-pkg"
version = "0.1.0"
dependencies = ["six==1.16.0"]

[tool.setuptools]
py-modules = ["hello_pkg"]
"#;
    let job = h.job_with_files(&[
        ("pyproject.toml", pyproject),
        ("hello_pkg.py", "GREETING = 'hi'\n"),
        (
            "main.py",
            "import hello_pkg, six\nprint(hello_pkg.GREETING, six.__version__)\n",
        ),
    ]);
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    assert!(has_line(&lines, "-----> Installing the project with pip"));
    assert_eq!(output.procfile["web"], "python3 main.py");
    let slug = h.unpack(&output);
    assert!(slug.join(".heroku/python-packages/hello_pkg.py").is_file());
    assert!(slug.join(".heroku/python-packages/six.py").is_file());
    assert!(!slug.join(".rustup").exists());
    let out = Command::new("bash")
        .arg("-c")
        .arg(". .profile.d/python.sh && python3 main.py")
        .current_dir(&slug)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &slug)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi 1.16.0\n");
}

#[tokio::test]
async fn node_app_runs_npm_and_declares_npm_start() {
    if !on_path("npm") {
        eprintln!("note: npm is not installed; skipping the Node.js buildpack test");
        return;
    }
    let mut h = Harness::new();
    let job = h.job(&fixture("node"));
    let (result, lines) = h.build(job.clone()).await;
    let output = ok(result, &lines);

    assert_eq!(output.buildpack, "Node.js");
    assert_eq!(output.procfile["web"], "npm start");
    assert!(has_line(&lines, "-----> Node.js app detected"));
    assert!(has_line(&lines, "Installing dependencies (npm install)"));

    let slug = h.unpack(&output);
    assert!(slug.join(".profile.d/nodejs.sh").is_file());
    assert!(read(slug.join(".profile.d/nodejs.sh")).contains("$HOME/node_modules/.bin"));
    assert_relocatable(&slug, &job);
    assert!(read(slug.join(".release")).contains("web: npm start"));
    assert!(!slug.join(".npm").exists(), "npm's cache belongs in CACHE_DIR");
    assert!(h.path().join("cache/npm").is_dir());

    let answer = serve_once(slug, output.procfile["web"].clone(), Vec::new()).await;
    assert!(answer.contains("Hello from Node"), "{answer}");
}

#[tokio::test]
async fn node_app_with_a_lockfile_uses_npm_ci_and_runs_the_build_script() {
    if !on_path("npm") {
        eprintln!("note: npm is not installed; skipping the Node.js buildpack test");
        return;
    }
    let mut h = Harness::new();
    let package = r#"{"name":"built","version":"1.0.0","private":true,
        "scripts":{"build":"node -e \"require('fs').writeFileSync('built.txt','yes')\""}}"#;
    let lock = r#"{"name":"built","version":"1.0.0","lockfileVersion":3,"requires":true,
        "packages":{"":{"name":"built","version":"1.0.0"}}}"#;
    let job = h.job_with_files(&[
        ("package.json", package),
        ("package-lock.json", lock),
        ("server.js", "console.log('hi')\n"),
    ]);
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    assert!(has_line(&lines, "Installing dependencies (npm ci)"));
    // No start script: server.js.
    assert_eq!(output.procfile["web"], "node server.js");
    let slug = h.unpack(&output);
    assert_eq!(read(slug.join("built.txt")), "yes");
}

#[tokio::test]
async fn static_site_is_served_by_python_http_server() {
    let mut h = Harness::new();
    let job = h.job(&fixture("static"));
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    assert_eq!(output.buildpack, "Static HTML");
    assert_eq!(
        output.procfile["web"],
        "python3 -m http.server \"$PORT\" --bind 127.0.0.1 --directory ."
    );
    let slug = h.unpack(&output);
    assert_eq!(
        read(slug.join("Procfile")).trim(),
        "web: python3 -m http.server \"$PORT\" --bind 127.0.0.1 --directory ."
    );
    let answer = serve_once(slug, output.procfile["web"].clone(), Vec::new()).await;
    assert!(answer.contains("Hello from Static"), "{answer}");

    // A site in public/ is served from there.
    let job = h.job_with_files(&[("public/index.html", "<h1>public</h1>\n")]);
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    assert!(
        output.procfile["web"].ends_with("--directory public"),
        "{:?}",
        output.procfile
    );
    let slug = h.unpack(&output);
    let answer = serve_once(slug, output.procfile["web"].clone(), Vec::new()).await;
    assert!(answer.contains("<h1>public</h1>"), "{answer}");
}

#[tokio::test]
async fn procfile_app_brings_its_own_executable() {
    let mut h = Harness::new();
    let app = h.path().join("procfile-app");
    copy_dir(&fixture("procfile"), &app);
    // As if committed without the execute bit: the buildpack restores it.
    std::fs::set_permissions(app.join("bin/serve"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let job = h.job(&app);
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    assert_eq!(output.buildpack, "Procfile");
    assert_eq!(
        output.procfile,
        BTreeMap::from([("web".to_owned(), "bin/serve".to_owned())])
    );
    assert!(has_line(&lines, "Procfile declares types -> web"));
    let slug = h.unpack(&output);
    let mode = std::fs::metadata(slug.join("bin/serve"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111);
    assert!(read(slug.join(".release")).contains("default_process_types: {}"));
    let answer = serve_once(slug, output.procfile["web"].clone(), Vec::new()).await;
    assert!(answer.contains("Hello from Procfile"), "{answer}");
}

#[tokio::test]
async fn go_app_is_built_into_bin() {
    if !on_path("go") {
        eprintln!("note: go is not installed on this machine; skipping the Go buildpack test");
        return;
    }
    let mut h = Harness::new();
    let job = h.job(&fixture("go"));
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    assert_eq!(output.buildpack, "Go");
    assert_eq!(output.procfile["web"], "bin/hello-go");
    let slug = h.unpack(&output);
    assert!(slug.join("bin/hello-go").is_file());
    assert!(h.path().join("cache/go/build").is_dir());
    let answer = serve_once(slug, output.procfile["web"].clone(), Vec::new()).await;
    assert!(answer.contains("Hello from Go"), "{answer}");
}

#[tokio::test]
async fn rust_app_is_built_into_bin() {
    if !on_path("cargo") {
        eprintln!("note: cargo is not installed on this machine; skipping the Rust buildpack test");
        return;
    }
    let mut h = Harness::new();
    let job = h.job(&fixture("rust"));
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    assert_eq!(output.buildpack, "Rust");
    assert_eq!(output.procfile["web"], "bin/hello-rust");
    let slug = h.unpack(&output);
    assert!(slug.join("bin/hello-rust").is_file());
    assert!(
        !slug.join("target").exists(),
        "the target dir belongs in the cache"
    );
    assert!(h.path().join("cache/rust/target").is_dir());
    let answer = serve_once(slug, output.procfile["web"].clone(), Vec::new()).await;
    assert!(answer.contains("Hello from Rust"), "{answer}");
}

#[tokio::test]
async fn detection_order_prefers_earlier_buildpacks() {
    let mut h = Harness::new();
    // Node.js comes before Python and static.
    let job = h.job_with_files(&[
        ("package.json", "{\"name\":\"x\",\"version\":\"1.0.0\"}\n"),
        ("requirements.txt", "\n"),
        ("index.html", "x\n"),
    ]);
    let root = job.source.clone();
    for name in LocalExecutor::BUILTIN_BUILDPACKS {
        let out = Command::new(h.executor.buildpacks_dir().join(name).join("bin/detect"))
            .arg(&root)
            .output()
            .unwrap();
        let detected = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        match *name {
            "nodejs" => assert_eq!(detected, "Node.js"),
            "python" => assert_eq!(detected, "Python"),
            "static" => assert_eq!(detected, "Static HTML"),
            _ => assert!(!out.status.success(), "{name} detected {detected}"),
        }
    }
    assert_eq!(
        LocalExecutor::BUILTIN_BUILDPACKS,
        ["go", "rust", "nodejs", "python", "static", "procfile"]
    );
    // Python before static.
    let job = h.job_with_files(&[("requirements.txt", "\n"), ("index.html", "x\n")]);
    let (result, lines) = h.build(job).await;
    assert_eq!(ok(result, &lines).buildpack, "Python");
}

#[tokio::test]
async fn no_buildpack_detects_a_readme() {
    let mut h = Harness::new();
    let job = h.job(&fixture("nobuildpack"));
    let (result, lines) = h.build(job).await;
    match result {
        Err(BuildError::NoBuildpack) => {}
        other => panic!("{other:?}\n{}", lines.join("\n")),
    }
    assert_eq!(
        BuildError::NoBuildpack.to_string(),
        "Unable to select a buildpack"
    );
}

#[tokio::test]
async fn failing_fixture_fails_at_compile() {
    let mut h = Harness::new();
    let job = h.job(&fixture("failing"));
    let started = Instant::now();
    let (result, lines) = h.build(job).await;
    match result {
        Err(BuildError::Failed(message)) => {
            assert_eq!(message, "compile failed with exit code 1");
        }
        other => panic!("{other:?}\n{}", lines.join("\n")),
    }
    assert!(has_line(&lines, "-----> Failing app detected"));
    assert!(has_line(&lines, "-----> Failing on purpose"));
    assert!(has_line(&lines, "this buildpack always fails"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn app_procfile_wins_over_default_process_types() {
    let mut h = Harness::new();
    let job = h.job_with_files(&[
        ("index.html", "x\n"),
        (
            "Procfile",
            "# processes\n\nweb: bin/web --port $PORT\nworker:  python3 worker.py\n",
        ),
    ]);
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    assert_eq!(output.buildpack, "Static HTML");
    assert_eq!(
        output.procfile,
        BTreeMap::from([
            ("web".to_owned(), "bin/web --port $PORT".to_owned()),
            ("worker".to_owned(), "python3 worker.py".to_owned()),
        ])
    );
    assert!(has_line(&lines, "Procfile declares types -> web, worker"));
    assert!(has_line(&lines, "Default process types for Static HTML -> web"));

    let job = h.job_with_files(&[("index.html", "x\n"), ("Procfile", "Web_1: x\n")]);
    let (result, _) = h.build(job).await;
    match result {
        Err(BuildError::Failed(message)) => {
            assert!(message.contains("Invalid process type"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Custom buildpacks
// ---------------------------------------------------------------------------

const ECHO_RELEASE: &str = "#!/bin/sh\necho '---'\necho 'default_process_types:'\necho '  web: bin/web'\n";

#[tokio::test]
async fn buildpack_url_with_a_branch_tag_or_commit() {
    let mut h = Harness::new();
    let repo = buildpack_repo(
        h.path(),
        "bp-repo",
        Some("#!/bin/sh\necho Custom\n"),
        "#!/bin/sh\necho '-----> compiled by main'\n",
        Some(ECHO_RELEASE),
    );
    let main_sha = git(&repo, &["rev-parse", "HEAD"]);
    git(&repo, &["checkout", "--quiet", "-b", "feature"]);
    write_files(
        &repo,
        &[("bin/compile", "#!/bin/sh\necho '-----> compiled by feature'\n")],
    );
    git(&repo, &["commit", "--quiet", "-am", "feature"]);
    git(&repo, &["tag", "v1"]);
    write_files(
        &repo,
        &[("bin/compile", "#!/bin/sh\necho '-----> compiled after v1'\n")],
    );
    git(&repo, &["commit", "--quiet", "-am", "after the tag"]);
    git(&repo, &["checkout", "--quiet", "main"]);

    // Detection would pick static; BUILDPACK_URL overrides it.
    let cases = [
        (format!("{}#feature", file_url(&repo)), "compiled after v1"),
        (format!("{}#v1", file_url(&repo)), "compiled by feature"),
        (format!("{}#{main_sha}", file_url(&repo)), "compiled by main"),
        (file_url(&repo), "compiled by main"),
        (format!("{}#feature", repo.display()), "compiled after v1"),
    ];
    for (url, expected) in cases {
        let mut job = h.job_with_files(&[("index.html", "x\n")]);
        job.buildpack_url = Some(url.clone());
        let (result, lines) = h.build(job).await;
        let output = ok(result, &lines);
        assert!(has_line(&lines, "-----> Fetching custom buildpack"), "{url}");
        assert!(has_line(&lines, "-----> Custom app detected"), "{url}");
        assert!(
            has_line(&lines, expected),
            "{url}: {expected:?} not in\n{}",
            lines.join("\n")
        );
        assert_eq!(output.buildpack, "Custom");
        assert_eq!(output.procfile["web"], "bin/web");
    }

    // A ref that does not exist fails the build.
    let mut job = h.job_with_files(&[("index.html", "x\n")]);
    job.buildpack_url = Some(format!("{}#no-such-ref", file_url(&repo)));
    let (result, lines) = h.build(job).await;
    match result {
        Err(BuildError::Failed(message)) => {
            assert!(
                message.starts_with("git checkout no-such-ref failed"),
                "{message}"
            )
        }
        other => panic!("{other:?}\n{}", lines.join("\n")),
    }
}

#[tokio::test]
async fn custom_buildpack_without_detect_is_used_anyway() {
    let mut h = Harness::new();
    let repo = buildpack_repo(
        h.path(),
        "nodetect-buildpack.git",
        None,
        "#!/bin/sh\necho '-----> compiling anyway'\n",
        None,
    );
    let mut job = h.job_with_files(&[("README", "x\n")]);
    job.buildpack_url = Some(file_url(&repo));
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    assert_eq!(output.buildpack, "nodetect-buildpack");
    assert!(has_line(&lines, "-----> nodetect-buildpack app detected"));
    assert!(has_line(&lines, "compiling anyway"));
    assert!(output.procfile.is_empty());
    let slug = h.unpack(&output);
    assert_eq!(read(slug.join("Procfile")), "{}\n");
}

#[tokio::test]
async fn config_reaches_compile_through_env_dir_only() {
    let mut h = Harness::new();
    let compile = r#"#!/bin/bash
set -e
build_dir="$1"; cache_dir="$2"; env_dir="$3"
echo "-----> ENV_DIR has: $(cd "$env_dir" && ls | tr '\n' ' ')"
echo "       GREETING file: $(cat "$env_dir/GREETING")"
if [ -n "${GREETING:-}" ] || [ -n "${SECRET_KEY:-}" ]; then
  echo "       config leaked into the environment"
  exit 1
fi
env > "$build_dir/compile.env"
echo "       cwd: $(pwd)"
"#;
    let repo = buildpack_repo(
        h.path(),
        "envbp",
        Some("#!/bin/sh\necho Env\n"),
        compile,
        Some(ECHO_RELEASE),
    );
    let mut job = h.job_with_files(&[("README", "x\n")]);
    job.env = BTreeMap::from([
        ("GREETING".to_owned(), "hello world".to_owned()),
        ("SECRET_KEY".to_owned(), "s3cr3t\nline2".to_owned()),
    ]);
    let url = format!("{}#main", file_url(&repo));
    job.buildpack_url = Some(url.clone());
    let source = job.source.clone();
    let work_dir = job.work_dir.clone();
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    assert!(has_line(&lines, "ENV_DIR has: GREETING SECRET_KEY"));
    assert!(has_line(&lines, "GREETING file: hello world"));
    assert!(has_line(&lines, &format!("cwd: {}", source.display())));

    let env: BTreeMap<String, String> = read(source.join("compile.env"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(env["HOME"], source.to_string_lossy());
    assert_eq!(env["STACK"], "deis-local");
    assert_eq!(env["SOURCE_VERSION"], SHA);
    assert_eq!(env["DEIS_APP"], "sample");
    assert_eq!(env["BUILDPACK_URL"], url);
    assert_eq!(env["REQUEST_ID"].len(), 32);
    assert_eq!(env["PATH"], std::env::var("PATH").unwrap());
    // Nothing else from the builder's own environment: variables cargo set
    // for this test process are not there.
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO") && key != "CARGO_HOME" {
            assert!(!env.contains_key(&key), "{key} leaked into the build");
        }
    }
    let allowed_extra = [
        "PWD",
        "SHLVL",
        "_",
        "OLDPWD",
        "LANG",
        "LC_ALL",
        "TZ",
        "PYENV_ROOT",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "RUSTUP_AUTO_INSTALL",
        "PIP_CERT",
        "PIP_FIND_LINKS",
        "PIP_DEFAULT_TIMEOUT",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_TRUSTED_HOST",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "GIT_SSL_CAINFO",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "npm_config_registry",
        "NPM_CONFIG_REGISTRY",
        "GOPROXY",
        "GOSUMDB",
        "GONOSUMDB",
        "GOPRIVATE",
        "GOROOT",
        "PYENV_VERSION",
        "HOME",
        "PATH",
        "STACK",
        "SOURCE_VERSION",
        "DEIS_APP",
        "REQUEST_ID",
        "BUILDPACK_URL",
    ];
    for key in env.keys() {
        assert!(
            allowed_extra.contains(&key.as_str()),
            "unexpected {key} in the build env"
        );
    }
    assert!(!env.contains_key("GREETING"));

    // ENV_DIR and the clone are gone after the build; the slug stays.
    assert!(!work_dir.join("env").exists());
    assert!(!work_dir.join("buildpacks").exists());
    assert!(output.slug.is_file());
}

#[tokio::test]
async fn dot_buildpacks_runs_every_buildpack_and_merges_process_types() {
    let mut h = Harness::new();
    let a = buildpack_repo(
        h.path(),
        "bp-a",
        Some("#!/bin/sh\necho A\n"),
        "#!/bin/sh\nset -e\necho '-----> compile A'\necho a > \"$1/a.txt\"\necho 'export FROM_A=yes' > \"$(dirname \"$0\")/../export\"\n",
        Some(
            "#!/bin/sh\nprintf -- '---\\nconfig_vars:\\n  A: \"1\"\\ndefault_process_types:\\n  web: a-web\\n  worker: a-worker\\n'\n",
        ),
    );
    let b = buildpack_repo(
        h.path(),
        "bp-b",
        Some("#!/bin/sh\nexit 1\n"),
        "#!/bin/sh\nset -e\necho \"-----> compile B (FROM_A=$FROM_A)\"\ntest -f \"$1/a.txt\"\necho b > \"$1/b.txt\"\n",
        Some(
            "#!/bin/sh\nprintf -- '---\\nconfig_vars:\\n  B: \"2\"\\ndefault_process_types:\\n  web: b-web\\naddons: []\\n'\n",
        ),
    );
    let buildpacks = format!(
        "# built-in first, then two of our own\nstatic\n\n{}\n{}#main\n",
        file_url(&a),
        b.display()
    );
    let job = h.job_with_files(&[("index.html", "x\n"), (".buildpacks", &buildpacks)]);
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    assert_eq!(output.buildpack, "Static HTML, A, bp-b");
    assert_eq!(
        output.procfile,
        BTreeMap::from([
            ("web".to_owned(), "b-web".to_owned()),
            ("worker".to_owned(), "a-worker".to_owned()),
        ])
    );
    assert!(has_line(&lines, "Using 3 buildpacks listed in .buildpacks"));
    assert!(has_line(&lines, "does not detect this app; running it anyway"));
    assert!(has_line(&lines, "-----> compile B (FROM_A=yes)"));
    assert!(position(&lines, "Static HTML app detected") < position(&lines, "compile A"));
    assert!(position(&lines, "compile A") < position(&lines, "compile B"));
    let slug = h.unpack(&output);
    assert_eq!(read(slug.join("a.txt")), "a\n");
    assert_eq!(read(slug.join("b.txt")), "b\n");
    // The last release wins, with the merged default process types.
    let release = read(slug.join(".release"));
    assert!(release.contains("B: \"2\""), "{release}");
    assert!(!release.contains("A: \"1\""), "{release}");
    assert!(
        release.contains("  web: b-web\n  worker: a-worker\n"),
        "{release}"
    );
    assert!(release.contains("addons: []"), "{release}");
}

#[tokio::test]
async fn pre_and_post_compile_hooks_run_around_compile() {
    let mut h = Harness::new();
    let mut job = h.job_with_files(&[
        ("Procfile", "web: bin/web\n"),
        ("bin/web", "#!/bin/sh\necho web\n"),
        (
            "bin/pre-compile",
            "#!/bin/sh\necho '-----> pre-compile ran'\ntouch pre.txt\n",
        ),
        (
            "bin/post-compile",
            "#!/bin/sh\nset -e\ntest -f .release\necho \"-----> post-compile ran in $(pwd)\"\ntouch post.txt\n",
        ),
    ]);
    // A hook committed without its execute bit still runs.
    std::fs::set_permissions(
        job.source.join("bin/pre-compile"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    job.cache = None;
    let source = job.source.clone();
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    let pre = position(&lines, "pre-compile ran");
    let detected = position(&lines, "Procfile app detected");
    let post = position(&lines, "post-compile ran");
    assert!(pre < detected && detected < post, "{}", lines.join("\n"));
    assert!(has_line(&lines, "-----> Running pre-compile hook"));
    assert!(has_line(
        &lines,
        &format!("post-compile ran in {}", source.display())
    ));
    let slug = h.unpack(&output);
    assert!(slug.join("pre.txt").is_file());
    assert!(slug.join("post.txt").is_file());

    let job = h.job_with_files(&[
        ("Procfile", "web: bin/web\n"),
        ("bin/pre-compile", "#!/bin/sh\nexit 3\n"),
    ]);
    let (result, _) = h.build(job).await;
    match result {
        Err(BuildError::Failed(message)) => {
            assert_eq!(message, "pre-compile failed with exit code 3")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn slugignore_and_git_are_left_out_of_the_slug() {
    let mut h = Harness::new();
    let job = h.job_with_files(&[
        ("Procfile", "web: bin/web\n"),
        ("bin/web", "#!/bin/sh\n"),
        (".slugignore", "# not in the slug\n*.psd\n/tests\nlogs/\n"),
        ("art.psd", "x"),
        ("sub/art.psd", "x"),
        ("tests/test.txt", "x"),
        ("sub/tests/kept.txt", "x"),
        ("logs/app.log", "x"),
        ("keep.txt", "x"),
        (".git/HEAD", "ref: refs/heads/main\n"),
        ("sub/.git/config", "x"),
    ]);
    let (result, lines) = h.build(job).await;
    let output = ok(result, &lines);
    let slug = h.unpack(&output);
    for gone in ["art.psd", "sub/art.psd", "tests", "logs", ".git", "sub/.git"] {
        assert!(!slug.join(gone).exists(), "{gone} is in the slug");
    }
    for kept in [
        "keep.txt",
        "sub/tests/kept.txt",
        "bin/web",
        ".slugignore",
        ".release",
    ] {
        assert!(slug.join(kept).exists(), "{kept} is missing from the slug");
    }
}

#[tokio::test]
async fn cache_dir_persists_between_builds() {
    let mut h = Harness::new();
    let compile = r#"#!/bin/sh
set -e
if [ -f "$2/marker" ]; then
  echo "-----> cache hit"
else
  echo "-----> cache miss: working hard"
  sleep 2
  mkdir -p "$2"
  echo cached > "$2/marker"
fi
"#;
    let repo = buildpack_repo(
        h.path(),
        "cachebp",
        Some("#!/bin/sh\necho Cache\n"),
        compile,
        Some(ECHO_RELEASE),
    );
    let cache = h.path().join("app-cache");
    let mut timings = Vec::new();
    for _ in 0..2 {
        let mut job = h.job_with_files(&[("README", "x\n")]);
        job.buildpack_url = Some(file_url(&repo));
        job.cache = Some(cache.clone());
        let started = Instant::now();
        let (result, lines) = h.build(job).await;
        ok(result, &lines);
        timings.push((started.elapsed(), lines));
    }
    assert!(has_line(&timings[0].1, "cache miss"));
    assert!(has_line(&timings[1].1, "cache hit"));
    assert!(timings[0].0 >= Duration::from_secs(2));
    assert!(
        timings[1].0 < timings[0].0 - Duration::from_secs(1),
        "{:?} vs {:?}",
        timings[1].0,
        timings[0].0
    );
    assert_eq!(read(cache.join("marker")), "cached\n");

    // Without a cache dir, every build starts cold and leaves nothing behind.
    let mut job = h.job_with_files(&[("README", "x\n")]);
    job.buildpack_url = Some(file_url(&repo));
    job.cache = None;
    let work_dir = job.work_dir.clone();
    let (result, lines) = h.build(job).await;
    ok(result, &lines);
    assert!(has_line(&lines, "cache miss"));
    assert!(!work_dir.join("cache").exists());
}

/// Whether `pid` is gone (or a zombie waiting for init to reap it).
fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let mut h = Harness::new();
    let compile = r#"#!/bin/bash
echo "-----> starting a long job"
sleep 600 &
echo $! > "$2/sleep.pid"
echo $$ > "$2/compile.pid"
wait
"#;
    let repo = buildpack_repo(
        h.path(),
        "slowbp",
        Some("#!/bin/sh\necho Slow\n"),
        compile,
        Some(ECHO_RELEASE),
    );
    let mut job = h.job_with_files(&[("README", "x\n")]);
    job.buildpack_url = Some(file_url(&repo));
    job.timeout = Duration::from_secs(3);
    let cache = job.cache.clone().unwrap();
    let started = Instant::now();
    let (result, lines) = h.build(job).await;
    let elapsed = started.elapsed();
    match result {
        Err(BuildError::Timeout(d)) => assert_eq!(d, Duration::from_secs(3)),
        other => panic!("{other:?}\n{}", lines.join("\n")),
    }
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    // Output was streamed while the step ran.
    assert!(has_line(&lines, "starting a long job"));

    let sleep_pid: i32 = read(cache.join("sleep.pid")).trim().parse().unwrap();
    let compile_pid: i32 = read(cache.join("compile.pid")).trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(process_gone(sleep_pid) && process_gone(compile_pid)) {
        assert!(
            Instant::now() < deadline,
            "the process group survived the timeout"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing is left in the group either.
    let group = killpg(Pid::from_raw(compile_pid), None);
    assert!(
        group.is_err() || process_gone(sleep_pid),
        "process group {compile_pid} still has members"
    );
}

#[tokio::test]
async fn dropping_the_build_kills_its_processes() {
    let mut h = Harness::new();
    let compile = r#"#!/bin/bash
sleep 600 &
echo $! > "$2/sleep.pid"
echo "-----> started"
wait
"#;
    let repo = buildpack_repo(
        h.path(),
        "dropbp",
        Some("#!/bin/sh\necho Drop\n"),
        compile,
        Some(ECHO_RELEASE),
    );
    let mut job = h.job_with_files(&[("README", "x\n")]);
    job.buildpack_url = Some(file_url(&repo));
    let cache = job.cache.clone().unwrap();
    let executor = h.executor.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let build = tokio::spawn(async move { executor.build(job, tx).await });
    while let Some(line) = rx.recv().await {
        if line.contains("-----> started") {
            break;
        }
    }
    build.abort();
    assert!(build.await.unwrap_err().is_cancelled());
    let pid: i32 = read(cache.join("sleep.pid")).trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process_gone(pid) {
        assert!(Instant::now() < deadline, "the build's processes survived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn leftover_background_processes_do_not_hang_the_build() {
    let mut h = Harness::new();
    // compile exits, but leaves a child holding its stdout open.
    let compile = r#"#!/bin/bash
(sleep 600; echo never) &
echo $! > "$2/bg.pid"
echo "-----> compile done"
"#;
    let repo = buildpack_repo(
        h.path(),
        "leakbp",
        Some("#!/bin/sh\necho Leak\n"),
        compile,
        Some(ECHO_RELEASE),
    );
    let mut job = h.job_with_files(&[("README", "x\n")]);
    job.buildpack_url = Some(file_url(&repo));
    job.timeout = Duration::from_secs(60);
    let cache = job.cache.clone().unwrap();
    let started = Instant::now();
    let (result, lines) = h.build(job).await;
    ok(result, &lines);
    assert!(started.elapsed() < Duration::from_secs(30));
    let pid: i32 = read(cache.join("bg.pid")).trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process_gone(pid) {
        assert!(Instant::now() < deadline, "the leftover survived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn slug_size_limit() {
    let mut h = Harness::new();
    let mut job = h.job(&fixture("procfile"));
    job.max_slug_bytes = 100;
    let (result, lines) = h.build(job).await;
    match result {
        Err(BuildError::TooLarge(message)) => {
            assert!(message.starts_with("Compiled slug size is "), "{message}");
            assert!(message.ends_with(" MB; the limit is 0.001 MB."), "{message}");
        }
        other => panic!("{other:?}\n{}", lines.join("\n")),
    }
    assert!(has_line(&lines, "-----> Compiled slug size is"));
}

#[tokio::test]
async fn a_dropped_log_receiver_does_not_stop_the_build() {
    let mut h = Harness::new();
    let job = h.job(&fixture("static"));
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    let output = h.executor.build(job, tx).await.unwrap();
    assert_eq!(output.buildpack, "Static HTML");
    assert!(output.slug.is_file());
}

#[test]
fn builtin_buildpacks_install_idempotently() {
    let tmp = tempfile::tempdir().unwrap();
    LocalExecutor::install_builtin_buildpacks(tmp.path()).unwrap();
    let compile = tmp.path().join("python/bin/compile");
    std::fs::write(&compile, "tampered").unwrap();
    std::fs::set_permissions(&compile, std::fs::Permissions::from_mode(0o600)).unwrap();
    LocalExecutor::install_builtin_buildpacks(tmp.path()).unwrap();
    for name in LocalExecutor::BUILTIN_BUILDPACKS {
        for script in ["detect", "compile", "release"] {
            let path = tmp.path().join(name).join("bin").join(script);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755, "{}", path.display());
            assert!(read(&path).starts_with("#!/bin/bash"));
        }
    }
    assert!(read(&compile).contains("pip"));
    // Nothing else was left behind (no temporary files).
    let entries = std::fs::read_dir(tmp.path().join("python/bin")).unwrap().count();
    assert_eq!(entries, 3);
}
