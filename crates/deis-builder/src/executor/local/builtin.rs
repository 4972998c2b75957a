//! The built-in buildpacks, embedded in the binary and written out by
//! [`super::LocalExecutor::install_builtin_buildpacks`].

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The built-in buildpacks, in detection order.
pub(super) const ORDER: &[&str] = &["go", "rust", "nodejs", "python", "static", "procfile"];

/// One script of one buildpack.
struct Script {
    buildpack: &'static str,
    name: &'static str,
    text: &'static str,
}

macro_rules! scripts {
    ($($buildpack:literal: $($name:literal),+;)+) => {
        &[$($(Script {
            buildpack: $buildpack,
            name: $name,
            text: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/buildpacks/",
                $buildpack,
                "/bin/",
                $name
            )),
        },)+)+]
    };
}

const SCRIPTS: &[Script] = scripts! {
    "go": "detect", "compile", "release";
    "rust": "detect", "compile", "release";
    "nodejs": "detect", "compile", "release";
    "python": "detect", "compile", "release";
    "static": "detect", "compile", "release";
    "procfile": "detect", "compile", "release";
};

/// Writes every built-in buildpack to `dir/<name>/bin/<script>` with mode
/// 0755, replacing what is there.
pub(super) fn install(dir: &Path) -> io::Result<()> {
    for script in SCRIPTS {
        let bin = dir.join(script.buildpack).join("bin");
        std::fs::create_dir_all(&bin)?;
        let path = bin.join(script.name);
        // Write to a temporary name and rename, so that a build running the
        // old script never sees a half-written file.
        let tmp = bin.join(format!(".{}.tmp-{}", script.name, uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, script.text)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_buildpack_in_the_order_has_three_scripts() {
        for name in ORDER {
            let count = SCRIPTS.iter().filter(|s| s.buildpack == *name).count();
            assert_eq!(count, 3, "{name}");
        }
        assert_eq!(SCRIPTS.len(), ORDER.len() * 3);
        for script in SCRIPTS {
            assert!(
                script.text.starts_with("#!"),
                "{}/{}",
                script.buildpack,
                script.name
            );
        }
    }
}
