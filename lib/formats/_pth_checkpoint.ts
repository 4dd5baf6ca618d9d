/**
 * A torch checkpoint's {@link Checkpoint}: its tensors described from the pickle's references,
 * each read from its storage's bytes (strided views gathered), wherever the format keeps them.
 * @module
 */

import { FormatError, RwkvError } from "../errors.ts";
import type { Checkpoint } from "./checkpoint.ts";
import { DTYPE_SIZE } from "./checkpoint.ts";
import type { RandomAccessFile } from "./file.ts";
import { Counter, type Limits } from "./_limits.ts";
import type { PthTensor, StorageRef, TensorRef } from "./_torch_pickle.ts";

export function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
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
export function describe(
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
export type StorageReader = (
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
export function wrap(file: string, e: unknown): never {
  if (e instanceof RwkvError) throw e;
  throw new FormatError(file, undefined, `malformed checkpoint (${(e as Error)?.message ?? e})`, {
    cause: e,
  });
}

export function checkpoint(
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
