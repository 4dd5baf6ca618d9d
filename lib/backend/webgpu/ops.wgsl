// The element-wise steps, norms and recurrences (see lib/model/ops.ts for each one's TypeScript
// original: the oracle the tests compare these with). Parameter slots are listed per kernel;
// `off` slots are element offsets into `buf`.

const WG: u32 = 64u;

// Invocations per group of a norm (a pipeline constant, 1 … 64: see matmul.wgsl's TPR).
override TPR: u32 = 32u;

var<workgroup> red: array<f32, 64>;

// Sum of `v` over the TPR invocations of a group (each gets it): partial sums in shared memory,
// one barrier, then every invocation adds its group's TPR values.
fn groupSum(lid: u32, v: f32) -> f32 {
  if (TPR == 1u) {
    return v;
  }
  red[lid] = v;
  workgroupBarrier();
  let first = lid - lid % TPR;
  var s = 0.0;
  for (var i = 0u; i < TPR; i++) {
    s += red[first + i];
  }
  workgroupBarrier();
  return s;
}

// norm: 0 x, 1 w, 2 b, 3 out, 4 n, 5 groups, 6 wrap, 7 eps. TPR invocations per group.
@compute @workgroup_size(64)
fn norm(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let g = wgIndex(wid, nwg) * (WG / TPR) + lid / TPR;
  let lane = lid % TPR;
  let live = g < pu(5u);
  let n = pu(4u);
  let x = pu(0u) + g * n;
  let out = pu(3u) + g * n;
  let wo = (g % pu(6u)) * n;
  let w = pu(1u) + wo;
  let b = pu(2u) + wo;
  var s = 0.0;
  if (live) {
    for (var i = lane; i < n; i += TPR) {
      s += buf[x + i];
    }
  }
  let mean = groupSum(lid, s) / f32(n);
  var v = 0.0;
  if (live) {
    for (var i = lane; i < n; i += TPR) {
      let d = buf[x + i] - mean;
      v += d * d;
    }
  }
  let inv = 1.0 / sqrt(groupSum(lid, v) / f32(n) + pf(7u));
  if (live) {
    for (var i = lane; i < n; i += TPR) {
      buf[out + i] = (buf[x + i] - mean) * inv * buf[w + i] + buf[b + i];
    }
  }
}

fn elem(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return wgIndex(wid, nwg) * WG + lid;
}

// act: 0 x, 1 out, 2 n, 3 kind (0 tanh, 1 sigmoid, 2 relu²).
@compute @workgroup_size(64)
fn act(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = elem(wid, nwg, lid);
  if (i >= pu(2u)) {
    return;
  }
  let x = buf[pu(0u) + i];
  var y: f32;
  switch pu(3u) {
    case 0u: {
      y = tanh(clamp(x, -20.0, 20.0)); // tanh(±20) is ±1 in f32; clamped so exp cannot overflow
    }
    case 1u: {
      y = sigm(x);
    }
    default: {
      let z = max(x, 0.0);
      y = z * z;
    }
  }
  buf[pu(1u) + i] = y;
}

// shift: 0 cur, 1 state tensor (offset in a state), 2 mix, 3 out, 4 T, 5 C, 6 form (0 toPrev,
// 1 toCur, 2 diff). A segment's first token mixes with its own state's tensor.
@compute @workgroup_size(64)
fn shift(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = elem(wid, nwg, lid);
  let C = pu(5u);
  if (i >= pu(4u) * C) {
    return;
  }
  let t = i / C;
  let j = i % C;
  let seg = rowSeg(t);
  let c = buf[pu(0u) + i];
  var p: f32;
  if (t == segStart(seg)) {
    p = buf[segState(seg) + pu(1u) + j];
  } else {
    p = buf[pu(0u) + i - C];
  }
  let m = buf[pu(2u) + j];
  var y: f32;
  switch pu(6u) {
    case 0u: {
      y = c + (p - c) * m;
    }
    case 1u: {
      y = c * m + p * (1.0 - m);
    }
    default: {
      y = p - c;
    }
  }
  buf[pu(3u) + i] = y;
}

// keepLast: 0 src, 1 state tensor, 2 segments, 3 C: each segment's state tensor ← its last row.
@compute @workgroup_size(64)
fn keepLast(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = elem(wid, nwg, lid);
  let C = pu(3u);
  if (i >= pu(2u) * C) {
    return;
  }
  let s = i / C;
  let j = i % C;
  let row = segStart(s) + segLen(s) - 1u;
  buf[segState(s) + pu(1u) + j] = buf[pu(0u) + row * C + j];
}

// lastRows: 0 src, 1 out, 2 segments, 3 C: out row s ← the last row of segment s.
@compute @workgroup_size(64)
fn lastRows(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = elem(wid, nwg, lid);
  let C = pu(3u);
  if (i >= pu(2u) * C) {
    return;
  }
  let s = i / C;
  let row = segStart(s) + segLen(s) - 1u;
  buf[pu(1u) + i] = buf[pu(0u) + row * C + i % C];
}

// columns: 0 src, 1 stride, 2 offset, 3 width, 4 out, 5 T: out[t][c] = src[t][offset + c].
@compute @workgroup_size(64)
fn columns(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = elem(wid, nwg, lid);
  let width = pu(3u);
  if (i >= pu(5u) * width) {
    return;
  }
  buf[pu(4u) + i] = buf[pu(0u) + (i / width) * pu(1u) + pu(2u) + i % width];
}

// tmix: 0 x, 1 dx, 2 base, 3 off, 4 out, 5 T, 6 C, 7 op (0 lerp, 1 decay).
@compute @workgroup_size(64)
fn tmix(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = elem(wid, nwg, lid);
  let C = pu(6u);
  if (i >= pu(5u) * C) {
    return;
  }
  let m = buf[pu(2u) + i % C] + buf[pu(3u) + i];
  if (pu(7u) == 0u) {
    buf[pu(4u) + i] = buf[pu(0u) + i] + buf[pu(1u) + i] * m;
  } else {
    buf[pu(4u) + i] = exp(-exp(m));
  }
}

// add: 0 x, 1 y, 2 n: x += y.
@compute @workgroup_size(64)
fn add(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = elem(wid, nwg, lid);
  if (i < pu(2u)) {
    buf[pu(0u) + i] += buf[pu(1u) + i];
  }
}

// sigmoidMulAdd: 0 r, 1 v, 2 x, 3 n: x += σ(r)·v.
@compute @workgroup_size(64)
fn sigmoidMulAdd(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = elem(wid, nwg, lid);
  if (i < pu(3u)) {
    buf[pu(2u) + i] += sigm(buf[pu(0u) + i]) * buf[pu(1u) + i];
  }
}

// siluMul: 0 g, 1 y, 2 n: y *= g·σ(g).
@compute @workgroup_size(64)
fn siluMul(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = elem(wid, nwg, lid);
  if (i < pu(2u)) {
    let g = buf[pu(0u) + i];
    buf[pu(1u) + i] *= g / (1.0 + exp(-g));
  }
}

// wkv4: 0 r, 1 k, 2 v, 3 first, 4 decay, 5 aa, 6 bb, 7 pp (state tensors), 8 out, 9 segments,
// 10 A. One invocation per (segment, channel) runs the segment's tokens.
@compute @workgroup_size(64)
fn wkv4(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let idx = elem(wid, nwg, lid);
  let A = pu(10u);
  if (idx >= pu(9u) * A) {
    return;
  }
  let seg = idx / A;
  let j = idx % A;
  let st = segState(seg);
  let u = buf[pu(3u) + j];
  let decay = buf[pu(4u) + j];
  var aa = buf[st + pu(5u) + j];
  var bb = buf[st + pu(6u) + j];
  var pp = buf[st + pu(7u) + j];
  let t0 = segStart(seg);
  for (var t = t0; t < t0 + segLen(seg); t++) {
    let o = t * A + j;
    let kk = buf[pu(1u) + o];
    let vv = buf[pu(2u) + o];
    var ww = u + kk;
    var p = max(pp, ww);
    var e1 = exp(pp - p);
    var e2 = exp(ww - p);
    buf[pu(8u) + o] = sigm(buf[pu(0u) + o]) * (e1 * aa + e2 * vv) / (e1 * bb + e2);
    ww = decay + pp;
    p = max(ww, kk);
    e1 = exp(ww - p);
    e2 = exp(kk - p);
    aa = e1 * aa + e2 * vv;
    bb = e1 * bb + e2;
    pp = p;
  }
  buf[st + pu(5u) + j] = aa;
  buf[st + pu(6u) + j] = bb;
  buf[st + pu(7u) + j] = pp;
}

// wkv5: 0 S (state tensor), 1 r, 2 k, 3 v, 4 w, 5 u, 6 y, 7 H, 8 N, 9 segments,
// 10 decayPerToken. S is [head][key i][value j]; one invocation per (segment, head, value j)
// owns column j of its head's state.
@compute @workgroup_size(64)
fn wkv5(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let idx = elem(wid, nwg, lid);
  let H = pu(7u);
  let N = pu(8u);
  let C = H * N;
  if (idx >= pu(9u) * C) {
    return;
  }
  let seg = idx / C;
  let h = (idx % C) / N;
  let j = idx % N;
  let s0 = segState(seg) + pu(0u) + h * N * N + j;
  let perToken = pu(10u) != 0u;
  let t0 = segStart(seg);
  for (var t = t0; t < t0 + segLen(seg); t++) {
    let o = t * C + h * N;
    var wo = h * N;
    if (perToken) {
      wo = o;
    }
    let vj = buf[pu(3u) + o + j];
    var acc = 0.0;
    for (var i = 0u; i < N; i++) {
      let a = buf[pu(2u) + o + i] * vj;
      let si = s0 + i * N;
      let sij = buf[si];
      acc += buf[pu(1u) + o + i] * (buf[pu(5u) + h * N + i] * a + sij);
      buf[si] = a + buf[pu(4u) + wo + i] * sij;
    }
    buf[pu(6u) + o + j] = acc;
  }
}

// v7gates: 0 a0, 1 al, 2 w0, 3 wl, 4 v0, 5 hasV0, 6 vl, 7 v, 8 vFirst, 9 kkW, 10 ka, 11 k,
// 12 wDecay, 13 vMix, 14 kkN, 15 kkA, 16 kMod, 17 T, 18 H, 19 N. One invocation per (token, head).
@compute @workgroup_size(64)
fn v7gates(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let idx = elem(wid, nwg, lid);
  let H = pu(18u);
  let N = pu(19u);
  if (idx >= pu(17u) * H) {
    return;
  }
  let h = idx % H;
  let o = idx * N; // (t·H + h)·N: token t's channels of head h
  let c = h * N; // the head's per-channel weights
  var ss = 0.0;
  for (var n = 0u; n < N; n++) {
    buf[pu(12u) + o + n] = exp(-0.606531 * sigm(buf[pu(2u) + c + n] + buf[pu(3u) + o + n]));
    let v = buf[pu(7u) + o + n];
    if (pu(5u) == 0u) {
      buf[pu(8u) + o + n] = v;
      buf[pu(13u) + o + n] = v;
    } else {
      let s = sigm(buf[pu(4u) + c + n] + buf[pu(6u) + o + n]);
      buf[pu(13u) + o + n] = v + (buf[pu(8u) + o + n] - v) * s;
    }
    let z = buf[pu(11u) + o + n] * buf[pu(9u) + c + n];
    buf[pu(14u) + o + n] = z;
    ss += z * z;
  }
  let inv = 1.0 / max(sqrt(ss), 1e-12);
  for (var n = 0u; n < N; n++) {
    let a = sigm(buf[pu(0u) + c + n] + buf[pu(1u) + o + n]);
    let kk = buf[pu(14u) + o + n] * inv;
    buf[pu(14u) + o + n] = kk;
    buf[pu(15u) + o + n] = kk * a;
    buf[pu(16u) + o + n] = buf[pu(11u) + o + n] * (1.0 + (a - 1.0) * buf[pu(10u) + c + n]);
  }
}

// wkv7: 0 S (state tensor), 1 r, 2 w, 3 k, 4 v, 5 kk, 6 b, 7 y, 8 H, 9 N, 10 segments. S is
// [head][value i][key j]; one invocation per (segment, head, value i) owns row i of its head's
// state.
@compute @workgroup_size(64)
fn wkv7(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let idx = elem(wid, nwg, lid);
  let H = pu(8u);
  let N = pu(9u);
  let C = H * N;
  if (idx >= pu(10u) * C) {
    return;
  }
  let seg = idx / C;
  let hi = idx % C; // h·N + i
  let h = hi / N;
  let row = segState(seg) + pu(0u) + hi * N;
  let t0 = segStart(seg);
  for (var t = t0; t < t0 + segLen(seg); t++) {
    let o = t * C + h * N;
    var sa = 0.0;
    for (var j = 0u; j < N; j++) {
      sa += buf[row + j] * buf[pu(5u) + o + j];
    }
    let vi = buf[pu(4u) + t * C + hi];
    var acc = 0.0;
    for (var j = 0u; j < N; j++) {
      let s = buf[row + j] * buf[pu(2u) + o + j] - sa * buf[pu(6u) + o + j] +
        vi * buf[pu(3u) + o + j];
      buf[row + j] = s;
      acc += s * buf[pu(1u) + o + j];
    }
    buf[pu(7u) + t * C + hi] = acc;
  }
}

// v7out: 0 y, 1 out, 2 lnw, 3 lnb, 4 r, 5 kMod, 6 rk, 7 vMix, 8 g, 9 T, 10 H, 11 N, 12 eps.
// One invocation per (token, head): group norm, bonus, output gate.
@compute @workgroup_size(64)
fn v7out(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let idx = elem(wid, nwg, lid);
  let H = pu(10u);
  let N = pu(11u);
  if (idx >= pu(9u) * H) {
    return;
  }
  let o = idx * N;
  let c = (idx % H) * N;
  var mean = 0.0;
  for (var n = 0u; n < N; n++) {
    mean += buf[pu(0u) + o + n];
  }
  mean /= f32(N);
  var v = 0.0;
  var s = 0.0;
  for (var n = 0u; n < N; n++) {
    let d = buf[pu(0u) + o + n] - mean;
    v += d * d;
    s += buf[pu(4u) + o + n] * buf[pu(5u) + o + n] * buf[pu(6u) + c + n];
  }
  let inv = 1.0 / sqrt(v / f32(N) + pf(12u));
  for (var n = 0u; n < N; n++) {
    let yn = (buf[pu(0u) + o + n] - mean) * inv * buf[pu(2u) + c + n] + buf[pu(3u) + c + n];
    buf[pu(1u) + o + n] = (yn + s * buf[pu(7u) + o + n]) * buf[pu(8u) + o + n];
  }
}
