/**
 * What a torch pickle says: the allow-listed globals that rebuild tensors and storages, and
 * the state dict they form (unwrapped and flattened, the rest as plain metadata), all of it
 * charged to the file's {@link PickleBudget}.
 * @module
 */

import { FormatError } from "../errors.ts";
import type { DType, TensorInfo } from "./checkpoint.ts";
import { overBudget } from "./_limits.ts";
import {
  isTuple,
  keyName,
  type PickleBudget,
  type PickleHooks,
  PyDict,
  PyFloat,
  PyGlobal,
} from "./_pickle.ts";

/** `torch.<X>Storage` → element type. `UntypedStorage` is raw bytes. */
const STORAGE_DTYPES: Record<string, DType> = {
  DoubleStorage: "F64",
  FloatStorage: "F32",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  LongStorage: "I64",
  IntStorage: "I32",
  ShortStorage: "I16",
  CharStorage: "I8",
  ByteStorage: "U8",
  BoolStorage: "BOOL",
  UntypedStorage: "U8",
};

/** `torch.<dtype>` globals (values only: they may appear in tensor metadata). */
const TORCH_DTYPES: Record<string, DType> = {
  float64: "F64",
  double: "F64",
  float32: "F32",
  float: "F32",
  float16: "F16",
  half: "F16",
  bfloat16: "BF16",
  int64: "I64",
  long: "I64",
  int32: "I32",
  int: "I32",
  int16: "I16",
  short: "I16",
  int8: "I8",
  uint8: "U8",
  bool: "BOOL",
};

/**
 * The globals a saved state dict needs; every other one is refused by name before the pickle
 * goes any further. None of them is executed: each "call" below is our own TypeScript.
 * `_codecs.encode` is how protocol 2 pickles `bytes` (as `encode(str, "latin1")`).
 */
const ALLOWED: ReadonlySet<string> = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  "torch._utils._rebuild_parameter_with_state",
  "torch._tensor._rebuild_from_type_v2",
  "torch.nn.parameter.Parameter",
  "torch.Tensor",
  "torch.Size",
  "_codecs.encode",
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
  ...Object.keys(TORCH_DTYPES).map((s) => `torch.${s}`),
]);

/** Torch tensors have at most a few dozen dimensions; a bound keeps per-call work constant. */
const MAX_RANK = 64;
/** Where a storage's bytes are: a root storage, or (legacy) an element range of one. */
export class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: DType,
    /** Elements the pickle declares for the root storage. */
    readonly numel: number,
    /** Legacy views: first element of the view inside the root storage. */
    readonly viewOffset = 0,
    /** Legacy views: elements of the view (undefined: the whole root). */
    readonly viewSize?: number,
  ) {}
}

/**
 * The key of a storage in the map `pickleHooks` fills: the pickled key and its type, as torch
 * keys them (a string key `"0"` and an int key `0` are two storages; both name the file
 * `data/0` of a zip, and in a legacy file only string keys are given data).
 */
export function storageId(key: string | number): string {
  return typeof key === "string" ? `str ${key}` : `int ${key}`;
}

/** A tensor as the pickle describes it. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}
}

/** A pth tensor: where its storage is and how to read it. */
export interface PthTensor extends TensorInfo {
  readonly ref: TensorRef;
}

function asDims(x: unknown, what: string, file: string, budget: PickleBudget): number[] {
  if (!isTuple(x) && !Array.isArray(x) || (x as unknown[]).length > MAX_RANK) {
    throw new FormatError(file, "pickle", `${what}: expected a tuple of at most ${MAX_RANK} ints`);
  }
  const dims = x as unknown[];
  budget.charge(dims.length);
  if (!dims.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new FormatError(file, "pickle", `${what}: expected non-negative integers`);
  }
  return dims.slice() as number[];
}

export function pickleHooks(
  file: string,
  storages: Map<string, StorageRef>,
  budget: PickleBudget,
  legacy: boolean,
): PickleHooks {
  const hooks: PickleHooks = {
    findGlobal(module, name) {
      return ALLOWED.has(`${module}.${name}`) ? new PyGlobal(module, name) : undefined;
    },
    call(fn, args) {
      if (!(fn instanceof PyGlobal)) {
        throw new FormatError(file, "pickle", "calls something that is not a global");
      }
      switch (fn.qualified) {
        case "collections.OrderedDict":
          // torch pickles an OrderedDict as OrderedDict() followed by SETITEMS.
          if (args.length > 0) {
            throw new FormatError(file, "pickle", "OrderedDict with arguments");
          }
          return new PyDict();
        case "torch._utils._rebuild_tensor":
        case "torch._utils._rebuild_tensor_v2": {
          // (storage, storage_offset, size, stride, requires_grad?, backward_hooks?, metadata?)
          const [storage, offset, size, stride] = args;
          if (!(storage instanceof StorageRef)) {
            throw new FormatError(file, "pickle", "tensor without a storage");
          }
          if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
            throw new FormatError(file, "pickle", "bad storage offset");
          }
          const shape = asDims(size, "tensor size", file, budget);
          const strides = asDims(stride, "tensor stride", file, budget);
          if (shape.length !== strides.length) {
            throw new FormatError(file, "pickle", "tensor size and stride ranks differ");
          }
          return new TensorRef(storage, offset as number, shape, strides);
        }
        case "torch._utils._rebuild_parameter":
        case "torch._utils._rebuild_parameter_with_state":
          // (data, requires_grad, backward_hooks[, state]): a parameter is its tensor.
          return args[0];
        case "torch._tensor._rebuild_from_type_v2": {
          // (func, new_type, args, state): a tensor subclass; we keep the plain tensor.
          const [inner, , innerArgs] = args;
          if (
            !(inner instanceof PyGlobal) || !inner.name.startsWith("_rebuild_") ||
            inner.name === "_rebuild_from_type_v2" || !isTuple(innerArgs)
          ) {
            throw new FormatError(file, "pickle", "bad _rebuild_from_type_v2 arguments");
          }
          return hooks.call(inner, innerArgs as unknown[]);
        }
        case "torch.Size":
          return asDims(args[0], "torch.Size", file, budget);
        case "_codecs.encode": {
          const [text, encoding] = args;
          if (typeof text !== "string" || (encoding !== "latin1" && encoding !== "latin-1")) {
            throw new FormatError(file, "pickle", "_codecs.encode other than latin1 text");
          }
          budget.charge(text.length);
          const bytes = new Uint8Array(text.length);
          for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
          return bytes;
        }
        default:
          throw new FormatError(file, fn.qualified, "this global cannot be called");
      }
    },
    persistentLoad(pid) {
      // Zip: ('storage', storage_type, key, location, numel); legacy: the same and
      // view_metadata (None or (view_key, offset, size)). torch unpacks exactly that many.
      // (Legacy pids without the view are read as view None: the crafted files of the tests
      // have them.)
      if (
        !isTuple(pid) || pid[0] !== "storage" || pid.length < 5 || pid.length > (legacy ? 6 : 5)
      ) {
        throw new FormatError(
          file,
          "pickle",
          `unknown persistent id (torch expects ('storage', type, key, location, numel${
            legacy ? ", view" : ""
          }))`,
        );
      }
      const [, type, key, , numel, view] = pid;
      const dtype = type instanceof PyGlobal && type.module === "torch"
        ? STORAGE_DTYPES[type.name] ?? TORCH_DTYPES[type.name]
        : undefined;
      if (!dtype) throw new FormatError(file, "pickle", "storage of an unknown type");
      if (typeof key !== "string" && typeof key !== "number") {
        throw new FormatError(file, "pickle", "bad storage key");
      }
      const k = String(key);
      if (!Number.isSafeInteger(numel) || (numel as number) < 0) {
        throw new FormatError(file, `storage ${k}`, "bad element count");
      }
      // torch keys its storages by the key as pickled: 0 and "0" are two storages.
      const id = storageId(key);
      let root = storages.get(id);
      if (!root) {
        root = new StorageRef(k, dtype, numel as number);
        storages.set(id, root);
      } else if (root.dtype !== dtype || root.numel !== numel) {
        throw new FormatError(file, `storage ${k}`, "declared twice with different types or sizes");
      }
      if (view === undefined || view === null) return root;
      // Legacy view: (view_key, offset, size) in elements of the root storage.
      const [, offset, size] = (isTuple(view) && view.length === 3 ? view : []) as number[];
      if (
        !Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || offset < 0 || size < 0 ||
        offset + size > root.numel
      ) {
        throw new FormatError(file, `storage ${k}`, "bad storage view");
      }
      return new StorageRef(k, dtype, root.numel, offset, size);
    },
  };
  return hooks;
}

/** Plain, JSON-able version of a non-tensor value. */
function plain(x: unknown, budget: PickleBudget, depth = 0): unknown {
  budget.charge(1);
  if (depth > 16) return "…";
  if (x instanceof PyDict) {
    return Object.fromEntries(
      [...x].map(([k, v]) => [keyName(k, budget), plain(v, budget, depth + 1)]),
    );
  }
  if (x instanceof PyFloat) return x.value;
  if (Array.isArray(x)) return x.map((e) => plain(e, budget, depth + 1));
  if (x instanceof TensorRef) return `<tensor ${x.storage.dtype} [${x.shape.join(", ")}]>`;
  if (x instanceof StorageRef) return `<storage ${x.dtype} ${x.key}>`;
  if (x instanceof PyGlobal) return x.qualified;
  if (x instanceof Uint8Array) return `<${x.length} bytes>`;
  if (typeof x === "bigint") return x.toString();
  return x;
}

const WRAPPER_KEYS = ["state_dict", "model", "module"];
const MAX_NESTING = 4;

/** True when `d` holds a tensor, directly or in nested dicts. */
function holdsTensors(d: PyDict, budget: PickleBudget, depth = 0): boolean {
  for (const v of d.values()) {
    budget.charge(1);
    if (v instanceof TensorRef) return true;
    if (v instanceof PyDict && depth < MAX_NESTING && holdsTensors(v, budget, depth + 1)) {
      return true;
    }
  }
  return false;
}

/** Collects tensors (unwrapping, flattening nested dicts with ".") and non-tensor metadata. */
export function collect(root: unknown, file: string, budget: PickleBudget) {
  const names = budget.names, maxTensors = budget.limits.tensors;
  if (!(root instanceof PyDict)) {
    throw new FormatError(file, "pickle", "the checkpoint is not a dict of tensors");
  }
  const tensors = new Map<string, TensorRef>();
  const metadata: Record<string, unknown> = {};
  let dict = root;
  for (let level = 0; level < 3; level++) {
    if ([...dict.values()].some((v) => v instanceof TensorRef)) break;
    const key = WRAPPER_KEYS.find((k) => {
      const inner = dict.get(k);
      return inner instanceof PyDict && holdsTensors(inner, budget);
    });
    if (key === undefined) break;
    const inner = dict.get(key) as PyDict;
    for (const [k, v] of dict) {
      if (k === key) continue;
      const name = keyName(k, budget);
      if (!Object.hasOwn(metadata, name)) metadata[name] = plain(v, budget);
    }
    dict = inner;
  }
  const walk = (d: PyDict, prefix: string, depth: number) => {
    for (const [k, v] of d) {
      budget.charge(1);
      const key = keyName(k, budget);
      names.spend(prefix.length + key.length);
      const name = prefix + key;
      if (v instanceof TensorRef) {
        if (tensors.has(name)) throw new FormatError(file, name, "two tensors with this name");
        if (tensors.size >= maxTensors) {
          throw overBudget(file, "tensors", maxTensors, "the number of tensors");
        }
        tensors.set(name, v);
      } else if (v instanceof PyDict && depth < MAX_NESTING && holdsTensors(v, budget)) {
        walk(v, name + ".", depth + 1);
      } else {
        metadata[name] = plain(v, budget);
      }
    }
  };
  walk(dict, "", 0);
  return { tensors, metadata };
}
