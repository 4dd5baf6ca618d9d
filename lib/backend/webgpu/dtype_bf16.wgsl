// bf16 storage, two values per 32-bit word (little-endian: the low half is the first value);
// a bf16 is the top half of an f32.
@group(0) @binding(2) var<storage, read> W: array<vec4<u32>>;

fn bf16pair(w: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}

fn load8(r: u32, g: u32) -> mat2x4<f32> {
  let q = W[r * (pu(3u) / 8u) + g];
  return mat2x4<f32>(
    vec4<f32>(bf16pair(q.x), bf16pair(q.y)),
    vec4<f32>(bf16pair(q.z), bf16pair(q.w)),
  );
}
