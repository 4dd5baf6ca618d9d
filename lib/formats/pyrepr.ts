/**
 * Python's `repr()` of `bytes`: how a bytes dict key of a pickle prints (torch keeps such keys
 * in a state dict), and how llama.cpp's converter writes RWKV vocabulary tokens.
 * @module
 */

/** Python's quote for the repr of `b`: `'`, or `"` when `b` holds `'` and no `"`. */
function bytesQuote(b: Uint8Array): number {
  return b.includes(0x27) && !b.includes(0x22) ? 0x22 : 0x27;
}

/**
 * The length of {@link bytesRepr}(b), without building it.
 * @example
 * ```ts
 * bytesReprLength(Uint8Array.of(0)); // 7: b'\x00'
 * ```
 */
export function bytesReprLength(b: Uint8Array): number {
  const q = bytesQuote(b);
  let n = 3;
  for (const c of b) {
    n += c === 0x5c || c === q || c === 9 || c === 10 || c === 13
      ? 2
      : c < 0x20 || c >= 0x7f
      ? 4
      : 1;
  }
  return n;
}

/**
 * Python's `repr()` of a `bytes` value (what `str()` of a bytes dict key gives, and so the name
 * torch's state dict key prints as): `b'…'` with `\\`, the quote, `\t`, `\n`, `\r` escaped,
 * other bytes outside printable ASCII as `\xNN`.
 * @example
 * ```ts
 * bytesRepr(Uint8Array.of(0x27, 0x0a)); // b"'\n"
 * ```
 */
export function bytesRepr(b: Uint8Array): string {
  const q = bytesQuote(b);
  const parts: string[] = ["b", String.fromCharCode(q)];
  let run = "";
  for (const c of b) {
    let e: string;
    if (c === 0x5c) e = "\\\\";
    else if (c === q) e = "\\" + String.fromCharCode(c);
    else if (c === 9) e = "\\t";
    else if (c === 10) e = "\\n";
    else if (c === 13) e = "\\r";
    else if (c < 0x20 || c >= 0x7f) e = "\\x" + c.toString(16).padStart(2, "0");
    else e = String.fromCharCode(c);
    run += e;
    if (run.length > 4096) (parts.push(run), run = "");
  }
  parts.push(run, String.fromCharCode(q));
  return parts.join("");
}
