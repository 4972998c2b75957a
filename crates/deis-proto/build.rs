//! Compiles `proto/` with protox (no system `protoc`) into prost/tonic code,
//! and writes the encoded descriptor set with extension options preserved.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script compiled for one checkout may be
    // reused for another that shares the target directory.
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let manifest_dir = manifest_dir.as_path();
    let proto_root = manifest_dir.join("../../proto");

    let mut files = Vec::new();
    collect_protos(&proto_root.join("deis"), &mut files)?;
    files.sort();
    // Paths relative to this package: with a target directory shared by
    // several checkouts, absolute paths would make one checkout's build
    // look fresh to another.
    println!("cargo:rerun-if-changed=../../proto");
    for file in &files {
        if let Ok(relative) = file.strip_prefix(manifest_dir) {
            println!("cargo:rerun-if-changed={}", relative.display());
        }
    }

    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // `encode_file_descriptor_set` keeps extension options such as
    // `google.api.http`, which `file_descriptor_set()` drops.
    std::fs::write(
        out_dir.join("deis.fds.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    let pool = compiler.descriptor_pool();
    let mut builder = tonic_prost_build::configure().build_transport(true);
    for message in pool.all_messages() {
        let name = message.full_name();
        if name.starts_with("google.protobuf.") {
            continue;
        }
        builder = builder
            .message_attribute(name, "#[derive(::prost_reflect::ReflectMessage)]")
            .message_attribute(
                name,
                format!(
                    r#"#[prost_reflect(descriptor_pool = "crate::DESCRIPTOR_POOL", message_name = "{name}")]"#
                ),
            );
    }
    builder.compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
