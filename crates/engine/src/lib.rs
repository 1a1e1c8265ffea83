//! Flagsmith-compatible flag evaluation. Pure: no I/O, no HTTP, no SQL.
//!
//! - [`EnvironmentDocument`]: the environment document SDKs download (`document`).
//! - [`EvaluationContext`] / [`EvaluationResult`]: Flagsmith's engine contract
//!   (`context`, `result`); [`document_to_context`] maps one to the other (`mapping`).
//! - [`CompiledEnvironment`]: compile once (`compile`), evaluate many identities
//!   (`evaluate`) with typed outcomes ([`Evaluation`], [`Reason`], [`VariantChoice`]).
//! - [`evaluate_context`]: compile + evaluate in one call, as Flagsmith's
//!   `get_evaluation_result`.
//!
//! Semantics follow Flagsmith engine v10.2.0 (engine-test-data v3.9.0).

mod compile;
mod context;
mod document;
mod error;
mod evaluate;
mod fxhash;
pub mod hashing;
mod jsonpath;
mod mapping;
mod operators;
mod pattern;
pub mod pyfmt;
pub mod pynum;
mod serde_util;
mod value;

pub use compile::{CompileIssue, CompiledEnvironment, MAX_RULE_DEPTH};
pub use context::{
    Condition, EnvironmentContext, EvaluationContext, FeatureContext, FeatureValue,
    IdentityContext, Operator, RuleType, SegmentContext, SegmentRule,
};
pub use document::{
    DocumentCondition, DocumentSegmentRule, EnvironmentDocument, Feature, FeatureSegment,
    FeatureState, IdentityOverride, MultivariateFeatureOption, MultivariateFeatureStateValue,
    Organisation, Project, Segment,
};
pub use error::{parse_jsonc, strip_line_comments, Error};
pub use evaluate::{Evaluation, FlagEvaluation, Reason, SegmentMatch, VariantChoice};
pub use mapping::{
    document_to_context, feature_state_to_context, identity_context,
    IDENTITY_OVERRIDES_SEGMENT_NAME,
};
pub use result::{EvaluationResult, FlagResult, SegmentResult};

mod result;

/// The input type of [`CompiledEnvironment::evaluate`]: identifier, optional key, traits.
pub type IdentityInput = IdentityContext;

/// Evaluates a whole context (compile + evaluate), like Flagsmith's `get_evaluation_result`.
pub fn evaluate_context(ctx: &EvaluationContext) -> EvaluationResult {
    CompiledEnvironment::from_context(ctx).evaluate(ctx.identity.as_ref())
}
