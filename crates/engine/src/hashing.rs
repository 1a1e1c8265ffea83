//! Flagsmith's deterministic bucketing hash (`get_hashed_percentage_for_object_ids`).
//!
//! The ids are joined with `,`, MD5-hashed, read as a 128-bit integer and mapped onto
//! `[0, 100)`. The hot path (a segment or feature key and an identity key: one padded MD5
//! block) builds no joined string, and [`PairBatch`] hashes the splits an identity needs
//! several at a time ([`md5_block`]).

use md5::{Digest, Md5};

pub mod md5_block;

/// Returns the bucket in `[0, 100)` for the given ids, exactly as Python's
/// `get_hashed_percentage_for_object_ids(ids)`.
pub fn hashed_percentage(ids: &[&str]) -> f64 {
    let parts: Vec<[&str; 1]> = ids.iter().map(|id| [*id]).collect();
    let parts: Vec<&[&str]> = parts.iter().map(|p| p.as_slice()).collect();
    hashed_percentage_of(&parts)
}

/// Like [`hashed_percentage`], but each id is given as fragments that are concatenated
/// (e.g. `["env", "_", "user"]` for a composite identity key), so no string is built.
pub fn hashed_percentage_of(ids: &[&[&str]]) -> f64 {
    // Python retries with the id list repeated n times when it lands exactly on 100; the
    // chance is 1 in 9999 per round, so the bound only guards against a pathological loop.
    for iterations in 1..=64usize {
        let mut hasher = Md5::new();
        let mut first = true;
        for _ in 0..iterations {
            for id in ids {
                if !first {
                    hasher.update(b",");
                }
                first = false;
                for fragment in *id {
                    hasher.update(fragment.as_bytes());
                }
            }
        }
        let digest: [u8; 16] = hasher.finalize().into();
        let value = percentage_from_digest(u128::from_be_bytes(digest));
        if value != 100.0 {
            return value;
        }
    }
    0.0
}

/// `hashed_percentage(&[a, b])`: the hot path (a segment or feature key and the identity
/// key), hashed as one padded block without building a joined string.
pub fn hashed_percentage_pair(a: &str, b: &str) -> f64 {
    let mut block = md5_block::empty_block::<1>();
    if md5_block::pad_into(&mut block, 0, &[a.as_bytes(), b",", b.as_bytes()]) {
        let bucket = md5_block::digest_mod(md5_block::digest_words(&block)[0], 9999);
        if bucket != 9998 {
            return (bucket as f64 / 9998.0) * 100.0;
        }
    }
    // Long ids, or the rare retry with the ids repeated.
    hashed_percentage_of(&[&[a], &[b]])
}

/// Computes `hashed_percentage_pair(first, second)` for many pairs,
/// [`md5_block::LANES`] at a time (the splits one identity needs, hashed together).
/// Each pair carries a tag; `sink(tag, bucket)` receives the results as lanes fill up
/// ([`push`](Self::push)) and at the end ([`finish`](Self::finish)).
///
/// Kept lean because it runs ≈ 50 times per identity on a large environment: each push
/// writes its message straight into its lane's block, and the rare pair that does not fit
/// one block (or lands on the retried top bucket) is hashed by the general path.
pub struct PairBatch<'a, T> {
    block: md5_block::Block<{ md5_block::LANES }>,
    tags: [T; md5_block::LANES],
    pairs: [(&'a str, &'a str); md5_block::LANES],
    /// Bit `lane` is set when that lane's message fits one block (was padded into it).
    fits: u32,
    len: usize,
}

impl<'a, T: Copy + Default> PairBatch<'a, T> {
    pub fn new() -> Self {
        PairBatch {
            block: md5_block::empty_block(),
            tags: [T::default(); md5_block::LANES],
            pairs: [("", ""); md5_block::LANES],
            fits: 0,
            len: 0,
        }
    }

    /// Adds a pair; hashes the batch once every lane is taken.
    #[inline]
    pub fn push(&mut self, tag: T, first: &'a str, second: &'a str, sink: &mut impl FnMut(T, f64)) {
        let lane = self.len;
        if md5_block::pad_pair(&mut self.block[lane], first.as_bytes(), second.as_bytes()) {
            self.fits |= 1 << lane;
        }
        self.tags[lane] = tag;
        self.pairs[lane] = (first, second);
        self.len += 1;
        if self.len == md5_block::LANES {
            self.finish(sink);
        }
    }

    /// Hashes the pairs pushed since the last batch.
    pub fn finish(&mut self, sink: &mut impl FnMut(T, f64)) {
        if self.len == 0 {
            return;
        }
        let words = md5_block::digest_lanes(&self.block);
        for (lane, words) in words.into_iter().enumerate().take(self.len) {
            let bucket = md5_block::digest_mod(words, 9999);
            let p = if self.fits & (1 << lane) != 0 && bucket != 9998 {
                (bucket as f64 / 9998.0) * 100.0
            } else {
                // Long ids, or the rare retry with the ids repeated.
                let (first, second) = self.pairs[lane];
                hashed_percentage_of(&[&[first], &[second]])
            };
            sink(self.tags[lane], p);
        }
        // `pad_pair` writes into zeroed lanes.
        for lane in &mut self.block[..self.len] {
            *lane = [0; 64];
        }
        self.fits = 0;
        self.len = 0;
    }
}

impl<T: Copy + Default> Default for PairBatch<'_, T> {
    fn default() -> Self {
        Self::new()
    }
}

/// `((h % 9999) / 9998) * 100` in float arithmetic, as Python computes it.
pub fn percentage_from_digest(h: u128) -> f64 {
    ((h % 9999) as f64 / 9998.0) * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            hashed_percentage(&["12345", "test_env_foobar"]),
            51.990398079615915
        );
        assert_eq!(hashed_percentage(&["78986", "32103813"]), 49.27985597119424);
        assert_eq!(hashed_percentage(&["1", "2"]), 26.59531906381276);
    }

    #[test]
    fn a_hash_on_the_top_bucket_is_retried_with_the_ids_repeated() {
        // md5("seg,27259") % 9999 == 9998; Python then hashes "seg,27259,seg,27259".
        let first = Md5::digest(b"seg,27259");
        let first: [u8; 16] = first.into();
        assert_eq!(u128::from_be_bytes(first) % 9999, 9998);
        assert_eq!(hashed_percentage(&["seg", "27259"]), 58.38167633526705);
        assert_eq!(hashed_percentage_pair("seg", "27259"), 58.38167633526705);
    }

    #[test]
    fn the_pair_fast_path_agrees_with_the_general_form() {
        let long = "k".repeat(200);
        for (a, b) in [
            ("12345", "test_env_foobar"),
            ("seg", "27259"),
            ("", ""),
            ("a", &long[..53]),
            ("a", &long[..54]),
            ("ab", &long[..53]),
            (&long[..], "x"),
        ] {
            assert_eq!(hashed_percentage_pair(a, b), hashed_percentage(&[a, b]));
        }
    }

    proptest::proptest! {
        #[test]
        fn the_pair_fast_path_agrees_on_any_ids(a in ".{0,80}", b in ".{0,80}") {
            proptest::prop_assert_eq!(hashed_percentage_pair(&a, &b), hashed_percentage(&[&a, &b]));
        }

        #[test]
        fn batched_pairs_agree_with_single_pairs(
            firsts in proptest::collection::vec(".{0,40}", 0..11),
            second in ".{0,40}",
        ) {
            let pairs: Vec<(&str, &str)> =
                firsts.iter().map(|f| (f.as_str(), second.as_str())).collect();
            let mut out = vec![f64::NAN; pairs.len()];
            let mut sink = |i: usize, p| out[i] = p;
            let mut batch = PairBatch::new();
            for (i, (first, second)) in pairs.iter().enumerate() {
                batch.push(i, first, second, &mut sink);
            }
            batch.finish(&mut sink);
            for ((first, second), got) in pairs.iter().zip(out) {
                proptest::prop_assert_eq!(got, hashed_percentage(&[first, second]));
            }
        }
    }

    #[test]
    fn the_top_bucket_maps_to_exactly_100() {
        assert_eq!(percentage_from_digest(9998), 100.0);
        assert_eq!(percentage_from_digest(9999), 0.0);
        assert_eq!(
            percentage_from_digest(9999 * 7 + 9997),
            9997.0 / 9998.0 * 100.0
        );
        assert!(percentage_from_digest(u128::MAX) < 100.0 || u128::MAX % 9999 == 9998);
    }
}
