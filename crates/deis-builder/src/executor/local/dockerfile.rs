//! Dockerfile builds, as Deis's dockerbuilder did them but without a Docker
//! daemon: buildah builds the source tree into an image (chroot isolation
//! and vfs storage, which need no daemon and no kernel features beyond
//! root), pushes it to the platform's registry, and forgets it locally.

use std::ffi::OsString;
use std::path::Path;

use deis_images as images;

use super::process::{Cmd, Output, Session};
use crate::executor::{
    BUILD_ARGS_NOTICE, BuildError, BuildJob, ImageOutput, ImageTarget, declare_build_args,
};

/// buildah with its storage under `storage`.
struct Buildah<'a> {
    program: &'a Path,
    storage: &'a Path,
}

impl Buildah<'_> {
    fn cmd(&self, step: &str, cwd: &Path) -> Cmd {
        Cmd::new(step, self.program, cwd.to_owned())
            .arg("--root")
            .arg(self.storage.join("root"))
            .arg("--runroot")
            .arg(images::run_root(self.storage))
            .arg("--storage-driver")
            .arg("vfs")
    }
}

/// Builds `job.source/Dockerfile` and pushes the image to `target`.
pub(super) async fn build(
    program: &Path,
    storage: &Path,
    job: &BuildJob,
    target: &ImageTarget,
    session: &mut Session,
) -> Result<ImageOutput, BuildError> {
    let buildah = Buildah { program, storage };
    let source = job.source.as_path();
    let local_tag = format!(
        "localhost/deis-build/{}:{}",
        job.app,
        uuid::Uuid::new_v4().simple()
    );

    let mut bud = buildah
        .cmd("the Dockerfile build", source)
        .arg("bud")
        .arg("--isolation")
        .arg("chroot")
        .arg("--file")
        .arg(source.join("Dockerfile"))
        .arg("--tag")
        .arg(&local_tag);
    let names = declare_build_args(source, &job.env).await?;
    if !names.is_empty() {
        // Values reach buildah through its environment, never its command line.
        for name in names {
            bud = bud.arg("--build-arg").arg(name.as_str());
            bud = bud.env(
                name.as_str(),
                job.env.get(name.as_str()).cloned().unwrap_or_default(),
            );
        }
        session.say(BUILD_ARGS_NOTICE).await?;
    }
    bud = bud.arg(source);
    session.say("-----> Building the Dockerfile with buildah").await?;
    let built = session.run(bud).await?.check("the Dockerfile build");

    let pushed = match built {
        Ok(_) => push(&buildah, job, target, &local_tag, session).await,
        Err(e) => Err(e),
    };
    // The image lives on in the registry; the local copy is only a cache
    // that vfs storage would let grow without bound.
    let rmi = buildah
        .cmd("removing the local image", &job.work_dir)
        .arg("rmi")
        .arg(&local_tag)
        .stdout(Output::Discard)
        .stderr(Output::Discard);
    let _ = session.run(rmi).await;
    let digest = pushed?;

    let procfile = crate::executor::read_procfile(source).await?;
    Ok(ImageOutput { digest, procfile })
}

async fn push(
    buildah: &Buildah<'_>,
    job: &BuildJob,
    target: &ImageTarget,
    local_tag: &str,
    session: &mut Session,
) -> Result<String, BuildError> {
    let auth = job.work_dir.join("registry-auth.json");
    let host = target.reference.split('/').next().unwrap_or_default();
    images::write_private_file(
        &auth,
        &images::registry_auth_json(host, &target.username, &target.password),
    )?;
    let digest_file = job.work_dir.join("image-digest");
    session
        .say(format!("-----> Pushing image {}", target.reference))
        .await?;
    let push = buildah
        .cmd("pushing the image", &job.work_dir)
        .arg("push")
        .arg("--authfile")
        .arg(&auth)
        .arg(format!("--tls-verify={}", !target.insecure))
        .arg("--digestfile")
        .arg(&digest_file)
        .arg("--quiet")
        .arg(local_tag)
        .arg(OsString::from(format!("docker://{}", target.reference)));
    let pushed = session.run(push).await.and_then(|f| f.check("pushing the image"));
    let _ = tokio::fs::remove_file(&auth).await;
    pushed?;
    let digest = tokio::fs::read_to_string(&digest_file).await?.trim().to_owned();
    Ok(digest)
}
