//! Generates the gRPC code from `proto/` with the vendored `protoc`, so no system
//! protobuf compiler is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    set_protoc(&protoc);
    // Read when it runs, not when it was compiled: a shared build cache may reuse this
    // script's binary for a checkout at another path.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "relais/registry/v1/registry.proto",
        "relais/oidc_front/v1/oidc_front.proto",
        "relais/idp_bridge/v1/idp_bridge.proto",
        "relais/trace/v1/trace.proto",
        "relais/support/v1/support.proto",
    ];
    let paths: Vec<_> = files.iter().map(|f| root.join(f)).collect();
    for p in &paths {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    tonic_prost_build::configure().compile_protos(&paths, &[root])?;
    Ok(())
}

#[allow(unsafe_code)]
fn set_protoc(protoc: &std::path::Path) {
    // SAFETY: a build script runs on one thread; prost-build reads PROTOC after this.
    unsafe { std::env::set_var("PROTOC", protoc) };
}
