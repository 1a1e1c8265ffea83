//! What the stepped queue scenarios share: a small environment and rules short enough that
//! every one of them shows within a few steps.

use flagstone_store::document::fixture::Shape;
use flagstone_tasks::Rules;

pub const SMALL: Shape = Shape {
    features: 3,
    mv_features: 0,
    segments: 2,
    overrides: 2,
};

/// Short leases and backoff, three attempts.
pub fn rules() -> Rules {
    Rules {
        lease_ms: 1_000,
        max_attempts: 3,
        backoff_base_ms: 100,
        backoff_cap_ms: 400,
        session_lapse_window_ms: 1_000,
    }
}
