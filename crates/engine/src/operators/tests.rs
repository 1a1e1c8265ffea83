use std::borrow::Cow;

use serde_json::json;

use super::*;

fn s(v: &str) -> ContextValue<'_> {
    ContextValue::Str(Cow::Borrowed(v))
}

fn int(v: i64) -> ContextValue<'static> {
    ContextValue::Int(Cow::Owned(PyInt::Small(v)))
}

fn op(v: &str) -> TypedOperand {
    TypedOperand::new(&json!(v))
}

#[test]
fn in_set_from_csv_json_list_and_array() {
    let set = InSet::new(&json!("a, b,c"));
    assert!(set.contains("a") && set.contains(" b") && set.contains("c"));
    assert!(!set.contains("b"), "no trimming");
    let set = InSet::new(&json!("[\"x\", 1, true, 1.5]"));
    assert!(set.contains("x") && set.contains("1") && set.contains("True") && set.contains("1.5"));
    let set = InSet::new(&json!("[foo,bar]"));
    assert!(set.contains("[foo") && set.contains("bar]"));
    let set = InSet::new(&json!(["p", 2]));
    assert!(set.contains("p") && set.contains("2"));
    assert!(InSet::new(&json!(null)).is_empty());
    let set = InSet::new(&json!(""));
    assert_eq!(set.len(), 1);
    assert!(set.contains(""));
    let many: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let set = InSet::new(&json!(many.join(",")));
    assert!(matches!(set, InSet::Large(_)));
    assert!(set.contains("42") && !set.contains("100"));
}

#[test]
fn in_matches_strings_and_ints_but_not_bools_or_floats() {
    let set = InSet::new(&json!("1,2,abc,True,1.5"));
    assert!(in_match(&s("abc"), &set));
    assert!(in_match(&int(2), &set));
    assert!(!in_match(&ContextValue::Bool(true), &set));
    assert!(!in_match(&ContextValue::Float(1.5), &set));
    assert!(!in_match(&ContextValue::Null, &set));
}

#[test]
fn typed_casts_follow_python() {
    use Comparison::*;
    assert!(typed_match(Equal, &int(7), &op("007")));
    assert!(typed_match(Equal, &int(1000), &op(" 1_000 ")));
    assert!(!typed_match(Equal, &int(1), &op("1.0")));
    assert!(
        !typed_match(NotEqual, &int(1), &op("abc")),
        "failed cast is false"
    );
    assert!(typed_match(
        GreaterThan,
        &ContextValue::Float(1.5),
        &op("1")
    ));
    assert!(typed_match(
        Equal,
        &ContextValue::Float(f64::INFINITY),
        &op("inf")
    ));
    assert!(typed_match(
        NotEqual,
        &ContextValue::Float(f64::NAN),
        &op("nan")
    ));
    assert!(typed_match(
        Equal,
        &ContextValue::Bool(true),
        &op("anything")
    ));
    assert!(typed_match(Equal, &ContextValue::Bool(false), &op("false")));
    assert!(typed_match(Equal, &ContextValue::Bool(false), &op("False")));
    assert!(!typed_match(Equal, &ContextValue::Bool(false), &op("0")));
    assert!(typed_match(
        LessThan,
        &ContextValue::Bool(false),
        &op("true")
    ));
    assert!(typed_match(Contains, &s("hello"), &op("ell")));
    assert!(!typed_match(Contains, &int(123), &op("2")));
    assert!(typed_match(LessThan, &s("B"), &op("a")), "code point order");
    assert!(!typed_match(Equal, &ContextValue::Null, &op("")));
    // Operands that are not strings are cast like Python would.
    assert!(typed_match(
        Equal,
        &s("None"),
        &TypedOperand::new(&json!(null))
    ));
    assert!(!typed_match(
        Equal,
        &int(0),
        &TypedOperand::new(&json!(null))
    ));
}

#[test]
fn semver_comparisons_ignore_build_and_order_prereleases() {
    use Comparison::*;
    assert!(typed_match(Equal, &s("1.2.3"), &op("1.2.3:semver")));
    assert!(typed_match(
        Equal,
        &s("1.2.3+build.1"),
        &op("1.2.3+other:semver")
    ));
    assert!(typed_match(
        LessThan,
        &s("1.0.0-alpha"),
        &op("1.0.0:semver")
    ));
    assert!(typed_match(
        LessThan,
        &s("1.0.0-alpha"),
        &op("1.0.0-alpha.1:semver")
    ));
    assert!(typed_match(
        LessThan,
        &s("1.0.0-alpha.2"),
        &op("1.0.0-alpha.10:semver")
    ));
    assert!(typed_match(
        GreaterThan,
        &s("1.0.0-beta"),
        &op("1.0.0-alpha.10:semver")
    ));
    assert!(typed_match(
        GreaterThan,
        &s("10.0.0"),
        &op("9.99.99:semver")
    ));
    assert!(typed_match(NotEqual, &s("1.0.1"), &op("1.0.0:semver")));
    // Invalid on either side: no match, not even NOT_EQUAL.
    assert!(!typed_match(NotEqual, &s("v1.0.0"), &op("1.0.0:semver")));
    assert!(!typed_match(NotEqual, &s("1.0"), &op("1.0.0:semver")));
    assert!(!typed_match(NotEqual, &s("01.0.0"), &op("1.0.0:semver")));
    assert!(op("1.0:semver").is_semver_invalid());
    assert!(!typed_match(Contains, &s("1.0.0"), &op("1.0.0:semver")));
    // Semver applies only to text context values.
    assert!(!typed_match(Equal, &int(1), &op("1.0.0:semver")));
}

#[test]
fn modulo_parsing_and_matching() {
    assert_eq!(parse_modulo(&json!("2|0")), Some((2.0, 0.0)));
    assert_eq!(parse_modulo(&json!("2.5|0.5")), Some((2.5, 0.5)));
    assert_eq!(parse_modulo(&json!("2|0|1")), None);
    assert_eq!(parse_modulo(&json!("2")), None);
    assert_eq!(parse_modulo(&json!("")), None);
    assert_eq!(parse_modulo(&json!("a|b")), None);
    assert_eq!(parse_modulo(&json!(null)), None);
    assert!(modulo_match(&int(4), 2.0, 0.0));
    assert!(modulo_match(&int(-1), 3.0, 2.0), "floored: -1 % 3 == 2");
    assert!(modulo_match(&int(1), -3.0, -2.0), "sign of the divisor");
    assert!(modulo_match(&ContextValue::Float(5.5), 2.0, 1.5));
    assert!(
        modulo_match(&ContextValue::Bool(true), 2.0, 1.0),
        "bool is an int"
    );
    assert!(!modulo_match(&s("4"), 2.0, 0.0));
    assert!(!modulo_match(&int(4), 0.0, 0.0));
}

#[test]
fn regex_is_anchored_at_the_start_only() {
    let re = compile_regex("b+").unwrap();
    assert!(!re.is_match("abb"));
    assert!(re.is_match("bbx"));
    let re = compile_regex("a|b").unwrap();
    assert!(re.is_match("bz"));
    assert!(
        compile_regex("(?<=a)b").is_err(),
        "lookbehind is not supported"
    );
    assert!(compile_regex("(").is_err());
    assert!(compile_regex("a{1000}{1000}").is_err(), "size limit");
}

#[test]
fn not_contains_needs_text() {
    assert!(not_contains(&s("hello"), "xyz"));
    assert!(!not_contains(&s("hello"), "ell"));
    assert!(!not_contains(&int(5), "x"));
    assert!(!not_contains(&ContextValue::Null, "x"));
}

proptest::proptest! {
    #[test]
    fn the_short_substring_scan_agrees_with_str_contains(
        haystack in "[ab@.]{0,70}",
        needle in "[ab@.]{0,4}",
    ) {
        proptest::prop_assert_eq!(contains_str(&haystack, &needle), haystack.contains(&*needle));
    }
}

proptest::proptest! {
    #[test]
    fn member_sets_hold_exactly_their_members(
        ids in proptest::collection::vec(0u32..3000, 0..120),
        probes in proptest::collection::vec(0u32..3100, 0..50),
    ) {
        let set = MemberSet::new(ids.clone());
        for probe in probes.iter().chain(&ids) {
            proptest::prop_assert_eq!(set.contains(*probe), ids.contains(probe));
        }
    }
}

#[test]
fn member_sets_use_a_bitmap_when_dense_and_a_list_when_sparse() {
    assert!(matches!(
        MemberSet::new((10..110).collect()),
        MemberSet::Bits { .. }
    ));
    assert!(matches!(
        MemberSet::new(vec![0, 100_000]),
        MemberSet::Sorted(_)
    ));
    assert!(!MemberSet::new(Vec::new()).contains(0));
}
