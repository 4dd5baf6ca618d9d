// q8 in the quantized file's layout (docs/QUANT_FORMAT.md): int8 [rows, cols] row-major, and
// one 16-bit scale (bf16; f16 in format versions 1–2) per 32 values of a row ([rows, cols/32],
// two per 32-bit word). value = q·d.
@group(0) @binding(2) var<storage, read> W: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> S: array<u32>;

// A block's scale: 16-bit, two per word; bf16 when parameter 9 is 1 (format version 3), else f16.
fn scale(r: u32, b: u32) -> f32 {
  let s = r * (pu(3u) / 32u) + b;
  let w = S[s >> 1u];
  if (pu(9u) == 1u) {
    return bitcast<f32>(((w >> ((s & 1u) * 16u)) & 0xffffu) << 16u);
  }
  return unpack2x16float(w)[s & 1u];
}

fn int8x4(w: u32) -> vec4<f32> {
  let v = vec4<i32>(
    bitcast<i32>(w << 24u),
    bitcast<i32>(w << 16u),
    bitcast<i32>(w << 8u),
    bitcast<i32>(w),
  );
  return vec4<f32>(v >> vec4<u32>(24u));
}

fn load8(r: u32, g: u32) -> mat2x4<f32> {
  let q = W[r * (pu(3u) / 8u) + g];
  let d = scale(r, g / 4u);
  return mat2x4<f32>(int8x4(q.x) * d, int8x4(q.y) * d);
}
