// f16 storage, two values per 32-bit word, widened with unpack2x16float (core WGSL: no
// shader-f16 needed; the products accumulate in f32).
@group(0) @binding(2) var<storage, read> W: array<vec4<u32>>;

fn load8(r: u32, g: u32) -> mat2x4<f32> {
  let q = W[r * (pu(3u) / 8u) + g];
  return mat2x4<f32>(
    vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y)),
    vec4<f32>(unpack2x16float(q.z), unpack2x16float(q.w)),
  );
}
