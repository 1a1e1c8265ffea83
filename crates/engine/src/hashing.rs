//! Flagsmith's deterministic bucketing hash (`get_hashed_percentage_for_object_ids`).
//!
//! The ids are joined with `,`, MD5-hashed, read as a 128-bit integer and mapped onto
//! `[0, 100)`. The parts are fed to the hasher one by one so that the hot path (one call per
//! percentage-split condition or multivariate feature) builds no joined string.

use md5::{Digest, Md5};

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
/// key). The ids are joined on the stack and hashed in one call.
pub fn hashed_percentage_pair(a: &str, b: &str) -> f64 {
    const CAP: usize = 120;
    let len = a.len() + 1 + b.len();
    if len <= CAP {
        let mut buf = [0u8; CAP];
        buf[..a.len()].copy_from_slice(a.as_bytes());
        buf[a.len()] = b',';
        buf[a.len() + 1..len].copy_from_slice(b.as_bytes());
        let digest: [u8; 16] = Md5::digest(&buf[..len]).into();
        let value = percentage_from_digest(u128::from_be_bytes(digest));
        if value != 100.0 {
            return value;
        }
    }
    // Long ids, or the rare retry with the ids repeated.
    hashed_percentage_of(&[&[a], &[b]])
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
    }

    #[test]
    fn the_pair_fast_path_agrees_with_the_general_form() {
        let long = "k".repeat(200);
        for (a, b) in [
            ("12345", "test_env_foobar"),
            ("seg", "27259"),
            ("", ""),
            ("a", &long[..118]),
            ("a", &long[..119]),
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
