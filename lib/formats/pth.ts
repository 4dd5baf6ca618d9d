/**
 * PyTorch checkpoints: the zip format of `torch.save` (1.6+) and the legacy format before it,
 * read through a pickle VM with a fixed allow-list of globals, so an untrusted file can never
 * run code. Tensors become byte ranges of their storages, read on demand.
 * @module
 */

import { FormatError, RwkvError } from "../errors.ts";
import type { Checkpoint, DType, TensorInfo } from "./checkpoint.ts";
import { DTYPE_SIZE } from "./checkpoint.ts";
import { RandomAccessFile } from "./_file.ts";
import { PyDict, PyGlobal, unpickle } from "./_pickle.ts";
import { entryDataOffset, readEntry, readZipDirectory, type ZipEntry } from "./_zip.ts";

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
};

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

/** The globals a state dict needs; every other one is refused. */
const ALLOWED = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  "torch._utils._rebuild_parameter_with_state",
  "torch.Size",
  "torch.storage._load_from_bytes",
  "_codecs.encode",
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
  ...Object.keys(TORCH_DTYPES).map((s) => `torch.${s}`),
  "torch.UntypedStorage",
]);

/** Where a storage's bytes are. */
interface StorageRef {
  readonly key: string;
  readonly dtype: DType;
  /** Elements in the storage (as declared by the pickle). */
  readonly numel: number;
  /** Extra element offset for legacy views. */
  readonly viewOffset: number;
}

/** A tensor as the pickle describes it. */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

/** A pth tensor: where its storage is and how to read it. */
interface PthTensor extends TensorInfo {
  readonly ref: TensorRef;
}

function asInts(x: unknown, what: string, file: string): number[] {
  if (!Array.isArray(x) || !x.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new FormatError(file, what, `expected a tuple of non-negative integers`);
  }
  return x as number[];
}

function makeHooks(file: string, storages: Map<string, StorageRef>) {
  return {
    findGlobal(module: string, name: string): unknown {
      const q = `${module}.${name}`;
      return ALLOWED.has(q) ? new PyGlobal(module, name) : undefined;
    },
    call(fn: unknown, args: unknown[]): unknown {
      if (!(fn instanceof PyGlobal)) throw new FormatError(file, "pickle", "call of a non-global");
      switch (fn.qualified) {
        case "collections.OrderedDict": {
          const d = new PyDict();
          if (Array.isArray(args[0])) { for (const kv of args[0]) d.set(kv[0], kv[1]); }
          return d;
        }
        case "torch._utils._rebuild_tensor":
        case "torch._utils._rebuild_tensor_v2": {
          const [storage, offset, size, stride] = args;
          if (!storage || typeof storage !== "object" || !("key" in storage)) {
            throw new FormatError(file, "pickle", "tensor without a storage");
          }
          if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
            throw new FormatError(file, "pickle", "bad storage offset");
          }
          const shape = asInts(size, "tensor size", file);
          const strides = asInts(stride, "tensor stride", file);
          if (shape.length !== strides.length) {
            throw new FormatError(file, "pickle", "size and stride ranks differ");
          }
          return new TensorRef(storage as StorageRef, offset as number, shape, strides);
        }
        case "torch._utils._rebuild_parameter":
        case "torch._utils._rebuild_parameter_with_state":
          return args[0];
        case "torch.Size":
          return Array.isArray(args[0]) ? [...args[0]] : [];
        case "_codecs.encode":
          return typeof args[0] === "string"
            ? Uint8Array.from(args[0] as string, (c) => c.charCodeAt(0) & 255)
            : args[0];
        default:
          throw new FormatError(file, fn.qualified, "this global cannot be called");
      }
    },
    persistentLoad(pid: unknown): unknown {
      // ('storage', storage_type, key, location, numel[, view_metadata])
      if (!Array.isArray(pid) || pid[0] !== "storage" || pid.length < 5) {
        throw new FormatError(file, "pickle", "unknown persistent id");
      }
      const [, type, key, , numel, view] = pid;
      let dtype: DType | undefined;
      if (type instanceof PyGlobal) {
        dtype = STORAGE_DTYPES[type.name] ?? TORCH_DTYPES[type.name];
      }
      if (!dtype) throw new FormatError(file, "pickle", "storage of an unknown type");
      if (typeof key !== "string" && typeof key !== "number") {
        throw new FormatError(file, "pickle", "bad storage key");
      }
      if (!Number.isSafeInteger(numel) || (numel as number) < 0) {
        throw new FormatError(file, `storage ${key}`, "bad element count");
      }
      const k = String(key);
      let ref = storages.get(k);
      if (!ref) {
        ref = { key: k, dtype, numel: numel as number, viewOffset: 0 };
        storages.set(k, ref);
      }
      if (Array.isArray(view) && view.length === 3) {
        // legacy view: (view_key, offset, size) into the root storage
        return { ...ref, viewOffset: Number(view[1]) || 0 } as StorageRef;
      }
      return ref;
    },
  };
}

/** Plain, JSON-able version of a non-tensor value. */
function plain(x: unknown, depth = 0): unknown {
  if (depth > 8) return "…";
  if (x instanceof PyDict) {
    return Object.fromEntries([...x].map(([k, v]) => [String(k), plain(v, depth + 1)]));
  }
  if (Array.isArray(x)) return x.map((e) => plain(e, depth + 1));
  if (typeof x === "bigint") return x.toString();
  if (x instanceof PyGlobal) return x.qualified;
  if (x instanceof Uint8Array) return `<${x.length} bytes>`;
  return x;
}

/** Collects tensors (flattening nested dicts with ".") and non-tensor metadata. */
function collect(root: unknown, file: string) {
  if (!(root instanceof PyDict)) {
    throw new FormatError(file, "pickle", "the checkpoint is not a dict of tensors");
  }
  let dict = root;
  // Unwrap {"model": {...}} / {"state_dict": {...}} / {"module": {...}}.
  for (const k of ["state_dict", "model", "module"]) {
    const inner = dict.get(k);
    const hasTensors = [...dict.values()].some((v) => v instanceof TensorRef);
    if (!hasTensors && inner instanceof PyDict) {
      dict = inner;
      break;
    }
  }
  const tensors = new Map<string, TensorRef>();
  const metadata: Record<string, unknown> = {};
  const walk = (d: PyDict, prefix: string, depth: number) => {
    for (const [k, v] of d) {
      const name = prefix + String(k);
      if (v instanceof TensorRef) tensors.set(name, v);
      else if (
        v instanceof PyDict && depth < 4 && [...v.values()].some((x) => x instanceof TensorRef)
      ) {
        walk(v, name + ".", depth + 1);
      } else metadata[name] = plain(v);
    }
  };
  walk(dict, "", 0);
  for (const [k, v] of root) {
    if (root !== dict && !dict.has(k) && v !== dict) metadata[String(k)] = plain(v);
  }
  return { tensors, metadata };
}

function contiguous(shape: number[], stride: number[]): boolean {
  let expect = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expect) return false;
    expect *= shape[d];
  }
  return true;
}

function buildInfos(
  file: string,
  refs: Map<string, TensorRef>,
  storageBytes: (s: StorageRef) => number,
): Map<string, PthTensor> {
  const out = new Map<string, PthTensor>();
  for (const [name, ref] of refs) {
    const es = DTYPE_SIZE[ref.storage.dtype];
    const numel = ref.shape.reduce((a, b) => a * b, 1);
    // The furthest element the view touches must be inside the storage.
    let last = ref.storage.viewOffset + ref.offset;
    for (let d = 0; d < ref.shape.length; d++) {
      if (ref.shape[d] > 0) last += (ref.shape[d] - 1) * ref.stride[d];
    }
    const have = storageBytes(ref.storage);
    if (numel > 0 && (last + 1) * es > have) {
      throw new FormatError(
        file,
        name,
        `needs ${(last + 1) * es} bytes of storage ${ref.storage.key} but it holds ${have}`,
      );
    }
    out.set(name, {
      name,
      dtype: ref.storage.dtype,
      shape: ref.shape,
      byteLength: numel * es,
      ref,
    });
  }
  return out;
}

/** Gathers a strided view from the bytes of the storage span it touches. */
function gather(src: Uint8Array, base: number, ref: TensorRef, es: number, into: Uint8Array) {
  const shape = ref.shape, stride = ref.stride, rank = shape.length;
  const idx = new Array(rank).fill(0);
  const numel = shape.reduce((a, b) => a * b, 1);
  for (let i = 0; i < numel; i++) {
    let off = 0;
    for (let d = 0; d < rank; d++) off += idx[d] * stride[d];
    const s = (off + base) * es;
    into.set(src.subarray(s, s + es), i * es);
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

/** Reads a tensor given a reader of a storage's byte range. */
async function readTensor(
  t: PthTensor,
  into: Uint8Array | undefined,
  file: string,
  readStorage: (s: StorageRef, byteOffset: number, length: number) => Promise<Uint8Array>,
): Promise<Uint8Array> {
  if (into && into.length !== t.byteLength) {
    throw new FormatError(
      file,
      t.name,
      `buffer of ${into.length} bytes, tensor has ${t.byteLength}`,
    );
  }
  const ref = t.ref, es = DTYPE_SIZE[t.dtype];
  const first = ref.storage.viewOffset + ref.offset;
  if (t.byteLength === 0) return into ?? new Uint8Array(0);
  if (contiguous(ref.shape, ref.stride)) {
    const bytes = await readStorage(ref.storage, first * es, t.byteLength);
    if (into) {
      if (bytes !== into) into.set(bytes);
      return into;
    }
    return bytes;
  }
  let span = 0;
  for (let d = 0; d < ref.shape.length; d++) span += (ref.shape[d] - 1) * ref.stride[d];
  const src = await readStorage(ref.storage, first * es, (span + 1) * es);
  const out = into ?? new Uint8Array(t.byteLength);
  gather(src, 0, ref, es, out);
  return out;
}

function wrap(file: string, e: unknown): never {
  if (e instanceof RwkvError) throw e;
  throw new FormatError(file, undefined, `malformed checkpoint (${(e as Error)?.message ?? e})`);
}

/**
 * Opens a PyTorch checkpoint (zip or legacy). Tensors are listed at once and read on demand.
 * @example
 * ```ts ignore
 * const ck = await openPth("RWKV-4-Pile-169M.pth");
 * console.log(ck.tensors.get("emb.weight")); // { dtype: "BF16", shape: [50277, 768], … }
 * ```
 */
export async function openPth(path: string): Promise<Checkpoint> {
  const file = await RandomAccessFile.open(path);
  try {
    const head = await file.readAt(0, Math.min(4, file.size), "header");
    if (head[0] === 0x50 && head[1] === 0x4b) return await openZip(file);
    return await openLegacy(file);
  } catch (e) {
    file.close();
    wrap(path, e);
  }
}

async function openZip(file: RandomAccessFile): Promise<Checkpoint> {
  const path = file.path;
  const entries = await readZipDirectory(file);
  const pkl = entries.find((e) => e.name === "data.pkl" || e.name.endsWith("/data.pkl"));
  if (!pkl) {
    throw new FormatError(path, "data.pkl", "no data.pkl in the archive: not a torch checkpoint");
  }
  const prefix = pkl.name.slice(0, pkl.name.length - "data.pkl".length);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const storages = new Map<string, StorageRef>();
  const pickle = await readEntry(file, pkl, Math.min(file.size * 64, 1 << 30));
  const { value } = unpickle(pickle, makeHooks(path, storages), path);
  const { tensors: refs, metadata } = collect(value, path);
  const entryOf = (s: StorageRef): ZipEntry => {
    const e = byName.get(`${prefix}data/${s.key}`);
    if (!e) throw new FormatError(path, `${prefix}data/${s.key}`, "storage entry missing");
    return e;
  };
  // The entry must hold the whole storage the pickle declares: a lying size is caught here.
  for (const s of storages.values()) {
    const e = entryOf(s);
    const need = s.numel * DTYPE_SIZE[s.dtype];
    if (e.size < need) {
      throw new FormatError(path, e.name, `entry holds ${e.size} bytes, storage needs ${need}`);
    }
    if (e.method === 0 && e.compressedSize !== e.size) {
      throw new FormatError(path, e.name, "stored entry with differing sizes");
    }
  }
  const tensors = buildInfos(path, refs, (s) => s.numel * DTYPE_SIZE[s.dtype]);
  const dataStart = new Map<string, number>();
  return {
    path,
    format: "pth",
    tensors,
    metadata,
    read(name, into) {
      const t = tensors.get(name);
      if (!t) return Promise.reject(new FormatError(path, name, "no such tensor"));
      return readTensor(t, into, path, async (s, off, len) => {
        const e = entryOf(s);
        if (e.method === 0) {
          let start = dataStart.get(e.name);
          if (start === undefined) {
            start = await entryDataOffset(file, e);
            dataStart.set(e.name, start);
          }
          if (into && len === into.length) return await file.readAt(start + off, into, name);
          return await file.readAt(start + off, len, name);
        }
        const all = await readEntry(file, e, Number.MAX_SAFE_INTEGER);
        return all.subarray(off, off + len);
      }).catch((e) => wrap(path, e));
    },
    close: () => file.close(),
  };
}

/** Legacy (pre-1.6) format: pickles back to back, then each storage's count and bytes. */
async function openLegacy(file: RandomAccessFile): Promise<Checkpoint> {
  const path = file.path;
  // The pickles are small next to the data; read a bounded prefix and grow if needed.
  let prefixLen = Math.min(file.size, 1 << 20);
  let bytes = await file.readAt(0, prefixLen, "pickle");
  const storages = new Map<string, StorageRef>();
  const parse = () => {
    storages.clear();
    const none = {
      findGlobal: () => undefined,
      call: () => undefined,
      persistentLoad: () => undefined,
    };
    const magic = unpickle(bytes, none, path, 0);
    if (magic.value !== 0x1950a86a20f9469cfc6cn && magic.value !== 0x1950a86a20f9469cfc6c) {
      throw new FormatError(path, "magic number", "not a PyTorch legacy checkpoint");
    }
    const proto = unpickle(bytes, none, path, magic.end);
    const sys = unpickle(bytes, { ...none, call: () => null }, path, proto.end);
    const main = unpickle(bytes, makeHooks(path, storages), path, sys.end);
    const keys = unpickle(bytes, none, path, main.end);
    return { main: main.value, keys: keys.value, dataStart: keys.end };
  };
  let parsed;
  for (;;) {
    try {
      parsed = parse();
      break;
    } catch (e) {
      const truncated = e instanceof FormatError && /truncated/.test(e.message);
      if (!truncated || prefixLen >= file.size) throw e;
      prefixLen = Math.min(file.size, prefixLen * 4);
      bytes = await file.readAt(0, prefixLen, "pickle");
    }
  }
  if (!Array.isArray(parsed.keys)) throw new FormatError(path, "storage keys", "not a list");
  // Walk the storages: each is an 8-byte element count followed by its data.
  const offsets = new Map<string, number>();
  const sizes = new Map<string, number>();
  let pos = parsed.dataStart;
  for (const k of parsed.keys as unknown[]) {
    const key = String(k);
    const s = storages.get(key);
    if (!s) throw new FormatError(path, `storage ${key}`, "listed but never used");
    const cnt = await file.readAt(pos, 8, `storage ${key} size`);
    const n = Number(new DataView(cnt.buffer, cnt.byteOffset, 8).getBigUint64(0, true));
    const len = n * DTYPE_SIZE[s.dtype];
    if (!Number.isSafeInteger(len) || pos + 8 + len > file.size) {
      throw new FormatError(
        path,
        `storage ${key}`,
        "data extends past the end of the file (truncated?)",
      );
    }
    offsets.set(key, pos + 8);
    sizes.set(key, len);
    pos += 8 + len;
  }
  const { tensors: refs, metadata } = collect(parsed.main, path);
  for (const s of storages.values()) {
    if (!offsets.has(s.key)) throw new FormatError(path, `storage ${s.key}`, "data missing");
  }
  const tensors = buildInfos(path, refs, (s) => sizes.get(s.key) ?? 0);
  return {
    path,
    format: "pth-legacy",
    tensors,
    metadata,
    read(name, into) {
      const t = tensors.get(name);
      if (!t) return Promise.reject(new FormatError(path, name, "no such tensor"));
      return readTensor(t, into, path, (s, off, len) => {
        const start = offsets.get(s.key)! + off;
        return into && len === into.length
          ? file.readAt(start, into, name)
          : file.readAt(start, len, name);
      }).catch((e) => wrap(path, e));
    },
    close: () => file.close(),
  };
}
