/**
 * Decoding speed of our wasm backend against rwkv.cpp on the same weights, in one process:
 * rwkv.cpp's shared library is called through `Deno.dlopen`, and the two decode alternating
 * rounds (ours first in even rounds, rwkv.cpp first in odd ones: both ways round), with a pass
 * of the plain read ceiling (bench/_roofline.ts) in every round, so that drift of this machine
 * kind's bandwidth falls on both alike.
 *
 *   deno run -A bench/rwkvcpp_write.ts --model /work/models-big/4-430m.safetensors \
 *     --out /tmp/4-430m-FP16.bin
 *   deno run -A bench/rwkvcpp_ab.ts --lib /path/to/rwkv.cpp/build/librwkv.so \
 *     --bin /tmp/4-430m-FP16.bin --model /work/models-big/4-430m.safetensors --dtype bf16
 *
 * rwkv.cpp is built outside this repository (cmake Release, CPU only; its README); without the
 * library the script says so and exits 0. Both run `--threads` threads (default 2); rwkv.cpp's
 * `rwkv_eval` is called synchronously, one token at a time with logits, as its own examples
 * decode. Reports per round the median ms/token of each (`--tokens` tokens after warm-up), the
 * ratio ours / rwkv.cpp and the ceiling pass; then the median ratio over the rounds of each
 * order, and each one's share of the ceiling, bytes counted as ours reads them (bench/decode.ts;
 * rwkv.cpp's FP16 file holds the same matrices at the same 2 bytes a value; its quantized files
 * keep the embedding and head in FP16, so for them only ours is given a share). Before timing, both
 * decode the same tokens from a zeroed state and their last logits are compared (largest
 * difference, same argmax), so the two are known to run the same model. `--prompt N` then also
 * times an N-token prompt from a fresh state, alternating the same way (at most 6 rounds): ours in
 * one `forward` call (prompt mode), rwkv.cpp in `rwkv_eval_sequence_in_chunks` (`--cpp-chunk`,
 * default 16 as its Python wrapper's).
 * @module
 */

import { parseArgs } from "node:util";
import { createWasmModel } from "../lib/backend/wasm/mod.ts";
import { openCheckpoint } from "../lib/formats/open.ts";
import { planWeights } from "../lib/model/weights.ts";
import { KERNEL_LAYOUT } from "../lib/backend/wasm/layout.ts";
import { bytesPerToken, ReadProbe } from "./_roofline.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    lib: { type: "string" }, // rwkv.cpp's librwkv.so
    bin: { type: "string" }, // the model in rwkv.cpp's format (bench/rwkvcpp_write.ts)
    model: { type: "string" }, // the same weights for ours
    dtype: { type: "string", default: "bf16" },
    threads: { type: "string", default: "2" },
    tokens: { type: "string", default: "16" },
    rounds: { type: "string", default: "6" },
    prompt: { type: "string", default: "0" }, // N: also time an N-token prompt (0: no)
    "cpp-chunk": { type: "string", default: "16" }, // rwkv.cpp's prompt chunk (its default)
  },
});
if (!values.lib || !values.bin || !values.model) {
  console.error("usage: rwkvcpp_ab.ts --lib librwkv.so --bin MODEL.bin --model CHECKPOINT");
  Deno.exit(2);
}
const exists = (p: string) => Deno.stat(p).then(() => true, () => false);
if (!(await exists(values.lib))) {
  console.log(`rwkvcpp_ab: skipped, no rwkv.cpp library at ${values.lib} (build rwkv.cpp first)`);
  Deno.exit(0);
}
for (const p of [values.bin, values.model]) {
  if (!(await exists(p))) {
    console.error(`rwkvcpp_ab: no file ${p}`);
    Deno.exit(2);
  }
}
const threads = Number(values.threads), tokens = Number(values.tokens);

const lib = Deno.dlopen(values.lib, {
  rwkv_init_from_file: { parameters: ["buffer", "u32", "u32"], result: "pointer" },
  rwkv_eval: { parameters: ["pointer", "u32", "buffer", "buffer", "buffer"], result: "bool" },
  rwkv_get_state_len: { parameters: ["pointer"], result: "usize" },
  rwkv_get_logits_len: { parameters: ["pointer"], result: "usize" },
  rwkv_init_state: { parameters: ["pointer", "buffer"], result: "void" },
  rwkv_free: { parameters: ["pointer"], result: "void" },
  rwkv_get_system_info_string: { parameters: [], result: "pointer" },
  rwkv_eval_sequence_in_chunks: {
    parameters: ["pointer", "buffer", "usize", "usize", "buffer", "buffer", "buffer"],
    result: "bool",
  },
});
const cpp = lib.symbols;
const info = cpp.rwkv_get_system_info_string();
console.log(`rwkv.cpp: ${info ? Deno.UnsafePointerView.getCString(info) : "?"}`);
const ctx = cpp.rwkv_init_from_file(new TextEncoder().encode(values.bin + "\0"), threads, 0);
if (!ctx) {
  console.error(`rwkvcpp_ab: rwkv.cpp could not load ${values.bin}`);
  Deno.exit(2);
}
const cppState = new Float32Array(Number(cpp.rwkv_get_state_len(ctx)));
const cppLogits = new Float32Array(Number(cpp.rwkv_get_logits_len(ctx)));
function cppForward(token: number): Float32Array {
  if (!cpp.rwkv_eval(ctx, token, cppState, cppState, cppLogits)) {
    throw new Error(`rwkv.cpp: rwkv_eval failed on token ${token}`);
  }
  return cppLogits;
}

const ck = await openCheckpoint(values.model);
const model = await createWasmModel(ck, { dtype: values.dtype as "bf16", threads });
const V = model.info.vocab;
const state = model.createState();

// the same model? the same tokens from a zeroed state, then the last logits side by side
const probeTokens = [187, 510, 1563, 310, 247];
cpp.rwkv_init_state(ctx, cppState);
let ours: Float32Array = new Float32Array(0);
for (const t of probeTokens) {
  ours = await model.forward([t], state);
  cppForward(t);
}
let diff = 0, scale = 0;
for (let i = 0; i < V; i++) {
  diff = Math.max(diff, Math.abs(ours[i] - cppLogits[i]));
  scale = Math.max(scale, Math.abs(cppLogits[i]));
}
const argmax = (a: Float32Array) => a.reduce((b, x, i) => (x > a[b] ? i : b), 0);
console.log(
  `logits after ${probeTokens.length} tokens: largest difference ${diff.toPrecision(3)} ` +
    `(largest |logit| ${scale.toPrecision(3)}), argmax ours ${argmax(ours)} rwkv.cpp ${
      argmax(cppLogits)
    }${scale === 0 ? " (all zero: a model of zero matrices, so this check says nothing)" : ""}`,
);

// warm-up: V8 tiers WebAssembly up once hot; rwkv.cpp builds its graph on the first call
for (let i = 0; i < 16; i++) {
  await model.forward([i + 1], state);
  cppForward(i + 1);
}
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
let tok = 1;
async function oursRound(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < tokens; i++) {
    const t = performance.now();
    await model.forward([(tok++ * 7919) % V], state);
    times.push(performance.now() - t);
  }
  return median(times);
}
function cppRound(): number {
  const times: number[] = [];
  for (let i = 0; i < tokens; i++) {
    const t = performance.now();
    cppForward((tok++ * 7919) % V);
    times.push(performance.now() - t);
  }
  return median(times);
}

const probe = await ReadProbe.start(threads);
const rows: { order: string; ours: number; cpp: number; ceiling: number }[] = [];
console.log("round  order          ours ms  rwkv.cpp ms  ours/rwkv.cpp  ceiling GB/s");
for (let r = 0; r < Number(values.rounds); r++) {
  const oursFirst = r % 2 === 0;
  let a: number, b: number;
  if (oursFirst) {
    a = await oursRound();
    b = cppRound();
  } else {
    b = cppRound();
    a = await oursRound();
  }
  const ceiling = await probe.pass();
  const order = oursFirst ? "ours first" : "rwkv.cpp first";
  rows.push({ order, ours: a, cpp: b, ceiling });
  console.log(
    `${String(r).padStart(5)}  ${order.padEnd(14)} ${a.toFixed(2).padStart(7)}  ${
      b.toFixed(2).padStart(11)
    }  ${(a / b).toFixed(3).padStart(13)}  ${ceiling.toFixed(1).padStart(12)}`,
  );
}
probe.close();

// prompts: one N-token prompt from a fresh state each, alternating as the decode rounds
const promptRates: { ours: number; cpp: number }[] = [];
const N = Number(values.prompt);
if (N > 0) {
  const ids = Uint32Array.from({ length: N }, (_, i) => (i * 104729) % V);
  const fresh = new Float32Array(cppState.length);
  const cppPrompt = () => {
    cpp.rwkv_init_state(ctx, fresh);
    const t = performance.now();
    const chunk = BigInt(Number(values["cpp-chunk"]));
    if (!cpp.rwkv_eval_sequence_in_chunks(ctx, ids, BigInt(N), chunk, fresh, cppState, cppLogits)) {
      throw new Error("rwkv.cpp: rwkv_eval_sequence_in_chunks failed");
    }
    return N / ((performance.now() - t) / 1000);
  };
  const oursPrompt = async () => {
    const st = model.createState(), t = performance.now();
    await model.forward(Array.from(ids), st);
    return N / ((performance.now() - t) / 1000);
  };
  // warm-up: V8's tiers, rwkv.cpp's graphs
  await oursPrompt();
  cppPrompt();
  console.log(
    `prompt of ${N} tokens, tokens/s:\nround  order          ours     rwkv.cpp  ours/rwkv.cpp`,
  );
  for (let r = 0; r < Math.min(Number(values.rounds), 6); r++) {
    const oursFirst = r % 2 === 0;
    let ours: number, theirs: number;
    if (oursFirst) {
      ours = await oursPrompt();
      theirs = cppPrompt();
    } else {
      theirs = cppPrompt();
      ours = await oursPrompt();
    }
    const rate = { ours, cpp: theirs };
    promptRates.push(rate);
    console.log(
      `${String(r).padStart(5)}  ${(oursFirst ? "ours first" : "rwkv.cpp first").padEnd(14)} ${
        rate.ours.toFixed(1).padStart(7)
      }  ${rate.cpp.toFixed(1).padStart(11)}  ${(rate.ours / rate.cpp).toFixed(3).padStart(13)}`,
    );
  }
}

const stateBytes = state.data.byteLength;
const { plans } = planWeights(ck, model.spec, model.info.dtype, KERNEL_LAYOUT);
const bytes = bytesPerToken(plans, stateBytes);
const sameBytes = model.info.dtype === "bf16" || model.info.dtype === "f16";
await model.dispose();
ck.close();
cpp.rwkv_free(ctx);
lib.close();

const perToken = bytes.weights + bytes.state;
const ceiling = median(rows.map((r) => r.ceiling));
const share = (ms: number) => Math.round((perToken / (ms / 1000) / 1e9 / ceiling) * 100);
const oursMs = median(rows.map((r) => r.ours)), cppMs = median(rows.map((r) => r.cpp));
for (const order of ["ours first", "rwkv.cpp first"]) {
  const of = rows.filter((r) => r.order === order);
  if (of.length) {
    console.log(`ours/rwkv.cpp, ${order}: ${median(of.map((r) => r.ours / r.cpp)).toFixed(3)}`);
  }
}
console.log(
  `median: ours ${oursMs.toFixed(2)} ms/token (${share(oursMs)} % of the ceiling), rwkv.cpp ${
    cppMs.toFixed(2)
  } ms/token (${sameBytes ? `${share(cppMs)} %` : "other bytes"}), ratio ${
    median(rows.map((r) => r.ours / r.cpp)).toFixed(3)
  }; ceiling ${ceiling.toFixed(1)} GB/s, ${(perToken / 2 ** 20).toFixed(1)} MiB a token`,
);
if (promptRates.length) {
  const m = (f: (r: { ours: number; cpp: number }) => number) => median(promptRates.map(f));
  console.log(
    `prompt of ${N}: ours ${m((r) => r.ours).toFixed(1)} tokens/s, rwkv.cpp ${
      m((r) => r.cpp).toFixed(1)
    } (chunks of ${values["cpp-chunk"]}), ratio of rates ${m((r) => r.ours / r.cpp).toFixed(3)}`,
  );
}
