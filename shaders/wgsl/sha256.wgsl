// Batch SHA-256 (FIPS 180-4) and the RFC 6962 Merkle levels.
//
// Two entry points share one bind group layout shape (group 0):
//
// - `sha256_batch`: one invocation per message. Messages are packed by the host into
//   `msg_words`, each starting on a word boundary, bytes in memory order (byte i of a message is
//   byte i % 4 of word i / 4, little-endian within the word), the unused bytes of a message's last
//   word zero. `msg_spans[i]` = (first word, length in bytes). Padding and the bit length are
//   generated here, so a message may span any number of blocks. With `params.leaf` = 1 the
//   hashed stream is 0x00 ‖ message: the RFC 6962 leaf hash. Digest i goes to
//   `digests[(params.out_base + i) * 8 ..][..8]`.
// - `merkle_node`: one level of the tree. Node i of the output is SHA-256(0x01 ‖ in[2i] ‖
//   in[2i+1]); an odd last node is promoted unchanged. `params.n_in` = nodes in the input level,
//   `params.count` = nodes in the output level.
//
// Digests in `digests` and `level_in` are stored as their 32 bytes in order (word k holds
// digest bytes 4k..4k+3, little-endian within the word, like the message words), so the host
// reads them back as they are and a level feeds the next one directly.
//
// Dispatch is 2-D: invocation index = gid.y * params.row_stride + gid.x, so a batch may hold
// more than max_compute_workgroups_per_dimension * 64 items. Indices >= params.count return.
//
// The 64 round constants K come from a storage buffer written once by the host.

struct Params {
    // Invocations with work to do (messages, or output nodes).
    count: u32,
    // sha256_batch: 1 = prefix each message with 0x00 (RFC 6962 leaf hash), 0 = plain SHA-256.
    leaf: u32,
    // sha256_batch: first output slot of this dispatch.
    out_base: u32,
    // Invocations per row of the 2-D dispatch (workgroups along x * 64).
    row_stride: u32,
    // merkle_node: nodes in the input level.
    n_in: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> K: array<u32, 64>;
@group(0) @binding(2) var<storage, read> msg_words: array<u32>;
@group(0) @binding(3) var<storage, read> msg_spans: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> digests: array<u32>;
@group(0) @binding(5) var<storage, read> level_in: array<u32>;

const IV = array<u32, 8>(
    0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
    0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
);

fn rotr(x: u32, n: u32) -> u32 {
    return (x >> n) | (x << (32u - n));
}

fn bswap(x: u32) -> u32 {
    return (x << 24u) | ((x << 8u) & 0x00ff0000u) | ((x >> 8u) & 0x0000ff00u) | (x >> 24u);
}

fn small_s0(x: u32) -> u32 {
    return rotr(x, 7u) ^ rotr(x, 18u) ^ (x >> 3u);
}

fn small_s1(x: u32) -> u32 {
    return rotr(x, 17u) ^ rotr(x, 19u) ^ (x >> 10u);
}

// One round. The eight working variables keep their registers; the caller rotates their roles
// by rotating the arguments, so only `d` (which becomes e) and `h` (which becomes a) change.
fn rnd(a: u32, b: u32, c: u32, d: ptr<function, u32>, e: u32, f: u32, g: u32, h: ptr<function, u32>, kw: u32) {
    let t1 = *h + (rotr(e, 6u) ^ rotr(e, 11u) ^ rotr(e, 25u)) + ((e & f) ^ (~e & g)) + kw;
    let t2 = (rotr(a, 2u) ^ rotr(a, 13u) ^ rotr(a, 22u)) + ((a & b) ^ (a & c) ^ (b & c));
    *d = *d + t1;
    *h = t1 + t2;
}

// One SHA-256 compression of the block `m` (16 big-endian words) into `state`. Written out so
// that every array index is a constant (no dynamically indexed local arrays, which a driver may
// spill to memory); only K is indexed at run time, uniformly across invocations.
fn compress(state: array<u32, 8>, m: array<u32, 16>) -> array<u32, 8> {
    var a = state[0];
    var b = state[1];
    var c = state[2];
    var d = state[3];
    var e = state[4];
    var f = state[5];
    var g = state[6];
    var h = state[7];
    var w0 = m[0];
    var w1 = m[1];
    var w2 = m[2];
    var w3 = m[3];
    var w4 = m[4];
    var w5 = m[5];
    var w6 = m[6];
    var w7 = m[7];
    var w8 = m[8];
    var w9 = m[9];
    var w10 = m[10];
    var w11 = m[11];
    var w12 = m[12];
    var w13 = m[13];
    var w14 = m[14];
    var w15 = m[15];
    for (var i = 0u; i < 64u; i += 16u) {
        if (i > 0u) {
            // W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16], sixteen at a time in a ring.
            w0 += small_s0(w1) + w9 + small_s1(w14);
            w1 += small_s0(w2) + w10 + small_s1(w15);
            w2 += small_s0(w3) + w11 + small_s1(w0);
            w3 += small_s0(w4) + w12 + small_s1(w1);
            w4 += small_s0(w5) + w13 + small_s1(w2);
            w5 += small_s0(w6) + w14 + small_s1(w3);
            w6 += small_s0(w7) + w15 + small_s1(w4);
            w7 += small_s0(w8) + w0 + small_s1(w5);
            w8 += small_s0(w9) + w1 + small_s1(w6);
            w9 += small_s0(w10) + w2 + small_s1(w7);
            w10 += small_s0(w11) + w3 + small_s1(w8);
            w11 += small_s0(w12) + w4 + small_s1(w9);
            w12 += small_s0(w13) + w5 + small_s1(w10);
            w13 += small_s0(w14) + w6 + small_s1(w11);
            w14 += small_s0(w15) + w7 + small_s1(w12);
            w15 += small_s0(w0) + w8 + small_s1(w13);
        }
        rnd(a, b, c, &d, e, f, g, &h, K[i] + w0);
        rnd(h, a, b, &c, d, e, f, &g, K[i + 1u] + w1);
        rnd(g, h, a, &b, c, d, e, &f, K[i + 2u] + w2);
        rnd(f, g, h, &a, b, c, d, &e, K[i + 3u] + w3);
        rnd(e, f, g, &h, a, b, c, &d, K[i + 4u] + w4);
        rnd(d, e, f, &g, h, a, b, &c, K[i + 5u] + w5);
        rnd(c, d, e, &f, g, h, a, &b, K[i + 6u] + w6);
        rnd(b, c, d, &e, f, g, h, &a, K[i + 7u] + w7);
        rnd(a, b, c, &d, e, f, g, &h, K[i + 8u] + w8);
        rnd(h, a, b, &c, d, e, f, &g, K[i + 9u] + w9);
        rnd(g, h, a, &b, c, d, e, &f, K[i + 10u] + w10);
        rnd(f, g, h, &a, b, c, d, &e, K[i + 11u] + w11);
        rnd(e, f, g, &h, a, b, c, &d, K[i + 12u] + w12);
        rnd(d, e, f, &g, h, a, b, &c, K[i + 13u] + w13);
        rnd(c, d, e, &f, g, h, a, &b, K[i + 14u] + w14);
        rnd(b, c, d, &e, f, g, h, &a, K[i + 15u] + w15);
    }
    return array<u32, 8>(
        state[0] + a, state[1] + b, state[2] + c, state[3] + d,
        state[4] + e, state[5] + f, state[6] + g, state[7] + h,
    );
}

// Stores a digest (eight state words) at digests[o..o + 8] as its bytes in order.
fn store_digest(o: u32, s: array<u32, 8>) {
    digests[o] = bswap(s[0]);
    digests[o + 1u] = bswap(s[1]);
    digests[o + 2u] = bswap(s[2]);
    digests[o + 3u] = bswap(s[3]);
    digests[o + 4u] = bswap(s[4]);
    digests[o + 5u] = bswap(s[5]);
    digests[o + 6u] = bswap(s[6]);
    digests[o + 7u] = bswap(s[7]);
}

// Word k of the stored digest at level_in[o..o + 8] as a big-endian state word.
fn load_word(o: u32, k: u32) -> u32 {
    return bswap(level_in[o + k]);
}

// Word i of a message (little-endian memory order), zero past its last word.
fn message_word(base: u32, nwords: u32, i: u32) -> u32 {
    if (i < nwords) {
        return msg_words[base + i];
    }
    return 0u;
}

// Big-endian word j of the padded stream: [0x00 if leaf] ‖ message ‖ 0x80 ‖ 0x00* ‖ bit length
// (64-bit big-endian) in the last 8 bytes of the last block. `stream_len` = leaf + message
// length; `total_words` = 16 * blocks.
fn stream_word(base: u32, nwords: u32, leaf: u32, stream_len: u32, total_words: u32, j: u32) -> u32 {
    if (j + 2u == total_words) {
        return stream_len >> 29u;
    }
    if (j + 1u == total_words) {
        return stream_len << 3u;
    }
    var le: u32;
    if (leaf == 0u) {
        le = message_word(base, nwords, j);
    } else {
        // The stream is the message shifted by one byte: its byte 4j is the message's byte
        // 4j - 1 (the 0x00 prefix when j = 0).
        var prev = 0u;
        if (j > 0u) {
            prev = message_word(base, nwords, j - 1u);
        }
        le = (prev >> 24u) | (message_word(base, nwords, j) << 8u);
    }
    // Bytes past the message are already zero (the host zero-fills a message's last word and
    // message_word returns zero past it); place the 0x80 terminator.
    let first = j * 4u;
    if (stream_len >= first && stream_len - first < 4u) {
        le |= 0x80u << ((stream_len - first) * 8u);
    }
    return bswap(le);
}

@compute @workgroup_size(64)
fn sha256_batch(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * params.row_stride + gid.x;
    if (idx >= params.count) {
        return;
    }
    let span = msg_spans[idx];
    let base = span.x;
    let len = span.y;
    let leaf = select(0u, 1u, params.leaf != 0u);
    let stream_len = len + leaf;
    let nwords = (len + 3u) / 4u;
    // Room for the 0x80 byte and the 8-byte length.
    let blocks = (stream_len + 8u) / 64u + 1u;
    let total_words = blocks * 16u;

    var state = IV;
    for (var blk = 0u; blk < blocks; blk++) {
        let j = blk * 16u;
        let m = array<u32, 16>(
            stream_word(base, nwords, leaf, stream_len, total_words, j),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 1u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 2u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 3u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 4u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 5u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 6u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 7u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 8u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 9u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 10u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 11u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 12u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 13u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 14u),
            stream_word(base, nwords, leaf, stream_len, total_words, j + 15u),
        );
        state = compress(state, m);
    }
    store_digest((params.out_base + idx) * 8u, state);
}

@compute @workgroup_size(64)
fn merkle_node(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * params.row_stride + gid.x;
    if (i >= params.count) {
        return;
    }
    let l = 2u * i;
    let o = i * 8u;
    if (l + 1u >= params.n_in) {
        // An odd last node goes up unchanged.
        for (var k = 0u; k < 8u; k++) {
            digests[o + k] = level_in[l * 8u + k];
        }
        return;
    }
    // d = left ‖ right as 16 big-endian words.
    let b = l * 8u;
    let d = array<u32, 16>(
        load_word(b, 0u), load_word(b, 1u), load_word(b, 2u), load_word(b, 3u),
        load_word(b, 4u), load_word(b, 5u), load_word(b, 6u), load_word(b, 7u),
        load_word(b, 8u), load_word(b, 9u), load_word(b, 10u), load_word(b, 11u),
        load_word(b, 12u), load_word(b, 13u), load_word(b, 14u), load_word(b, 15u),
    );
    // Stream: 0x01 ‖ left (32) ‖ right (32) ‖ 0x80 ‖ zeros ‖ length 520 bits: two blocks.
    let m0 = array<u32, 16>(
        0x01000000u | (d[0] >> 8u),
        (d[0] << 24u) | (d[1] >> 8u),
        (d[1] << 24u) | (d[2] >> 8u),
        (d[2] << 24u) | (d[3] >> 8u),
        (d[3] << 24u) | (d[4] >> 8u),
        (d[4] << 24u) | (d[5] >> 8u),
        (d[5] << 24u) | (d[6] >> 8u),
        (d[6] << 24u) | (d[7] >> 8u),
        (d[7] << 24u) | (d[8] >> 8u),
        (d[8] << 24u) | (d[9] >> 8u),
        (d[9] << 24u) | (d[10] >> 8u),
        (d[10] << 24u) | (d[11] >> 8u),
        (d[11] << 24u) | (d[12] >> 8u),
        (d[12] << 24u) | (d[13] >> 8u),
        (d[13] << 24u) | (d[14] >> 8u),
        (d[14] << 24u) | (d[15] >> 8u),
    );
    let m1 = array<u32, 16>(
        (d[15] << 24u) | 0x00800000u, 0u, 0u, 0u,
        0u, 0u, 0u, 0u,
        0u, 0u, 0u, 0u,
        0u, 0u, 0u, 520u,
    );
    store_digest(o, compress(compress(IV, m0), m1));
}
