//! The evaluation result: the engine's output, exactly Flagsmith's `EvaluationResult`
//! JSON contract (`sdk/evaluation-result.json`, engine v10.2.0 field set).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Flags by feature name, in context order, and the matched segments in context order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EvaluationResult {
    pub flags: IndexMap<String, FlagResult>,
    pub segments: Vec<SegmentResult>,
}

/// The evaluated state of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagResult {
    pub name: String,
    pub enabled: bool,
    pub value: Value,
    /// `DEFAULT`, `TARGETING_MATCH; segment=<name>` or `SPLIT; weight=<w>`.
    pub reason: String,
    /// The chosen variant's key, `"control"` when no variant was chosen, `null` when no
    /// split applied (standard feature, unkeyed variant, or no identity). Always present.
    pub variant: Option<String>,
    /// The winning feature context's metadata, only when non-empty. Shared with the
    /// compiled environment, so a result does not copy it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Arc<Map<String, Value>>>,
}

/// A segment the identity belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentResult {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Arc<Map<String, Value>>>,
}
