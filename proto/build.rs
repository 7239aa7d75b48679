//! Compiles the contracts with protox, a pure-Rust protobuf compiler, so building motcua never
//! needs a system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "motcua/v1/common.proto",
        "motcua/v1/events.proto",
        "motcua/v1/dossier_service.proto",
        "motcua/v1/report_service.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // The encoded descriptor set serves gRPC reflection.
    std::fs::write(
        out_dir.join("motcua_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
