// Matrix products over T tokens and the embedding look-up, for one storage type: the module is
// this file after common.wgsl and one dtype_*.wgsl, which supplies `load8(row, g)` (columns
// 8g..8g+7 of a row as f32, decoded in registers: the matrix is never expanded in memory).
//
// matmul params: 0 x, 1 y, 2 rows (of this part), 3 cols, 4 T, 5 y row stride (the whole
// matrix's rows), 6 first row of this part in the matrix. y[t][row0 + r] = Σ_c W[r][c]·x[t][c].
//
// Shape: a workgroup of 64 invocations computes 64/TPR rows, TPR invocations per row
// (TPR, "threads per row", a pipeline constant: 1, 2, 4, … 64). Invocation l of a row reads its
// 8-column groups l, l+TPR, … (TPR neighbouring invocations read neighbouring 16-byte words:
// coalesced), multiplies each group with up to TILE tokens held in registers, then one
// invocation per row sums the row's TPR partial sums from shared memory (one barrier, no tree).
// Decoding reads each row once; prompt mode re-reads it (from cache) once per TILE tokens.
// TPR = 1 has no barrier at all (what a CPU-emulated adapter runs fastest: its SIMD lanes are
// eight rows side by side).

override TPR: u32 = 32u;
const WG: u32 = 64u;
const TILE: u32 = 4u;

var<workgroup> part: array<vec4<f32>, 64>;

@compute @workgroup_size(64)
fn matmul(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let r = wgIndex(wid, nwg) * (WG / TPR) + lid / TPR;
  let lane = lid % TPR;
  let live = r < pu(2u);
  let cols = pu(3u);
  let T = pu(4u);
  let groups = cols / 8u;
  for (var t0 = 0u; t0 < T; t0 += TILE) {
    let nt = min(TILE, T - t0);
    var acc = vec4<f32>(0.0);
    if (live) {
      for (var g = lane; g < groups; g += TPR) {
        let w = load8(r, g);
        for (var tt = 0u; tt < nt; tt++) {
          let xo = pu(0u) + (t0 + tt) * cols + g * 8u;
          let xa = vec4<f32>(buf[xo], buf[xo + 1u], buf[xo + 2u], buf[xo + 3u]);
          let xb = vec4<f32>(buf[xo + 4u], buf[xo + 5u], buf[xo + 6u], buf[xo + 7u]);
          acc[tt] += dot(w[0], xa) + dot(w[1], xb);
        }
      }
    }
    if (TPR > 1u) {
      part[lid] = acc;
      workgroupBarrier();
      if (lane == 0u) {
        for (var i = 1u; i < TPR; i++) {
          acc += part[lid + i];
        }
      }
      workgroupBarrier();
    }
    if (live && lane == 0u) {
      for (var tt = 0u; tt < nt; tt++) {
        buf[pu(1u) + (t0 + tt) * pu(5u) + pu(6u) + r] = acc[tt];
      }
    }
  }
}

// embed params: 0 tokens (offset in buf: token ids as exact floats), 1 T, 2 rows (of this part),
// 3 cols, 6 first row of this part, 8 out. out[t] ← row tokens[t] as f32, for the tokens whose
// row is in this part.
@compute @workgroup_size(64)
fn embed(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = wgIndex(wid, nwg) * WG + lid;
  let cols = pu(3u);
  let groups = cols / 8u;
  if (i >= pu(1u) * groups) {
    return;
  }
  let t = i / groups;
  let g = i % groups;
  let token = u32(buf[pu(0u) + t]);
  if (token < pu(6u) || token >= pu(6u) + pu(2u)) {
    return;
  }
  let w = load8(token - pu(6u), g);
  let o = pu(8u) + t * cols + g * 8u;
  for (var k = 0u; k < 4u; k++) {
    buf[o + k] = w[0][k];
    buf[o + 4u + k] = w[1][k];
  }
}
