//! Generates the Rust code of Dapr's protocol (`eventbus/src/grpc/proto/`)
//! from the vendored `.proto` files in `proto/dapr/`, with protox (no system
//! `protoc`) and tonic's own code generator.
//!
//! ```sh
//! cargo run --manifest-path tools/protogen/Cargo.toml            # write
//! cargo run --manifest-path tools/protogen/Cargo.toml -- --check # fail if stale
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const FILES: [&str; 2] = ["dapr/proto/runtime/v1/appcallback.proto", "dapr/proto/runtime/v1/dapr.proto"];

fn main() -> ExitCode {
    let check = std::env::args().any(|arg| arg == "--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = root.join("eventbus/src/grpc/proto");
    match run(&root, &target, check) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("protogen: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(root: &Path, target: &Path, check: bool) -> Result<(), String> {
    let descriptors = protox::compile(FILES, [root.join("proto")]).map_err(|e| e.to_string())?;
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // No `connect` helpers: they need tonic's client transport, which is the `client` feature.
        .build_transport(false)
        .include_file("mod.rs")
        .out_dir(scratch.path())
        .compile_fds(descriptors)
        .map_err(|e| e.to_string())?;
    let mut generated: Vec<PathBuf> = std::fs::read_dir(scratch.path())
        .map_err(|e| e.to_string())?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    generated.sort();
    let mut stale = Vec::new();
    for file in &generated {
        let name = file.file_name().unwrap_or_default();
        let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
        let destination = target.join(name);
        if check {
            if std::fs::read_to_string(&destination).ok().as_deref() != Some(text.as_str()) {
                stale.push(destination.display().to_string());
            }
        } else {
            std::fs::create_dir_all(target).map_err(|e| e.to_string())?;
            std::fs::write(&destination, text).map_err(|e| e.to_string())?;
            println!("wrote {}", destination.display());
        }
    }
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "stale generated code: {} (run `cargo run --manifest-path tools/protogen/Cargo.toml`)",
            stale.join(", ")
        ))
    }
}
