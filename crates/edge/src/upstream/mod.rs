//! An edge without database access: it follows another Flagstone (the core, or another edge
//! following one) over HTTP ([`UpstreamFollower`]), reads identity data and server-side keys
//! from it, and sends traits and flag usage back to it ([`Client`]), in the protocol of
//! [`protocol`]. See docs/topologies.md.

pub mod client;
pub mod follow;
pub mod protocol;

pub use client::{Client, UpstreamError};
pub use follow::{Lag, UpstreamConfig, UpstreamFollower};
