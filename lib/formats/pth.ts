/**
 * PyTorch checkpoints: the zip format of `torch.save` (1.6+) and the legacy format before it,
 * read through a pickle VM with a fixed allow-list of globals, so an untrusted file can never
 * run code. Tensors become byte ranges of their storages, read on demand.
 *
 * What comes out:
 * - a state dict wrapped as `{"state_dict": …}`, `{"model": …}` or `{"module": …}` is
 *   unwrapped (up to three levels); the wrapper's other entries go to `metadata`;
 * - nested dicts that hold tensors are flattened with "." (`{"a": {"b": t}}` → `a.b`), which is
 *   how torch names nested modules anyway;
 * - every non-tensor value becomes a plain JSON-able value in `metadata` (tensors inside it,
 *   e.g. optimizer state, are shown as `"<tensor F32 [2, 3]>"`).
 * @module
 */

import { FormatError, RwkvError } from "../errors.ts";
import type { Checkpoint, DType, OpenCheckpointOptions, TensorInfo } from "./checkpoint.ts";
import { DEFAULT_LIMITS, DTYPE_SIZE } from "./checkpoint.ts";
import { RandomAccessFile } from "./_file.ts";
import { check, Counter, type Limits, overBudget, resolveLimits } from "./_limits.ts";
import {
  isTuple,
  keyName,
  PickleBudget,
  type PickleHooks,
  PyDict,
  PyFloat,
  PyGlobal,
  unpickle,
} from "./_pickle.ts";
import {
  entryDataOffset,
  InflateCache,
  readEntry,
  readZipDirectory,
  type ZipEntry,
} from "./_zip.ts";

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
/** Torch's magic number opening a legacy file, and the protocol version after it. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/** Where a storage's bytes are: a root storage, or (legacy) an element range of one. */
class StorageRef {
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

/** A tensor as the pickle describes it. */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}
}

/** A pth tensor: where its storage is and how to read it. */
interface PthTensor extends TensorInfo {
  readonly ref: TensorRef;
}

/**
 * Work allowed for everything the pickle's values make us do (copies, walks). Shared values
 * (memo references) let a small pickle describe a huge DAG; charging each visit against a
 * budget proportional to the pickle's size (and at most `limits.pickleOps`) keeps hostile
 * input linear. The pickle's own budgets ride along.
 */
class Budget extends Counter {
  constructor(readonly pickle: PickleBudget, inputBytes: number) {
    // A raised limits.pickleOps lifts the proportional bound too.
    const ops = pickle.limits.pickleOps;
    super(
      pickle.file,
      "pickleOps",
      ops > DEFAULT_LIMITS.pickleOps ? ops : Math.min(ops, 16 * inputBytes + 65536),
      "work on the pickle's values (16 steps per pickle byte, at most limits.pickleOps)",
    );
  }
  charge(n: number): void {
    this.spend(n);
  }
}

function asDims(x: unknown, what: string, file: string, budget: Budget): number[] {
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

function pickleHooks(
  file: string,
  storages: Map<string, StorageRef>,
  budget: Budget,
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
      let root = storages.get(k);
      if (!root) {
        root = new StorageRef(k, dtype, numel as number);
        storages.set(k, root);
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
function plain(x: unknown, budget: Budget, depth = 0): unknown {
  budget.charge(1);
  if (depth > 16) return "…";
  if (x instanceof PyDict) {
    return Object.fromEntries(
      [...x].map(([k, v]) => [keyName(k, budget.pickle), plain(v, budget, depth + 1)]),
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
function holdsTensors(d: PyDict, budget: Budget, depth = 0): boolean {
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
function collect(root: unknown, file: string, budget: Budget) {
  const names = budget.pickle.names, maxTensors = budget.pickle.limits.tensors;
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
      const name = keyName(k, budget.pickle);
      if (!Object.hasOwn(metadata, name)) metadata[name] = plain(v, budget);
    }
    dict = inner;
  }
  const walk = (d: PyDict, prefix: string, depth: number) => {
    for (const [k, v] of d) {
      budget.charge(1);
      const key = keyName(k, budget.pickle);
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

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expect = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expect) return false;
    expect *= shape[d];
  }
  return true;
}

/** Elements from a tensor's first element to its last, inclusive (its span in the storage). */
function spanOf(ref: TensorRef): number {
  let span = 1;
  for (let d = 0; d < ref.shape.length; d++) span += (ref.shape[d] - 1) * ref.stride[d];
  return span;
}

/** Checks every tensor lies inside its storage (and view), and describes it. */
function describe(
  file: RandomAccessFile,
  refs: Map<string, TensorRef>,
  storages: Map<string, StorageRef>,
  limits: Limits,
): Map<string, PthTensor> {
  const rootBytes = (s: StorageRef) => s.numel * DTYPE_SIZE[s.dtype];
  // Views with zero or overlapping strides can be larger than their storage; a legit one
  // is a broadcast of a small tensor, a hostile one could ask for terabytes.
  const maxBytes = 16 * file.size + (64 << 20);
  let storageBytes = 0;
  for (const s of storages.values()) storageBytes += rootBytes(s);
  const views = new Counter(
    file.path,
    "viewBytes",
    2 * storageBytes + limits.viewBytes,
    "bytes of all tensors (twice their storages' bytes plus limits.viewBytes)",
  );
  const out = new Map<string, PthTensor>();
  for (const [name, ref] of refs) {
    const s = ref.storage, es = DTYPE_SIZE[s.dtype];
    const numel = ref.shape.reduce((a, b) => a * b, 1);
    const byteLength = numel * es;
    if (numel > 0) {
      const end = ref.offset + spanOf(ref); // elements of the (view) storage it needs
      const viewSize = s.viewSize ?? rootBytes(s) / es;
      if (end > viewSize) {
        throw new FormatError(
          file.path,
          name,
          `shape [${ref.shape}] at offset ${ref.offset} needs ${end} elements of storage ` +
            `${s.key}, which holds ${viewSize}`,
        );
      }
      if (byteLength > maxBytes) {
        throw new FormatError(file.path, name, `a ${byteLength}-byte view is implausibly large`);
      }
      views.spend(byteLength);
    }
    out.set(name, { name, dtype: s.dtype, shape: ref.shape, byteLength, ref });
  }
  return out;
}

/** Gathers a strided view out of `src`, the bytes of the storage span it touches. */
function gather(src: Uint8Array, ref: TensorRef, es: number, into: Uint8Array): void {
  const rank = ref.shape.length;
  // Copy whole rows when the innermost dimension is dense, else element by element.
  const rowLen = rank > 0 && ref.stride[rank - 1] === 1 ? ref.shape[rank - 1] : 1;
  const outer = rowLen > 1 ? rank - 1 : rank;
  const shape = ref.shape.slice(0, outer), stride = ref.stride.slice(0, outer);
  const rowBytes = rowLen * es;
  const rows = shape.reduce((a, b) => a * b, 1);
  const idx = new Array<number>(outer).fill(0);
  let off = 0; // element offset of idx in the span, kept incrementally
  for (let i = 0; i < rows; i++) {
    const s = off * es, o = i * rowBytes;
    if (rowBytes === es) { for (let b = 0; b < es; b++) into[o + b] = src[s + b]; }
    else into.set(src.subarray(s, s + rowBytes), o);
    for (let d = outer - 1; d >= 0; d--) {
      off += stride[d];
      if (++idx[d] < shape[d]) break;
      off -= stride[d] * shape[d];
      idx[d] = 0;
    }
  }
}

/** Reads `length` bytes at `byteOffset` of a root storage, into `into` when given. */
type StorageReader = (
  s: StorageRef,
  byteOffset: number,
  length: number,
  into?: Uint8Array,
) => Promise<Uint8Array>;

/**
 * Reads a tensor: a contiguous one is one byte range of its storage (straight into `into`);
 * any other is gathered from the span it touches.
 */
async function readTensor(
  t: PthTensor,
  into: Uint8Array | undefined,
  file: string,
  readStorage: StorageReader,
): Promise<Uint8Array> {
  if (into && into.length !== t.byteLength) {
    throw new FormatError(
      file,
      t.name,
      `buffer of ${into.length} bytes, tensor has ${t.byteLength}`,
    );
  }
  if (t.byteLength === 0) return into ?? new Uint8Array(0);
  const ref = t.ref, es = DTYPE_SIZE[t.dtype];
  const first = (ref.storage.viewOffset + ref.offset) * es;
  if (isContiguous(ref.shape, ref.stride)) {
    return await readStorage(ref.storage, first, t.byteLength, into);
  }
  const src = await readStorage(ref.storage, first, spanOf(ref) * es);
  const out = into ?? new Uint8Array(t.byteLength);
  gather(src, ref, es, out);
  return out;
}

/** Lets typed errors through; anything else becomes a FormatError naming the file. */
function wrap(file: string, e: unknown): never {
  if (e instanceof RwkvError) throw e;
  throw new FormatError(file, undefined, `malformed checkpoint (${(e as Error)?.message ?? e})`, {
    cause: e,
  });
}

function checkpoint(
  file: RandomAccessFile,
  format: "pth" | "pth-legacy",
  tensors: Map<string, PthTensor>,
  metadata: Record<string, unknown>,
  readStorage: StorageReader,
  ranged: (s: StorageRef) => boolean,
  onClose: () => void = () => {},
): Checkpoint {
  const path = file.path;
  // readRange of a tensor that cannot be read in parts keeps it here between calls.
  let whole: { name: string; bytes: Uint8Array } | undefined;
  return {
    path,
    format,
    tensors,
    metadata,
    async read(name, into) {
      try {
        const t = tensors.get(name);
        if (!t) throw new FormatError(path, name, "no such tensor");
        return await readTensor(t, into, path, readStorage);
      } catch (e) {
        wrap(path, e);
      }
    },
    async readRange(name, offset, into) {
      try {
        const t = tensors.get(name);
        if (!t) throw new FormatError(path, name, "no such tensor");
        if (offset < 0 || offset + into.length > t.byteLength) {
          throw new FormatError(
            path,
            name,
            `range ${offset}+${into.length} outside the tensor's ${t.byteLength} bytes`,
          );
        }
        const ref = t.ref, es = DTYPE_SIZE[t.dtype];
        if (!isContiguous(ref.shape, ref.stride) || !ranged(ref.storage)) {
          // A strided view or a compressed entry: read it whole once, hand out the parts.
          if (whole?.name !== name) {
            whole = undefined;
            whole = { name, bytes: await readTensor(t, undefined, path, readStorage) };
          }
          into.set(whole.bytes.subarray(offset, offset + into.length));
          return into;
        }
        whole = undefined;
        const first = (ref.storage.viewOffset + ref.offset) * es;
        return await readStorage(ref.storage, first + offset, into.length, into);
      } catch (e) {
        wrap(path, e);
      }
    },
    close: () => {
      whole = undefined;
      onClose();
      file.close();
    },
  };
}

/**
 * Opens a PyTorch checkpoint, zip (`format: "pth"`) or legacy pre-1.6 (`"pth-legacy"`).
 * Tensors are listed at once and read on demand; only the bytes a tensor needs are read.
 * Every problem with the file is a {@link FormatError} naming the file and the field, entry
 * or tensor; a pickle that asks for anything but tensor-building globals is an
 * `UnsafePickleError`, raised before anything else happens. Every budget (see
 * `CheckpointLimits`) is counted as the work happens; `options.limits` raises one.
 * @example
 * ```ts ignore
 * const ck = await openPth("RWKV-4-Pile-169M.pth");
 * console.log(ck.tensors.get("emb.weight")); // { dtype: "BF16", shape: [50277, 768], … }
 * const bytes = await ck.read("emb.weight");
 * ck.close();
 * ```
 */
export async function openPth(
  path: string,
  options: OpenCheckpointOptions = {},
): Promise<Checkpoint> {
  const limits = resolveLimits(options.limits);
  let file: RandomAccessFile | undefined;
  try {
    file = await RandomAccessFile.open(path);
    const head = await file.readAt(0, Math.min(4, file.size), "header");
    if (head[0] === 0x50 && head[1] === 0x4b) return await openZip(file, limits);
    if (head[0] === 0x80) return await openLegacy(file, limits);
    throw new FormatError(path, "header", "neither a torch zip nor a legacy torch pickle");
  } catch (e) {
    file?.close();
    wrap(path, e);
  }
}

async function openZip(file: RandomAccessFile, limits: Limits): Promise<Checkpoint> {
  const path = file.path;
  const entries = await readZipDirectory(file, limits);
  const byName = new Map<string, ZipEntry>();
  for (const e of entries) {
    // torch's reader would take the last of two same-named entries; no writer makes them.
    if (byName.has(e.name)) throw new FormatError(path, e.name, "two zip entries with this name");
    byName.set(e.name, e);
  }
  // torch reads records under the folder of the archive's first entry: data.pkl must be there,
  // once. (A data.pkl anywhere else would be read by no torch version, so none is read here.)
  const pkls = entries.filter((e) => /^([^/]+\/)?data\.pkl$/.test(e.name));
  if (pkls.length === 0) {
    throw new FormatError(path, "data.pkl", "no data.pkl in the archive: not a torch checkpoint");
  }
  const first = entries[0].name, slash = first.indexOf("/");
  if (slash < 0 || pkls.length === 1 && pkls[0].name !== `${first.slice(0, slash)}/data.pkl`) {
    throw new FormatError(
      path,
      pkls[0].name,
      slash < 0
        ? `the first entry (${first}) is not in a folder: torch reads no such archive`
        : `not in the folder of the first entry (${first}), where torch looks for it`,
    );
  }
  if (pkls.length > 1) {
    throw new FormatError(
      path,
      "data.pkl",
      `${pkls.length} data.pkl entries (${pkls.map((e) => e.name).join(", ")}): which one ` +
        "torch reads depends on its version, so none is read",
    );
  }
  const pkl = pkls[0];
  const prefix = pkl.name.slice(0, pkl.name.length - "data.pkl".length);
  // torch ≥ 2.1 records the byte order of the storages; we read little-endian only.
  const order = byName.get(`${prefix}byteorder`);
  if (order) {
    const text = new TextDecoder().decode(await readEntry(file, order, 64)).trim();
    if (text !== "little") {
      throw new FormatError(path, order.name, `storages are ${text}-endian; only little is read`);
    }
  }
  check(path, limits, "pickleBytes", pkl.size, `data.pkl of ${pkl.size} bytes`);
  const inflated = new Counter(
    path,
    "inflatedBytes",
    limits.inflatedBytes,
    "bytes inflated from deflated entries",
  );
  if (pkl.method === 8) inflated.spend(pkl.size);
  const pickle = await readEntry(file, pkl, limits.pickleBytes, true);
  const storages = new Map<string, StorageRef>();
  const budget = new Budget(new PickleBudget(path, limits), pickle.length);
  const { value } = unpickle(
    pickle,
    pickleHooks(path, storages, budget, false),
    path,
    0,
    budget.pickle,
  );
  const { tensors: refs, metadata } = collect(value, path, budget);
  // Each storage's entry must hold exactly the bytes the pickle declares: a zip entry whose
  // size lies is caught here, before any read.
  const entryOf = new Map<string, ZipEntry>();
  let deflated = 0;
  for (const s of storages.values()) {
    const name = `${prefix}data/${s.key}`;
    const e = byName.get(name);
    if (!e) throw new FormatError(path, name, "storage entry missing from the archive");
    const need = s.numel * DTYPE_SIZE[s.dtype];
    if (e.size !== need) {
      throw new FormatError(path, e.name, `entry holds ${e.size} bytes, storage needs ${need}`);
    }
    if (e.method !== 0 && e.method !== 8) {
      throw new FormatError(path, e.name, `unsupported zip compression method ${e.method}`);
    }
    if (e.method === 8) deflated += e.size;
    entryOf.set(s.key, e);
  }
  // Deflated storages are inflated once each, on first read, into memory: refuse up front
  // when they cannot all fit the budget.
  if (deflated > limits.inflatedBytes - (pkl.method === 8 ? pkl.size : 0)) {
    throw overBudget(
      path,
      "inflatedBytes",
      limits.inflatedBytes,
      `deflated storages of ${deflated} bytes`,
    );
  }
  const tensors = describe(file, refs, storages, limits);
  const dataStart = new Map<string, number>();
  const cache = new InflateCache(file, inflated);
  return checkpoint(
    file,
    "pth",
    tensors,
    metadata,
    async (s, off, len, into) => {
      const e = entryOf.get(s.key)!;
      if (e.method === 8) return await cache.read(e, off, len, into);
      let start = dataStart.get(e.name);
      if (start === undefined) {
        start = await entryDataOffset(file, e);
        dataStart.set(e.name, start);
      }
      return await file.readAt(start + off, into ?? len, e.name);
    },
    (s) => entryOf.get(s.key)!.method === 0,
    () => cache.clear(),
  );
}

/**
 * Legacy (pre-1.6) format: pickles back to back (magic number, protocol version, sys info,
 * the object, the storage keys), then for each key an 8-byte element count and the raw data.
 */
async function openLegacy(file: RandomAccessFile, limits: Limits): Promise<Checkpoint> {
  const path = file.path;
  const storages = new Map<string, StorageRef>();
  const noGlobals: PickleHooks = {
    findGlobal: () => undefined,
    call: () => undefined,
    persistentLoad: () => {
      throw new FormatError(path, "pickle", "persistent id outside the main pickle");
    },
  };
  const parse = (bytes: Uint8Array) => {
    storages.clear();
    const pb = new PickleBudget(path, limits);
    const magic = unpickle(bytes, noGlobals, path, 0, pb);
    if (magic.value !== LEGACY_MAGIC) {
      throw new FormatError(path, "magic number", "not a PyTorch checkpoint");
    }
    const proto = unpickle(bytes, noGlobals, path, magic.end, pb);
    if (proto.value !== LEGACY_PROTOCOL) {
      throw new FormatError(path, "protocol version", `${proto.value}, expected 1001`);
    }
    const sys = unpickle(bytes, noGlobals, path, proto.end, pb);
    if (!(sys.value instanceof PyDict) || sys.value.get("little_endian") !== true) {
      throw new FormatError(path, "sys info", "not saved on a little-endian machine");
    }
    const budget = new Budget(pb, bytes.length);
    const main = unpickle(bytes, pickleHooks(path, storages, budget, true), path, sys.end, pb);
    const keys = unpickle(bytes, noGlobals, path, main.end, pb);
    return { main: main.value, keys: keys.value, dataStart: keys.end, budget };
  };
  // Read a prefix and grow it only while the pickles run past it.
  let prefixLen = Math.min(file.size, limits.pickleBytes, 1 << 20);
  let parsed: ReturnType<typeof parse>;
  for (;;) {
    try {
      parsed = parse(await file.readAt(0, prefixLen, "pickle"));
      break;
    } catch (e) {
      const truncated = e instanceof FormatError && /truncated/.test(e.message);
      if (!truncated) throw e;
      if (prefixLen >= file.size) throw e;
      if (prefixLen >= limits.pickleBytes) {
        throw overBudget(path, "pickleBytes", limits.pickleBytes, "the legacy format's pickles");
      }
      prefixLen = Math.min(file.size, limits.pickleBytes, prefixLen * 4);
    }
  }
  if (!Array.isArray(parsed.keys) || isTuple(parsed.keys)) {
    throw new FormatError(path, "storage keys", "not a list");
  }
  // Walk the storages in the listed order: each is its element count, then its data.
  const offsets = new Map<string, number>();
  let pos = parsed.dataStart;
  for (const k of parsed.keys as unknown[]) {
    if (typeof k !== "string") throw new FormatError(path, "storage keys", "a key is not a string");
    const key = k;
    const s = storages.get(key);
    if (!s) throw new FormatError(path, `storage ${key}`, "listed but never used");
    if (offsets.has(key)) throw new FormatError(path, `storage ${key}`, "listed twice");
    const head = await file.readAt(pos, 8, `storage ${key} size`);
    const count = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
    if (count !== BigInt(s.numel)) {
      throw new FormatError(
        path,
        `storage ${key}`,
        `file holds ${count} elements, pickle declares ${s.numel}`,
      );
    }
    const len = s.numel * DTYPE_SIZE[s.dtype];
    if (pos + 8 + len > file.size) {
      throw new FormatError(
        path,
        `storage ${key}`,
        "data extends past the end of the file (truncated?)",
      );
    }
    offsets.set(key, pos + 8);
    pos += 8 + len;
  }
  for (const s of storages.values()) {
    if (!offsets.has(s.key)) throw new FormatError(path, `storage ${s.key}`, "data missing");
  }
  const { tensors: refs, metadata } = collect(parsed.main, path, parsed.budget);
  const tensors = describe(file, refs, storages, limits);
  return checkpoint(file, "pth-legacy", tensors, metadata, (s, off, len, into) => {
    const start = offsets.get(s.key)! + off;
    return file.readAt(start, into ?? len, s.key);
  }, () => true);
}
