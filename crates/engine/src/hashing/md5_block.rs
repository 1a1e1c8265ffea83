//! MD5 of short messages (at most 55 bytes: one padded block), computed for several
//! messages at once.
//!
//! Bucketing hashes a segment or feature key joined with an identity key: a few dozen
//! bytes, one MD5 block. Through the `md-5` crate each such hash also pays for its
//! streaming buffer and a 128-bit modulo, and each is a chain of 64 dependent steps, so
//! one hash at a time leaves most of the CPU idle. Here every step is written over
//! [`LANES`] independent messages: in AVX2 registers when the CPU has them, else in SSE2
//! (the x86_64 baseline), else as plain interleaved chains ([`digest_words`]). Every form
//! is checked against the `md-5` crate in the tests below.

/// How many messages a batch hashes together: one AVX2 register of 32-bit lanes.
pub const LANES: usize = 8;

/// The longest message that fits one padded block.
pub const MAX_LEN: usize = 55;

/// One padded message block per lane.
pub type Block<const N: usize> = [[u8; 64]; N];

/// Little-endian word `w` of a block.
#[inline(always)]
fn word(block: &[u8; 64], w: usize) -> u32 {
    u32::from_le_bytes([
        block[4 * w],
        block[4 * w + 1],
        block[4 * w + 2],
        block[4 * w + 3],
    ])
}

const INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// The 64 MD5 steps in order, as `(step, message word, rotation)` per round function:
/// expands to `$steps!(f; ...)` .. `$steps!(j; ...)` with the caller's `steps!`, so that the
/// scalar and SSE2 forms share one schedule.
macro_rules! md5_schedule {
    ($steps:ident) => {
        $steps!(f; (0, 0, 7), (1, 1, 12), (2, 2, 17), (3, 3, 22),
            (4, 4, 7), (5, 5, 12), (6, 6, 17), (7, 7, 22),
            (8, 8, 7), (9, 9, 12), (10, 10, 17), (11, 11, 22),
            (12, 12, 7), (13, 13, 12), (14, 14, 17), (15, 15, 22));
        $steps!(g; (16, 1, 5), (17, 6, 9), (18, 11, 14), (19, 0, 20),
            (20, 5, 5), (21, 10, 9), (22, 15, 14), (23, 4, 20),
            (24, 9, 5), (25, 14, 9), (26, 3, 14), (27, 8, 20),
            (28, 13, 5), (29, 2, 9), (30, 7, 14), (31, 12, 20));
        $steps!(h; (32, 5, 4), (33, 8, 11), (34, 11, 16), (35, 14, 23),
            (36, 1, 4), (37, 4, 11), (38, 7, 16), (39, 10, 23),
            (40, 13, 4), (41, 0, 11), (42, 3, 16), (43, 6, 23),
            (44, 9, 4), (45, 12, 11), (46, 15, 16), (47, 2, 23));
        $steps!(j; (48, 0, 6), (49, 7, 10), (50, 14, 15), (51, 5, 21),
            (52, 12, 6), (53, 3, 10), (54, 10, 15), (55, 1, 21),
            (56, 8, 6), (57, 15, 10), (58, 6, 15), (59, 13, 21),
            (60, 4, 6), (61, 11, 10), (62, 2, 15), (63, 9, 21));
    };
}

/// Writes `parts` concatenated, padded as MD5 pads a final block, into lane `lane` of
/// `block`, which must still be empty (all zero). Returns `false` (and writes nothing) if
/// they are longer than [`MAX_LEN`].
#[inline]
pub fn pad_into<const N: usize>(block: &mut Block<N>, lane: usize, parts: &[&[u8]]) -> bool {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > MAX_LEN {
        return false;
    }
    let bytes = &mut block[lane];
    let mut at = 0;
    for part in parts {
        bytes[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    bytes[len] = 0x80;
    bytes[56..].copy_from_slice(&((len as u64) * 8).to_le_bytes());
    true
}

/// Writes `first,second`, padded as MD5 pads a final block, into one lane's block, which
/// must still be all zero: [`pad_into`] for the bucketing hash's message, with no slice of
/// parts to walk. Returns `false` (and writes nothing) if it is longer than [`MAX_LEN`].
#[inline]
pub fn pad_pair(bytes: &mut [u8; 64], first: &[u8], second: &[u8]) -> bool {
    let len = first.len() + 1 + second.len();
    if len > MAX_LEN {
        return false;
    }
    bytes[..first.len()].copy_from_slice(first);
    bytes[first.len()] = b',';
    bytes[first.len() + 1..len].copy_from_slice(second);
    bytes[len] = 0x80;
    bytes[56..].copy_from_slice(&((len as u64) * 8).to_le_bytes());
    true
}

/// An all-zero block, to be filled with [`pad_into`].
pub fn empty_block<const N: usize>() -> Block<N> {
    [[0; 64]; N]
}

/// The MD5 state after compressing each lane's single padded block: per lane the four
/// words `a, b, c, d` (the digest is their little-endian bytes in that order).
#[inline]
pub fn digest_words<const N: usize>(block: &Block<N>) -> [[u32; 4]; N] {
    let mut s = [[0u32; N]; 4];
    for (word, init) in s.iter_mut().zip(INIT) {
        *word = [init; N];
    }
    let [mut a, mut b, mut c, mut d] = s;
    let words: [[u32; N]; 16] =
        std::array::from_fn(|w| std::array::from_fn(|l| word(&block[l], w)));
    // Written out step by step so that every index, constant and shift is a literal: a
    // loop over steps would look them up (and rotate by a variable) at run time.
    macro_rules! steps {
        ($f:ident; $(($i:literal, $w:literal, $shift:literal)),+) => {$(
            let m = &words[$w];
            let mut next = [0u32; N];
            for l in 0..N {
                let sum = a[l].wrapping_add($f(b[l], c[l], d[l])).wrapping_add(K[$i]).wrapping_add(m[l]);
                next[l] = b[l].wrapping_add(sum.rotate_left($shift));
            }
            a = d;
            d = c;
            c = b;
            b = next;
        )+};
    }
    #[inline(always)]
    fn f(b: u32, c: u32, d: u32) -> u32 {
        d ^ (b & (c ^ d))
    }
    #[inline(always)]
    fn g(b: u32, c: u32, d: u32) -> u32 {
        c ^ (d & (b ^ c))
    }
    #[inline(always)]
    fn h(b: u32, c: u32, d: u32) -> u32 {
        b ^ c ^ d
    }
    #[inline(always)]
    fn j(b: u32, c: u32, d: u32) -> u32 {
        c ^ (b | !d)
    }
    md5_schedule!(steps);
    let mut out = [[0u32; 4]; N];
    for (l, lane) in out.iter_mut().enumerate() {
        *lane = [
            INIT[0].wrapping_add(a[l]),
            INIT[1].wrapping_add(b[l]),
            INIT[2].wrapping_add(c[l]),
            INIT[3].wrapping_add(d[l]),
        ];
    }
    out
}

/// [`digest_words`] for [`LANES`] messages in vector registers: one instruction does a
/// step's operation for all lanes (AVX2 when the CPU has it, else two SSE2 halves; SSE2 is
/// part of the x86_64 baseline).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
pub fn digest_lanes(block: &Block<LANES>) -> [[u32; 4]; LANES] {
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: `avx2::digest` requires AVX2, detected just above.
        return unsafe { avx2::digest(block) };
    }
    digest_sse2(block)
}

/// [`digest_lanes`] on SSE2 alone, four lanes at a time.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn digest_sse2(block: &Block<LANES>) -> [[u32; 4]; LANES] {
    let mut out = [[0; 4]; LANES];
    for (block, out) in block.chunks_exact(4).zip(out.chunks_exact_mut(4)) {
        let block: &Block<4> = block.try_into().expect("chunks of four");
        // SAFETY: `sse2::digest` only requires SSE2, which this build targets (the cfg
        // above).
        out.copy_from_slice(&unsafe { sse2::digest(block) });
    }
    out
}

/// [`digest_words`] for [`LANES`] messages.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
pub fn digest_lanes(block: &Block<LANES>) -> [[u32; 4]; LANES] {
    digest_words(block)
}

/// Defines a module with `digest`: [`digest_words`] in one family of x86 vector
/// instructions (`$feature`, `$lanes` 32-bit lanes per register). The first argument is a
/// `$` token, so that the generated body can hold its own `macro_rules!`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
macro_rules! simd_md5 {
    ($d:tt $module:ident, $feature:literal, $lanes:literal, $vec:ident,
     $load:ident, $store:ident, $splat:ident, $add:ident, $xor:ident, $and:ident, $or:ident,
     $shl:ident, $shr:ident) => {
        mod $module {
            use std::arch::x86_64::*;

            use super::{word, Block, INIT, K};

            #[target_feature(enable = $feature)]
            fn splat(x: u32) -> $vec {
                $splat(x as i32)
            }

            #[target_feature(enable = $feature)]
            fn f(b: $vec, c: $vec, d: $vec) -> $vec {
                $xor(d, $and(b, $xor(c, d)))
            }

            #[target_feature(enable = $feature)]
            fn g(b: $vec, c: $vec, d: $vec) -> $vec {
                $xor(c, $and(d, $xor(b, c)))
            }

            #[target_feature(enable = $feature)]
            fn h(b: $vec, c: $vec, d: $vec) -> $vec {
                $xor($xor(b, c), d)
            }

            #[target_feature(enable = $feature)]
            fn j(b: $vec, c: $vec, d: $vec) -> $vec {
                $xor(c, $or(b, $xor(d, $splat(-1))))
            }

            #[target_feature(enable = $feature)]
            pub fn digest(block: &Block<$lanes>) -> [[u32; 4]; $lanes] {
                let m: [$vec; 16] = std::array::from_fn(|w| {
                    let words: [u32; $lanes] = std::array::from_fn(|l| word(&block[l], w));
                    // SAFETY: reads exactly the `$lanes` words of `words`.
                    unsafe { $load(words.as_ptr().cast()) }
                });
                let (mut a, mut b, mut c, mut d) =
                    (splat(INIT[0]), splat(INIT[1]), splat(INIT[2]), splat(INIT[3]));
                macro_rules! steps {
                    ($d f:ident; $d(($d i:literal, $d w:literal, $d shift:literal)),+) => {$d(
                        let sum = $add($add(a, $d f(b, c, d)), $add(splat(K[$d i]), m[$d w]));
                        let rotated = $or(
                            $shl::<$d shift>(sum),
                            $shr::<{ 32 - $d shift }>(sum),
                        );
                        let next = $add(b, rotated);
                        a = d;
                        d = c;
                        c = b;
                        b = next;
                    )+};
                }
                md5_schedule!(steps);
                let lanes = |v: $vec| {
                    let mut out = [0u32; $lanes];
                    // SAFETY: writes exactly the `$lanes` words of `out`.
                    unsafe { $store(out.as_mut_ptr().cast(), v) };
                    out
                };
                let words = [lanes(a), lanes(b), lanes(c), lanes(d)];
                std::array::from_fn(|l| std::array::from_fn(|w| INIT[w].wrapping_add(words[w][l])))
            }
        }
    };
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
simd_md5!($ sse2, "sse2", 4, __m128i, _mm_loadu_si128, _mm_storeu_si128, _mm_set1_epi32,
    _mm_add_epi32, _mm_xor_si128, _mm_and_si128, _mm_or_si128, _mm_slli_epi32, _mm_srli_epi32);

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
simd_md5!($ avx2, "avx2", 8, __m256i, _mm256_loadu_si256, _mm256_storeu_si256,
    _mm256_set1_epi32, _mm256_add_epi32, _mm256_xor_si256, _mm256_and_si256, _mm256_or_si256,
    _mm256_slli_epi32, _mm256_srli_epi32);

/// The digest, read as a big-endian 128-bit integer (as Python's `int(hexdigest, 16)`),
/// modulo `m` (at most 2¹⁶), without 128-bit division.
#[inline]
pub fn digest_mod(words: [u32; 4], m: u64) -> u64 {
    // h = w0·2⁹⁶ + w1·2⁶⁴ + w2·2³² + w3 (big-endian words). With the powers of 2³² reduced
    // mod m (constants once `m` is), each term is below 2⁴⁸ for m ≤ 2¹⁶: the sum fits a
    // u64 and one division is left.
    debug_assert!(m > 0 && m <= 1 << 16);
    let p1 = (1u64 << 32) % m;
    let p2 = p1 * p1 % m;
    let p3 = p2 * p1 % m;
    let [w0, w1, w2, w3] = words.map(|w| u64::from(w.swap_bytes()));
    (w0 * p3 + w1 * p2 + w2 * p1 + w3) % m
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};

    fn reference(msg: &[u8]) -> [u8; 16] {
        Md5::digest(msg).into()
    }

    fn ours(msgs: &[&[u8]]) -> Vec<[u8; 16]> {
        let mut block = empty_block::<LANES>();
        for (lane, m) in msgs.iter().enumerate() {
            assert!(pad_into(&mut block, lane, &[m]));
        }
        digest_lanes(&block)[..msgs.len()]
            .iter()
            .map(|w| {
                let mut out = [0u8; 16];
                for (chunk, v) in out.chunks_exact_mut(4).zip(w) {
                    chunk.copy_from_slice(&v.to_le_bytes());
                }
                out
            })
            .collect()
    }

    #[test]
    fn matches_rfc_1321_vectors() {
        let got = ours(&[b"", b"a", b"abc", b"message digest"]);
        let hex: Vec<String> = got
            .iter()
            .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        assert_eq!(
            hex,
            [
                "d41d8cd98f00b204e9800998ecf8427e",
                "0cc175b9c0f1b6a831c399e269772661",
                "900150983cd24fb0d6963f7d28e17f72",
                "f96b697d7cb7938d525a2f31aaf161d0",
            ]
        );
    }

    #[test]
    fn one_lane_and_four_lanes_agree() {
        let mut four = empty_block::<LANES>();
        let mut one = empty_block::<1>();
        let msg = b"10001,incident_env_key_0001_user-42";
        pad_into(&mut four, 2, &[msg]);
        pad_into(&mut one, 0, &[msg]);
        assert_eq!(digest_lanes(&four)[2], digest_words(&one)[0]);
        assert_eq!(digest_words(&four)[2], digest_words(&one)[0]);
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[test]
    fn the_sse2_path_agrees_with_the_scalar_one() {
        let mut block = empty_block::<LANES>();
        for lane in 0..LANES {
            let msg = format!("{lane}0001,incident_env_key_0001_user-{}", lane * 37);
            pad_into(&mut block, lane, &[msg.as_bytes()]);
        }
        assert_eq!(digest_sse2(&block), digest_words(&block));
        assert_eq!(digest_lanes(&block), digest_words(&block));
    }

    #[test]
    fn refuses_messages_longer_than_one_block() {
        let mut block = empty_block::<1>();
        assert!(pad_into(&mut block, 0, &[&[b'x'; 55]]));
        assert!(!pad_into(&mut block, 0, &[&[b'x'; 30], &[b'y'; 26]]));
    }

    #[test]
    fn pad_pair_writes_what_pad_into_writes() {
        for (a, b) in [
            ("", ""),
            ("seg", "27259"),
            ("a", &"k".repeat(53)[..]),
            ("ab", &"k".repeat(53)[..]),
        ] {
            let mut pair = empty_block::<1>();
            let mut parts = empty_block::<1>();
            let fits = pad_pair(&mut pair[0], a.as_bytes(), b.as_bytes());
            assert_eq!(
                fits,
                pad_into(&mut parts, 0, &[a.as_bytes(), b",", b.as_bytes()])
            );
            assert_eq!(pair, parts);
        }
    }

    #[test]
    fn digest_mod_equals_the_128_bit_remainder() {
        for msg in [&b"seg,27259"[..], b"", b"12345,test_env_foobar"] {
            let words = digest_words(&{
                let mut block = empty_block::<1>();
                pad_into(&mut block, 0, &[msg]);
                block
            })[0];
            let whole = u128::from_be_bytes(reference(msg));
            for m in [9999u64, 7, 65_521, 1 << 16] {
                assert_eq!(u128::from(digest_mod(words, m)), whole % u128::from(m));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn every_lane_matches_the_md5_crate(
            msgs in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..=MAX_LEN), 1..=LANES)
        ) {
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            let got = ours(&refs);
            for (m, d) in msgs.iter().zip(got) {
                proptest::prop_assert_eq!(d, reference(m));
            }
        }
    }
}
