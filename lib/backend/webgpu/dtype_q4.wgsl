// q4 in the quantized file's layout (docs/QUANT_FORMAT.md): [rows, cols/2] bytes, each block of
// 32 values is 16 bytes in ggml's Q4_0 order (byte j holds value j in its low nibble and value
// j+16 in its high one), one 16-bit scale (bf16; f16 in format versions 1–2) per block ([rows, cols/32], two per
// 32-bit word);
// value = (q − 8)·d.
@group(0) @binding(2) var<storage, read> W: array<u32>;
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

fn nibbles(w: u32, shift: u32) -> vec4<f32> {
  let v = (vec4<u32>(w) >> vec4<u32>(shift, shift + 8u, shift + 16u, shift + 24u)) & vec4<u32>(15u);
  return vec4<f32>(v) - 8.0;
}

fn load8(r: u32, g: u32) -> mat2x4<f32> {
  // group g of a row: block g/4; its quarter g%4 is bytes 0-7 (low nibbles: values 0-7),
  // 8-15 (values 8-15), then the high nibbles of the same bytes (values 16-23, 24-31)
  let b = r * (pu(3u) / 32u) + g / 4u;
  let sub = g % 4u;
  let w = b * 4u + (sub % 2u) * 2u;
  let shift = (sub / 2u) * 4u;
  let d = scale(r, g / 4u);
  return mat2x4<f32>(nibbles(W[w], shift) * d, nibbles(W[w + 1u], shift) * d);
}
