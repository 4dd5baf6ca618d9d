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

// The pass's segment table (each sequence of a batched pass is a segment: its rows and its own
// state), written into `buf` before the pass; parameter 30 is its offset, 31 the pass's largest
// token count. Layout: the segment of every row (maxT values), then per segment its first row,
// its length and the offset of its state in `buf` (as hi·65536 + lo), all as exact floats.
fn rowSeg(t: u32) -> u32 {
  return u32(buf[pu(30u) + t]);
}

fn segAt(s: u32, field: u32) -> u32 {
  return u32(buf[pu(30u) + pu(31u) + s * 4u + field]);
}

fn segStart(s: u32) -> u32 {
  return segAt(s, 0u);
}

fn segLen(s: u32) -> u32 {
  return segAt(s, 1u);
}

fn segState(s: u32) -> u32 {
  return segAt(s, 2u) * 65536u + segAt(s, 3u);
}
