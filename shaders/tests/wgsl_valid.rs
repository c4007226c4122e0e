//! Every embedded WGSL source parses and validates with naga as wgpu would validate it on a
//! device without `SHADER_INT64` (the lowest common denominator the node accepts). No GPU needed.

use naga::valid::{Capabilities, ValidationFlags, Validator};

/// The capabilities wgpu 30 derives (`wgpu_naga_bridge::features_to_naga_capabilities`) for a
/// device opened with the context's features minus `SHADER_INT64` (so `TIMESTAMP_QUERY` at
/// most, which maps to no capability) and WebGPU-compliant downlevel flags.
fn capabilities() -> Capabilities {
    Capabilities::SHADER_FLOAT16_IN_FLOAT32 | Capabilities::MULTISAMPLED_SHADING | Capabilities::CUBE_ARRAY_TEXTURES
}

fn validate(name: &str, source: &str) -> Result<naga::Module, String> {
    let module =
        naga::front::wgsl::parse_str(source).map_err(|e| format!("{name}: parse: {}", e.emit_to_string(source)))?;
    Validator::new(ValidationFlags::all(), capabilities())
        .validate(&module)
        .map_err(|e| format!("{name}: validation: {}", e.emit_to_string(source)))?;
    Ok(module)
}

#[test]
fn every_source_parses_and_validates() {
    assert!(!shaders::wgsl::ALL.is_empty());
    let mut failures = Vec::new();
    for (name, source) in shaders::wgsl::ALL {
        if let Err(e) = validate(name, source) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "invalid WGSL:\n{}", failures.join("\n"));
}

#[test]
fn sha256_source_has_its_entry_points() {
    let module = validate("sha256.wgsl", shaders::wgsl::SHA256).unwrap();
    let mut entries: Vec<(&str, naga::ShaderStage, [u32; 3])> =
        module.entry_points.iter().map(|e| (e.name.as_str(), e.stage, e.workgroup_size)).collect();
    entries.sort_by_key(|e| e.0);
    assert_eq!(
        entries,
        vec![
            ("merkle_node", naga::ShaderStage::Compute, [64, 1, 1]),
            ("sha256_batch", naga::ShaderStage::Compute, [64, 1, 1])
        ]
    );
}

/// The checks above can fail: a syntax error, a type error and 64-bit integers (not allowed
/// without `SHADER_INT64`) are all rejected.
#[test]
fn invalid_sources_are_rejected() {
    let syntax = "@compute @workgroup_size(1) fn main( {}";
    assert!(validate("syntax", syntax).is_err());
    let types = "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }";
    assert!(validate("types", types).is_err());
    let int64 = "@compute @workgroup_size(1) fn main() { var x: u64 = 1lu; x = x + 1lu; }";
    let err = validate("int64", int64).unwrap_err();
    assert!(err.contains("int64") || err.contains("64") || err.contains("Capabilit"), "{err}");
}
