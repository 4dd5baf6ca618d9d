;; Load-time byte work in WebAssembly SIMD (built by simd_build.ts into _simd_wasm.ts): the q8/q4
;; kernels' matrix layout produced in place, the embedding's layer norm, f32 → bf16, and the
;; integers and scales of ggml's Q8_0/Q4_0 blocks taken apart. Every result is bit-identical to
;; the TypeScript it replaces (tests/simd_test.ts compares them).
;;
;; Memory 0 is imported (`env.target`: the arena memory a matrix lives in, or any memory when
;; none is written); memory 1 is the instance's own scratch, exported as `scratch`. All pointers
;; are byte offsets (i32, read as unsigned).
(module
  (import "env" "target" (memory 1 65536 shared))
  (memory (export "scratch") 1 65536)

  ;; Four rows of `$w` words at `$src` (scratch; rows `$rsw` words apart), group j of `$bg` (1
  ;; or 2) at src + 16·rsw·j, interleaved by words into `$dst` (target): word c of row r to the
  ;; word (c·bg + j)·4 + r, or with `$unit4` (units of four columns) to
  ;; ((c>>2)·bg + j)·16 + (c&3)·4 + r.
  (func $ilv (param $src i32) (param $dst i32) (param $w i32) (param $bg i32) (param $unit4 i32)
    (param $rsw i32)
    (local $j i32) (local $c i32) (local $rs i32) (local $s i32) (local $d i32) (local $stride i32)
    (local $a v128) (local $b v128) (local $x v128) (local $y v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $rs (i32.shl (local.get $rsw) (i32.const 2)))
    (local.set $stride
      (select (i32.const 16) (i32.shl (local.get $bg) (i32.const 4)) (local.get $unit4)))
    (loop $groups
      (local.set $c (i32.const 0))
      (block $done
        (loop $cols
          (br_if $done (i32.gt_u (i32.add (local.get $c) (i32.const 4)) (local.get $w)))
          (local.set $s (i32.add
            (i32.add (local.get $src) (i32.shl (local.get $c) (i32.const 2)))
            (i32.shl (i32.mul (local.get $j) (local.get $rs)) (i32.const 2))))
          (local.set $a (v128.load 1 (local.get $s)))
          (local.set $b (v128.load 1 (i32.add (local.get $s) (local.get $rs))))
          (local.set $x (v128.load 1 (i32.add (local.get $s) (i32.shl (local.get $rs) (i32.const 1)))))
          (local.set $y (v128.load 1 (i32.add (local.get $s) (i32.mul (local.get $rs) (i32.const 3)))))
          (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $a) (local.get $b)))
          (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $a) (local.get $b)))
          (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $x) (local.get $y)))
          (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $x) (local.get $y)))
          (local.set $d (i32.add (local.get $dst)
            (if (result i32) (local.get $unit4)
              (then (i32.shl
                (i32.add (i32.mul (i32.shr_u (local.get $c) (i32.const 2)) (local.get $bg)) (local.get $j))
                (i32.const 6)))
              (else (i32.shl
                (i32.add (i32.mul (local.get $c) (local.get $bg)) (local.get $j))
                (i32.const 4))))))
          (v128.store 0 (local.get $d)
            (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
          (v128.store 0 (i32.add (local.get $d) (local.get $stride))
            (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
          (v128.store 0 (i32.add (local.get $d) (i32.shl (local.get $stride) (i32.const 1)))
            (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
          (v128.store 0 (i32.add (local.get $d) (i32.mul (local.get $stride) (i32.const 3)))
            (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))
          (local.set $c (i32.add (local.get $c) (i32.const 4)))
          (br $cols)))
      ;; columns past the last four (never with unit4 and two groups: their rows hold 4k words)
      (block $tail_done
        (loop $tail
          (br_if $tail_done (i32.ge_u (local.get $c) (local.get $w)))
          (local.set $s (i32.add
            (i32.add (local.get $src) (i32.shl (local.get $c) (i32.const 2)))
            (i32.shl (i32.mul (local.get $j) (local.get $rs)) (i32.const 2))))
          (local.set $d (i32.add (local.get $dst)
            (i32.shl (i32.add (i32.mul (local.get $c) (local.get $bg)) (local.get $j)) (i32.const 4))))
          (i32.store 0 (local.get $d) (i32.load 1 (local.get $s)))
          (i32.store 0 offset=4 (local.get $d) (i32.load 1 (i32.add (local.get $s) (local.get $rs))))
          (i32.store 0 offset=8 (local.get $d)
            (i32.load 1 (i32.add (local.get $s) (i32.shl (local.get $rs) (i32.const 1)))))
          (i32.store 0 offset=12 (local.get $d)
            (i32.load 1 (i32.add (local.get $s) (i32.mul (local.get $rs) (i32.const 3)))))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br $tail)))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $groups (i32.lt_u (local.get $j) (local.get $bg)))))

  ;; One group of four q8 rows of `$cols` values at `$src` (scratch; rows `$rs` bytes apart,
  ;; blocks of 32 values `$bs` bytes apart) interleaved into `$dst` (target), and each
  ;; (row, block)'s i16 −Σq stored at `$corr` (target), four rows a block.
  (func $q8_group (param $src i32) (param $dst i32) (param $corr i32) (param $cols i32)
    (param $rs i32) (param $bs i32)
    (local $s i32) (local $d i32) (local $blk i32) (local $nb i32) (local $h i32)
    (local $a v128) (local $b v128) (local $x v128) (local $y v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local $v v128) (local $acc v128)
    (local.set $nb (i32.shr_u (local.get $cols) (i32.const 5)))
    (local.set $s (local.get $src))
    (local.set $d (local.get $dst))
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $blk) (local.get $nb)))
        (local.set $acc (v128.const i64x2 0 0))
        (local.set $h (i32.const 0))
        (loop $halves
          (local.set $a (v128.load 1 (local.get $s)))
          (local.set $b (v128.load 1 (i32.add (local.get $s) (local.get $rs))))
          (local.set $x (v128.load 1 (i32.add (local.get $s) (i32.shl (local.get $rs) (i32.const 1)))))
          (local.set $y (v128.load 1 (i32.add (local.get $s) (i32.mul (local.get $rs) (i32.const 3)))))
          (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $a) (local.get $b)))
          (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $a) (local.get $b)))
          (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $x) (local.get $y)))
          (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $x) (local.get $y)))
          (local.set $v (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
          (v128.store 0 (local.get $d) (local.get $v))
          (local.set $acc (i16x8.add (local.get $acc) (i16x8.extadd_pairwise_i8x16_s (local.get $v))))
          (local.set $v (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
          (v128.store 0 offset=16 (local.get $d) (local.get $v))
          (local.set $acc (i16x8.add (local.get $acc) (i16x8.extadd_pairwise_i8x16_s (local.get $v))))
          (local.set $v (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
          (v128.store 0 offset=32 (local.get $d) (local.get $v))
          (local.set $acc (i16x8.add (local.get $acc) (i16x8.extadd_pairwise_i8x16_s (local.get $v))))
          (local.set $v (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))
          (v128.store 0 offset=48 (local.get $d) (local.get $v))
          (local.set $acc (i16x8.add (local.get $acc) (i16x8.extadd_pairwise_i8x16_s (local.get $v))))
          (local.set $s (i32.add (local.get $s) (i32.const 16)))
          (local.set $d (i32.add (local.get $d) (i32.const 64)))
          (local.set $h (i32.add (local.get $h) (i32.const 1)))
          (br_if $halves (i32.lt_u (local.get $h) (i32.const 2))))
        ;; lane r: −Σ of row r's 32 values, as i16 (|Σ| ≤ 32·128)
        (local.set $v (i32x4.neg (i32x4.extadd_pairwise_i16x8_s (local.get $acc))))
        (v128.store64_lane 0 0 (local.get $corr) (i16x8.narrow_i32x4_s (local.get $v) (local.get $v)))
        (local.set $corr (i32.add (local.get $corr) (i32.const 8)))
        (local.set $s (i32.add (local.get $s) (i32.sub (local.get $bs) (i32.const 32))))
        (local.set $blk (i32.add (local.get $blk) (i32.const 1)))
        (br $blocks))))

  ;; A q8 matrix (`$pr` rows, a multiple of 4, of `$cols` values) written row-major in the
  ;; target, values at `$data`, f32 scales at `$scales`, rearranged in place into the kernels'
  ;; layout with its i16 corrections at `$corr`. Scratch must hold 4·cols bytes at 0.
  (func (export "finish_q8") (param $data i32) (param $scales i32) (param $corr i32)
    (param $pr i32) (param $cols i32)
    (local $g i32) (local $gb i32) (local $sb i32) (local $nb i32)
    (local.set $nb (i32.shr_u (local.get $cols) (i32.const 5)))
    (local.set $gb (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $sb (i32.shl (local.get $nb) (i32.const 4)))
    (block $done
      (loop $groups
        (br_if $done (i32.ge_u (local.get $g) (local.get $pr)))
        (memory.copy 1 0 (i32.const 0) (local.get $data) (local.get $gb))
        (call $q8_group (i32.const 0) (local.get $data) (local.get $corr) (local.get $cols)
          (local.get $cols) (i32.const 32))
        (memory.copy 1 0 (i32.const 0) (local.get $scales) (local.get $sb))
        (call $ilv (i32.const 0) (local.get $scales) (local.get $nb) (i32.const 1) (i32.const 0) (local.get $nb))
        (local.set $data (i32.add (local.get $data) (local.get $gb)))
        (local.set $scales (i32.add (local.get $scales) (local.get $sb)))
        (local.set $corr (i32.add (local.get $corr) (i32.shl (local.get $nb) (i32.const 3))))
        (local.set $g (i32.add (local.get $g) (i32.const 4)))
        (br $groups))))

  ;; A q8 matrix read as ggml Q8_0 blocks at `$data` (target): `$rows` rows of `$cols`/32
  ;; blocks of 34 bytes (an IEEE-half scale, then 32 int8), one row after another, running past
  ;; the values' room into the scale region; rearranged in place into what storing the rows
  ;; row-major and finish_q8 give: `$pr` rows (`$rows` rounded up to 4, the rows added zero),
  ;; scales times `$mul` at `$scales`, i16 corrections at `$corr`. Scratch: 4·34·cols/32 bytes
  ;; at 0. Groups go in order, each one's blocks copied to the scratch before its values are
  ;; written (they end before the next group's blocks begin: 4·32 < 4·34 bytes a block). The
  ;; halves wait in the upper half of the scale region (past the blocks' end, below the
  ;; corrections) and become the f32 scales in a last pass, in order, four at a time: scale i
  ;; lands on halves at most i + 1 (already read).
  (func (export "finish_q8_0") (param $data i32) (param $scales i32) (param $corr i32)
    (param $rows i32) (param $cols i32) (param $mul f32)
    (local $nb i32) (local $rs i32) (local $pr i32) (local $g i32) (local $have i32)
    (local $halves i32) (local $hp i32) (local $s i32) (local $end i32) (local $i i32)
    (local $n i32) (local $m v128) (local $h8 v128) (local $em v128) (local $sign v128)
    (local.set $nb (i32.shr_u (local.get $cols) (i32.const 5)))
    (local.set $rs (i32.mul (local.get $nb) (i32.const 34)))
    (local.set $pr (i32.and (i32.add (local.get $rows) (i32.const 3)) (i32.const -4)))
    (local.set $halves (i32.add (local.get $scales) (i32.shl (i32.mul (local.get $pr) (local.get $nb)) (i32.const 1))))
    (block $done
      (loop $groups
        (br_if $done (i32.ge_u (local.get $g) (local.get $pr)))
        ;; this group's blocks (the rows past `$rows` zero) to the scratch
        (local.set $have (i32.sub (local.get $rows) (local.get $g)))
        (if (i32.gt_u (local.get $have) (i32.const 4)) (then (local.set $have (i32.const 4))))
        (memory.copy 1 0 (i32.const 0)
          (i32.add (local.get $data) (i32.mul (local.get $g) (local.get $rs)))
          (i32.mul (local.get $have) (local.get $rs)))
        (memory.fill 1 (i32.mul (local.get $have) (local.get $rs)) (i32.const 0)
          (i32.mul (i32.sub (i32.const 4) (local.get $have)) (local.get $rs)))
        (call $q8_group (i32.const 2)
          (i32.add (local.get $data) (i32.mul (local.get $g) (local.get $cols)))
          (i32.add (local.get $corr) (i32.shl (i32.mul (local.get $g) (local.get $nb)) (i32.const 1)))
          (local.get $cols) (local.get $rs) (i32.const 34))
        ;; the halves of block b, rows 0..3 side by side (the scales' interleaving)
        (local.set $hp (i32.add (local.get $halves)
          (i32.shl (i32.mul (local.get $g) (local.get $nb)) (i32.const 1))))
        (local.set $s (i32.const 0))
        (local.set $end (i32.add (local.get $hp) (i32.shl (local.get $nb) (i32.const 3))))
        (block $h_done
          (loop $h
            (br_if $h_done (i32.ge_u (local.get $hp) (local.get $end)))
            (v128.store64_lane 0 0 (local.get $hp)
              (v128.load16_lane 1 3 (i32.add (local.get $s) (i32.mul (local.get $rs) (i32.const 3)))
                (v128.load16_lane 1 2 (i32.add (local.get $s) (i32.shl (local.get $rs) (i32.const 1)))
                  (v128.load16_lane 1 1 (i32.add (local.get $s) (local.get $rs))
                    (v128.load16_lane 1 0 (local.get $s) (v128.const i64x2 0 0))))))
            (local.set $s (i32.add (local.get $s) (i32.const 34)))
            (local.set $hp (i32.add (local.get $hp) (i32.const 8)))
            (br $h)))
        (local.set $g (i32.add (local.get $g) (i32.const 4)))
        (br $groups)))
    ;; the halves as f32 scales, four at a time (their number is a multiple of 4), exactly as
    ;; `$half` with `$mul` a positive power of two: the finite ones rebased by a product (exact,
    ;; subnormals included) then times `$mul`; infinities and NaNs (the quiet NaN 0x7fc00000)
    ;; put in after the product, which would leave them as they are
    (local.set $n (i32.mul (local.get $pr) (local.get $nb)))
    (local.set $m (f32x4.splat (local.get $mul)))
    (block $s_done
      (loop $s4
        (br_if $s_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $h8 (i32x4.extend_low_i16x8_u (v128.load64_zero 0
          (i32.add (local.get $halves) (i32.shl (local.get $i) (i32.const 1))))))
        (local.set $em (v128.and (local.get $h8) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)))
        (local.set $sign (i32x4.shl (v128.and (local.get $h8) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000))
          (i32.const 16)))
        (v128.store 0 (i32.add (local.get $scales) (i32.shl (local.get $i) (i32.const 2)))
          (v128.bitselect (v128.const i32x4 0x7fc00000 0x7fc00000 0x7fc00000 0x7fc00000)
            (v128.bitselect
              (v128.or (local.get $sign) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
              (f32x4.mul
                (v128.or (local.get $sign)
                  (f32x4.mul (i32x4.shl (local.get $em) (i32.const 13))
                    (v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112)))
                (local.get $m))
              (i32x4.ge_u (local.get $em) (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00)))
            (i32x4.gt_u (local.get $em) (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $s4))))

  ;; A q4 matrix likewise, in the kernels' pieces: its rows (`$pr`, a multiple of 4) in blocks of
  ;; 64 (the last the rest), each block's columns in panels of `$pw` (the last the rest), each
  ;; (block, panel) piece laid out as a matrix of its own (its groups of four rows in bands of two
  ;; whose blocks alternate, a last lone group on its own), the pieces one after another: a
  ;; block's panels in turn, then the next block. With one panel (`$pw` = `$cols`) that is the
  ;; whole matrix in bands. Each block's rows go through the scratch, which must hold 40·cols
  ;; bytes at 0.
  (func (export "finish_q4_panels") (param $data i32) (param $scales i32) (param $pr i32)
    (param $cols i32) (param $pw i32)
    (local $rb0 i32) (local $rbn i32) (local $c0 i32) (local $pc i32) (local $r i32) (local $bg i32)
    (local $nb i32) (local $rsw i32) (local $sbase i32) (local $d i32) (local $sd i32)
    (local.set $nb (i32.shr_u (local.get $cols) (i32.const 5)))
    (local.set $rsw (i32.shr_u (local.get $cols) (i32.const 3)))
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $rb0) (local.get $pr)))
        (local.set $rbn (select (i32.const 64) (i32.sub (local.get $pr) (local.get $rb0))
          (i32.le_u (i32.add (local.get $rb0) (i32.const 64)) (local.get $pr))))
        (local.set $sbase (i32.mul (local.get $rbn) (i32.shr_u (local.get $cols) (i32.const 1))))
        (memory.copy 1 0 (i32.const 0)
          (i32.add (local.get $data) (i32.mul (local.get $rb0) (i32.shr_u (local.get $cols) (i32.const 1))))
          (local.get $sbase))
        (memory.copy 1 0 (local.get $sbase)
          (i32.add (local.get $scales) (i32.mul (local.get $rb0) (i32.shl (local.get $nb) (i32.const 2))))
          (i32.mul (local.get $rbn) (i32.shl (local.get $nb) (i32.const 2))))
        (local.set $c0 (i32.const 0))
        (block $p_done
          (loop $panels
            (br_if $p_done (i32.ge_u (local.get $c0) (local.get $cols)))
            (local.set $pc (select (local.get $pw) (i32.sub (local.get $cols) (local.get $c0))
              (i32.le_u (i32.add (local.get $c0) (local.get $pw)) (local.get $cols))))
            (local.set $d (i32.add (local.get $data)
              (i32.shr_u (i32.add (i32.mul (local.get $rb0) (local.get $cols))
                                  (i32.mul (local.get $rbn) (local.get $c0))) (i32.const 1))))
            (local.set $sd (i32.add (local.get $scales)
              (i32.shr_u (i32.add (i32.mul (local.get $rb0) (local.get $cols))
                                  (i32.mul (local.get $rbn) (local.get $c0))) (i32.const 3))))
            (local.set $r (i32.const 0))
            (block $g_done
              (loop $groups
                (br_if $g_done (i32.ge_u (local.get $r) (local.get $rbn)))
                (local.set $bg (select (i32.const 2) (i32.const 1)
                  (i32.le_u (i32.add (local.get $r) (i32.const 8)) (local.get $rbn))))
                (call $ilv
                  (i32.add (i32.mul (local.get $r) (i32.shl (local.get $rsw) (i32.const 2)))
                    (i32.shr_u (local.get $c0) (i32.const 1)))
                  (local.get $d) (i32.shr_u (local.get $pc) (i32.const 3)) (local.get $bg) (i32.const 1)
                  (local.get $rsw))
                (call $ilv
                  (i32.add (local.get $sbase)
                    (i32.add (i32.mul (local.get $r) (i32.shl (local.get $nb) (i32.const 2)))
                      (i32.shr_u (local.get $c0) (i32.const 3))))
                  (local.get $sd) (i32.shr_u (local.get $pc) (i32.const 5)) (local.get $bg) (i32.const 0)
                  (local.get $nb))
                (local.set $d (i32.add (local.get $d) (i32.mul (local.get $bg) (i32.shl (local.get $pc) (i32.const 1)))))
                (local.set $sd (i32.add (local.get $sd) (i32.mul (local.get $bg) (i32.shr_u (local.get $pc) (i32.const 1)))))
                (local.set $r (i32.add (local.get $r) (i32.shl (local.get $bg) (i32.const 2))))
                (br $groups)))
            (local.set $c0 (i32.add (local.get $c0) (local.get $pc)))
            (br $panels)))
        (local.set $rb0 (i32.add (local.get $rb0) (i32.const 64)))
        (br $blocks))))

  ;; The f32 at `$x` and the one at `$q` (scratch), widened, as one f64x2.
  (func $pair (param $x i32) (param $q i32) (result v128)
    (f64x2.replace_lane 1
      (f64x2.splat (f64.promote_f32 (f32.load 1 (local.get $x))))
      (f64.promote_f32 (f32.load 1 (local.get $q)))))

  ;; `$rows` runs of `$n` f32 at `$x` (scratch), each layer-normed in place with the weights
  ;; `$w` and biases `$b` (scratch), computed exactly as norm.ts's normTS does in doubles: the
  ;; sums in order, one row per f64 lane (four rows at once), then (x − mean)·inv·w + b rounded
  ;; to f32.
  (func (export "norm_rows") (param $x i32) (param $w i32) (param $b i32) (param $rows i32)
    (param $n i32) (param $eps f64)
    (local $r i32) (local $i i32) (local $k i32) (local $rb i32)
    (local $p0 i32) (local $p1 i32) (local $p2 i32) (local $p3 i32) (local $o i32) (local $end i32)
    (local $s01 v128) (local $s23 v128) (local $m01 v128) (local $m23 v128)
    (local $d v128) (local $nn v128) (local $epsv v128) (local $one v128)
    (local $mean f64) (local $inv f64) (local $mv v128) (local $iv v128) (local $y v128)
    (local.set $rb (i32.shl (local.get $n) (i32.const 2)))
    (local.set $nn (f64x2.splat (f64.convert_i32_u (local.get $n))))
    (local.set $epsv (f64x2.splat (local.get $eps)))
    (local.set $one (f64x2.splat (f64.const 1)))
    (block $done
      (loop $quads
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        ;; the four rows (the last repeated when fewer remain: computed twice, written once)
        (local.set $p0 (i32.add (local.get $x) (i32.mul (local.get $r) (local.get $rb))))
        (local.set $p1 (select (i32.add (local.get $p0) (local.get $rb)) (local.get $p0)
          (i32.lt_u (i32.add (local.get $r) (i32.const 1)) (local.get $rows))))
        (local.set $p2 (select (i32.add (local.get $p0) (i32.shl (local.get $rb) (i32.const 1)))
          (local.get $p1) (i32.lt_u (i32.add (local.get $r) (i32.const 2)) (local.get $rows))))
        (local.set $p3 (select (i32.add (local.get $p0) (i32.mul (local.get $rb) (i32.const 3)))
          (local.get $p2) (i32.lt_u (i32.add (local.get $r) (i32.const 3)) (local.get $rows))))
        ;; means
        (local.set $s01 (v128.const f64x2 0 0))
        (local.set $s23 (v128.const f64x2 0 0))
        (local.set $o (i32.const 0))
        (block $m_done
          (loop $m
            (br_if $m_done (i32.ge_u (local.get $o) (local.get $rb)))
            (local.set $s01 (f64x2.add (local.get $s01) (call $pair
              (i32.add (local.get $p0) (local.get $o)) (i32.add (local.get $p1) (local.get $o)))))
            (local.set $s23 (f64x2.add (local.get $s23) (call $pair
              (i32.add (local.get $p2) (local.get $o)) (i32.add (local.get $p3) (local.get $o)))))
            (local.set $o (i32.add (local.get $o) (i32.const 4)))
            (br $m)))
        (local.set $m01 (f64x2.div (local.get $s01) (local.get $nn)))
        (local.set $m23 (f64x2.div (local.get $s23) (local.get $nn)))
        ;; variances
        (local.set $s01 (v128.const f64x2 0 0))
        (local.set $s23 (v128.const f64x2 0 0))
        (local.set $o (i32.const 0))
        (block $v_done
          (loop $v
            (br_if $v_done (i32.ge_u (local.get $o) (local.get $rb)))
            (local.set $d (f64x2.sub (call $pair
              (i32.add (local.get $p0) (local.get $o)) (i32.add (local.get $p1) (local.get $o)))
              (local.get $m01)))
            (local.set $s01 (f64x2.add (local.get $s01) (f64x2.mul (local.get $d) (local.get $d))))
            (local.set $d (f64x2.sub (call $pair
              (i32.add (local.get $p2) (local.get $o)) (i32.add (local.get $p3) (local.get $o)))
              (local.get $m23)))
            (local.set $s23 (f64x2.add (local.get $s23) (f64x2.mul (local.get $d) (local.get $d))))
            (local.set $o (i32.add (local.get $o) (i32.const 4)))
            (br $v)))
        ;; inv = 1 / √(v/n + eps)
        (local.set $s01 (f64x2.div (local.get $one) (f64x2.sqrt
          (f64x2.add (f64x2.div (local.get $s01) (local.get $nn)) (local.get $epsv)))))
        (local.set $s23 (f64x2.div (local.get $one) (f64x2.sqrt
          (f64x2.add (f64x2.div (local.get $s23) (local.get $nn)) (local.get $epsv)))))
        ;; each distinct row written: two columns a step
        (local.set $k (i32.const 0))
        (loop $write
          (if (i32.lt_u (i32.add (local.get $r) (local.get $k)) (local.get $rows))
            (then
              (if (i32.lt_u (local.get $k) (i32.const 2))
                (then
                  (local.set $mean (f64x2.extract_lane 0 (local.get $m01)))
                  (local.set $inv (f64x2.extract_lane 0 (local.get $s01)))
                  (if (local.get $k) (then
                    (local.set $mean (f64x2.extract_lane 1 (local.get $m01)))
                    (local.set $inv (f64x2.extract_lane 1 (local.get $s01))))))
                (else
                  (local.set $mean (f64x2.extract_lane 0 (local.get $m23)))
                  (local.set $inv (f64x2.extract_lane 0 (local.get $s23)))
                  (if (i32.eq (local.get $k) (i32.const 3)) (then
                    (local.set $mean (f64x2.extract_lane 1 (local.get $m23)))
                    (local.set $inv (f64x2.extract_lane 1 (local.get $s23)))))))
              (local.set $mv (f64x2.splat (local.get $mean)))
              (local.set $iv (f64x2.splat (local.get $inv)))
              (local.set $p0 (i32.add (local.get $x)
                (i32.mul (i32.add (local.get $r) (local.get $k)) (local.get $rb))))
              (local.set $o (i32.const 0))
              (local.set $end (i32.and (local.get $rb) (i32.const -8)))
              (block $w_done
                (loop $cols
                  (br_if $w_done (i32.ge_u (local.get $o) (local.get $end)))
                  (local.set $y (f64x2.add
                    (f64x2.mul
                      (f64x2.mul
                        (f64x2.sub
                          (f64x2.promote_low_f32x4 (v128.load64_zero 1
                            (i32.add (local.get $p0) (local.get $o))))
                          (local.get $mv))
                        (local.get $iv))
                      (f64x2.promote_low_f32x4 (v128.load64_zero 1
                        (i32.add (local.get $w) (local.get $o)))))
                    (f64x2.promote_low_f32x4 (v128.load64_zero 1
                      (i32.add (local.get $b) (local.get $o))))))
                  (v128.store64_lane 1 0 (i32.add (local.get $p0) (local.get $o))
                    (f32x4.demote_f64x2_zero (local.get $y)))
                  (local.set $o (i32.add (local.get $o) (i32.const 8)))
                  (br $cols)))
              (if (i32.lt_u (local.get $o) (local.get $rb))
                (then
                  (f32.store 1 (i32.add (local.get $p0) (local.get $o))
                    (f32.demote_f64 (f64.add
                      (f64.mul
                        (f64.mul
                          (f64.sub
                            (f64.promote_f32 (f32.load 1 (i32.add (local.get $p0) (local.get $o))))
                            (local.get $mean))
                          (local.get $inv))
                        (f64.promote_f32 (f32.load 1 (i32.add (local.get $w) (local.get $o)))))
                      (f64.promote_f32 (f32.load 1 (i32.add (local.get $b) (local.get $o)))))))))))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $write (i32.lt_u (local.get $k) (i32.const 4))))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $quads))))

  ;; `$n` f32 at `$src` (scratch) rounded to bf16 (to nearest even; NaN kept quiet) at `$dst`
  ;; (target), as dtype.ts's f32ToBf16.
  (func (export "f32_to_bf16") (param $src i32) (param $dst i32) (param $n i32)
    (local $i i32) (local $end i32) (local $a v128) (local $b v128) (local $x i32)
    (local.set $end (i32.and (local.get $n) (i32.const -8)))
    (block $done
      (loop $eights
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $a (call $bf16x4 (v128.load 1 (local.get $src))))
        (local.set $b (call $bf16x4 (v128.load 1 offset=16 (local.get $src))))
        (v128.store 0 (local.get $dst) (i16x8.narrow_i32x4_u (local.get $a) (local.get $b)))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (br $eights)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $x (i32.load 1 (local.get $src)))
        (i32.store16 0 (local.get $dst)
          (if (result i32) (i32.gt_u (i32.and (local.get $x) (i32.const 0x7fffffff)) (i32.const 0x7f800000))
            (then (i32.or (i32.shr_u (local.get $x) (i32.const 16)) (i32.const 0x40)))
            (else (i32.shr_u
              (i32.add (i32.add (local.get $x) (i32.const 0x7fff))
                (i32.and (i32.shr_u (local.get $x) (i32.const 16)) (i32.const 1)))
              (i32.const 16)))))
        (local.set $src (i32.add (local.get $src) (i32.const 4)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 2)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))

  ;; Four f32 (as bits) → their bf16 bits in the low halves of four i32 lanes.
  (func $bf16x4 (param $x v128) (result v128)
    (v128.bitselect
      (v128.or (i32x4.shr_u (local.get $x) (i32.const 16)) (v128.const i32x4 0x40 0x40 0x40 0x40))
      (i32x4.shr_u
        (i32x4.add (i32x4.add (local.get $x) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff))
          (v128.and (i32x4.shr_u (local.get $x) (i32.const 16)) (v128.const i32x4 1 1 1 1)))
        (i32.const 16))
      (i32x4.gt_s (v128.and (local.get $x) (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff))
        (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))))

  ;; The IEEE half `$h` as f32, exactly, times `$mul`; every NaN the quiet NaN 0x7fc00000
  ;; (what the TypeScript table gives).
  (func $half (param $h i32) (param $mul f32) (result f32)
    (local $em i32) (local $f f32)
    (local.set $em (i32.and (local.get $h) (i32.const 0x7fff)))
    (if (i32.ge_u (local.get $em) (i32.const 0x7c00))
      (then
        (local.set $f (f32.reinterpret_i32 (i32.or (i32.const 0x7f800000)
          (i32.shl (i32.and (local.get $h) (i32.const 0x8000)) (i32.const 16)))))
        (if (i32.gt_u (local.get $em) (i32.const 0x7c00))
          (then (local.set $f (f32.reinterpret_i32 (i32.const 0x7fc00000))))))
      (else
        (local.set $f (f32.reinterpret_i32 (i32.or
          (i32.reinterpret_f32 (f32.mul
            (f32.reinterpret_i32 (i32.shl (local.get $em) (i32.const 13)))
            (f32.const 0x1p112)))
          (i32.shl (i32.and (local.get $h) (i32.const 0x8000)) (i32.const 16)))))))
    (local.set $f (f32.mul (local.get $f) (local.get $mul)))
    (select (f32.reinterpret_i32 (i32.const 0x7fc00000)) (local.get $f)
      (f32.ne (local.get $f) (local.get $f))))

  ;; `$k` ggml blocks at `$raw` (scratch) of `$size` bytes (34: Q8_0, 18: Q4_0), each an f16
  ;; scale and `$size` − 2 bytes of integers: the integers to `$q`, one after another, and the
  ;; scales (times `$mul`) to `$s` as f32 (both scratch).
  (func (export "split_blocks") (param $raw i32) (param $k i32) (param $size i32) (param $q i32)
    (param $s i32) (param $mul f32)
    (local $i i32)
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $i) (local.get $k)))
        (f32.store 1 (local.get $s) (call $half (i32.load16_u 1 (local.get $raw)) (local.get $mul)))
        (v128.store 1 (local.get $q) (v128.load 1 offset=2 (local.get $raw)))
        (if (i32.eq (local.get $size) (i32.const 34))
          (then
            (v128.store 1 offset=16 (local.get $q) (v128.load 1 offset=18 (local.get $raw)))
            (local.set $q (i32.add (local.get $q) (i32.const 32))))
          (else (local.set $q (i32.add (local.get $q) (i32.const 16)))))
        (local.set $raw (i32.add (local.get $raw) (local.get $size)))
        (local.set $s (i32.add (local.get $s) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $blocks))))
  ;; `$k` ggml blocks of `$size` bytes (34: Q8_0, 18: Q4_0) at `$at` in the target, their
  ;; integers moved down in place to `$at`, one block after another (a block's bytes are loaded
  ;; before it is stored, and it only overwrites bytes of blocks already done), and their
  ;; scales (times `$mul`) to `$s` in the scratch as f32.
  (func (export "compact_blocks") (param $at i32) (param $k i32) (param $size i32) (param $s i32)
    (param $mul f32)
    (local $i i32) (local $src i32) (local $a v128) (local $b v128)
    (local.set $src (local.get $at))
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $i) (local.get $k)))
        (f32.store 1 (local.get $s) (call $half (i32.load16_u 0 (local.get $src)) (local.get $mul)))
        (local.set $a (v128.load 0 offset=2 (local.get $src)))
        (if (i32.eq (local.get $size) (i32.const 34))
          (then
            (local.set $b (v128.load 0 offset=18 (local.get $src)))
            (v128.store 0 (local.get $at) (local.get $a))
            (v128.store 0 offset=16 (local.get $at) (local.get $b))
            (local.set $at (i32.add (local.get $at) (i32.const 32))))
          (else
            (v128.store 0 (local.get $at) (local.get $a))
            (local.set $at (i32.add (local.get $at) (i32.const 16)))))
        (local.set $src (i32.add (local.get $src) (local.get $size)))
        (local.set $s (i32.add (local.get $s) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $blocks))))
  ;; `$n` values (a multiple of 32) of ggml Q8_0 blocks at `$raw` (scratch, 34 bytes a block) to
  ;; f32 at `$out` (scratch): q·(d·`$mul`) rounded once, as split_blocks then dequant_q8 give.
  (func (export "dequant_q8_0") (param $raw i32) (param $out i32) (param $n i32) (param $mul f32)
    (local $i i32)
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (call $q8_out (local.get $out)
          (f32x4.splat (call $half (i32.load16_u 1 (local.get $raw)) (local.get $mul)))
          (v128.load 1 offset=2 (local.get $raw)) (v128.load 1 offset=18 (local.get $raw)))
        (local.set $raw (i32.add (local.get $raw) (i32.const 34)))
        (local.set $out (i32.add (local.get $out) (i32.const 128)))
        (local.set $i (i32.add (local.get $i) (i32.const 32)))
        (br $blocks))))

  ;; One block's 32 q8 values (`$a`, `$b`) times `$d` (four lanes alike) as f32 at `$out`
  ;; (scratch).
  (func $q8_out (param $out i32) (param $d v128) (param $a v128) (param $b v128)
    (local $w v128)
    (local.set $w (i16x8.extend_low_i8x16_s (local.get $a)))
    (v128.store 1 (local.get $out) (f32x4.mul (local.get $d)
      (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $w)))))
    (v128.store 1 offset=16 (local.get $out) (f32x4.mul (local.get $d)
      (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $w)))))
    (local.set $w (i16x8.extend_high_i8x16_s (local.get $a)))
    (v128.store 1 offset=32 (local.get $out) (f32x4.mul (local.get $d)
      (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $w)))))
    (v128.store 1 offset=48 (local.get $out) (f32x4.mul (local.get $d)
      (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $w)))))
    (local.set $w (i16x8.extend_low_i8x16_s (local.get $b)))
    (v128.store 1 offset=64 (local.get $out) (f32x4.mul (local.get $d)
      (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $w)))))
    (v128.store 1 offset=80 (local.get $out) (f32x4.mul (local.get $d)
      (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $w)))))
    (local.set $w (i16x8.extend_high_i8x16_s (local.get $b)))
    (v128.store 1 offset=96 (local.get $out) (f32x4.mul (local.get $d)
      (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $w)))))
    (v128.store 1 offset=112 (local.get $out) (f32x4.mul (local.get $d)
      (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $w))))))

  ;; `$n` q8 values (a multiple of 32) at `$q` (scratch) times their block's f32 scale (`$s`,
  ;; scratch) to f32 at `$out` (scratch): q·d rounded once, as block.ts's dequantizeQ8.
  (func (export "dequant_q8") (param $q i32) (param $s i32) (param $out i32) (param $n i32)
    (local $i i32)
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (call $q8_out (local.get $out) (f32x4.splat (f32.load 1 (local.get $s)))
          (v128.load 1 (local.get $q)) (v128.load 1 offset=16 (local.get $q)))
        (local.set $q (i32.add (local.get $q) (i32.const 32)))
        (local.set $s (i32.add (local.get $s) (i32.const 4)))
        (local.set $out (i32.add (local.get $out) (i32.const 128)))
        (local.set $i (i32.add (local.get $i) (i32.const 32)))
        (br $blocks))))
)
