/**
 * The arithmetic ceiling of one core, for the prompt-mode roofline in the README: multiply-adds
 * per second of the int8 dot product the q8/q4 kernels use (`i32x4.relaxed_dot_i8x16_i7x16_add_s`,
 * 16 per instruction) and of the f32 fused multiply-add the float kernels use (4 per
 * instruction), each in eight independent chains held in registers (no memory traffic).
 *
 *   deno run -A bench/peak.ts
 *
 * @module
 */

import wabtInit from "wabt";

const chains = 8;
const step = (op: string) =>
  Array.from(
    { length: chains },
    (_, i) => `(local.set $a${i} (${op.replace("$A", `(local.get $a${i})`)}))`,
  ).join(" ");
const locals = Array.from({ length: chains }, (_, i) => `(local $a${i} v128)`).join(" ");
let sum = "(local.get $a0)"; // xor of all chains, so none is dead code
for (let i = 1; i < chains; i++) sum = `(v128.xor ${sum} (local.get $a${i}))`;
const fn = (name: string, op: string) => `
  (func (export "${name}") (param $n i32) (param $p v128) (param $q v128) (result v128) ${locals}
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      ${step(op)}
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    ${sum})`;
const wat = `(module
  ${fn("dot", "i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get $p) (local.get $q) $A")}
  ${fn("fma", "f32x4.relaxed_madd (local.get $p) (local.get $q) $A")})`;

const wabt = await wabtInit();
const mod = wabt.parseWat("peak.wat", wat, { simd: true, relaxed_simd: true });
mod.resolveNames();
const { buffer } = mod.toBinary({});
mod.destroy();
const instance = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(buffer)));

// v128 parameters cannot cross from JS: call through a tiny wrapper module instead
const wrapWat = `(module
  (import "k" "dot" (func $dot (param i32 v128 v128) (result v128)))
  (import "k" "fma" (func $fma (param i32 v128 v128) (result v128)))
  (func (export "dot") (param $n i32)
    (drop (call $dot (local.get $n) (v128.const i8x16 1 2 3 4 5 6 7 8 1 2 3 4 5 6 7 8)
      (v128.const i8x16 9 8 7 6 5 4 3 2 9 8 7 6 5 4 3 2))))
  (func (export "fma") (param $n i32)
    (drop (call $fma (local.get $n) (v128.const f32x4 0.999 0.999 0.999 0.999)
      (v128.const f32x4 0.001 0.001 0.001 0.001)))))`;
const wrap = wabt.parseWat("wrap.wat", wrapWat, { simd: true });
wrap.resolveNames();
const wrapped = new WebAssembly.Instance(
  new WebAssembly.Module(new Uint8Array(wrap.toBinary({}).buffer)),
  { k: instance.exports },
).exports as Record<string, (n: number) => void>;
wrap.destroy();

const n = 20_000_000;
for (const [name, macs] of [["dot", 16], ["fma", 4]] as const) {
  let best = Infinity;
  for (let i = 0; i < 8; i++) {
    const t = performance.now();
    wrapped[name](n);
    best = Math.min(best, performance.now() - t);
  }
  const g = (n * chains * macs) / (best / 1000) / 1e9;
  const label = name === "dot" ? "int8 relaxed dot" : "f32 fused multiply-add";
  console.log(`${label.padEnd(24)} ${g.toFixed(1)} G multiply-adds/s on one core`);
}
