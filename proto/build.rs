//! Generates Rust for the .proto contracts: prost messages, tonic services, and pbjson serde impls
//! (the proto3 JSON mapping browsers speak) for the client signaling package and the admin package (webhook
//! bodies).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = out.join("descriptors.bin");
    let protos = [
        "signal/v1/signal.proto",
        "admin/v1/admin.proto",
        "node/v1/node.proto",
        "policy/v1/policy.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptors)
        .compile_protos(&protos, &["."])?;
    let set = std::fs::read(&descriptors)?;
    pbjson_build::Builder::new()
        .register_descriptors(&set)?
        // The admin package too: its `Event` in canonical JSON is the webhook body.
        .build(&[".showcall.signal.v1", ".showcall.admin.v1"])?;
    Ok(())
}
