/**
 * What llama.cpp checks when it loads an `rwkv6` / `rwkv7` GGUF file, written from its code
 * (`ggml/src/gguf.cpp`, `src/llama-model-loader.cpp`, `src/models/rwkv6.cpp`, `rwkv7.cpp`,
 * `src/llama-vocab.cpp`), as a list of broken rules (empty: it loads). The rules:
 * 1. container (gguf.cpp): magic `GGUF`, version 2 or 3, `general.alignment` absent or a power
 *    of two; tensor names unique and under 64 bytes (GGML_MAX_NAME); 1–4 dims, each ≥ 1; a type
 *    whose block divides `ne[0]`; every offset exactly the running total of the tensors before
 *    it, each padded to the alignment; the data section at the aligned end of the header;
 * 2. hyper-parameters (load_arch_hparams, required keys, u32): `general.architecture`,
 *    `{arch}.context_length`, `embedding_length`, `block_count`, `feed_forward_length`,
 *    `attention.head_count`, `wkv.head_size`, `attention.layer_norm_epsilon` (f32); rwkv7:
 *    `attention.decay_lora_rank`, `iclr_lora_rank`, `value_residual_mix_lora_rank`,
 *    `gate_lora_rank`; rwkv6: `time_mix_extra_dim`, `time_decay_extra_dim`;
 *    `token_shift_count` = 2 (the graph asserts it);
 * 3. tensors (load_arch_tensors, `create_tensor`): exactly the set it creates (no missing, no
 *    extra: "wrong number of tensors"), each with the ne it asks for (trailing 1s ignored);
 *    the fused lerp, RWKV-7's layer-0 v0/v1/v2 with the iclr rank;
 * 4. vocabulary (llama-vocab.cpp): `tokenizer.ggml.model` = `rwkv`, `tokenizer.ggml.tokens` an
 *    array of strings with one per row of `token_embd`, `token_type` (i32) as long if present,
 *    special token ids inside the vocabulary.
 * @module
 */

import { GGUF_VALUE, type GgufFile } from "../lib/formats/gguf.ts";

/** Broken rules of llama.cpp's loader for this file (empty when it would load). */
export async function llamaCppProblems(g: GgufFile): Promise<string[]> {
  const bad: string[] = [];
  const m = g.metadata, ty = g.metadataTypes;
  // 1. container
  const head = new DataView((await Deno.readFile(g.path)).slice(0, 8).buffer);
  if (head.getUint32(0, true) !== 0x46554747) bad.push("magic");
  if (g.version !== 2 && g.version !== 3) bad.push(`version ${g.version}`);
  if ((g.alignment & (g.alignment - 1)) !== 0) bad.push(`alignment ${g.alignment}`);
  let running = 0;
  for (const t of g.tensors.values()) {
    if (new TextEncoder().encode(t.name).length >= 64) bad.push(`${t.name}: name too long`);
    if (t.offset - g.dataOffset !== running) {
      bad.push(`${t.name}: offset ${t.offset - g.dataOffset}, gguf.cpp expects ${running}`);
    }
    running += Math.ceil(t.byteLength / g.alignment) * g.alignment;
  }
  if (g.dataOffset % g.alignment !== 0) bad.push("data section not aligned");
  // 2. hyper-parameters
  const arch = m.get("general.architecture");
  if (arch !== "rwkv6" && arch !== "rwkv7") return [...bad, `architecture ${String(arch)}`];
  const u32 = (k: string): number => {
    const key = `${arch}.${k}`;
    if (ty.get(key) !== GGUF_VALUE.UINT32) {
      bad.push(`${key}: ${ty.has(key) ? `type ${ty.get(key)}` : "missing"}, u32 required`);
      return 0;
    }
    return m.get(key) as number;
  };
  u32("context_length");
  const C = u32("embedding_length"), L = u32("block_count"), F = u32("feed_forward_length");
  u32("attention.head_count");
  const N = u32("wkv.head_size");
  if (ty.get(`${arch}.attention.layer_norm_epsilon`) !== GGUF_VALUE.FLOAT32) {
    bad.push("attention.layer_norm_epsilon: f32 required");
  }
  if (ty.has(`${arch}.token_shift_count`) && m.get(`${arch}.token_shift_count`) !== 2) {
    bad.push("token_shift_count must be 2");
  }
  // 3. tensors: name → the ne create_tensor asks for
  const want = new Map<string, number[]>();
  const V = g.tensors.get("token_embd.weight")?.dims[1] ?? 0;
  want.set("token_embd.weight", [C, V]);
  for (const s of ["weight", "bias"]) {
    want.set(`token_embd_norm.${s}`, [C]);
    want.set(`output_norm.${s}`, [C]);
  }
  want.set("output.weight", [C, V]);
  const norms = (b: string) => {
    for (const s of ["weight", "bias"]) {
      for (const n of ["attn_norm", "attn_norm_2", "time_mix_ln"]) want.set(`${b}${n}.${s}`, [C]);
    }
  };
  if (arch === "rwkv7") {
    const dw = u32("attention.decay_lora_rank"), da = u32("attention.iclr_lora_rank");
    const dv = u32("attention.value_residual_mix_lora_rank"), dg = u32("attention.gate_lora_rank");
    for (let i = 0; i < L; i++) {
      const b = `blk.${i}.`;
      norms(b);
      const lora = (n: string, r: number) => {
        want.set(`${b}time_mix_${n}0.weight`, [C]);
        want.set(`${b}time_mix_${n}1.weight`, [C, r]);
        want.set(`${b}time_mix_${n}2.weight`, [r, C]);
      };
      lora("w", dw);
      lora("a", da);
      lora("v", i === 0 ? da : dv);
      want.set(`${b}time_mix_g1.weight`, [C, dg]);
      want.set(`${b}time_mix_g2.weight`, [dg, C]);
      want.set(`${b}time_mix_lerp_fused.weight`, [C, 1, 1, 6]);
      for (const n of ["k_k", "k_a", "r_k"]) want.set(`${b}time_mix_${n}.weight`, [C]);
      for (const n of ["key", "value", "receptance", "output"]) {
        want.set(`${b}time_mix_${n}.weight`, [C, C]);
      }
      want.set(`${b}channel_mix_lerp_k.weight`, [C, 1, 1]);
      want.set(`${b}channel_mix_key.weight`, [C, F]);
      want.set(`${b}channel_mix_value.weight`, [F, C]);
    }
  } else {
    const dm = u32("time_mix_extra_dim"), dd = u32("time_decay_extra_dim");
    for (let i = 0; i < L; i++) {
      const b = `blk.${i}.`;
      norms(b);
      want.set(`${b}time_mix_w1.weight`, [C, dm * 5]);
      want.set(`${b}time_mix_w2.weight`, [dm, C, 5]);
      want.set(`${b}time_mix_lerp_x.weight`, [C, 1, 1]);
      want.set(`${b}time_mix_lerp_fused.weight`, [C, 1, 1, 5]);
      want.set(`${b}time_mix_first.weight`, [N, C / N]);
      want.set(`${b}time_mix_decay.weight`, [C]);
      want.set(`${b}time_mix_decay_w1.weight`, [C, dd]);
      want.set(`${b}time_mix_decay_w2.weight`, [dd, C]);
      for (const n of ["key", "value", "receptance", "gate", "output"]) {
        want.set(`${b}time_mix_${n}.weight`, [C, C]);
      }
      want.set(`${b}channel_mix_lerp_k.weight`, [C, 1, 1]);
      want.set(`${b}channel_mix_lerp_r.weight`, [C, 1, 1]);
      want.set(`${b}channel_mix_key.weight`, [C, F]);
      want.set(`${b}channel_mix_value.weight`, [F, C]);
      want.set(`${b}channel_mix_receptance.weight`, [C, C]);
    }
  }
  const trim = (d: readonly number[]) => {
    const s = [...d];
    while (s.length > 1 && s[s.length - 1] === 1) s.pop();
    return s.join(",");
  };
  for (const [n, ne] of want) {
    const t = g.tensors.get(n);
    if (!t) bad.push(`${n}: missing`);
    else if (trim(t.dims) !== trim(ne)) bad.push(`${n}: ne [${t.dims}], llama.cpp wants [${ne}]`);
  }
  for (const n of g.tensors.keys()) {
    if (!want.has(n)) bad.push(`${n}: not a tensor llama.cpp loads`);
  }
  // 4. vocabulary
  if (m.get("tokenizer.ggml.model") !== "rwkv") bad.push("tokenizer.ggml.model is not rwkv");
  const tokens = m.get("tokenizer.ggml.tokens");
  if (!Array.isArray(tokens) || tokens.length !== V || tokens.some((t) => typeof t !== "string")) {
    bad.push(`tokenizer.ggml.tokens: not ${V} strings`);
  }
  const types = m.get("tokenizer.ggml.token_type");
  if (types !== undefined && (!(types instanceof Int32Array) || types.length !== V)) {
    bad.push("tokenizer.ggml.token_type: not one i32 per token");
  }
  for (const k of ["bos", "eos", "eot"]) {
    const id = m.get(`tokenizer.ggml.${k}_token_id`);
    if (id !== undefined && !(typeof id === "number" && id < V)) bad.push(`${k}_token_id ${id}`);
  }
  return bad;
}
