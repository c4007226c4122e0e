// Batch Ed25519 verification with ZIP-215 rules (as `ed25519-consensus` 2.x
// `VerificationKey::verify`), one invocation per signature, u32 arithmetic only.
//
// For item i with public key A_bytes, signature R_bytes ‖ S_bytes and message M:
//   1. S must be canonical (S < ℓ), else the signature is invalid;
//   2. k = SHA-512(R_bytes ‖ A_bytes ‖ M) mod ℓ, over the bytes exactly as given;
//   3. A and R are decompressed accepting non-canonical encodings (y ≥ p is reduced, x = 0 with
//      the sign bit set is accepted); an encoding with no point on the curve is invalid;
//   4. valid iff [8]([S]B - [k]A - R) is the identity.
//
// Bindings (group 0):
//   0 `consts`   read-only, written once by the host: SHA-512 round constants, ℓ, the curve
//                constants d, 2d, √-1, the basepoint table and the curve program (layout at the
//                offsets below);
//   1 `spans`    per item: (first word of its record in `data`, message length in bytes);
//   2 `data`     the records: S (8 words) ‖ R (8) ‖ A (8) ‖ M (⌈len/4⌉ words), bytes in memory
//                order (byte j of a record is byte j % 4 of word j / 4, little-endian), the
//                unused bytes of the last message word zero;
//   3 `verdicts` one word per item: 1 = valid, 2 = invalid, written once, at the end. The host
//                clears it first, so a 0 means the item was not finished (an error, never a
//                verdict);
//   4 `params`   see `Params`;
//   5 `scratch`  per-lane state that outlives a dispatch (see "Steps" below).
//
// Steps. The work of one signature is split over many dispatches of this same entry point, each
// doing a bounded amount of it and keeping its state in `scratch`: the first hashes up to
// `blocks_per_step` SHA-512 blocks (after checking S), the next ones go on hashing, one reduces
// the hash and prepares the interpreter (FINISH), and the rest run `instrs_per_step`
// instructions of the curve program each. The host issues as many dispatches as the longest
// message of the chunk needs. Short dispatches keep a GPU responsive (no watchdog resets), and
// they are required on llvmpipe, whose generated code counts every loop iteration of an
// invocation against one budget of 65,535 (LP_MAX_TGSI_LOOP_ITERATIONS) and silently leaves
// every loop once it is spent. A step is therefore also checked after the fact: it ends with a
// loop of `params.sentinel` iterations (a count the compiler cannot know), and if that loop
// fell short the lane is marked failed and never writes a verdict.
//
// ---------------------------------------------------------------------------------------------
// Field arithmetic mod p = 2^255 - 19.
//
// An element is 20 limbs of radix 2^13 (`Fe`), value = Σ f[i]·2^(13i). Limbs 0..18 carry 13 bits
// and limb 19 carries bits 247..254 (8 bits), so a fully carried element is < 2^255 and a carry
// out of limb 19 (weight 2^255) folds back into limb 0 times 19.
//
// Invariant W ("weakly reduced"), held by every element stored or passed between functions:
//   f[0..18] ≤ 8447 (< 2^13 + 2^8), f[19] ≤ 255.
// Such an element is < 2^255·(1 + 2^-13) but not necessarily < p; `fe_canon` gives the unique
// representative in [0, p) for comparisons and sign tests.
//
// Multiplication bound: a column of the schoolbook product has at most 20 terms, each
// ≤ 8447² < 2^26.09, so a column is < 2^30.42, and adding the carry from the previous column
// (< 2^17.5) stays far below 2^32: no u32 overflow anywhere. The 39 columns are carried into
// 13-bit limbs h[0..39]; the product is < 2^510.01, so h[20..39] (the part ≥ 2^260) are each
// < 2^13. With 2^260 = 32·2^255 ≡ 32·19 = 608 (mod p), r[i] = h[i] + 608·h[20+i] < 2^22.3.
//
// `fe_carry` takes limbs < 2^24 to W: after one ripple limb 19 is < 2^24 + 2^11, its part from
// bit 8 up (< 2^16.01) times 19 (< 2^20.26) goes into limb 0, and the carry of limb 0 into limb 1
// is < 2^7.27 ≤ 155, so limb 1 ends ≤ 8191 + 155 ≤ 8447 and every other limb ≤ 8191.
//
// Addition: W + W has limbs ≤ 16894 < 2^24, then `fe_carry`.
// Subtraction: a - b = a + 2p - b with 2p written limb-wise as (16346, 16382 ×18, 510): every
// limb of 2p is ≥ the W bound of the limb it is subtracted from (8447, or 255 for limb 19), so no
// limb goes negative, and the sum is ≤ 8447 + 16382 < 2^24, then `fe_carry`.
// ---------------------------------------------------------------------------------------------

alias Fe = array<u32, 20>;

const MASK13: u32 = 0x1fffu;

// Offsets (in u32 words) into `consts`; the host writes this exact layout (ed25519.rs).
const K512_OFF: u32 = 0u;          // 80 round constants, each (lo, hi)
const ELL_OFF: u32 = 160u;         // ℓ as 8 little-endian words
const D_OFF: u32 = 168u;           // d (Fe)
const D2_OFF: u32 = 188u;          // 2d (Fe)
const SQRTM1_OFF: u32 = 208u;      // √-1 (Fe)
const BTABLE_OFF: u32 = 228u;      // [j]B for j = 0..=128 as affine Niels (y+x, y-x, 2dxy): 60 words each
const BTABLE_STRIDE: u32 = 60u;
const PROGRAM_OFF: u32 = 7968u;    // BTABLE_OFF + 129·60: the curve program's length, then its instructions

struct Params {
    items: u32,            // items in this dispatch (lanes beyond it return at once)
    lanes: u32,            // lanes `scratch` is laid out for (≥ items)
    sentinel: u32,         // iterations of the end-of-step check loop (> 1)
    blocks_per_step: u32,  // SHA-512 blocks per step (≥ 1)
    instrs_per_step: u32,  // curve-program instructions per step (≥ 1)
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> consts: array<u32>;
@group(0) @binding(1) var<storage, read> spans: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> data: array<u32>;
@group(0) @binding(3) var<storage, read_write> verdicts: array<u32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read_write> scratch: array<u32>;

fn fe_zero() -> Fe {
    var r: Fe;
    return r;
}

fn fe_one() -> Fe {
    var r: Fe;
    r[0] = 1u;
    return r;
}

// A constant from the host table.
fn fe_const(off: u32) -> Fe {
    var r: Fe;
    for (var i = 0u; i < 20u; i++) {
        r[i] = consts[off + i];
    }
    return r;
}

// Limbs < 2^24 in, W out (see the header).
fn fe_carry(a: Fe) -> Fe {
    var r = a;
    for (var i = 0u; i < 19u; i++) {
        r[i + 1u] += r[i] >> 13u;
        r[i] &= MASK13;
    }
    let hi = r[19] >> 8u;
    r[19] &= 0xffu;
    r[0] += 19u * hi;
    r[1] += r[0] >> 13u;
    r[0] &= MASK13;
    return r;
}

fn fe_add(a: Fe, b: Fe) -> Fe {
    var r: Fe;
    for (var i = 0u; i < 20u; i++) {
        r[i] = a[i] + b[i];
    }
    return fe_carry(r);
}

// Limb i of 2p in the 13-bit layout (16346, 16382 ×18, 510).
fn two_p_limb(i: u32) -> u32 {
    if (i == 0u) {
        return 16346u;
    }
    if (i == 19u) {
        return 510u;
    }
    return 16382u;
}

fn fe_sub(a: Fe, b: Fe) -> Fe {
    var r: Fe;
    for (var i = 0u; i < 20u; i++) {
        r[i] = a[i] + two_p_limb(i) - b[i];
    }
    return fe_carry(r);
}

fn fe_neg(a: Fe) -> Fe {
    return fe_sub(fe_zero(), a);
}

// The 39 product columns (each < 2^30.5, see the header) to W.
fn fe_reduce_wide(cols: array<u32, 40>) -> Fe {
    var c = cols;
    for (var k = 0u; k < 39u; k++) {
        c[k + 1u] += c[k] >> 13u;
        c[k] &= MASK13;
    }
    var r: Fe;
    for (var i = 0u; i < 20u; i++) {
        r[i] = c[i] + 608u * c[i + 20u];
    }
    return fe_carry(r);
}

fn fe_mul(a: Fe, b: Fe) -> Fe {
    var x = a;
    var y = b;
    var c: array<u32, 40>;
    for (var i = 0u; i < 20u; i++) {
        let xi = x[i];
        for (var j = 0u; j < 20u; j++) {
            c[i + j] += xi * y[j];
        }
    }
    return fe_reduce_wide(c);
}

// Same columns as fe_mul(a, a): the square terms once, the cross terms doubled. (Constant loop
// bounds, so that compilers can unroll both loops.)
fn fe_sq(a: Fe) -> Fe {
    var x = a;
    var c: array<u32, 40>;
    for (var i = 0u; i < 20u; i++) {
        let xi = x[i];
        let xi2 = xi << 1u;
        for (var j = 0u; j < 20u; j++) {
            if (j == i) {
                c[2u * i] += xi * xi;
            } else if (j > i) {
                c[i + j] += xi2 * x[j];
            }
        }
    }
    return fe_reduce_wide(c);
}

// The representative in [0, p), limbs fully carried (limbs 0..18 < 2^13, limb 19 < 2^8).
// Three carry passes bring any limbs < 2^24 below 2^255: the first folds at most 2^16·19 into
// limb 0, the second at most one more 19 (and only when the value then is small), the third
// only ripples. Then p is subtracted once if the value is ≥ p, i.e. if value + 19 ≥ 2^255.
fn fe_canon(a: Fe) -> Fe {
    var r = a;
    for (var round = 0u; round < 3u; round++) {
        for (var i = 0u; i < 19u; i++) {
            r[i + 1u] += r[i] >> 13u;
            r[i] &= MASK13;
        }
        let hi = r[19] >> 8u;
        r[19] &= 0xffu;
        r[0] += 19u * hi;
    }
    var t = r;
    t[0] += 19u;
    for (var i = 0u; i < 19u; i++) {
        t[i + 1u] += t[i] >> 13u;
        t[i] &= MASK13;
    }
    let ge_p = (t[19] >> 8u) != 0u;
    t[19] &= 0xffu;
    for (var i = 0u; i < 20u; i++) {
        r[i] = select(r[i], t[i], ge_p);
    }
    return r;
}

fn fe_is_zero(a: Fe) -> bool {
    let c = fe_canon(a);
    var acc = 0u;
    for (var i = 0u; i < 20u; i++) {
        acc |= c[i];
    }
    return acc == 0u;
}

fn fe_eq(a: Fe, b: Fe) -> bool {
    return fe_is_zero(fe_sub(a, b));
}

// The sign of x (RFC 8032): the low bit of its canonical encoding.
fn fe_is_negative(a: Fe) -> bool {
    return (fe_canon(a)[0] & 1u) == 1u;
}

// From 32 little-endian bytes (8 words), ignoring bit 255, without reducing mod p: a
// non-canonical y ≥ p is kept as is and is reduced by the arithmetic (ZIP-215). Result is W.
fn fe_from_words(w: array<u32, 8>) -> Fe {
    var x = w;
    x[7] &= 0x7fffffffu;
    var r: Fe;
    for (var i = 0u; i < 20u; i++) {
        let bit = 13u * i;
        let wi = bit >> 5u;
        let sh = bit & 31u;
        var v = x[wi] >> sh;
        if (sh > 19u && wi < 7u) {
            v |= x[wi + 1u] << (32u - sh);
        }
        r[i] = v & MASK13;
    }
    return r;
}

// ---------------------------------------------------------------------------------------------
// SHA-512 (FIPS 180-4) with each 64-bit word as vec2<u32>(lo, hi).
// ---------------------------------------------------------------------------------------------

fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    let carry = select(0u, 1u, lo < a.x);
    return vec2<u32>(lo, a.y + b.y + carry);
}

// Rotate right by n, 0 < n < 64, n ≠ 32 (every SHA-512 rotation amount qualifies).
fn rotr64(a: vec2<u32>, n: u32) -> vec2<u32> {
    var v = a;
    var s = n;
    if (s >= 32u) {
        v = a.yx;
        s -= 32u;
    }
    return vec2<u32>((v.x >> s) | (v.y << (32u - s)), (v.y >> s) | (v.x << (32u - s)));
}

// Shift right by n, 0 < n < 32.
fn shr64(a: vec2<u32>, n: u32) -> vec2<u32> {
    return vec2<u32>((a.x >> n) | (a.y << (32u - n)), a.y >> n);
}

fn bswap32(x: u32) -> u32 {
    return (x << 24u) | ((x & 0xff00u) << 8u) | ((x >> 8u) & 0xff00u) | (x >> 24u);
}

// Big-endian word w of the padded SHA-512 input R ‖ A ‖ M of `len` bytes, whose bytes start at
// data[base] and whose padded length is `nblocks` blocks of 128 bytes.
fn sha_input_word(base: u32, len: u32, nblocks: u32, w: u32) -> u32 {
    let total_words = nblocks * 32u;
    if (w == total_words - 2u) {
        return len >> 29u; // high half of the 64-bit bit length (the top 64 bits are zero)
    }
    if (w == total_words - 1u) {
        return len << 3u;
    }
    let bp = 4u * w;
    if (bp + 4u <= len) {
        return bswap32(data[base + w]);
    }
    if (bp > len) {
        return 0u;
    }
    // The word holding the 0x80 terminator: n = len - bp message bytes (0..3) first.
    let n = len - bp;
    var v = 0u;
    if (n > 0u) {
        v = bswap32(data[base + w]) & (0xffffffffu << (32u - 8u * n));
    }
    return v | (0x80000000u >> (8u * n));
}

fn k512(t: u32) -> vec2<u32> {
    return vec2<u32>(consts[K512_OFF + 2u * t], consts[K512_OFF + 2u * t + 1u]);
}

// Runs the SHA-512 compression over blocks first..last of the padded input (R ‖ A ‖ M, `len`
// bytes from data[base]) on the state h.
fn sha512_blocks(h: ptr<function, array<vec2<u32>, 8>>, base: u32, len: u32, nblocks: u32, first: u32, last: u32) {
    for (var blk = first; blk < last; blk++) {
        var w: array<vec2<u32>, 16>;
        for (var t = 0u; t < 16u; t++) {
            let hi = sha_input_word(base, len, nblocks, blk * 32u + 2u * t);
            let lo = sha_input_word(base, len, nblocks, blk * 32u + 2u * t + 1u);
            w[t] = vec2<u32>(lo, hi);
        }
        var a = (*h)[0];
        var b = (*h)[1];
        var c = (*h)[2];
        var d = (*h)[3];
        var e = (*h)[4];
        var f = (*h)[5];
        var g = (*h)[6];
        var hh = (*h)[7];
        for (var t = 0u; t < 80u; t++) {
            let i = t & 15u;
            if (t >= 16u) {
                let w15 = w[(t + 1u) & 15u];
                let w2 = w[(t + 14u) & 15u];
                let s0 = rotr64(w15, 1u) ^ rotr64(w15, 8u) ^ shr64(w15, 7u);
                let s1 = rotr64(w2, 19u) ^ rotr64(w2, 61u) ^ shr64(w2, 6u);
                w[i] = add64(add64(w[i], s0), add64(w[(t + 9u) & 15u], s1));
            }
            let bs1 = rotr64(e, 14u) ^ rotr64(e, 18u) ^ rotr64(e, 41u);
            let ch = (e & f) ^ (~e & g);
            let t1 = add64(add64(add64(hh, bs1), add64(ch, k512(t))), w[i]);
            let bs0 = rotr64(a, 28u) ^ rotr64(a, 34u) ^ rotr64(a, 39u);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = add64(bs0, maj);
            hh = g;
            g = f;
            f = e;
            e = add64(d, t1);
            d = c;
            c = b;
            b = a;
            a = add64(t1, t2);
        }
        (*h)[0] = add64((*h)[0], a);
        (*h)[1] = add64((*h)[1], b);
        (*h)[2] = add64((*h)[2], c);
        (*h)[3] = add64((*h)[3], d);
        (*h)[4] = add64((*h)[4], e);
        (*h)[5] = add64((*h)[5], f);
        (*h)[6] = add64((*h)[6], g);
        (*h)[7] = add64((*h)[7], hh);
    }
}

fn sha512_iv() -> array<vec2<u32>, 8> {
    return array<vec2<u32>, 8>(
        vec2<u32>(0xf3bcc908u, 0x6a09e667u), vec2<u32>(0x84caa73bu, 0xbb67ae85u),
        vec2<u32>(0xfe94f82bu, 0x3c6ef372u), vec2<u32>(0x5f1d36f1u, 0xa54ff53au),
        vec2<u32>(0xade682d1u, 0x510e527fu), vec2<u32>(0x2b3e6c1fu, 0x9b05688cu),
        vec2<u32>(0xfb41bd6bu, 0x1f83d9abu), vec2<u32>(0x137e2179u, 0x5be0cd19u));
}

// Blocks of the padded input of `len` bytes: ⌈(len + 1 + 16) / 128⌉.
fn sha512_block_count(len: u32) -> u32 {
    return (len + 144u) / 128u;
}

// ---------------------------------------------------------------------------------------------
// Scalars mod ℓ = 2^252 + 27742317777372353535851937790883648493, as 8 little-endian words.
// ---------------------------------------------------------------------------------------------

// x - ℓ and whether it borrowed (i.e. whether x < ℓ).
fn sub_ell(x: array<u32, 8>) -> array<u32, 9> {
    var r: array<u32, 9>;
    var borrow = 0u;
    for (var i = 0u; i < 8u; i++) {
        let a = x[i];
        let b = consts[ELL_OFF + i];
        r[i] = a - b - borrow;
        borrow = select(0u, 1u, a < b || (a == b && borrow == 1u));
    }
    r[8] = borrow;
    return r;
}

// The 512-bit little-endian integer mod ℓ, one bit at a time from the top: r ← 2r + bit, then
// r ← r - ℓ unless that borrows. r < ℓ < 2^253 throughout, so 2r + 1 fits in 8 words.
fn reduce512(x: array<u32, 16>) -> array<u32, 8> {
    var r: array<u32, 8>;
    for (var bit = 512u; bit > 0u; bit--) {
        let b = (x[(bit - 1u) >> 5u] >> ((bit - 1u) & 31u)) & 1u;
        for (var i = 7u; i > 0u; i--) {
            r[i] = (r[i] << 1u) | (r[i - 1u] >> 31u);
        }
        r[0] = (r[0] << 1u) | b;
        let t = sub_ell(r);
        if (t[8] == 0u) {
            for (var i = 0u; i < 8u; i++) {
                r[i] = t[i];
            }
        }
    }
    return r;
}

// x + c·(1, 1, ..., 1) over 8 words with c = 0x88888888 or 0x80808080; the scalars here are
// < 2^253 and the constants < 0.534·2^256, so the sum stays below 2^256.
fn add_recode_bias(x: array<u32, 8>, c: u32) -> array<u32, 8> {
    var r: array<u32, 8>;
    var carry = 0u;
    for (var i = 0u; i < 8u; i++) {
        let s = x[i] + c;
        let s2 = s + carry;
        r[i] = s2;
        carry = select(0u, 1u, s < x[i]) + select(0u, 1u, s2 < s);
    }
    return r;
}

// ---------------------------------------------------------------------------------------------
// The curve part: a field-op interpreter.
//
// Decompressing A and R, the table of multiples of -A, the double-scalar multiplication and
// the final cofactored identity check are one straight-line program of field operations that
// the host generates (ed25519.rs, `curve_program`, following curve25519-dalek's formulas) and
// stores in `consts`. Every invocation runs the same instructions (no data-dependent control
// flow in the curve work, so SIMD lanes stay together), and `fe_mul` and `fe_sq` each have a
// single call site: shader compilers inline
// every function at every call site, and with ~2,000 field products per signature written as
// code the shader would take minutes to compile (on llvmpipe) instead of seconds.
//
// Registers are field elements (W invariant) kept in `scratch` rather than in a private array:
// they must outlive a step, and a large private array indexed at run time is lowered by some
// drivers (llvmpipe among them) into chains of selects over every element. Register r of a lane
// is 10 words, two 16-bit limbs each (W limbs are < 2^14). An instruction is one u32:
//   bits 0..3 op, 4..10 d, 11..17 a, 18..24 b, 25..31 e.
// Ops (register numbers are d, a, b, e; `ok` starts true and only ever becomes false):
//   MUL    d ← a·b
//   SQR    d ← a²
//   ADD    d ← a + b
//   SUB    d ← a - b
//   COPY   d ← a
//   SEL    d..d+3 ← the Niels point for digit a of a scalar: b = 0: digit a (0..63) of k in
//          radix 16, from the table of [j](-A) held in registers TABLE_REG + 4j; b = 1: digit a
//          (0..31) of S in radix 256, from the basepoint table in `consts` (Z = 1). A negative
//          digit selects the negated entry (Y+X and Y-X swapped, 2dT negated).
//   SQRT   a ← d if b ≡ -e; ok ← ok ∧ (b ≡ e ∨ b ≡ -e). With a = r, d = r·√-1, b = v·r², e = u:
//          the end of sqrt_ratio_i(u, v) (r is a root of u/v iff v·r² = u; r·√-1 is iff v·r² = -u).
//   SIGN   d ← -a if the sign of a (the low bit of its canonical value) equals the sign bit of
//          encoding b (0: A, 1: R), else a. For a = r, a square root of u/v, this is -x for
//          the x that decompression picks (the root whose sign is the sign bit; -0 = 0): the
//          program works with -A and -R.
//   IDENT  ok ← ok ∧ (d ≡ 0) ∧ (a ≡ b): (X : Y : Z) is the identity.
// Unknown ops clear `ok`, so a corrupted program can only reject.
// ---------------------------------------------------------------------------------------------

const OP_MUL: u32 = 1u;
const OP_SQR: u32 = 2u;
const OP_ADD: u32 = 3u;
const OP_SUB: u32 = 4u;
const OP_COPY: u32 = 5u;
const OP_SEL: u32 = 6u;
const OP_SQRT: u32 = 7u;
const OP_SIGN: u32 = 8u;
const OP_IDENT: u32 = 9u;

// Registers the code below fills or reads by number (the host uses the same numbers).
const REG_ZERO: u32 = 0u;
const REG_ONE: u32 = 1u;
const REG_D: u32 = 2u;
const REG_D2: u32 = 3u;
const REG_SQRTM1: u32 = 4u;
const REG_YA: u32 = 5u;     // y of A as encoded (not reduced)
const REG_YR: u32 = 6u;     // y of R as encoded
const TABLE_REG: u32 = 40u; // [j](-A) for j = 0..=8 as Niels, 4 registers each
const NREGS: u32 = 76u;

// ---------------------------------------------------------------------------------------------
// Per-lane state in `scratch`. Word w of lane i is scratch[w·lanes + i], so that neighbouring
// lanes touch neighbouring words (coalesced on a GPU). Words:
//   0..760     the registers, 10 words each;
//   760..776   the SHA-512 state, 8 × (lo, hi);
//   776..784   the recoded k (k + 0x88..88), 784..792 the recoded S (S + 0x80..80);
//   792        the step state: bits 0..3 the phase, bit 4 `ok`, bits 8..31 the block (HASH) or
//              instruction (RUN) to go on from. The host clears it to 0 (START) before a chunk.
// The host allocates SCRATCH_WORDS words per lane.
// ---------------------------------------------------------------------------------------------

const SW_H: u32 = 760u;
const SW_KD: u32 = 776u;
const SW_SD: u32 = 784u;
const SW_STATE: u32 = 792u;
const SCRATCH_WORDS: u32 = 800u;

const PHASE_START: u32 = 0u;
const PHASE_HASH: u32 = 1u;
const PHASE_FINISH: u32 = 2u;
const PHASE_RUN: u32 = 3u;
const PHASE_DONE: u32 = 4u;
const PHASE_FAILED: u32 = 5u;

// This invocation's lane and the number of lanes `scratch` is laid out for.
var<private> lane: u32;
var<private> lanes: u32;

fn sload(w: u32) -> u32 {
    return scratch[w * lanes + lane];
}

fn sstore(w: u32, v: u32) {
    scratch[w * lanes + lane] = v;
}

fn reg_load(r: u32) -> Fe {
    var x: Fe;
    for (var j = 0u; j < 10u; j++) {
        let w = sload(r * 10u + j);
        x[2u * j] = w & 0xffffu;
        x[2u * j + 1u] = w >> 16u;
    }
    return x;
}

fn reg_store(r: u32, x: Fe) {
    for (var j = 0u; j < 10u; j++) {
        sstore(r * 10u + j, x[2u * j] | (x[2u * j + 1u] << 16u));
    }
}

fn load_h() -> array<vec2<u32>, 8> {
    var h: array<vec2<u32>, 8>;
    for (var i = 0u; i < 8u; i++) {
        h[i] = vec2<u32>(sload(SW_H + 2u * i), sload(SW_H + 2u * i + 1u));
    }
    return h;
}

fn store_h(h: array<vec2<u32>, 8>) {
    for (var i = 0u; i < 8u; i++) {
        sstore(SW_H + 2u * i, h[i].x);
        sstore(SW_H + 2u * i + 1u, h[i].y);
    }
}

fn load_words(off: u32) -> array<u32, 8> {
    var w: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        w[i] = data[off + i];
    }
    return w;
}

// After the last block: k = digest mod ℓ, the recoded digits of k and S, and the registers the
// program expects (0, 1, d, 2d, √-1, y of A, y of R).
fn finish_scalars(base: u32) {
    let h = load_h();
    // The digest as the little-endian 512-bit integer Scalar::from_hash reduces: word 2i holds
    // digest bytes 8i..8i+3, i.e. the high half of H_i, byte-swapped.
    var x: array<u32, 16>;
    for (var i = 0u; i < 8u; i++) {
        x[2u * i] = bswap32(h[i].y);
        x[2u * i + 1u] = bswap32(h[i].x);
    }
    // Signed digits: k in radix 16 (digits in [-8, 8)), S in radix 256 (digits in [-128, 128)).
    // Adding 0x88..88 (resp. 0x80..80) makes each nibble (byte) its digit plus 8 (128), so the
    // digits are read directly, top first, with no carries to propagate later.
    let kd = add_recode_bias(reduce512(x), 0x88888888u);
    let sd = add_recode_bias(load_words(base), 0x80808080u);
    for (var i = 0u; i < 8u; i++) {
        sstore(SW_KD + i, kd[i]);
        sstore(SW_SD + i, sd[i]);
    }
    reg_store(REG_ZERO, fe_zero());
    reg_store(REG_ONE, fe_one());
    reg_store(REG_D, fe_const(D_OFF));
    reg_store(REG_D2, fe_const(D2_OFF));
    reg_store(REG_SQRTM1, fe_const(SQRTM1_OFF));
    reg_store(REG_YA, fe_from_words(load_words(base + 16u)));
    reg_store(REG_YR, fe_from_words(load_words(base + 8u)));
}

// Runs instructions start..end of the curve program; returns the updated `ok`.
fn run_program(base: u32, start: u32, end: u32, ok_in: bool) -> bool {
    var ok = ok_in;
    let sign_a = (data[base + 23u] >> 31u) == 1u;
    let sign_r = (data[base + 15u] >> 31u) == 1u;
    for (var pc = start; pc < end; pc++) {
        let ins = consts[PROGRAM_OFF + 1u + pc];
        let op = ins & 15u;
        let d = (ins >> 4u) & 127u;
        let a = (ins >> 11u) & 127u;
        let b = (ins >> 18u) & 127u;
        let e = (ins >> 25u) & 127u;
        switch op {
            case OP_MUL: {
                reg_store(d, fe_mul(reg_load(a), reg_load(b)));
            }
            case OP_SQR: {
                reg_store(d, fe_sq(reg_load(a)));
            }
            case OP_ADD: {
                reg_store(d, fe_add(reg_load(a), reg_load(b)));
            }
            case OP_SUB: {
                reg_store(d, fe_sub(reg_load(a), reg_load(b)));
            }
            case OP_COPY: {
                reg_store(d, reg_load(a));
            }
            case OP_SEL: {
                var ypx: Fe;
                var ymx: Fe;
                var z: Fe;
                var t2d: Fe;
                var negative = false;
                if (b == 0u) {
                    let nib = (sload(SW_KD + (a >> 3u)) >> (4u * (a & 7u))) & 15u;
                    negative = nib < 8u;
                    let r = TABLE_REG + 4u * select(nib - 8u, 8u - nib, negative);
                    ypx = reg_load(r);
                    ymx = reg_load(r + 1u);
                    z = reg_load(r + 2u);
                    t2d = reg_load(r + 3u);
                } else {
                    let byte = (sload(SW_SD + (a >> 2u)) >> (8u * (a & 3u))) & 255u;
                    negative = byte < 128u;
                    let off = BTABLE_OFF + BTABLE_STRIDE * select(byte - 128u, 128u - byte, negative);
                    ypx = fe_const(off);
                    ymx = fe_const(off + 20u);
                    z = fe_one();
                    t2d = fe_const(off + 40u);
                }
                if (negative) {
                    let t = ypx;
                    ypx = ymx;
                    ymx = t;
                    t2d = fe_neg(t2d);
                }
                reg_store(d, ypx);
                reg_store(d + 1u, ymx);
                reg_store(d + 2u, z);
                reg_store(d + 3u, t2d);
            }
            case OP_SQRT: {
                let check = reg_load(b);
                let u = reg_load(e);
                let correct = fe_eq(check, u);
                let flipped = fe_is_zero(fe_add(check, u));
                ok = ok && (correct || flipped);
                if (flipped) {
                    reg_store(a, reg_load(d));
                }
            }
            case OP_SIGN: {
                let x = reg_load(a);
                let sign_bit = select(sign_r, sign_a, b == 0u);
                if (fe_is_negative(x) == sign_bit) {
                    reg_store(d, fe_neg(x));
                } else {
                    reg_store(d, x);
                }
            }
            case OP_IDENT: {
                ok = ok && fe_is_zero(reg_load(d)) && fe_eq(reg_load(a), reg_load(b));
            }
            default: {
                ok = false;
            }
        }
    }
    return ok;
}

// One step for one item (see "Steps" at the top).
@compute @workgroup_size(64)
fn verify(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x;
    if (idx >= params.items) {
        return;
    }
    lane = idx;
    lanes = params.lanes;
    let state = sload(SW_STATE);
    var phase = state & 15u;
    if (phase >= PHASE_DONE) {
        return;
    }
    var ok = ((state >> 4u) & 1u) == 1u;
    var counter = state >> 8u;
    let span = spans[idx];
    let base = span.x;
    let hash_len = 64u + span.y;
    let nblocks = sha512_block_count(hash_len);
    var verdict = 0u;

    if (phase == PHASE_START) {
        // S < ℓ (Scalar::from_canonical_bytes), else invalid without further work.
        if (sub_ell(load_words(base))[8] == 0u) {
            verdict = 2u;
            phase = PHASE_DONE;
        } else {
            store_h(sha512_iv());
            ok = true;
            counter = 0u;
            phase = PHASE_HASH;
        }
    }
    if (phase == PHASE_HASH) {
        // k's hash runs over R_bytes ‖ A_bytes ‖ M, which starts at the record's R.
        var h = load_h();
        let last = min(nblocks, counter + params.blocks_per_step);
        sha512_blocks(&h, base + 8u, hash_len, nblocks, counter, last);
        store_h(h);
        counter = last;
        if (counter == nblocks) {
            phase = PHASE_FINISH;
        }
    } else if (phase == PHASE_FINISH) {
        finish_scalars(base);
        counter = 0u;
        phase = PHASE_RUN;
    } else if (phase == PHASE_RUN) {
        let len = consts[PROGRAM_OFF];
        let end = min(len, counter + params.instrs_per_step);
        ok = run_program(base, counter, end, ok);
        counter = end;
        if (counter == len) {
            verdict = select(2u, 1u, ok);
            phase = PHASE_DONE;
        }
    }

    // The end-of-step check: a loop whose trip count the compiler cannot know. Had a loop budget
    // (llvmpipe) run out anywhere in this step, this loop stops after one iteration and the
    // lane's results cannot be trusted: it is failed for good and writes no verdict.
    var spins = 0u;
    for (var i = 0u; i < params.sentinel; i++) {
        spins += 1u;
    }
    if (spins != params.sentinel) {
        sstore(SW_STATE, PHASE_FAILED);
        return;
    }
    sstore(SW_STATE, phase | (select(0u, 1u, ok) << 4u) | (counter << 8u));
    if (verdict != 0u) {
        verdicts[idx] = verdict;
    }
}

// ---------------------------------------------------------------------------------------------
// Test support (not used for verification): the field operations on given inputs, so that the
// tests can check the limb arithmetic directly against exact integers. Case i reads
// a = data[48i..48i+20], b = data[48i+20..48i+40] (W limbs) and c = data[48i+40..48i+48]
// (32 bytes), and writes scratch[128i..]: a·b, a², a + b, a - b, canon(a), from_words(c) (20
// words each), then a ≡ 0, a ≡ b and the sign of a (1 or 0).
// ---------------------------------------------------------------------------------------------

fn put_fe(off: u32, x: Fe) {
    for (var j = 0u; j < 20u; j++) {
        scratch[off + j] = x[j];
    }
}

@compute @workgroup_size(64)
fn field_ops(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= params.items) {
        return;
    }
    var a: Fe;
    var b: Fe;
    for (var j = 0u; j < 20u; j++) {
        a[j] = data[48u * i + j];
        b[j] = data[48u * i + 20u + j];
    }
    let out = 128u * i;
    put_fe(out, fe_mul(a, b));
    put_fe(out + 20u, fe_sq(a));
    put_fe(out + 40u, fe_add(a, b));
    put_fe(out + 60u, fe_sub(a, b));
    put_fe(out + 80u, fe_canon(a));
    put_fe(out + 100u, fe_from_words(load_words(48u * i + 40u)));
    scratch[out + 120u] = select(0u, 1u, fe_is_zero(a));
    scratch[out + 121u] = select(0u, 1u, fe_eq(a, b));
    scratch[out + 122u] = select(0u, 1u, fe_is_negative(a));
}
