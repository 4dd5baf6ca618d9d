import { ModelError } from "../lib/errors.ts";
import { openSafetensors } from "../lib/formats/safetensors.ts";
import { type TensorToWrite, writeSafetensors } from "../lib/formats/safetensors_write.ts";
import { loadModel } from "../lib/load.ts";
import type { ModelSpec } from "../lib/spec/spec.ts";
import { State } from "../lib/model/state.ts";
import { applyTimeState, loadTimeStateFile, timeStateName } from "../lib/model/time_state.ts";
import { assert, assertEquals, assertThrows } from "./_assert.ts";
import { fixture, tempDir } from "../testing/fixtures.ts";
import { randomFloats } from "../testing/random.ts";

const MODEL = fixture("tiny-rwkv-7v0.safetensors");
const PROMPT = [34, 105, 110];

function f32(name: string, shape: number[], data: Float32Array): TensorToWrite {
  return { name, dtype: "F32", shape, data: () => new Uint8Array(data.buffer) };
}

Deno.test({
  name: "time_state: a side file and an embedded time_state set the initial state exactly",
  ignore: !MODEL,
  fn: async () => {
    const { dir, cleanup } = await tempDir();
    const model = await loadModel(MODEL!, { backend: "reference" });
    try {
      const { layers, heads: H, headSize: N } = model.spec;
      const ts = Array.from(
        { length: layers },
        (_, i) => randomFloats(H * N * N, 100 + i, -0.25, 0.25),
      );
      const side = `${dir}/state.safetensors`;
      await writeSafetensors(side, ts.map((t, i) => f32(timeStateName(i), [H, N, N], t)));

      // by hand: the RWKV-7 wkv part of each layer is the tensor as is, the rest zeros
      const byHand = model.createState();
      for (let i = 0; i < layers; i++) byHand.tensors[i * 3 + 1].set(ts[i]);
      const expected = await model.forward(PROMPT, byHand);

      const fromFile = await loadTimeStateFile(model, side);
      assertEquals(
        fromFile.data,
        (() => {
          const s = model.createState();
          for (let i = 0; i < layers; i++) s.tensors[i * 3 + 1].set(ts[i]);
          return s.data;
        })(),
      );
      model.initialState = fromFile;
      const got = await model.forward(PROMPT, model.createState());
      assertEquals(got, expected, "first logits equal the hand-set state's exactly");
      model.initialState = undefined;
      const zero = await model.forward(PROMPT, model.createState());
      assert(zero.some((x, i) => x !== expected[i]), "the tuned state changes the logits");

      // a checkpoint carrying its own time_state: loadModel makes it the initial state
      const ck = await openSafetensors(MODEL!);
      const tuned = `${dir}/tuned.safetensors`;
      try {
        await writeSafetensors(tuned, [
          ...[...ck.tensors.values()].map((t): TensorToWrite => ({
            name: t.name,
            dtype: t.dtype,
            shape: t.shape,
            data: () => ck.read(t.name),
          })),
          ...ts.map((t, i) => f32(timeStateName(i), [H, N, N], t)),
        ]);
      } finally {
        ck.close();
      }
      const tunedModel = await loadModel(tuned, { backend: "reference" });
      try {
        assert(tunedModel.initialState, "initial state set from the checkpoint");
        assertEquals(await tunedModel.forward(PROMPT, tunedModel.createState()), expected);
      } finally {
        await tunedModel.dispose();
      }

      // a file missing a layer is refused by name
      const partial = `${dir}/partial.safetensors`;
      await writeSafetensors(partial, [f32(timeStateName(0), [H, N, N], ts[0])]);
      let err: unknown;
      await loadTimeStateFile(model, partial).catch((e) => err = e);
      assert(err instanceof ModelError && err.message.includes(timeStateName(1)), String(err));
    } finally {
      await model.dispose();
      await cleanup();
    }
  },
});

Deno.test("time_state: RWKV-5/6 tensors are transposed (1, 2) as the official package does", () => {
  const spec: ModelSpec = {
    version: "6",
    layers: 1,
    embd: 4,
    attDim: 4,
    ffnDim: 8,
    vocab: 10,
    heads: 2,
    headSize: 2,
  };
  // (H=2, N=2, N=2): [h][value][key] as RWKV-PEFT trains it
  const ts = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const s = applyTimeState(new State(spec), { [timeStateName(0)]: ts });
  assertEquals(Array.from(s.tensors[1]), [1, 3, 2, 4, 5, 7, 6, 8]);
  assert(s.tensors[0].every((x) => x === 0) && s.tensors[2].every((x) => x === 0));
  assertThrows(
    () => applyTimeState(new State(spec), { [timeStateName(0)]: new Float32Array(3) }),
    ModelError,
    "values",
  );
  assertThrows(
    () => applyTimeState(new State({ ...spec, version: "4", heads: 1, headSize: 1 }), {}),
    ModelError,
    "RWKV-4",
  );
});
