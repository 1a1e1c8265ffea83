//! Environment documents on NATS JetStream key-value (docs/topologies.md, "Edges on NATS").
//!
//! - [`bucket`]: connecting, the bucket's configuration and its keys.
//! - [`value`]: one entry's wire format (metadata in headers, document in the payload).
//! - [`publish`]: the core side (`serve`/`worker --documents-nats`): keeps the bucket at the
//!   store's published documents.
//! - [`follow`]: the edge side (`edge --from-nats`): keeps an edge's registry at the bucket.
//!
//! Neither side is on a request's path or a build's: a NATS outage delays the bucket (and the
//! edges following it), which both sides report, and both converge when NATS returns.

pub mod bucket;
pub mod follow;
pub mod metrics;
pub mod publish;
pub mod value;

pub use bucket::{BucketKey, NatsError, DEFAULT_BUCKET};
pub use follow::{NatsFollower, NatsFollowerConfig};
pub use publish::{Publisher, PublisherConfig, PublisherStatus};
