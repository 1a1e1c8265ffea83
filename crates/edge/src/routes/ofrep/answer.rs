//! How one evaluated Flagsmith flag reads in OFREP (pure: no I/O), and OFREP's error bodies.
//!
//! A Flagsmith flag has an `enabled` state and an optional value; an OFREP flag has one value.
//! - A flag without a value (`null` or `""`) is a boolean flag: its value is `enabled`.
//! - A flag with a value answers that value (string, integer, float or boolean, as stored),
//!   whether enabled or not, as Flagsmith's SDKs' `get_feature_value` does; `metadata.enabled`
//!   carries the state.
//! - Reason: `DISABLED` for a disabled flag; otherwise `SPLIT` when a multivariate split applied
//!   (control included), `TARGETING_MATCH` for a segment or identity override, `STATIC` for the
//!   environment default (the engine's `DEFAULT`).
//! - Variant: the multivariate option's key (or its value's text when it has none), `control`,
//!   `segment:<name>`, `identity-override`, or `default`.

use std::borrow::Cow;

use flagstone_engine::{FlagEvaluation, Reason, VariantChoice};
use serde::Serialize;
use serde_json::Value;

/// OFREP's error codes (the spec's `evaluationFailure`, `flagNotFound`, `bulkEvaluationFailure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum ErrorCode {
    ParseError,
    TargetingKeyMissing,
    InvalidContext,
    General,
    FlagNotFound,
}

/// Where a flag's state came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Source<'e> {
    /// The environment default.
    Environment,
    /// A segment override.
    Segment(&'e str),
    /// A multivariate split (within the environment default or a segment override).
    Split {
        choice: VariantChoice<'e>,
        segment: Option<&'e str>,
    },
    /// The identity's own override.
    IdentityOverride,
}

impl<'e> Source<'e> {
    /// The source the engine reports for a flag (identity overrides are applied by the edge).
    pub fn of(f: &FlagEvaluation<'e>) -> Source<'e> {
        let segment = match f.reason {
            Reason::TargetingMatch { segment, .. } => Some(segment),
            Reason::Default | Reason::Split { .. } => None,
        };
        match (f.variant, segment) {
            (VariantChoice::NotApplicable, Some(s)) => Source::Segment(s),
            (VariantChoice::NotApplicable, None) => Source::Environment,
            (choice, segment) => Source::Split { choice, segment },
        }
    }
}

/// One flag as served to the caller.
pub(crate) struct Resolved<'e> {
    pub key: &'e str,
    pub feature_id: i64,
    pub enabled: bool,
    pub value: &'e Value,
    pub source: Source<'e>,
}

#[derive(Serialize)]
pub(crate) struct Metadata<'e> {
    #[serde(rename = "featureId")]
    feature_id: i64,
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    segment: Option<&'e str>,
    #[serde(
        rename = "identityOverride",
        skip_serializing_if = "std::ops::Not::not"
    )]
    identity_override: bool,
}

/// The spec's `evaluationSuccess`.
#[derive(Serialize)]
pub(crate) struct Success<'e> {
    key: &'e str,
    value: Cow<'e, Value>,
    reason: &'static str,
    variant: Cow<'e, str>,
    metadata: Metadata<'e>,
}

/// The spec's `evaluationFailure` / `flagNotFound` (with the flag's key) and
/// `bulkEvaluationFailure` (without).
#[derive(Serialize)]
pub(crate) struct Failure<'e> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'e str>,
    #[serde(rename = "errorCode")]
    pub code: ErrorCode,
    #[serde(rename = "errorDetails")]
    pub details: Cow<'e, str>,
}

/// One item of a bulk answer.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Item<'e> {
    Success(Success<'e>),
    Failure(Failure<'e>),
}

impl<'e> Resolved<'e> {
    pub fn success(&self) -> Success<'e> {
        let flag_only = matches!(self.value, Value::Null) || self.value.as_str() == Some("");
        let value = if flag_only {
            Cow::Owned(Value::Bool(self.enabled))
        } else {
            Cow::Borrowed(self.value)
        };
        let (reason, variant, segment) = match self.source {
            Source::Environment => ("STATIC", Cow::Borrowed("default"), None),
            Source::Segment(s) => (
                "TARGETING_MATCH",
                Cow::Owned(format!("segment:{s}")),
                Some(s),
            ),
            Source::IdentityOverride => {
                ("TARGETING_MATCH", Cow::Borrowed("identity-override"), None)
            }
            Source::Split { choice, segment } => {
                let variant = match choice {
                    VariantChoice::Picked { key: Some(k) } => Cow::Borrowed(k),
                    VariantChoice::Picked { key: None } => {
                        Cow::Owned(flagstone_engine::pyfmt::value_str(self.value))
                    }
                    VariantChoice::Control | VariantChoice::NotApplicable => {
                        Cow::Borrowed("control")
                    }
                };
                ("SPLIT", variant, segment)
            }
        };
        Success {
            key: self.key,
            value,
            reason: if self.enabled { reason } else { "DISABLED" },
            variant,
            metadata: Metadata {
                feature_id: self.feature_id,
                enabled: self.enabled,
                segment,
                identity_override: self.source == Source::IdentityOverride,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(enabled: bool, value: Value, source: Source<'_>) -> Value {
        let r = Resolved {
            key: "banner",
            feature_id: 7,
            enabled,
            value: &value,
            source,
        };
        serde_json::to_value(r.success()).unwrap()
    }

    #[test]
    fn flags_without_a_value_are_booleans_of_their_state() {
        for empty in [Value::Null, json!("")] {
            let on = answer(true, empty.clone(), Source::Environment);
            assert_eq!(
                on,
                json!({"key": "banner", "value": true, "reason": "STATIC", "variant": "default",
                       "metadata": {"featureId": 7, "enabled": true}})
            );
            let off = answer(false, empty, Source::Environment);
            assert_eq!(off["value"], false);
            assert_eq!(off["reason"], "DISABLED");
        }
    }

    #[test]
    fn valued_flags_answer_their_value_typed_and_disabled_ones_say_so() {
        assert_eq!(answer(true, json!(42), Source::Environment)["value"], 42);
        assert_eq!(answer(true, json!(0.5), Source::Environment)["value"], 0.5);
        assert_eq!(
            answer(true, json!("blue"), Source::Environment)["value"],
            "blue"
        );
        let off = answer(false, json!("blue"), Source::Environment);
        assert_eq!(
            (&off["value"], &off["reason"]),
            (&json!("blue"), &json!("DISABLED"))
        );
        assert_eq!(off["metadata"]["enabled"], false);
    }

    #[test]
    fn reasons_and_variants_follow_the_source() {
        let seg = answer(true, json!("x"), Source::Segment("beta"));
        assert_eq!(
            (&seg["reason"], &seg["variant"], &seg["metadata"]["segment"]),
            (
                &json!("TARGETING_MATCH"),
                &json!("segment:beta"),
                &json!("beta")
            )
        );
        let io = answer(true, json!("x"), Source::IdentityOverride);
        assert_eq!(io["reason"], "TARGETING_MATCH");
        assert_eq!(io["metadata"]["identityOverride"], true);
        let picked = answer(
            true,
            json!("b"),
            Source::Split {
                choice: VariantChoice::Picked { key: Some("v-b") },
                segment: None,
            },
        );
        assert_eq!(
            (&picked["reason"], &picked["variant"]),
            (&json!("SPLIT"), &json!("v-b"))
        );
        let unkeyed = answer(
            true,
            json!(3),
            Source::Split {
                choice: VariantChoice::Picked { key: None },
                segment: Some("beta"),
            },
        );
        assert_eq!(unkeyed["variant"], "3");
        assert_eq!(unkeyed["metadata"]["segment"], "beta");
        let control = answer(
            true,
            json!("a"),
            Source::Split {
                choice: VariantChoice::Control,
                segment: None,
            },
        );
        assert_eq!(
            (&control["reason"], &control["variant"]),
            (&json!("SPLIT"), &json!("control"))
        );
    }
}
