/**
 * Constrained decoding: make a model's output match a JSON Schema, llama.cpp's GBNF grammars
 * or any JSON object, over every tokenizer of the toolkit (World, Hugging Face, bytes).
 *
 * @example
 * ```ts
 * import { generate, loadModel, loadTokenizer } from "@rwkv/deno";
 * import { compileJsonSchema } from "@rwkv/deno/grammar";
 *
 * const model = await loadModel("RWKV-x070-World-0.1B.pth");
 * const tokenizer = await loadTokenizer("rwkv_vocab_v20230424.txt");
 * const schema = { type: "object", properties: { name: { type: "string" } }, required: ["name"] };
 * let text = "";
 * for await (const piece of generate(model, tokenizer, "User: a name\n\nAssistant:", { jsonSchema: schema })) {
 *   text += piece;
 * }
 * console.log(JSON.parse(text).name, compileJsonSchema(schema).gbnf);
 * ```
 * @module
 */

export * from "./lib/grammar/mod.ts";
export { RwkvError } from "./lib/errors.ts";
