;; The matrix and recurrence kernels of the RWKV engine, WebAssembly SIMD (with the relaxed-SIMD
;; fused multiply-add and int8 dot product) over the model's shared memory. All pointers are
;; byte offsets.
;;
;; matmul_<dtype>(w, s, x, y, rows, cols, T, r0, r1): y[t·rows + r] = W[r,:]·x[t,:] for
;; r0 ≤ r < r1 and t < T, W row-major (rows × cols) stored as <dtype>, s its block scales
;; (q8/q4). For q8/q4, x is not f32 but the output of `quantize` for those T × cols activations.
;; These are the hot functions: nearly all of a forward pass runs in them.
;;
;; Built by build.ts (wabt, from npm) into kernels.wasm, committed beside this file. Functions
;; marked `;; @inline` are expanded at their call sites by the build (_inline.ts): V8 does not
;; inline wasm calls reliably, and a call in an inner loop costs up to half the speed.
(module
  (import "env" "memory" (memory 1 65536 shared))

  (global $nib v128 (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15))

  ;; horizontal sum of an f32x4
  ;; @inline
  (func $hsum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; ---- one weight as f32 (the loops' tails); f16 also 4 at a time ----
  ;; @inline
  (func $w1_f32 (param $p i32) (result f32) (f32.load (local.get $p)))
  ;; a bf16 is the top half of an f32
  ;; @inline
  (func $w1_bf16 (param $p i32) (result f32)
    (f32.reinterpret_i32 (i32.shl (i32.load16_u (local.get $p)) (i32.const 16))))
  ;; f16 → f32 exactly: move exponent and mantissa into place and rescale by 2^112 (which also
  ;; normalises subnormals); infinities and NaNs get the all-ones exponent; then the sign.
  ;; @inline
  (func $w4_f16 (param $p i32) (result v128)
    (local $h v128) (local $o v128)
    (local.set $h (v128.load16x4_u (local.get $p)))
    (local.set $o (i32x4.shl (v128.and (local.get $h) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) (i32.const 13)))
    (v128.or
      (v128.bitselect
        (v128.or (local.get $o) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
        (f32x4.mul (local.get $o) (v128.const f32x4 0x1p+112 0x1p+112 0x1p+112 0x1p+112))
        (i32x4.ge_u (local.get $o) (v128.const i32x4 0x0f800000 0x0f800000 0x0f800000 0x0f800000)))
      (i32x4.shl (v128.and (local.get $h) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16))))
  ;; f16 → f32 eight at a time in the kernels' loops, from the halves h (one 16-byte load):
  ;; the f32 bits sign<<31 | (exponent, mantissa)<<13 are the high half (h >>s 3) & 0x8fff and
  ;; the low half h << 13, paired by one shuffle; times 2^112 moves the exponent bias from 15
  ;; to 127 (exact, subnormals included). No infinities or NaNs: the loader refuses f16
  ;; matrices holding them (weights.ts), and $w4_f16 above stays the exact reference.
  ;; @inline
  (func $f16_first4 (param $h v128) (result v128)
    (f32x4.mul
      (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23
        (i16x8.shl (local.get $h) (i32.const 13))
        (v128.and (i16x8.shr_s (local.get $h) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
      (v128.const f32x4 0x1p+112 0x1p+112 0x1p+112 0x1p+112)))
  ;; @inline
  (func $f16_last4 (param $h v128) (result v128)
    (f32x4.mul
      (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31
        (i16x8.shl (local.get $h) (i32.const 13))
        (v128.and (i16x8.shr_s (local.get $h) (i32.const 3)) (v128.const i16x8 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff 0x8fff)))
      (v128.const f32x4 0x1p+112 0x1p+112 0x1p+112 0x1p+112)))
  ;; @inline
  (func $w1_f16 (param $p i32) (result f32)
    (f32x4.extract_lane 0 (call $w4_f16 (local.get $p))))

  ;; ---- f32 weights: y = W·x for rows [r0, r1) and T tokens (the hot function for f32) ----
  ;; Tokens go four at a time: each 8 weights are loaded and widened once and used for four
  ;; tokens (prompt mode is compute bound, so fused multiply-adds); a lone token takes the
  ;; decode path (memory bound): 16 weights per step in four accumulators.
  (func (export "matmul_f32") (param $w i32) (param $s i32) (param $x i32) (param $y i32)
        (param $rows i32) (param $cols i32) (param $T i32) (param $r0 i32) (param $r1 i32)
    (local $r i32) (local $t i32) (local $i i32) (local $wr i32) (local $p i32) (local $io i32)
    (local $x0 i32) (local $x1 i32) (local $x2 i32) (local $x3 i32) (local $cb i32)
    (local $n16 i32) (local $n8 i32) (local $T4 i32) (local $yo i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    (local $v0 v128) (local $v1 v128)
    (local.set $n16 (i32.and (local.get $cols) (i32.const -16)))
    (local.set $n8 (i32.and (local.get $cols) (i32.const -8)))
    (local.set $T4 (i32.and (local.get $T) (i32.const -4)))
    (local.set $cb (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $r (local.get $r0))
    (block $rows_done (loop $rows_loop
      (br_if $rows_done (i32.ge_u (local.get $r) (local.get $r1)))
      (local.set $wr (i32.add (local.get $w) (i32.shl (i32.mul (local.get $r) (local.get $cols)) (i32.const 2))))
      (local.set $t (i32.const 0))
      ;; four tokens at a time
      (block $g_done (loop $g_loop
        (br_if $g_done (i32.ge_u (local.get $t) (local.get $T4)))
        (local.set $x0 (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $cb))))
        (local.set $x1 (i32.add (local.get $x0) (local.get $cb)))
        (local.set $x2 (i32.add (local.get $x1) (local.get $cb)))
        (local.set $x3 (i32.add (local.get $x2) (local.get $cb)))
        (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0)) (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $a4 (v128.const i32x4 0 0 0 0)) (local.set $a5 (v128.const i32x4 0 0 0 0))
        (local.set $a6 (v128.const i32x4 0 0 0 0)) (local.set $a7 (v128.const i32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $i_done (loop $i_loop
          (br_if $i_done (i32.ge_u (local.get $i) (local.get $n8)))
          (local.set $p (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 2))))
          (local.set $v0 (v128.load offset=0 (local.get $p))) (local.set $v1 (v128.load offset=16 (local.get $p)))
          (local.set $io (i32.shl (local.get $i) (i32.const 2)))
          (local.set $a0 (f32x4.relaxed_madd (local.get $v0) (v128.load (i32.add (local.get $x0) (local.get $io))) (local.get $a0)))
          (local.set $a1 (f32x4.relaxed_madd (local.get $v1) (v128.load offset=16 (i32.add (local.get $x0) (local.get $io))) (local.get $a1)))
          (local.set $a2 (f32x4.relaxed_madd (local.get $v0) (v128.load (i32.add (local.get $x1) (local.get $io))) (local.get $a2)))
          (local.set $a3 (f32x4.relaxed_madd (local.get $v1) (v128.load offset=16 (i32.add (local.get $x1) (local.get $io))) (local.get $a3)))
          (local.set $a4 (f32x4.relaxed_madd (local.get $v0) (v128.load (i32.add (local.get $x2) (local.get $io))) (local.get $a4)))
          (local.set $a5 (f32x4.relaxed_madd (local.get $v1) (v128.load offset=16 (i32.add (local.get $x2) (local.get $io))) (local.get $a5)))
          (local.set $a6 (f32x4.relaxed_madd (local.get $v0) (v128.load (i32.add (local.get $x3) (local.get $io))) (local.get $a6)))
          (local.set $a7 (f32x4.relaxed_madd (local.get $v1) (v128.load offset=16 (i32.add (local.get $x3) (local.get $io))) (local.get $a7)))
          (local.set $i (i32.add (local.get $i) (i32.const 8)))
          (br $i_loop)))
        (local.set $yo (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $rows)) (local.get $r)) (i32.const 2))))
        (f32.store (local.get $yo) (f32.add (call $hsum (f32x4.add (local.get $a0) (local.get $a1)))
          (call $tail_f32 (local.get $wr) (local.get $x0) (local.get $n8) (local.get $cols))))
        (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
        (f32.store (local.get $yo) (f32.add (call $hsum (f32x4.add (local.get $a2) (local.get $a3)))
          (call $tail_f32 (local.get $wr) (local.get $x1) (local.get $n8) (local.get $cols))))
        (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
        (f32.store (local.get $yo) (f32.add (call $hsum (f32x4.add (local.get $a4) (local.get $a5)))
          (call $tail_f32 (local.get $wr) (local.get $x2) (local.get $n8) (local.get $cols))))
        (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
        (f32.store (local.get $yo) (f32.add (call $hsum (f32x4.add (local.get $a6) (local.get $a7)))
          (call $tail_f32 (local.get $wr) (local.get $x3) (local.get $n8) (local.get $cols))))
        (local.set $t (i32.add (local.get $t) (i32.const 4)))
        (br $g_loop)))
      ;; the remaining tokens one at a time (decode: T = 1)
      (block $t_done (loop $t_loop
        (br_if $t_done (i32.ge_u (local.get $t) (local.get $T)))
        (local.set $x0 (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $cb))))
        (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0)) (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $j_done (loop $j_loop
          (br_if $j_done (i32.ge_u (local.get $i) (local.get $n16)))
          (local.set $p (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 2))))
          (local.set $io (i32.add (local.get $x0) (i32.shl (local.get $i) (i32.const 2))))
          (local.set $v0 (v128.load offset=0 (local.get $p))) (local.set $v1 (v128.load offset=16 (local.get $p)))
          (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $v0) (v128.load offset=0 (local.get $io)))))
          (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $v1) (v128.load offset=16 (local.get $io)))))
          (local.set $p (i32.add (local.get $p) (i32.const 32)))
          (local.set $v0 (v128.load offset=0 (local.get $p))) (local.set $v1 (v128.load offset=16 (local.get $p)))
          (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $v0) (v128.load offset=32 (local.get $io)))))
          (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $v1) (v128.load offset=48 (local.get $io)))))
          (local.set $i (i32.add (local.get $i) (i32.const 16)))
          (br $j_loop)))
        (f32.store (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $rows)) (local.get $r)) (i32.const 2)))
          (f32.add (call $hsum (f32x4.add (f32x4.add (local.get $a0) (local.get $a1)) (f32x4.add (local.get $a2) (local.get $a3))))
            (call $tail_f32 (local.get $wr) (local.get $x0) (local.get $n16) (local.get $cols))))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $t_loop)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rows_loop))))

  ;; Σ_{i0 ≤ i < cols} W[i]·x[i] for one row of f32 weights (the tails of the loops above)
  (func $tail_f32 (param $wr i32) (param $xt i32) (param $i i32) (param $cols i32) (result f32)
    (local $s f32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $cols)))
      (local.set $s (f32.add (local.get $s) (f32.mul
        (call $w1_f32 (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 2))))
        (f32.load (i32.add (local.get $xt) (i32.shl (local.get $i) (i32.const 2)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.get $s))
  ;; ---- bf16 weights: y = W·x for rows [r0, r1) and T tokens (the hot function for bf16) ----
  ;; Tokens go four at a time: each 8 weights are loaded and widened once and used for four
  ;; tokens (prompt mode is compute bound, so fused multiply-adds); a lone token takes the
  ;; decode path (memory bound): 16 weights per step in four accumulators.
  (func (export "matmul_bf16") (param $w i32) (param $s i32) (param $x i32) (param $y i32)
        (param $rows i32) (param $cols i32) (param $T i32) (param $r0 i32) (param $r1 i32)
    (local $r i32) (local $t i32) (local $i i32) (local $wr i32) (local $p i32) (local $io i32)
    (local $x0 i32) (local $x1 i32) (local $x2 i32) (local $x3 i32) (local $cb i32)
    (local $n16 i32) (local $n8 i32) (local $T4 i32) (local $yo i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    (local $v0 v128) (local $v1 v128)
    (local.set $n16 (i32.and (local.get $cols) (i32.const -16)))
    (local.set $n8 (i32.and (local.get $cols) (i32.const -8)))
    (local.set $T4 (i32.and (local.get $T) (i32.const -4)))
    (local.set $cb (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $r (local.get $r0))
    (block $rows_done (loop $rows_loop
      (br_if $rows_done (i32.ge_u (local.get $r) (local.get $r1)))
      (local.set $wr (i32.add (local.get $w) (i32.shl (i32.mul (local.get $r) (local.get $cols)) (i32.const 1))))
      (local.set $t (i32.const 0))
      ;; four tokens at a time
      (block $g_done (loop $g_loop
        (br_if $g_done (i32.ge_u (local.get $t) (local.get $T4)))
        (local.set $x0 (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $cb))))
        (local.set $x1 (i32.add (local.get $x0) (local.get $cb)))
        (local.set $x2 (i32.add (local.get $x1) (local.get $cb)))
        (local.set $x3 (i32.add (local.get $x2) (local.get $cb)))
        (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0)) (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $a4 (v128.const i32x4 0 0 0 0)) (local.set $a5 (v128.const i32x4 0 0 0 0))
        (local.set $a6 (v128.const i32x4 0 0 0 0)) (local.set $a7 (v128.const i32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $i_done (loop $i_loop
          (br_if $i_done (i32.ge_u (local.get $i) (local.get $n8)))
          (local.set $p (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 1))))
          (local.set $v1 (v128.load (local.get $p)))
          (local.set $v0 (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v1)) (i32.const 16)))
          (local.set $v1 (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v1)) (i32.const 16)))
          (local.set $io (i32.shl (local.get $i) (i32.const 2)))
          (local.set $a0 (f32x4.relaxed_madd (local.get $v0) (v128.load (i32.add (local.get $x0) (local.get $io))) (local.get $a0)))
          (local.set $a1 (f32x4.relaxed_madd (local.get $v1) (v128.load offset=16 (i32.add (local.get $x0) (local.get $io))) (local.get $a1)))
          (local.set $a2 (f32x4.relaxed_madd (local.get $v0) (v128.load (i32.add (local.get $x1) (local.get $io))) (local.get $a2)))
          (local.set $a3 (f32x4.relaxed_madd (local.get $v1) (v128.load offset=16 (i32.add (local.get $x1) (local.get $io))) (local.get $a3)))
          (local.set $a4 (f32x4.relaxed_madd (local.get $v0) (v128.load (i32.add (local.get $x2) (local.get $io))) (local.get $a4)))
          (local.set $a5 (f32x4.relaxed_madd (local.get $v1) (v128.load offset=16 (i32.add (local.get $x2) (local.get $io))) (local.get $a5)))
          (local.set $a6 (f32x4.relaxed_madd (local.get $v0) (v128.load (i32.add (local.get $x3) (local.get $io))) (local.get $a6)))
          (local.set $a7 (f32x4.relaxed_madd (local.get $v1) (v128.load offset=16 (i32.add (local.get $x3) (local.get $io))) (local.get $a7)))
          (local.set $i (i32.add (local.get $i) (i32.const 8)))
          (br $i_loop)))
        (local.set $yo (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $rows)) (local.get $r)) (i32.const 2))))
        (f32.store (local.get $yo) (f32.add (call $hsum (f32x4.add (local.get $a0) (local.get $a1)))
          (call $tail_bf16 (local.get $wr) (local.get $x0) (local.get $n8) (local.get $cols))))
        (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
        (f32.store (local.get $yo) (f32.add (call $hsum (f32x4.add (local.get $a2) (local.get $a3)))
          (call $tail_bf16 (local.get $wr) (local.get $x1) (local.get $n8) (local.get $cols))))
        (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
        (f32.store (local.get $yo) (f32.add (call $hsum (f32x4.add (local.get $a4) (local.get $a5)))
          (call $tail_bf16 (local.get $wr) (local.get $x2) (local.get $n8) (local.get $cols))))
        (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
        (f32.store (local.get $yo) (f32.add (call $hsum (f32x4.add (local.get $a6) (local.get $a7)))
          (call $tail_bf16 (local.get $wr) (local.get $x3) (local.get $n8) (local.get $cols))))
        (local.set $t (i32.add (local.get $t) (i32.const 4)))
        (br $g_loop)))
      ;; the remaining tokens one at a time (decode: T = 1)
      (block $t_done (loop $t_loop
        (br_if $t_done (i32.ge_u (local.get $t) (local.get $T)))
        (local.set $x0 (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $cb))))
        (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0)) (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $j_done (loop $j_loop
          (br_if $j_done (i32.ge_u (local.get $i) (local.get $n16)))
          (local.set $p (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 1))))
          (local.set $io (i32.add (local.get $x0) (i32.shl (local.get $i) (i32.const 2))))
          (local.set $v1 (v128.load (local.get $p)))
          (local.set $v0 (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v1)) (i32.const 16)))
          (local.set $v1 (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v1)) (i32.const 16)))
          (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $v0) (v128.load offset=0 (local.get $io)))))
          (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $v1) (v128.load offset=16 (local.get $io)))))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (local.set $v1 (v128.load (local.get $p)))
          (local.set $v0 (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v1)) (i32.const 16)))
          (local.set $v1 (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v1)) (i32.const 16)))
          (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $v0) (v128.load offset=32 (local.get $io)))))
          (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $v1) (v128.load offset=48 (local.get $io)))))
          (local.set $i (i32.add (local.get $i) (i32.const 16)))
          (br $j_loop)))
        (f32.store (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $rows)) (local.get $r)) (i32.const 2)))
          (f32.add (call $hsum (f32x4.add (f32x4.add (local.get $a0) (local.get $a1)) (f32x4.add (local.get $a2) (local.get $a3))))
            (call $tail_bf16 (local.get $wr) (local.get $x0) (local.get $n16) (local.get $cols))))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $t_loop)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rows_loop))))

  ;; Σ_{i0 ≤ i < cols} W[i]·x[i] for one row of bf16 weights (the tails of the loops above)
  (func $tail_bf16 (param $wr i32) (param $xt i32) (param $i i32) (param $cols i32) (result f32)
    (local $s f32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $cols)))
      (local.set $s (f32.add (local.get $s) (f32.mul
        (call $w1_bf16 (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 1))))
        (f32.load (i32.add (local.get $xt) (i32.shl (local.get $i) (i32.const 2)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.get $s))
  ;; ---- f16 weights: y = W·x for rows [r0, r1) and T tokens (the hot function for f16) ----
  ;; Tokens go four at a time: each 8 weights are loaded and widened once and used for four
  ;; tokens (prompt mode is compute bound, so fused multiply-adds); a lone token takes the
  ;; decode path (memory bound): 16 weights per step in four accumulators.
  (func (export "matmul_f16") (param $w i32) (param $s i32) (param $x i32) (param $y i32)
        (param $rows i32) (param $cols i32) (param $T i32) (param $r0 i32) (param $r1 i32)
    (local $r i32) (local $t i32) (local $i i32) (local $wr i32) (local $p i32) (local $io i32)
    (local $x0 i32) (local $x1 i32) (local $x2 i32) (local $x3 i32) (local $cb i32)
    (local $n16 i32) (local $n8 i32) (local $T4 i32) (local $yo i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    (local $v0 v128) (local $v1 v128) (local $h v128)
    (local.set $n16 (i32.and (local.get $cols) (i32.const -16)))
    (local.set $n8 (i32.and (local.get $cols) (i32.const -8)))
    (local.set $T4 (i32.and (local.get $T) (i32.const -4)))
    (local.set $cb (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $r (local.get $r0))
    (block $rows_done (loop $rows_loop
      (br_if $rows_done (i32.ge_u (local.get $r) (local.get $r1)))
      (local.set $wr (i32.add (local.get $w) (i32.shl (i32.mul (local.get $r) (local.get $cols)) (i32.const 1))))
      (local.set $t (i32.const 0))
      ;; four tokens at a time
      (block $g_done (loop $g_loop
        (br_if $g_done (i32.ge_u (local.get $t) (local.get $T4)))
        (local.set $x0 (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $cb))))
        (local.set $x1 (i32.add (local.get $x0) (local.get $cb)))
        (local.set $x2 (i32.add (local.get $x1) (local.get $cb)))
        (local.set $x3 (i32.add (local.get $x2) (local.get $cb)))
        (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0)) (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $a4 (v128.const i32x4 0 0 0 0)) (local.set $a5 (v128.const i32x4 0 0 0 0))
        (local.set $a6 (v128.const i32x4 0 0 0 0)) (local.set $a7 (v128.const i32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $i_done (loop $i_loop
          (br_if $i_done (i32.ge_u (local.get $i) (local.get $n8)))
          (local.set $p (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 1))))
          (local.set $h (v128.load (local.get $p)))
          (local.set $v0 (call $f16_first4 (local.get $h))) (local.set $v1 (call $f16_last4 (local.get $h)))
          (local.set $io (i32.shl (local.get $i) (i32.const 2)))
          (local.set $a0 (f32x4.relaxed_madd (local.get $v0) (v128.load (i32.add (local.get $x0) (local.get $io))) (local.get $a0)))
          (local.set $a1 (f32x4.relaxed_madd (local.get $v1) (v128.load offset=16 (i32.add (local.get $x0) (local.get $io))) (local.get $a1)))
          (local.set $a2 (f32x4.relaxed_madd (local.get $v0) (v128.load (i32.add (local.get $x1) (local.get $io))) (local.get $a2)))
          (local.set $a3 (f32x4.relaxed_madd (local.get $v1) (v128.load offset=16 (i32.add (local.get $x1) (local.get $io))) (local.get $a3)))
          (local.set $a4 (f32x4.relaxed_madd (local.get $v0) (v128.load (i32.add (local.get $x2) (local.get $io))) (local.get $a4)))
          (local.set $a5 (f32x4.relaxed_madd (local.get $v1) (v128.load offset=16 (i32.add (local.get $x2) (local.get $io))) (local.get $a5)))
          (local.set $a6 (f32x4.relaxed_madd (local.get $v0) (v128.load (i32.add (local.get $x3) (local.get $io))) (local.get $a6)))
          (local.set $a7 (f32x4.relaxed_madd (local.get $v1) (v128.load offset=16 (i32.add (local.get $x3) (local.get $io))) (local.get $a7)))
          (local.set $i (i32.add (local.get $i) (i32.const 8)))
          (br $i_loop)))
        (local.set $yo (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $rows)) (local.get $r)) (i32.const 2))))
        (f32.store (local.get $yo) (f32.add (call $hsum (f32x4.add (local.get $a0) (local.get $a1)))
          (call $tail_f16 (local.get $wr) (local.get $x0) (local.get $n8) (local.get $cols))))
        (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
        (f32.store (local.get $yo) (f32.add (call $hsum (f32x4.add (local.get $a2) (local.get $a3)))
          (call $tail_f16 (local.get $wr) (local.get $x1) (local.get $n8) (local.get $cols))))
        (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
        (f32.store (local.get $yo) (f32.add (call $hsum (f32x4.add (local.get $a4) (local.get $a5)))
          (call $tail_f16 (local.get $wr) (local.get $x2) (local.get $n8) (local.get $cols))))
        (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
        (f32.store (local.get $yo) (f32.add (call $hsum (f32x4.add (local.get $a6) (local.get $a7)))
          (call $tail_f16 (local.get $wr) (local.get $x3) (local.get $n8) (local.get $cols))))
        (local.set $t (i32.add (local.get $t) (i32.const 4)))
        (br $g_loop)))
      ;; the remaining tokens one at a time (decode: T = 1)
      (block $t_done (loop $t_loop
        (br_if $t_done (i32.ge_u (local.get $t) (local.get $T)))
        (local.set $x0 (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $cb))))
        (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0)) (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $j_done (loop $j_loop
          (br_if $j_done (i32.ge_u (local.get $i) (local.get $n16)))
          (local.set $p (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 1))))
          (local.set $io (i32.add (local.get $x0) (i32.shl (local.get $i) (i32.const 2))))
          (local.set $h (v128.load (local.get $p)))
          (local.set $v0 (call $f16_first4 (local.get $h))) (local.set $v1 (call $f16_last4 (local.get $h)))
          (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $v0) (v128.load offset=0 (local.get $io)))))
          (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $v1) (v128.load offset=16 (local.get $io)))))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (local.set $h (v128.load (local.get $p)))
          (local.set $v0 (call $f16_first4 (local.get $h))) (local.set $v1 (call $f16_last4 (local.get $h)))
          (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $v0) (v128.load offset=32 (local.get $io)))))
          (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $v1) (v128.load offset=48 (local.get $io)))))
          (local.set $i (i32.add (local.get $i) (i32.const 16)))
          (br $j_loop)))
        (f32.store (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $rows)) (local.get $r)) (i32.const 2)))
          (f32.add (call $hsum (f32x4.add (f32x4.add (local.get $a0) (local.get $a1)) (f32x4.add (local.get $a2) (local.get $a3))))
            (call $tail_f16 (local.get $wr) (local.get $x0) (local.get $n16) (local.get $cols))))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $t_loop)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rows_loop))))

  ;; Σ_{i0 ≤ i < cols} W[i]·x[i] for one row of f16 weights (the tails of the loops above)
  (func $tail_f16 (param $wr i32) (param $xt i32) (param $i i32) (param $cols i32) (result f32)
    (local $s f32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $cols)))
      (local.set $s (f32.add (local.get $s) (f32.mul
        (call $w1_f16 (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 1))))
        (f32.load (i32.add (local.get $xt) (i32.shl (local.get $i) (i32.const 2)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.get $s))

  ;; ---- activations for the integer kernels ----
  ;; quantize(x, xq, n, mode): n f32 at x (n a multiple of 32) to int8 per block of 32 with an
  ;; f32 scale each, as ggml's Q8_0 activations. Layout at xq: n bytes, then n/32 scales, then
  ;; n/32 i32 block sums × −8. mode 0 (for q4): q in ±127 (the nibbles are the unsigned operand
  ;; of the dot, and the sums remove their +8). mode 1 (for q8): q in ±63 stored as q + 64, the
  ;; unsigned 7-bit operand `i32x4.relaxed_dot_i8x16_i7x16_add_s` wants (x86 runs it as
  ;; pmaddubsw / vpdpbusd); the q8 kernel removes 64·Σw with corrections precomputed at load.
  (func (export "quantize") (param $x i32) (param $xq i32) (param $n i32) (param $mode i32)
    (local $b i32) (local $nb i32) (local $p i32) (local $xs i32) (local $xsum i32)
    (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128)
    (local $v4 v128) (local $v5 v128) (local $v6 v128) (local $v7 v128)
    (local $m v128) (local $d f32) (local $id v128) (local $lim f32) (local $o i32)
    (local.set $nb (i32.shr_u (local.get $n) (i32.const 5)))
    (local.set $xs (i32.add (local.get $xq) (local.get $n)))
    (local.set $xsum (i32.add (local.get $xs) (i32.shl (local.get $nb) (i32.const 2))))
    (local.set $lim (select (f32.const 63) (f32.const 127) (local.get $mode)))
    (block $done (loop $blocks
      (br_if $done (i32.ge_u (local.get $b) (local.get $nb)))
      (local.set $p (i32.add (local.get $x) (i32.shl (local.get $b) (i32.const 7))))
      (local.set $v0 (v128.load offset=0 (local.get $p))) (local.set $v1 (v128.load offset=16 (local.get $p)))
      (local.set $v2 (v128.load offset=32 (local.get $p))) (local.set $v3 (v128.load offset=48 (local.get $p)))
      (local.set $v4 (v128.load offset=64 (local.get $p))) (local.set $v5 (v128.load offset=80 (local.get $p)))
      (local.set $v6 (v128.load offset=96 (local.get $p))) (local.set $v7 (v128.load offset=112 (local.get $p)))
      (local.set $m (f32x4.max
        (f32x4.max (f32x4.max (f32x4.abs (local.get $v0)) (f32x4.abs (local.get $v1)))
                   (f32x4.max (f32x4.abs (local.get $v2)) (f32x4.abs (local.get $v3))))
        (f32x4.max (f32x4.max (f32x4.abs (local.get $v4)) (f32x4.abs (local.get $v5)))
                   (f32x4.max (f32x4.abs (local.get $v6)) (f32x4.abs (local.get $v7))))))
      (local.set $d (f32.div
        (f32.max (f32.max (f32x4.extract_lane 0 (local.get $m)) (f32x4.extract_lane 1 (local.get $m)))
                 (f32.max (f32x4.extract_lane 2 (local.get $m)) (f32x4.extract_lane 3 (local.get $m))))
        (local.get $lim)))
      (local.set $id (f32x4.splat (select (f32.div (f32.const 1) (local.get $d)) (f32.const 0)
        (f32.gt (local.get $d) (f32.const 0)))))
      (f32.store (i32.add (local.get $xs) (i32.shl (local.get $b) (i32.const 2))) (local.get $d))
      (local.set $v0 (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v0) (local.get $id)))))
      (local.set $v1 (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v1) (local.get $id)))))
      (local.set $v2 (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v2) (local.get $id)))))
      (local.set $v3 (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v3) (local.get $id)))))
      (local.set $v4 (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v4) (local.get $id)))))
      (local.set $v5 (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v5) (local.get $id)))))
      (local.set $v6 (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v6) (local.get $id)))))
      (local.set $v7 (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $v7) (local.get $id)))))
      (local.set $m (i32x4.add
        (i32x4.add (i32x4.add (local.get $v0) (local.get $v1)) (i32x4.add (local.get $v2) (local.get $v3)))
        (i32x4.add (i32x4.add (local.get $v4) (local.get $v5)) (i32x4.add (local.get $v6) (local.get $v7)))))
      (i32.store (i32.add (local.get $xsum) (i32.shl (local.get $b) (i32.const 2)))
        (i32.mul (i32.const -8) (i32.add
          (i32.add (i32x4.extract_lane 0 (local.get $m)) (i32x4.extract_lane 1 (local.get $m)))
          (i32.add (i32x4.extract_lane 2 (local.get $m)) (i32x4.extract_lane 3 (local.get $m))))))
      (local.set $o (i32.add (local.get $xq) (i32.shl (local.get $b) (i32.const 5))))
      (local.set $v0 (i8x16.narrow_i16x8_s (i16x8.narrow_i32x4_s (local.get $v0) (local.get $v1))
                                           (i16x8.narrow_i32x4_s (local.get $v2) (local.get $v3))))
      (local.set $v1 (i8x16.narrow_i16x8_s (i16x8.narrow_i32x4_s (local.get $v4) (local.get $v5))
                                           (i16x8.narrow_i32x4_s (local.get $v6) (local.get $v7))))
      (if (local.get $mode) (then
        (local.set $v0 (i8x16.add (local.get $v0) (v128.const i8x16 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64)))
        (local.set $v1 (i8x16.add (local.get $v1) (v128.const i8x16 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64 64)))))
      (v128.store offset=0 (local.get $o) (local.get $v0))
      (v128.store offset=16 (local.get $o) (local.get $v1))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $blocks))))

  ;; ---- the integer kernels (q8, q4) ----
  ;; Their matrices are finished by tensor.ts `finishMatrix`: rows in groups of four,
  ;; interleaved by 32-bit words, so one 16-byte load holds four rows × four values and
  ;; `i32x4.relaxed_dot_i8x16_i7x16_add_s` against four activations splatted to every lane
  ;; leaves each row's partial sum in its own lane: a block of 32 columns is eight dots into one
  ;; i32x4 (started from the block's offset correction), then one convert and one fused
  ;; multiply-add by the four rows' scales times the activation scale. No horizontal sums.

  ;; q8: the eight dots of one group-block (weights w0..w7, activations + 64 at $x)
  ;; @inline
  (func $dot_q8 (param $w0 v128) (param $w1 v128) (param $w2 v128) (param $w3 v128)
        (param $w4 v128) (param $w5 v128) (param $w6 v128) (param $w7 v128) (param $x i32)
        (param $init v128) (result v128)
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get $w7) (v128.load32_splat offset=28 (local.get $x))
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get $w6) (v128.load32_splat offset=24 (local.get $x))
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get $w5) (v128.load32_splat offset=20 (local.get $x))
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get $w4) (v128.load32_splat offset=16 (local.get $x))
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get $w3) (v128.load32_splat offset=12 (local.get $x))
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get $w2) (v128.load32_splat offset=8 (local.get $x))
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get $w1) (v128.load32_splat offset=4 (local.get $x))
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get $w0) (v128.load32_splat (local.get $x))
      (local.get $init))))))))))

  ;; q4: the eight dots of one group-block (nibbles n0..n7 as the unsigned operand, signed
  ;; activations at $x; $init = −8·Σx undoes the nibbles' +8)
  ;; @inline
  (func $dot_q4 (param $n0 v128) (param $n1 v128) (param $n2 v128) (param $n3 v128)
        (param $n4 v128) (param $n5 v128) (param $n6 v128) (param $n7 v128) (param $x i32)
        (param $init v128) (result v128)
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (v128.load32_splat offset=28 (local.get $x)) (local.get $n7)
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (v128.load32_splat offset=24 (local.get $x)) (local.get $n6)
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (v128.load32_splat offset=20 (local.get $x)) (local.get $n5)
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (v128.load32_splat offset=16 (local.get $x)) (local.get $n4)
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (v128.load32_splat offset=12 (local.get $x)) (local.get $n3)
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (v128.load32_splat offset=8 (local.get $x)) (local.get $n2)
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (v128.load32_splat offset=4 (local.get $x)) (local.get $n1)
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (v128.load32_splat (local.get $x)) (local.get $n0)
      (local.get $init))))))))))

  ;; acc + (float of the block's integer dots) · (the rows' scales) · (the activation scale at $xs)
  ;; @inline
  (func $fold (param $acc v128) (param $dot v128) (param $ws v128) (param $xs i32) (result v128)
    (f32x4.relaxed_madd (f32x4.mul (f32x4.convert_i32x4_s (local.get $dot)) (local.get $ws))
      (v128.load32_splat (local.get $xs)) (local.get $acc)))

  ;; stores the first $n (≤ 4) lanes of $v at $p (the last group of a matrix may be partial)
  (func $put (param $p i32) (param $v v128) (param $n i32)
    (if (i32.ge_u (local.get $n) (i32.const 4)) (then (v128.store (local.get $p) (local.get $v)) (return)))
    (f32.store (local.get $p) (f32x4.extract_lane 0 (local.get $v)))
    (if (i32.ge_u (local.get $n) (i32.const 2)) (then (f32.store offset=4 (local.get $p) (f32x4.extract_lane 1 (local.get $v)))))
    (if (i32.ge_u (local.get $n) (i32.const 3)) (then (f32.store offset=8 (local.get $p) (f32x4.extract_lane 2 (local.get $v))))))

  ;; ---- q8 weights: y = W·x for rows [r0, r1) (r0 a multiple of 4) and T tokens ----
  ;; $xq holds the activations as `quantize` left them (mode 1); $s the group-interleaved
  ;; scales, then as many i32 corrections −64·Σq. Four tokens at a time reuse each block's
  ;; weights from registers (prompt mode); the rest, and decoding, go one token at a time.
  (func (export "matmul_q8") (param $w i32) (param $s i32) (param $xq i32) (param $y i32)
        (param $rows i32) (param $cols i32) (param $T i32) (param $r0 i32) (param $r1 i32)
    (local $nb i32) (local $sb i32) (local $c i32) (local $xs i32) (local $T4 i32) (local $n i32)
    (local $g i32) (local $t i32) (local $wb i32) (local $we i32) (local $sg i32) (local $yo i32)
    (local $x0 i32) (local $x1 i32) (local $x2 i32) (local $x3 i32)
    (local $q0 i32) (local $q1 i32) (local $q2 i32) (local $q3 i32)
    (local $w0 v128) (local $w1 v128) (local $w2 v128) (local $w3 v128)
    (local $w4 v128) (local $w5 v128) (local $w6 v128) (local $w7 v128)
    (local $ws v128) (local $cv v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $nb (i32.shr_u (local.get $cols) (i32.const 5)))
    (local.set $sb (i32.shl (local.get $nb) (i32.const 2)))
    ;; corrections after the scales of all (padded) rows
    (local.set $c (i32.add (local.get $s) (i32.mul (i32.and (i32.add (local.get $rows) (i32.const 3)) (i32.const -4)) (local.get $sb))))
    (local.set $xs (i32.add (local.get $xq) (i32.mul (local.get $T) (local.get $cols))))
    (local.set $T4 (i32.and (local.get $T) (i32.const -4)))
    (local.set $g (local.get $r0))
    (block $g_done (loop $g_loop
      (br_if $g_done (i32.ge_u (local.get $g) (local.get $r1)))
      (local.set $n (i32.sub (local.get $rows) (local.get $g)))
      (local.set $t (i32.const 0))
      (block $t_done (loop $t_loop
        (br_if $t_done (i32.ge_u (local.get $t) (local.get $T)))
        (local.set $wb (i32.add (local.get $w) (i32.mul (local.get $g) (local.get $cols))))
        (local.set $we (i32.add (local.get $wb) (i32.shl (local.get $cols) (i32.const 2))))
        (local.set $sg (i32.mul (local.get $g) (local.get $sb)))
        (local.set $x0 (i32.add (local.get $xq) (i32.mul (local.get $t) (local.get $cols))))
        (local.set $q0 (i32.add (local.get $xs) (i32.mul (local.get $t) (local.get $sb))))
        (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0)) (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $yo (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $rows)) (local.get $g)) (i32.const 2))))
        (if (i32.lt_u (local.get $t) (local.get $T4))
          (then
            (local.set $x1 (i32.add (local.get $x0) (local.get $cols)))
            (local.set $x2 (i32.add (local.get $x1) (local.get $cols)))
            (local.set $x3 (i32.add (local.get $x2) (local.get $cols)))
            (local.set $q1 (i32.add (local.get $q0) (local.get $sb)))
            (local.set $q2 (i32.add (local.get $q1) (local.get $sb)))
            (local.set $q3 (i32.add (local.get $q2) (local.get $sb)))
            (block $b_done (loop $b_loop
              (br_if $b_done (i32.ge_u (local.get $wb) (local.get $we)))
              (local.set $w0 (v128.load offset=0 (local.get $wb))) (local.set $w1 (v128.load offset=16 (local.get $wb)))
              (local.set $w2 (v128.load offset=32 (local.get $wb))) (local.set $w3 (v128.load offset=48 (local.get $wb)))
              (local.set $w4 (v128.load offset=64 (local.get $wb))) (local.set $w5 (v128.load offset=80 (local.get $wb)))
              (local.set $w6 (v128.load offset=96 (local.get $wb))) (local.set $w7 (v128.load offset=112 (local.get $wb)))
              (local.set $ws (v128.load (i32.add (local.get $s) (local.get $sg))))
              (local.set $cv (v128.load (i32.add (local.get $c) (local.get $sg))))
              (local.set $a0 (call $fold (local.get $a0) (call $dot_q8 (local.get $w0) (local.get $w1) (local.get $w2) (local.get $w3)
                (local.get $w4) (local.get $w5) (local.get $w6) (local.get $w7) (local.get $x0) (local.get $cv)) (local.get $ws) (local.get $q0)))
              (local.set $a1 (call $fold (local.get $a1) (call $dot_q8 (local.get $w0) (local.get $w1) (local.get $w2) (local.get $w3)
                (local.get $w4) (local.get $w5) (local.get $w6) (local.get $w7) (local.get $x1) (local.get $cv)) (local.get $ws) (local.get $q1)))
              (local.set $a2 (call $fold (local.get $a2) (call $dot_q8 (local.get $w0) (local.get $w1) (local.get $w2) (local.get $w3)
                (local.get $w4) (local.get $w5) (local.get $w6) (local.get $w7) (local.get $x2) (local.get $cv)) (local.get $ws) (local.get $q2)))
              (local.set $a3 (call $fold (local.get $a3) (call $dot_q8 (local.get $w0) (local.get $w1) (local.get $w2) (local.get $w3)
                (local.get $w4) (local.get $w5) (local.get $w6) (local.get $w7) (local.get $x3) (local.get $cv)) (local.get $ws) (local.get $q3)))
              (local.set $wb (i32.add (local.get $wb) (i32.const 128)))
              (local.set $sg (i32.add (local.get $sg) (i32.const 16)))
              (local.set $x0 (i32.add (local.get $x0) (i32.const 32))) (local.set $x1 (i32.add (local.get $x1) (i32.const 32)))
              (local.set $x2 (i32.add (local.get $x2) (i32.const 32))) (local.set $x3 (i32.add (local.get $x3) (i32.const 32)))
              (local.set $q0 (i32.add (local.get $q0) (i32.const 4))) (local.set $q1 (i32.add (local.get $q1) (i32.const 4)))
              (local.set $q2 (i32.add (local.get $q2) (i32.const 4))) (local.set $q3 (i32.add (local.get $q3) (i32.const 4)))
              (br $b_loop)))
            (call $put (local.get $yo) (local.get $a0) (local.get $n))
            (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
            (call $put (local.get $yo) (local.get $a1) (local.get $n))
            (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
            (call $put (local.get $yo) (local.get $a2) (local.get $n))
            (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
            (call $put (local.get $yo) (local.get $a3) (local.get $n))
            (local.set $t (i32.add (local.get $t) (i32.const 4))))
          (else
            (block $c_done (loop $c_loop
              (br_if $c_done (i32.ge_u (local.get $wb) (local.get $we)))
              (local.set $a0 (call $fold (local.get $a0) (call $dot_q8
                (v128.load offset=0 (local.get $wb)) (v128.load offset=16 (local.get $wb))
                (v128.load offset=32 (local.get $wb)) (v128.load offset=48 (local.get $wb))
                (v128.load offset=64 (local.get $wb)) (v128.load offset=80 (local.get $wb))
                (v128.load offset=96 (local.get $wb)) (v128.load offset=112 (local.get $wb))
                (local.get $x0) (v128.load (i32.add (local.get $c) (local.get $sg))))
                (v128.load (i32.add (local.get $s) (local.get $sg))) (local.get $q0)))
              (local.set $wb (i32.add (local.get $wb) (i32.const 128)))
              (local.set $sg (i32.add (local.get $sg) (i32.const 16)))
              (local.set $x0 (i32.add (local.get $x0) (i32.const 32)))
              (local.set $q0 (i32.add (local.get $q0) (i32.const 4)))
              (br $c_loop)))
            (call $put (local.get $yo) (local.get $a0) (local.get $n))
            (local.set $t (i32.add (local.get $t) (i32.const 1)))))
        (br $t_loop)))
      (local.set $g (i32.add (local.get $g) (i32.const 4)))
      (br $g_loop))))

  ;; ---- q4 weights: y = W·x for rows [r0, r1) (r0 a multiple of 4) and T tokens ----
  ;; $xq holds the activations as `quantize` left them (mode 0: signed, with −8·Σx per
  ;; block); $s the group-interleaved scales. A group-block is 64 bytes: four vectors whose low
  ;; nibbles are columns 0..15 and high nibbles 16..31. Tokens as in matmul_q8.
  (func (export "matmul_q4") (param $w i32) (param $s i32) (param $xq i32) (param $y i32)
        (param $rows i32) (param $cols i32) (param $T i32) (param $r0 i32) (param $r1 i32)
    (local $nb i32) (local $sb i32) (local $xs i32) (local $sum i32) (local $T4 i32) (local $n i32)
    (local $g i32) (local $t i32) (local $wb i32) (local $we i32) (local $sg i32) (local $yo i32)
    (local $x0 i32) (local $x1 i32) (local $x2 i32) (local $x3 i32)
    (local $q0 i32) (local $q1 i32) (local $q2 i32) (local $q3 i32)
    (local $w0 v128) (local $w1 v128) (local $w2 v128) (local $w3 v128)
    (local $w4 v128) (local $w5 v128) (local $w6 v128) (local $w7 v128)
    (local $ws v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $nb (i32.shr_u (local.get $cols) (i32.const 5)))
    (local.set $sb (i32.shl (local.get $nb) (i32.const 2)))
    (local.set $xs (i32.add (local.get $xq) (i32.mul (local.get $T) (local.get $cols))))
    ;; from a token's scale to its block sum
    (local.set $sum (i32.mul (local.get $T) (local.get $sb)))
    (local.set $T4 (i32.and (local.get $T) (i32.const -4)))
    (local.set $g (local.get $r0))
    (block $g_done (loop $g_loop
      (br_if $g_done (i32.ge_u (local.get $g) (local.get $r1)))
      (local.set $n (i32.sub (local.get $rows) (local.get $g)))
      (local.set $t (i32.const 0))
      (block $t_done (loop $t_loop
        (br_if $t_done (i32.ge_u (local.get $t) (local.get $T)))
        (local.set $wb (i32.add (local.get $w) (i32.shr_u (i32.mul (local.get $g) (local.get $cols)) (i32.const 1))))
        (local.set $we (i32.add (local.get $wb) (i32.shl (local.get $cols) (i32.const 1))))
        (local.set $sg (i32.add (local.get $s) (i32.mul (local.get $g) (local.get $sb))))
        (local.set $x0 (i32.add (local.get $xq) (i32.mul (local.get $t) (local.get $cols))))
        (local.set $q0 (i32.add (local.get $xs) (i32.mul (local.get $t) (local.get $sb))))
        (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0)) (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $yo (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $rows)) (local.get $g)) (i32.const 2))))
        (if (i32.lt_u (local.get $t) (local.get $T4))
          (then
            (local.set $x1 (i32.add (local.get $x0) (local.get $cols)))
            (local.set $x2 (i32.add (local.get $x1) (local.get $cols)))
            (local.set $x3 (i32.add (local.get $x2) (local.get $cols)))
            (local.set $q1 (i32.add (local.get $q0) (local.get $sb)))
            (local.set $q2 (i32.add (local.get $q1) (local.get $sb)))
            (local.set $q3 (i32.add (local.get $q2) (local.get $sb)))
            (block $b_done (loop $b_loop
              (br_if $b_done (i32.ge_u (local.get $wb) (local.get $we)))
              (local.set $w4 (v128.load offset=0 (local.get $wb))) (local.set $w5 (v128.load offset=16 (local.get $wb)))
              (local.set $w6 (v128.load offset=32 (local.get $wb))) (local.set $w7 (v128.load offset=48 (local.get $wb)))
              (local.set $w0 (v128.and (local.get $w4) (global.get $nib))) (local.set $w4 (i8x16.shr_u (local.get $w4) (i32.const 4)))
              (local.set $w1 (v128.and (local.get $w5) (global.get $nib))) (local.set $w5 (i8x16.shr_u (local.get $w5) (i32.const 4)))
              (local.set $w2 (v128.and (local.get $w6) (global.get $nib))) (local.set $w6 (i8x16.shr_u (local.get $w6) (i32.const 4)))
              (local.set $w3 (v128.and (local.get $w7) (global.get $nib))) (local.set $w7 (i8x16.shr_u (local.get $w7) (i32.const 4)))
              (local.set $ws (v128.load (local.get $sg)))
              (local.set $a0 (call $fold (local.get $a0) (call $dot_q4 (local.get $w0) (local.get $w1) (local.get $w2) (local.get $w3)
                (local.get $w4) (local.get $w5) (local.get $w6) (local.get $w7) (local.get $x0)
                (v128.load32_splat (i32.add (local.get $q0) (local.get $sum)))) (local.get $ws) (local.get $q0)))
              (local.set $a1 (call $fold (local.get $a1) (call $dot_q4 (local.get $w0) (local.get $w1) (local.get $w2) (local.get $w3)
                (local.get $w4) (local.get $w5) (local.get $w6) (local.get $w7) (local.get $x1)
                (v128.load32_splat (i32.add (local.get $q1) (local.get $sum)))) (local.get $ws) (local.get $q1)))
              (local.set $a2 (call $fold (local.get $a2) (call $dot_q4 (local.get $w0) (local.get $w1) (local.get $w2) (local.get $w3)
                (local.get $w4) (local.get $w5) (local.get $w6) (local.get $w7) (local.get $x2)
                (v128.load32_splat (i32.add (local.get $q2) (local.get $sum)))) (local.get $ws) (local.get $q2)))
              (local.set $a3 (call $fold (local.get $a3) (call $dot_q4 (local.get $w0) (local.get $w1) (local.get $w2) (local.get $w3)
                (local.get $w4) (local.get $w5) (local.get $w6) (local.get $w7) (local.get $x3)
                (v128.load32_splat (i32.add (local.get $q3) (local.get $sum)))) (local.get $ws) (local.get $q3)))
              (local.set $wb (i32.add (local.get $wb) (i32.const 64)))
              (local.set $sg (i32.add (local.get $sg) (i32.const 16)))
              (local.set $x0 (i32.add (local.get $x0) (i32.const 32))) (local.set $x1 (i32.add (local.get $x1) (i32.const 32)))
              (local.set $x2 (i32.add (local.get $x2) (i32.const 32))) (local.set $x3 (i32.add (local.get $x3) (i32.const 32)))
              (local.set $q0 (i32.add (local.get $q0) (i32.const 4))) (local.set $q1 (i32.add (local.get $q1) (i32.const 4)))
              (local.set $q2 (i32.add (local.get $q2) (i32.const 4))) (local.set $q3 (i32.add (local.get $q3) (i32.const 4)))
              (br $b_loop)))
            (call $put (local.get $yo) (local.get $a0) (local.get $n))
            (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
            (call $put (local.get $yo) (local.get $a1) (local.get $n))
            (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
            (call $put (local.get $yo) (local.get $a2) (local.get $n))
            (local.set $yo (i32.add (local.get $yo) (i32.shl (local.get $rows) (i32.const 2))))
            (call $put (local.get $yo) (local.get $a3) (local.get $n))
            (local.set $t (i32.add (local.get $t) (i32.const 4))))
          (else
            (block $c_done (loop $c_loop
              (br_if $c_done (i32.ge_u (local.get $wb) (local.get $we)))
              (local.set $w4 (v128.load offset=0 (local.get $wb))) (local.set $w5 (v128.load offset=16 (local.get $wb)))
              (local.set $w6 (v128.load offset=32 (local.get $wb))) (local.set $w7 (v128.load offset=48 (local.get $wb)))
              (local.set $a0 (call $fold (local.get $a0) (call $dot_q4
                (v128.and (local.get $w4) (global.get $nib)) (v128.and (local.get $w5) (global.get $nib))
                (v128.and (local.get $w6) (global.get $nib)) (v128.and (local.get $w7) (global.get $nib))
                (i8x16.shr_u (local.get $w4) (i32.const 4)) (i8x16.shr_u (local.get $w5) (i32.const 4))
                (i8x16.shr_u (local.get $w6) (i32.const 4)) (i8x16.shr_u (local.get $w7) (i32.const 4))
                (local.get $x0) (v128.load32_splat (i32.add (local.get $q0) (local.get $sum))))
                (v128.load (local.get $sg)) (local.get $q0)))
              (local.set $wb (i32.add (local.get $wb) (i32.const 64)))
              (local.set $sg (i32.add (local.get $sg) (i32.const 16)))
              (local.set $x0 (i32.add (local.get $x0) (i32.const 32)))
              (local.set $q0 (i32.add (local.get $q0) (i32.const 4)))
              (br $c_loop)))
            (call $put (local.get $yo) (local.get $a0) (local.get $n))
            (local.set $t (i32.add (local.get $t) (i32.const 1)))))
        (br $t_loop)))
      (local.set $g (i32.add (local.get $g) (i32.const 4)))
      (br $g_loop))))

  ;; ---- RWKV-7 state update for one token, all heads (the recurrence's hot loop) ----
  ;; S (H, N, N) as [head][value i][key j]; vectors are per channel (H·N).
  ;; sa_i = Σ_j S_ij kk_j ;  S_ij ← S_ij w_j − sa_i b_j + v_i k_j ;  y_i = Σ_j S_ij r_j
  ;; with b = kk ⊙ a. N must be a multiple of 4.
  (func (export "wkv7") (param $S i32) (param $r i32) (param $w i32) (param $k i32) (param $v i32)
        (param $kk i32) (param $b i32) (param $y i32) (param $H i32) (param $N i32)
    (local $h i32) (local $i i32) (local $j i32) (local $row i32) (local $ho i32)
    (local $acc v128) (local $sa v128) (local $s v128) (local $vi v128) (local $jo i32)
    (block $h_done (loop $h_loop
      (br_if $h_done (i32.ge_u (local.get $h) (local.get $H)))
      (local.set $ho (i32.shl (i32.mul (local.get $h) (local.get $N)) (i32.const 2)))
      (local.set $i (i32.const 0))
      (block $i_done (loop $i_loop
        (br_if $i_done (i32.ge_u (local.get $i) (local.get $N)))
        (local.set $row (i32.add (local.get $S) (i32.shl (i32.mul (i32.add (i32.mul (local.get $h) (local.get $N)) (local.get $i)) (local.get $N)) (i32.const 2))))
        ;; sa = S[i,:] · kk
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $a_done (loop $a_loop
          (br_if $a_done (i32.ge_u (local.get $j) (local.get $N)))
          (local.set $jo (i32.shl (local.get $j) (i32.const 2)))
          (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul
            (v128.load (i32.add (local.get $row) (local.get $jo)))
            (v128.load (i32.add (i32.add (local.get $kk) (local.get $ho)) (local.get $jo))))))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $a_loop)))
        (local.set $sa (f32x4.splat (call $hsum (local.get $acc))))
        (local.set $vi (v128.load32_splat (i32.add (i32.add (local.get $v) (local.get $ho)) (i32.shl (local.get $i) (i32.const 2)))))
        ;; update the row and read it out against r
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $u_done (loop $u_loop
          (br_if $u_done (i32.ge_u (local.get $j) (local.get $N)))
          (local.set $jo (i32.add (local.get $ho) (i32.shl (local.get $j) (i32.const 2))))
          (local.set $s (f32x4.add
            (f32x4.sub
              (f32x4.mul (v128.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))
                         (v128.load (i32.add (local.get $w) (local.get $jo))))
              (f32x4.mul (local.get $sa) (v128.load (i32.add (local.get $b) (local.get $jo)))))
            (f32x4.mul (local.get $vi) (v128.load (i32.add (local.get $k) (local.get $jo))))))
          (v128.store (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))) (local.get $s))
          (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $s)
            (v128.load (i32.add (local.get $r) (local.get $jo))))))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $u_loop)))
        (f32.store (i32.add (i32.add (local.get $y) (local.get $ho)) (i32.shl (local.get $i) (i32.const 2)))
          (call $hsum (local.get $acc)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $i_loop)))
      (local.set $h (i32.add (local.get $h) (i32.const 1)))
      (br $h_loop))))

  ;; ---- RWKV-5/6 state update for one token, all heads ----
  ;; S (H, N, N) as [head][key i][value j]; w, u per key channel.
  ;; y_j = Σ_i r_i (u_i k_i v_j + S_ij) ;  S_ij ← k_i v_j + w_i S_ij
  (func (export "wkv5") (param $S i32) (param $r i32) (param $k i32) (param $v i32) (param $w i32)
        (param $u i32) (param $y i32) (param $H i32) (param $N i32)
    (local $h i32) (local $i i32) (local $j i32) (local $row i32) (local $ho i32) (local $jo i32)
    (local $ri v128) (local $ki v128) (local $ui v128) (local $wi v128) (local $a v128) (local $s v128)
    (local $io i32)
    (block $h_done (loop $h_loop
      (br_if $h_done (i32.ge_u (local.get $h) (local.get $H)))
      (local.set $ho (i32.shl (i32.mul (local.get $h) (local.get $N)) (i32.const 2)))
      ;; y = 0 for this head
      (local.set $j (i32.const 0))
      (block $z_done (loop $z_loop
        (br_if $z_done (i32.ge_u (local.get $j) (local.get $N)))
        (v128.store (i32.add (i32.add (local.get $y) (local.get $ho)) (i32.shl (local.get $j) (i32.const 2))) (v128.const i32x4 0 0 0 0))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $z_loop)))
      (local.set $i (i32.const 0))
      (block $i_done (loop $i_loop
        (br_if $i_done (i32.ge_u (local.get $i) (local.get $N)))
        (local.set $io (i32.add (local.get $ho) (i32.shl (local.get $i) (i32.const 2))))
        (local.set $row (i32.add (local.get $S) (i32.shl (i32.mul (i32.add (i32.mul (local.get $h) (local.get $N)) (local.get $i)) (local.get $N)) (i32.const 2))))
        (local.set $ri (v128.load32_splat (i32.add (local.get $r) (local.get $io))))
        (local.set $ki (v128.load32_splat (i32.add (local.get $k) (local.get $io))))
        (local.set $ui (v128.load32_splat (i32.add (local.get $u) (local.get $io))))
        (local.set $wi (v128.load32_splat (i32.add (local.get $w) (local.get $io))))
        (local.set $j (i32.const 0))
        (block $j_done (loop $j_loop
          (br_if $j_done (i32.ge_u (local.get $j) (local.get $N)))
          (local.set $jo (i32.add (local.get $ho) (i32.shl (local.get $j) (i32.const 2))))
          (local.set $a (f32x4.mul (local.get $ki) (v128.load (i32.add (local.get $v) (local.get $jo)))))
          (local.set $s (v128.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))))
          (v128.store (i32.add (local.get $y) (local.get $jo))
            (f32x4.add (v128.load (i32.add (local.get $y) (local.get $jo)))
              (f32x4.mul (local.get $ri) (f32x4.add (f32x4.mul (local.get $ui) (local.get $a)) (local.get $s)))))
          (v128.store (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))
            (f32x4.add (local.get $a) (f32x4.mul (local.get $wi) (local.get $s))))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $j_loop)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $i_loop)))
      (local.set $h (i32.add (local.get $h) (i32.const 1)))
      (br $h_loop))))

  ;; ---- element-wise math (every member computes it alike, so it must be cheap) ----
  ;; e^x four lanes at a time: 2^n · p(r) with n = round(x·log2 e), r = x − n·ln 2 (ln 2 split
  ;; in two for exactness) and p Cephes' degree-7 polynomial for e^r on |r| ≤ ½ln 2 (about
  ;; 1 ulp). x is clamped to [−87.3, 88] so 2^n stays a normal number; NaN stays NaN.
  ;; @inline
  (func $exp4 (param $x v128) (result v128)
    (local $n v128) (local $r v128) (local $p v128)
    (local.set $x (f32x4.max (f32x4.min (local.get $x) (v128.const f32x4 88 88 88 88))
      (v128.const f32x4 -87.3 -87.3 -87.3 -87.3)))
    (local.set $n (f32x4.nearest (f32x4.mul (local.get $x)
      (v128.const f32x4 1.44269504088896341 1.44269504088896341 1.44269504088896341 1.44269504088896341))))
    (local.set $r (f32x4.sub
      (f32x4.sub (local.get $x) (f32x4.mul (local.get $n) (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375)))
      (f32x4.mul (local.get $n) (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))))
    (local.set $p (f32x4.add (f32x4.mul (v128.const f32x4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4) (local.get $r))
      (v128.const f32x4 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1)))
    (local.set $p (f32x4.add (f32x4.add (f32x4.mul (local.get $p) (f32x4.mul (local.get $r) (local.get $r)))
      (local.get $r)) (v128.const f32x4 1 1 1 1)))
    (f32x4.mul (local.get $p)
      (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (v128.const i32x4 127 127 127 127))
        (i32.const 23))))
  ;; logistic sigmoid 1/(1 + e^−x)
  ;; @inline
  (func $sigm4 (param $x v128) (result v128)
    (f32x4.div (v128.const f32x4 1 1 1 1)
      (f32x4.add (v128.const f32x4 1 1 1 1) (call $exp4 (f32x4.neg (local.get $x))))))

  ;; one step of `ew` on four lanes: a, b the inputs, o the output's current value
  ;; @inline
  (func $ew4 (param $op i32) (param $a v128) (param $b v128) (param $o v128) (result v128)
    (if (result v128) (i32.eqz (local.get $op))
      (then ;; tanh a = 1 − 2/(e^2a + 1)
        (f32x4.sub (v128.const f32x4 1 1 1 1) (f32x4.div (v128.const f32x4 2 2 2 2)
          (f32x4.add (call $exp4 (f32x4.add (local.get $a) (local.get $a))) (v128.const f32x4 1 1 1 1)))))
      (else (if (result v128) (i32.eq (local.get $op) (i32.const 1))
        (then (call $sigm4 (local.get $a)))
        (else (if (result v128) (i32.eq (local.get $op) (i32.const 2))
          (then ;; relu(a)²
            (local.set $a (f32x4.max (local.get $a) (v128.const f32x4 0 0 0 0)))
            (f32x4.mul (local.get $a) (local.get $a)))
          (else (if (result v128) (i32.eq (local.get $op) (i32.const 3))
            (then (f32x4.add (local.get $o) (f32x4.mul (call $sigm4 (local.get $a)) (local.get $b))))
            (else (f32x4.mul (local.get $o) (f32x4.mul (local.get $a) (call $sigm4 (local.get $a)))))))))))))

  ;; ew(a, b, out, n, op): n values, element by element (out may be a or b):
  ;; op 0 out = tanh a; 1 out = σ(a); 2 out = relu(a)²; 3 out += σ(a)·b; 4 out *= a·σ(a)
  (func (export "ew") (param $a i32) (param $b i32) (param $out i32) (param $n i32) (param $op i32)
    (local $i i32) (local $p i32)
    (block $done (loop $loop
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $p (i32.shl (local.get $i) (i32.const 2)))
      (if (i32.le_u (i32.add (local.get $i) (i32.const 4)) (local.get $n))
        (then
          (v128.store (i32.add (local.get $out) (local.get $p)) (call $ew4 (local.get $op)
            (v128.load (i32.add (local.get $a) (local.get $p)))
            (v128.load (i32.add (local.get $b) (local.get $p)))
            (v128.load (i32.add (local.get $out) (local.get $p)))))
          (local.set $i (i32.add (local.get $i) (i32.const 4))))
        (else ;; the tail, one value at a time
          (v128.store32_lane 0 (i32.add (local.get $out) (local.get $p)) (call $ew4 (local.get $op)
            (v128.load32_zero (i32.add (local.get $a) (local.get $p)))
            (v128.load32_zero (i32.add (local.get $b) (local.get $p)))
            (v128.load32_zero (i32.add (local.get $out) (local.get $p)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))))
      (br $loop))))

  ;; norm(x, w, b, out, n, groups, wrap, eps): each of `groups` runs of n values (n a multiple
  ;; of 4) normalised alone, (x − mean)/√(var + eps) · w + b, with w and b of run g at
  ;; (g mod wrap)·n: wrap 1 is LayerNorm over tokens, wrap H GroupNorm over heads. out may be x.
  (func (export "norm") (param $x i32) (param $w i32) (param $b i32) (param $out i32)
        (param $n i32) (param $groups i32) (param $wrap i32) (param $eps f32)
    (local $g i32) (local $i i32) (local $xo i32) (local $wo i32) (local $acc v128)
    (local $mean v128) (local $inv v128) (local $d v128) (local $nf f32)
    (local.set $nf (f32.convert_i32_u (local.get $n)))
    (block $g_done (loop $g_loop
      (br_if $g_done (i32.ge_u (local.get $g) (local.get $groups)))
      (local.set $xo (i32.shl (i32.mul (local.get $g) (local.get $n)) (i32.const 2)))
      (local.set $wo (i32.shl (i32.mul (i32.rem_u (local.get $g) (local.get $wrap)) (local.get $n)) (i32.const 2)))
      (local.set $acc (v128.const i32x4 0 0 0 0))
      (local.set $i (i32.const 0))
      (block $m_done (loop $m_loop
        (br_if $m_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc (f32x4.add (local.get $acc)
          (v128.load (i32.add (i32.add (local.get $x) (local.get $xo)) (i32.shl (local.get $i) (i32.const 2))))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $m_loop)))
      (local.set $mean (f32x4.splat (f32.div (call $hsum (local.get $acc)) (local.get $nf))))
      (local.set $acc (v128.const i32x4 0 0 0 0))
      (local.set $i (i32.const 0))
      (block $v_done (loop $v_loop
        (br_if $v_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $d (f32x4.sub
          (v128.load (i32.add (i32.add (local.get $x) (local.get $xo)) (i32.shl (local.get $i) (i32.const 2))))
          (local.get $mean)))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $d) (local.get $d))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $v_loop)))
      (local.set $inv (f32x4.splat (f32.div (f32.const 1)
        (f32.sqrt (f32.add (f32.div (call $hsum (local.get $acc)) (local.get $nf)) (local.get $eps))))))
      (local.set $i (i32.const 0))
      (block $o_done (loop $o_loop
        (br_if $o_done (i32.ge_u (local.get $i) (local.get $n)))
        (v128.store (i32.add (i32.add (local.get $out) (local.get $xo)) (i32.shl (local.get $i) (i32.const 2)))
          (f32x4.add
            (f32x4.mul (f32x4.mul
              (f32x4.sub (v128.load (i32.add (i32.add (local.get $x) (local.get $xo)) (i32.shl (local.get $i) (i32.const 2))))
                (local.get $mean))
              (local.get $inv))
              (v128.load (i32.add (i32.add (local.get $w) (local.get $wo)) (i32.shl (local.get $i) (i32.const 2)))))
            (v128.load (i32.add (i32.add (local.get $b) (local.get $wo)) (i32.shl (local.get $i) (i32.const 2))))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $o_loop)))
      (local.set $g (i32.add (local.get $g) (i32.const 1)))
      (br $g_loop))))

  ;; ---- RWKV-4's recurrence over T tokens, four channels at a time (A a multiple of 4) ----
  ;; out = σ(r)·(aa + e^(u+k)·v)/(bb + e^(u+k)) with the max trick, then aa, bb, pp take the
  ;; token (decay holds −e^time_decay). The state of four channels stays in registers.
  (func (export "wkv4") (param $r i32) (param $k i32) (param $v i32) (param $u i32) (param $dec i32)
        (param $aa i32) (param $bb i32) (param $pp i32) (param $out i32) (param $A i32) (param $T i32)
    (local $j i32) (local $t i32) (local $o i32) (local $jo i32)
    (local $sa v128) (local $sb v128) (local $sp v128) (local $uj v128) (local $dj v128)
    (local $kk v128) (local $vv v128) (local $ww v128) (local $p v128) (local $e1 v128) (local $e2 v128)
    (block $j_done (loop $j_loop
      (br_if $j_done (i32.ge_u (local.get $j) (local.get $A)))
      (local.set $jo (i32.shl (local.get $j) (i32.const 2)))
      (local.set $sa (v128.load (i32.add (local.get $aa) (local.get $jo))))
      (local.set $sb (v128.load (i32.add (local.get $bb) (local.get $jo))))
      (local.set $sp (v128.load (i32.add (local.get $pp) (local.get $jo))))
      (local.set $uj (v128.load (i32.add (local.get $u) (local.get $jo))))
      (local.set $dj (v128.load (i32.add (local.get $dec) (local.get $jo))))
      (local.set $t (i32.const 0))
      (block $t_done (loop $t_loop
        (br_if $t_done (i32.ge_u (local.get $t) (local.get $T)))
        (local.set $o (i32.add (i32.shl (i32.mul (local.get $t) (local.get $A)) (i32.const 2)) (local.get $jo)))
        (local.set $kk (v128.load (i32.add (local.get $k) (local.get $o))))
        (local.set $vv (v128.load (i32.add (local.get $v) (local.get $o))))
        (local.set $ww (f32x4.add (local.get $uj) (local.get $kk)))
        (local.set $p (f32x4.max (local.get $sp) (local.get $ww)))
        (local.set $e1 (call $exp4 (f32x4.sub (local.get $sp) (local.get $p))))
        (local.set $e2 (call $exp4 (f32x4.sub (local.get $ww) (local.get $p))))
        (v128.store (i32.add (local.get $out) (local.get $o))
          (f32x4.mul (call $sigm4 (v128.load (i32.add (local.get $r) (local.get $o))))
            (f32x4.div
              (f32x4.add (f32x4.mul (local.get $e1) (local.get $sa)) (f32x4.mul (local.get $e2) (local.get $vv)))
              (f32x4.add (f32x4.mul (local.get $e1) (local.get $sb)) (local.get $e2)))))
        (local.set $ww (f32x4.add (local.get $dj) (local.get $sp)))
        (local.set $p (f32x4.max (local.get $ww) (local.get $kk)))
        (local.set $e1 (call $exp4 (f32x4.sub (local.get $ww) (local.get $p))))
        (local.set $e2 (call $exp4 (f32x4.sub (local.get $kk) (local.get $p))))
        (local.set $sa (f32x4.add (f32x4.mul (local.get $e1) (local.get $sa)) (f32x4.mul (local.get $e2) (local.get $vv))))
        (local.set $sb (f32x4.add (f32x4.mul (local.get $e1) (local.get $sb)) (local.get $e2)))
        (local.set $sp (local.get $p))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $t_loop)))
      (v128.store (i32.add (local.get $aa) (local.get $jo)) (local.get $sa))
      (v128.store (i32.add (local.get $bb) (local.get $jo)) (local.get $sb))
      (v128.store (i32.add (local.get $pp) (local.get $jo)) (local.get $sp))
      (local.set $j (i32.add (local.get $j) (i32.const 4)))
      (br $j_loop))))

  ;; ---- RWKV-7 before the recurrence, T tokens of H heads × N channels (N a multiple of 4) ----
  ;; a = σ(a0 + al); w = exp(−e^−½·σ(w0 + wl)); vmix = v + (vfirst − v)·σ(v0 + vl), or in
  ;; layer 0 (v0 = 0) vfirst = vmix = v; kk = k ⊙ k_k L2-normalised per head; kka = kk ⊙ a;
  ;; kmod = k ⊙ (1 + (a − 1)·k_a). Per-channel vectors (a0 w0 v0 kkw ka) hold C = H·N values.
  (func (export "v7_gates") (param $a0 i32) (param $al i32) (param $w0 i32) (param $wl i32)
        (param $v0 i32) (param $vl i32) (param $v i32) (param $vf i32) (param $kkw i32) (param $ka i32)
        (param $k i32) (param $wd i32) (param $vm i32) (param $kkn i32) (param $kka i32) (param $km i32)
        (param $H i32) (param $N i32) (param $T i32)
    (local $t i32) (local $h i32) (local $n i32) (local $c i32) (local $j i32) (local $C i32)
    (local $z v128) (local $ss v128) (local $inv v128) (local $a v128) (local $kv v128) (local $vv v128)
    (local.set $C (i32.mul (local.get $H) (local.get $N)))
    (block $t_done (loop $t_loop
      (br_if $t_done (i32.ge_u (local.get $t) (local.get $T)))
      (local.set $h (i32.const 0))
      (block $h_done (loop $h_loop
        (br_if $h_done (i32.ge_u (local.get $h) (local.get $H)))
        ;; kk = k ⊙ k_k and its squared norm
        (local.set $ss (v128.const i32x4 0 0 0 0))
        (local.set $n (i32.const 0))
        (block $n_done (loop $n_loop
          (br_if $n_done (i32.ge_u (local.get $n) (local.get $N)))
          (local.set $c (i32.shl (i32.add (i32.mul (local.get $h) (local.get $N)) (local.get $n)) (i32.const 2)))
          (local.set $j (i32.add (i32.shl (i32.mul (local.get $t) (local.get $C)) (i32.const 2)) (local.get $c)))
          (local.set $z (f32x4.mul (v128.load (i32.add (local.get $k) (local.get $j)))
            (v128.load (i32.add (local.get $kkw) (local.get $c)))))
          (v128.store (i32.add (local.get $kkn) (local.get $j)) (local.get $z))
          (local.set $ss (f32x4.add (local.get $ss) (f32x4.mul (local.get $z) (local.get $z))))
          (local.set $n (i32.add (local.get $n) (i32.const 4)))
          (br $n_loop)))
        (local.set $inv (f32x4.splat (f32.div (f32.const 1)
          (f32.max (f32.sqrt (call $hsum (local.get $ss))) (f32.const 1e-12)))))
        (local.set $n (i32.const 0))
        (block $m_done (loop $m_loop
          (br_if $m_done (i32.ge_u (local.get $n) (local.get $N)))
          (local.set $c (i32.shl (i32.add (i32.mul (local.get $h) (local.get $N)) (local.get $n)) (i32.const 2)))
          (local.set $j (i32.add (i32.shl (i32.mul (local.get $t) (local.get $C)) (i32.const 2)) (local.get $c)))
          (local.set $a (call $sigm4 (f32x4.add (v128.load (i32.add (local.get $a0) (local.get $c)))
            (v128.load (i32.add (local.get $al) (local.get $j))))))
          (local.set $z (f32x4.mul (v128.load (i32.add (local.get $kkn) (local.get $j))) (local.get $inv)))
          (v128.store (i32.add (local.get $kkn) (local.get $j)) (local.get $z))
          (v128.store (i32.add (local.get $kka) (local.get $j)) (f32x4.mul (local.get $z) (local.get $a)))
          (local.set $kv (v128.load (i32.add (local.get $k) (local.get $j))))
          (v128.store (i32.add (local.get $km) (local.get $j)) (f32x4.mul (local.get $kv)
            (f32x4.add (v128.const f32x4 1 1 1 1) (f32x4.mul (f32x4.sub (local.get $a) (v128.const f32x4 1 1 1 1))
              (v128.load (i32.add (local.get $ka) (local.get $c)))))))
          (v128.store (i32.add (local.get $wd) (local.get $j))
            (call $exp4 (f32x4.mul (v128.const f32x4 -0.606531 -0.606531 -0.606531 -0.606531)
              (call $sigm4 (f32x4.add (v128.load (i32.add (local.get $w0) (local.get $c)))
                (v128.load (i32.add (local.get $wl) (local.get $j))))))))
          (local.set $vv (v128.load (i32.add (local.get $v) (local.get $j))))
          (if (local.get $v0)
            (then
              (v128.store (i32.add (local.get $vm) (local.get $j)) (f32x4.add (local.get $vv)
                (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $vf) (local.get $j))) (local.get $vv))
                  (call $sigm4 (f32x4.add (v128.load (i32.add (local.get $v0) (local.get $c)))
                    (v128.load (i32.add (local.get $vl) (local.get $j)))))))))
            (else
              (v128.store (i32.add (local.get $vf) (local.get $j)) (local.get $vv))
              (v128.store (i32.add (local.get $vm) (local.get $j)) (local.get $vv))))
          (local.set $n (i32.add (local.get $n) (i32.const 4)))
          (br $m_loop)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $h_loop)))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (br $t_loop))))

  ;; ---- RWKV-7 after the recurrence: y = (GroupNorm(y) + (Σ_head r·kmod·rk)·vmix) ⊙ g ----
  ;; T tokens of H heads × N channels (N a multiple of 4); lnw, lnb, rk hold C = H·N values.
  (func (export "v7_out") (param $y i32) (param $lnw i32) (param $lnb i32) (param $r i32) (param $km i32)
        (param $rk i32) (param $vm i32) (param $g i32) (param $H i32) (param $N i32) (param $T i32)
        (param $eps f32)
    (local $t i32) (local $h i32) (local $n i32) (local $c i32) (local $j i32) (local $C i32)
    (local $acc v128) (local $bon v128) (local $mean v128) (local $inv v128) (local $d v128) (local $nf f32)
    (local.set $C (i32.mul (local.get $H) (local.get $N)))
    (local.set $nf (f32.convert_i32_u (local.get $N)))
    (block $t_done (loop $t_loop
      (br_if $t_done (i32.ge_u (local.get $t) (local.get $T)))
      (local.set $h (i32.const 0))
      (block $h_done (loop $h_loop
        (br_if $h_done (i32.ge_u (local.get $h) (local.get $H)))
        ;; the head's sum (mean) and bonus
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $bon (v128.const i32x4 0 0 0 0))
        (local.set $n (i32.const 0))
        (block $s_done (loop $s_loop
          (br_if $s_done (i32.ge_u (local.get $n) (local.get $N)))
          (local.set $c (i32.shl (i32.add (i32.mul (local.get $h) (local.get $N)) (local.get $n)) (i32.const 2)))
          (local.set $j (i32.add (i32.shl (i32.mul (local.get $t) (local.get $C)) (i32.const 2)) (local.get $c)))
          (local.set $acc (f32x4.add (local.get $acc) (v128.load (i32.add (local.get $y) (local.get $j)))))
          (local.set $bon (f32x4.add (local.get $bon) (f32x4.mul
            (f32x4.mul (v128.load (i32.add (local.get $r) (local.get $j))) (v128.load (i32.add (local.get $km) (local.get $j))))
            (v128.load (i32.add (local.get $rk) (local.get $c))))))
          (local.set $n (i32.add (local.get $n) (i32.const 4)))
          (br $s_loop)))
        (local.set $mean (f32x4.splat (f32.div (call $hsum (local.get $acc)) (local.get $nf))))
        (local.set $bon (f32x4.splat (call $hsum (local.get $bon))))
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $n (i32.const 0))
        (block $v_done (loop $v_loop
          (br_if $v_done (i32.ge_u (local.get $n) (local.get $N)))
          (local.set $j (i32.add (i32.shl (i32.mul (local.get $t) (local.get $C)) (i32.const 2))
            (i32.shl (i32.add (i32.mul (local.get $h) (local.get $N)) (local.get $n)) (i32.const 2))))
          (local.set $d (f32x4.sub (v128.load (i32.add (local.get $y) (local.get $j))) (local.get $mean)))
          (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $d) (local.get $d))))
          (local.set $n (i32.add (local.get $n) (i32.const 4)))
          (br $v_loop)))
        (local.set $inv (f32x4.splat (f32.div (f32.const 1)
          (f32.sqrt (f32.add (f32.div (call $hsum (local.get $acc)) (local.get $nf)) (local.get $eps))))))
        (local.set $n (i32.const 0))
        (block $o_done (loop $o_loop
          (br_if $o_done (i32.ge_u (local.get $n) (local.get $N)))
          (local.set $c (i32.shl (i32.add (i32.mul (local.get $h) (local.get $N)) (local.get $n)) (i32.const 2)))
          (local.set $j (i32.add (i32.shl (i32.mul (local.get $t) (local.get $C)) (i32.const 2)) (local.get $c)))
          (v128.store (i32.add (local.get $y) (local.get $j)) (f32x4.mul
            (f32x4.add
              (f32x4.add
                (f32x4.mul (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $y) (local.get $j))) (local.get $mean))
                  (local.get $inv)) (v128.load (i32.add (local.get $lnw) (local.get $c))))
                (v128.load (i32.add (local.get $lnb) (local.get $c))))
              (f32x4.mul (local.get $bon) (v128.load (i32.add (local.get $vm) (local.get $j)))))
            (v128.load (i32.add (local.get $g) (local.get $j)))))
          (local.set $n (i32.add (local.get $n) (i32.const 4)))
          (br $o_loop)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $h_loop)))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (br $t_loop))))
)
