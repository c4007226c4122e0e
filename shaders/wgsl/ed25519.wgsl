// placeholder: being written
@compute @workgroup_size(64)
fn verify(@builtin(global_invocation_id) gid: vec3<u32>) {}
