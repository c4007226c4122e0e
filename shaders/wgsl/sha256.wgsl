// placeholder: being written
@compute @workgroup_size(64)
fn sha256_batch(@builtin(global_invocation_id) gid: vec3<u32>) {}
