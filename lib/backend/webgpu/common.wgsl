// Shared by every module of the WebGPU backend (prepended to each before compiling).
//
// Every array a kernel reads or writes (activations, weight vectors, the state being run) lives
// in one storage buffer `buf`; a kernel's parameters (element offsets into `buf`, sizes, flags)
// come from a 256-byte slot of one uniform buffer bound with a dynamic offset, so one bind group
// serves every dispatch of a forward pass.

struct Params {
  a: array<vec4<u32>, 8>,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> buf: array<f32>;

// Parameter i as an unsigned integer.
fn pu(i: u32) -> u32 {
  return P.a[i >> 2u][i & 3u];
}

// Parameter i as a float (stored as its bits).
fn pf(i: u32) -> f32 {
  return bitcast<f32>(pu(i));
}

// Linear index of a workgroup in a grid that wraps into y past 65535 workgroups.
fn wgIndex(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

fn sigm(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}
