;; Matrix kernels of the RWKV engine: y[t·rows + r] = W[r,:] · x[t,:] for rows r0 ≤ r < r1 and
;; tokens t < T. W is row-major (rows × cols). Each row is read once from memory and reused
;; from cache for every token. These are the hot functions: nearly all decode time is here.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; horizontal sum of an f32x4
  (func $hsum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; ---- f32 weights: 16 values per step in four independent accumulators ----
  (func (export "mm_f32") (param $w i32) (param $x i32) (param $y i32) (param $rows i32)
        (param $cols i32) (param $T i32) (param $r0 i32) (param $r1 i32)
    (local $r i32) (local $t i32) (local $i i32) (local $wr i32) (local $xt i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $s f32)
    (local $n16 i32)
    (local.set $n16 (i32.and (local.get $cols) (i32.const -16)))
    (local.set $r (local.get $r0))
    (block $rows_done (loop $rows_loop
      (br_if $rows_done (i32.ge_u (local.get $r) (local.get $r1)))
      (local.set $wr (i32.add (local.get $w) (i32.shl (i32.mul (local.get $r) (local.get $cols)) (i32.const 2))))
      (local.set $t (i32.const 0))
      (block $t_done (loop $t_loop
        (br_if $t_done (i32.ge_u (local.get $t) (local.get $T)))
        (local.set $xt (i32.add (local.get $x) (i32.shl (i32.mul (local.get $t) (local.get $cols)) (i32.const 2))))
        (local.set $a0 (v128.const i32x4 0 0 0 0))
        (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0))
        (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $i_done (loop $i_loop
          (br_if $i_done (i32.ge_u (local.get $i) (local.get $n16)))
          (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul
            (v128.load offset=0 (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 2))))
            (v128.load offset=0 (i32.add (local.get $xt) (i32.shl (local.get $i) (i32.const 2)))))))
          (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul
            (v128.load offset=16 (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 2))))
            (v128.load offset=16 (i32.add (local.get $xt) (i32.shl (local.get $i) (i32.const 2)))))))
          (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul
            (v128.load offset=32 (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 2))))
            (v128.load offset=32 (i32.add (local.get $xt) (i32.shl (local.get $i) (i32.const 2)))))))
          (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul
            (v128.load offset=48 (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 2))))
            (v128.load offset=48 (i32.add (local.get $xt) (i32.shl (local.get $i) (i32.const 2)))))))
          (local.set $i (i32.add (local.get $i) (i32.const 16)))
          (br $i_loop)))
        (local.set $s (call $hsum (f32x4.add (f32x4.add (local.get $a0) (local.get $a1))
                                             (f32x4.add (local.get $a2) (local.get $a3)))))
        (block $tail_done (loop $tail
          (br_if $tail_done (i32.ge_u (local.get $i) (local.get $cols)))
          (local.set $s (f32.add (local.get $s) (f32.mul
            (f32.load (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 2))))
            (f32.load (i32.add (local.get $xt) (i32.shl (local.get $i) (i32.const 2)))))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $tail)))
        (f32.store (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $rows)) (local.get $r)) (i32.const 2))) (local.get $s))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $t_loop)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rows_loop))))

  ;; ---- bf16 weights: 16 values per step; a bf16 is the top half of an f32 ----
  (func (export "mm_bf16") (param $w i32) (param $x i32) (param $y i32) (param $rows i32)
        (param $cols i32) (param $T i32) (param $r0 i32) (param $r1 i32)
    (local $r i32) (local $t i32) (local $i i32) (local $wr i32) (local $xt i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $s f32)
    (local $n16 i32) (local $v0 v128) (local $v1 v128) (local $xp i32)
    (local.set $n16 (i32.and (local.get $cols) (i32.const -16)))
    (local.set $r (local.get $r0))
    (block $rows_done (loop $rows_loop
      (br_if $rows_done (i32.ge_u (local.get $r) (local.get $r1)))
      (local.set $wr (i32.add (local.get $w) (i32.shl (i32.mul (local.get $r) (local.get $cols)) (i32.const 1))))
      (local.set $t (i32.const 0))
      (block $t_done (loop $t_loop
        (br_if $t_done (i32.ge_u (local.get $t) (local.get $T)))
        (local.set $xt (i32.add (local.get $x) (i32.shl (i32.mul (local.get $t) (local.get $cols)) (i32.const 2))))
        (local.set $a0 (v128.const i32x4 0 0 0 0))
        (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0))
        (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $i (i32.const 0))
        (block $i_done (loop $i_loop
          (br_if $i_done (i32.ge_u (local.get $i) (local.get $n16)))
          (local.set $v0 (v128.load offset=0 (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 1)))))
          (local.set $v1 (v128.load offset=16 (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 1)))))
          (local.set $xp (i32.add (local.get $xt) (i32.shl (local.get $i) (i32.const 2))))
          (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul
            (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v0)) (i32.const 16))
            (v128.load offset=0 (local.get $xp)))))
          (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul
            (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v0)) (i32.const 16))
            (v128.load offset=16 (local.get $xp)))))
          (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul
            (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v1)) (i32.const 16))
            (v128.load offset=32 (local.get $xp)))))
          (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul
            (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v1)) (i32.const 16))
            (v128.load offset=48 (local.get $xp)))))
          (local.set $i (i32.add (local.get $i) (i32.const 16)))
          (br $i_loop)))
        (local.set $s (call $hsum (f32x4.add (f32x4.add (local.get $a0) (local.get $a1))
                                             (f32x4.add (local.get $a2) (local.get $a3)))))
        (block $tail_done (loop $tail
          (br_if $tail_done (i32.ge_u (local.get $i) (local.get $cols)))
          (local.set $s (f32.add (local.get $s) (f32.mul
            (f32.reinterpret_i32 (i32.shl (i32.load16_u (i32.add (local.get $wr) (i32.shl (local.get $i) (i32.const 1)))) (i32.const 16)))
            (f32.load (i32.add (local.get $xt) (i32.shl (local.get $i) (i32.const 2)))))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $tail)))
        (f32.store (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $rows)) (local.get $r)) (i32.const 2))) (local.get $s))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $t_loop)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rows_loop))))

  ;; ---- activation quantization for the integer kernels: per block of 32, scale to ±63 and
  ;; store q + 64 (1..127): i32x4.relaxed_dot_i8x16_i7x16_add_s wants its second operand in
  ;; 0..127 (x86 runs it as pmaddubsw, unsigned × signed). The kernels subtract 64·Σw. ----
  (func (export "quant_x") (param $x i32) (param $xq i32) (param $xs i32) (param $n i32)
    (local $b i32) (local $i i32) (local $amax f32) (local $v f32) (local $d f32) (local $id f32)
    (local $nb i32)
    (local.set $nb (i32.shr_u (local.get $n) (i32.const 5)))
    (block $done (loop $blocks
      (br_if $done (i32.ge_u (local.get $b) (local.get $nb)))
      (local.set $amax (f32.const 0))
      (local.set $i (i32.const 0))
      (block $m_done (loop $m
        (br_if $m_done (i32.ge_u (local.get $i) (i32.const 32)))
        (local.set $amax (f32.max (local.get $amax) (f32.abs (f32.load
          (i32.add (local.get $x) (i32.shl (i32.add (i32.shl (local.get $b) (i32.const 5)) (local.get $i)) (i32.const 2)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $m)))
      (local.set $d (f32.div (local.get $amax) (f32.const 63)))
      (local.set $id (select (f32.div (f32.const 1) (local.get $d)) (f32.const 0) (f32.gt (local.get $d) (f32.const 0))))
      (f32.store (i32.add (local.get $xs) (i32.shl (local.get $b) (i32.const 2))) (local.get $d))
      (local.set $i (i32.const 0))
      (block $q_done (loop $q
        (br_if $q_done (i32.ge_u (local.get $i) (i32.const 32)))
        (local.set $v (f32.load
          (i32.add (local.get $x) (i32.shl (i32.add (i32.shl (local.get $b) (i32.const 5)) (local.get $i)) (i32.const 2)))))
        (i32.store8 (i32.add (local.get $xq) (i32.add (i32.shl (local.get $b) (i32.const 5)) (local.get $i)))
          (i32.add (i32.const 64) (i32.trunc_sat_f32_s (f32.nearest (f32.mul (local.get $v) (local.get $id))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $q)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $blocks))))

;; ---- integer kernels (q8, q4): per row, blocks of 32 weights × 32 quantized activations ----
  ;; The activations carry a +64 offset (see quant_x), so Σ w·(x+64) − 64·Σw is the true dot;
  ;; the loader stores corr_b = 64·scale_b·Σw_b after the scales, so one short dot against the
  ;; activation scales removes the offset for the whole row. Four blocks at a time: their
  ;; integer dots are reduced together and scaled with one f32x4 multiply.

  ;; dot of one q8 block (32 bytes at $w) with 32 offset activations at $x
  (func $blk8 (param $w i32) (param $x i32) (result v128)
    (i32x4.relaxed_dot_i8x16_i7x16_add_s
      (v128.load offset=16 (local.get $w)) (v128.load offset=16 (local.get $x))
      (i32x4.relaxed_dot_i8x16_i7x16_add_s
        (v128.load (local.get $w)) (v128.load (local.get $x)) (v128.const i32x4 0 0 0 0))))

  ;; dot of one q4 block (16 bytes at $w: low nibbles values 0..15, high 16..31, minus 8)
  (func $blk4 (param $w i32) (param $x i32) (result v128)
    (local $raw v128)
    (local.set $raw (v128.load (local.get $w)))
    (i32x4.relaxed_dot_i8x16_i7x16_add_s
      (i8x16.sub (i8x16.shr_u (local.get $raw) (i32.const 4)) (v128.const i8x16 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8))
      (v128.load offset=16 (local.get $x))
      (i32x4.relaxed_dot_i8x16_i7x16_add_s
        (i8x16.sub (v128.and (local.get $raw) (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15))
                   (v128.const i8x16 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8))
        (v128.load (local.get $x)) (v128.const i32x4 0 0 0 0))))

  ;; Σ_b a_b·c_b over n floats (n any)
  (func $fdot (param $a i32) (param $c i32) (param $n i32) (result f32)
    (local $i i32) (local $acc v128) (local $s f32)
    (block $done (loop $l
      (br_if $done (i32.gt_u (i32.add (local.get $i) (i32.const 4)) (local.get $n)))
      (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul
        (v128.load (i32.add (local.get $a) (i32.shl (local.get $i) (i32.const 2))))
        (v128.load (i32.add (local.get $c) (i32.shl (local.get $i) (i32.const 2)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $l)))
    (local.set $s (call $hsum (local.get $acc)))
    (block $done2 (loop $l2
      (br_if $done2 (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $s (f32.add (local.get $s) (f32.mul
        (f32.load (i32.add (local.get $a) (i32.shl (local.get $i) (i32.const 2))))
        (f32.load (i32.add (local.get $c) (i32.shl (local.get $i) (i32.const 2)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l2)))
    (local.get $s))

  ;; shared body of mm_q8 / mm_q4: $bb = bytes per weight block (32 or 16)
  (func $mmq (param $w i32) (param $ws i32) (param $xq i32) (param $xs i32)
        (param $y i32) (param $rows i32) (param $cols i32) (param $T i32) (param $r0 i32) (param $r1 i32)
        (param $bb i32)
    (local $r i32) (local $t i32) (local $b i32) (local $nb i32) (local $wr i32) (local $wsr i32)
    (local $cr i32) (local $xt i32) (local $xst i32) (local $acc v128) (local $s f32)
    (local $nb4 i32) (local $d v128) (local $wb i32) (local $xb i32) (local $raw v128)
    (local $eight v128) (local $fifteen v128) (local $d0 v128) (local $d1 v128) (local $d2 v128)
    (local $d3 v128) (local $t0 v128) (local $t1 v128)
    (local.set $eight (v128.const i8x16 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8 8))
    (local.set $fifteen (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15))
    (local.set $nb (i32.shr_u (local.get $cols) (i32.const 5)))
    (local.set $nb4 (i32.and (local.get $nb) (i32.const -4)))
    (local.set $r (local.get $r0))
    (block $rows_done (loop $rows_loop
      (br_if $rows_done (i32.ge_u (local.get $r) (local.get $r1)))
      (local.set $wr (i32.add (local.get $w) (i32.mul (i32.mul (local.get $r) (local.get $nb)) (local.get $bb))))
      (local.set $wsr (i32.add (local.get $ws) (i32.shl (i32.mul (local.get $r) (local.get $nb)) (i32.const 2))))
      ;; corrections follow all rows' scales
      (local.set $cr (i32.add (local.get $wsr) (i32.shl (i32.mul (local.get $rows) (local.get $nb)) (i32.const 2))))
      (local.set $t (i32.const 0))
      (block $t_done (loop $t_loop
        (br_if $t_done (i32.ge_u (local.get $t) (local.get $T)))
        (local.set $xt (i32.add (local.get $xq) (i32.mul (local.get $t) (local.get $cols))))
        (local.set $xst (i32.add (local.get $xs) (i32.shl (i32.mul (local.get $t) (local.get $nb)) (i32.const 2))))
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $b (i32.const 0))
        (block $b_done (loop $b_loop
          (br_if $b_done (i32.ge_u (local.get $b) (local.get $nb4)))
          (local.set $wb (i32.add (local.get $wr) (i32.mul (local.get $b) (local.get $bb))))
          (local.set $xb (i32.add (local.get $xt) (i32.shl (local.get $b) (i32.const 5))))
          ;; (written out, not called: the calls cost as much as the arithmetic)
          (if (i32.eq (local.get $bb) (i32.const 32))
            (then               (local.set $d0 (i32x4.relaxed_dot_i8x16_i7x16_add_s
                (v128.load offset=16 (local.get $wb)) (v128.load offset=16 (local.get $xb))
                (i32x4.relaxed_dot_i8x16_i7x16_add_s
                  (v128.load offset=0 (local.get $wb)) (v128.load offset=0 (local.get $xb)) (v128.const i32x4 0 0 0 0))))
              (local.set $d1 (i32x4.relaxed_dot_i8x16_i7x16_add_s
                (v128.load offset=48 (local.get $wb)) (v128.load offset=48 (local.get $xb))
                (i32x4.relaxed_dot_i8x16_i7x16_add_s
                  (v128.load offset=32 (local.get $wb)) (v128.load offset=32 (local.get $xb)) (v128.const i32x4 0 0 0 0))))
              (local.set $d2 (i32x4.relaxed_dot_i8x16_i7x16_add_s
                (v128.load offset=80 (local.get $wb)) (v128.load offset=80 (local.get $xb))
                (i32x4.relaxed_dot_i8x16_i7x16_add_s
                  (v128.load offset=64 (local.get $wb)) (v128.load offset=64 (local.get $xb)) (v128.const i32x4 0 0 0 0))))
              (local.set $d3 (i32x4.relaxed_dot_i8x16_i7x16_add_s
                (v128.load offset=112 (local.get $wb)) (v128.load offset=112 (local.get $xb))
                (i32x4.relaxed_dot_i8x16_i7x16_add_s
                  (v128.load offset=96 (local.get $wb)) (v128.load offset=96 (local.get $xb)) (v128.const i32x4 0 0 0 0))))
              (local.set $t0 (i32x4.add
                (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $d0) (local.get $d1))
                (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $d0) (local.get $d1))))
              (local.set $t1 (i32x4.add
                (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $d2) (local.get $d3))
                (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $d2) (local.get $d3))))
              (local.set $d (i32x4.add
                (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $t0) (local.get $t1))
                (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $t0) (local.get $t1)))))
            (else
              (local.set $d0 (i32x4.relaxed_dot_i8x16_i7x16_add_s
                (i8x16.sub (i8x16.shr_u (local.tee $raw (v128.load offset=0 (local.get $wb))) (i32.const 4)) (local.get $eight))
                (v128.load offset=16 (local.get $xb))
                (i32x4.relaxed_dot_i8x16_i7x16_add_s
                  (i8x16.sub (v128.and (local.get $raw) (local.get $fifteen)) (local.get $eight))
                  (v128.load offset=0 (local.get $xb)) (v128.const i32x4 0 0 0 0))))
              (local.set $d1 (i32x4.relaxed_dot_i8x16_i7x16_add_s
                (i8x16.sub (i8x16.shr_u (local.tee $raw (v128.load offset=16 (local.get $wb))) (i32.const 4)) (local.get $eight))
                (v128.load offset=48 (local.get $xb))
                (i32x4.relaxed_dot_i8x16_i7x16_add_s
                  (i8x16.sub (v128.and (local.get $raw) (local.get $fifteen)) (local.get $eight))
                  (v128.load offset=32 (local.get $xb)) (v128.const i32x4 0 0 0 0))))
              (local.set $d2 (i32x4.relaxed_dot_i8x16_i7x16_add_s
                (i8x16.sub (i8x16.shr_u (local.tee $raw (v128.load offset=32 (local.get $wb))) (i32.const 4)) (local.get $eight))
                (v128.load offset=80 (local.get $xb))
                (i32x4.relaxed_dot_i8x16_i7x16_add_s
                  (i8x16.sub (v128.and (local.get $raw) (local.get $fifteen)) (local.get $eight))
                  (v128.load offset=64 (local.get $xb)) (v128.const i32x4 0 0 0 0))))
              (local.set $d3 (i32x4.relaxed_dot_i8x16_i7x16_add_s
                (i8x16.sub (i8x16.shr_u (local.tee $raw (v128.load offset=48 (local.get $wb))) (i32.const 4)) (local.get $eight))
                (v128.load offset=112 (local.get $xb))
                (i32x4.relaxed_dot_i8x16_i7x16_add_s
                  (i8x16.sub (v128.and (local.get $raw) (local.get $fifteen)) (local.get $eight))
                  (v128.load offset=96 (local.get $xb)) (v128.const i32x4 0 0 0 0))))
              (local.set $t0 (i32x4.add
                (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $d0) (local.get $d1))
                (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $d0) (local.get $d1))))
              (local.set $t1 (i32x4.add
                (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $d2) (local.get $d3))
                (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $d2) (local.get $d3))))
              (local.set $d (i32x4.add
                (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $t0) (local.get $t1))
                (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $t0) (local.get $t1))))))
          (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (f32x4.convert_i32x4_s (local.get $d))
            (f32x4.mul (v128.load (i32.add (local.get $wsr) (i32.shl (local.get $b) (i32.const 2))))
                       (v128.load (i32.add (local.get $xst) (i32.shl (local.get $b) (i32.const 2))))))))
          (local.set $b (i32.add (local.get $b) (i32.const 4)))
          (br $b_loop)))
        (local.set $s (call $hsum (local.get $acc)))
        ;; leftover blocks, one at a time
        (block $l_done (loop $l_loop
          (br_if $l_done (i32.ge_u (local.get $b) (local.get $nb)))
          (local.set $wb (i32.add (local.get $wr) (i32.mul (local.get $b) (local.get $bb))))
          (local.set $xb (i32.add (local.get $xt) (i32.shl (local.get $b) (i32.const 5))))
          (local.set $d (if (result v128) (i32.eq (local.get $bb) (i32.const 32))
            (then (call $blk8 (local.get $wb) (local.get $xb)))
            (else (call $blk4 (local.get $wb) (local.get $xb)))))
          (local.set $s (f32.add (local.get $s) (f32.mul
            (f32.convert_i32_s (i32.add
              (i32.add (i32x4.extract_lane 0 (local.get $d)) (i32x4.extract_lane 1 (local.get $d)))
              (i32.add (i32x4.extract_lane 2 (local.get $d)) (i32x4.extract_lane 3 (local.get $d)))))
            (f32.mul (f32.load (i32.add (local.get $wsr) (i32.shl (local.get $b) (i32.const 2))))
                     (f32.load (i32.add (local.get $xst) (i32.shl (local.get $b) (i32.const 2))))))))
          (local.set $b (i32.add (local.get $b) (i32.const 1)))
          (br $l_loop)))
        ;; remove the activation offset: − Σ_b xs_b · corr_b
        (local.set $s (f32.sub (local.get $s)
          (call $fdot (local.get $xst) (i32.add (local.get $cr) (i32.const 0)) (local.get $nb))))
        (f32.store (i32.add (local.get $y) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $rows)) (local.get $r)) (i32.const 2)))
          (local.get $s))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $t_loop)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rows_loop))))

  (func (export "mm_q8") (param $w i32) (param $ws i32) (param $xq i32) (param $xs i32)
        (param $y i32) (param $rows i32) (param $cols i32) (param $T i32) (param $r0 i32) (param $r1 i32)
    (call $mmq (local.get $w) (local.get $ws) (local.get $xq) (local.get $xs) (local.get $y)
      (local.get $rows) (local.get $cols) (local.get $T) (local.get $r0) (local.get $r1) (i32.const 32)))

  (func (export "mm_q4") (param $w i32) (param $ws i32) (param $xq i32) (param $xs i32)
        (param $y i32) (param $rows i32) (param $cols i32) (param $T i32) (param $r0 i32) (param $r1 i32)
    (call $mmq (local.get $w) (local.get $ws) (local.get $xq) (local.get $xs) (local.get $y)
      (local.get $rows) (local.get $cols) (local.get $T) (local.get $r0) (local.get $r1) (i32.const 16)))

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
)
