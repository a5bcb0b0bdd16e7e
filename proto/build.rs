//! Generates the `fanout.v1` code with a vendored `protoc`, so a fresh machine needs no
//! system package to build.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.bytes([".fanout.v1"]);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("fanout_v1_descriptor.bin"))
        .compile_with_config(
            config,
            &[
                "proto/fanout/v1/publish.proto",
                "proto/fanout/v1/internal.proto",
                "proto/fanout/v1/interest.proto",
            ],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
