// f32 storage: a row is cols/4 vec4s.
@group(0) @binding(2) var<storage, read> W: array<vec4<f32>>;

fn load8(r: u32, g: u32) -> mat2x4<f32> {
  let i = r * (pu(3u) / 4u) + g * 2u;
  return mat2x4<f32>(W[i], W[i + 1u]);
}
