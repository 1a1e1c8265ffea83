//! Flagstone's webhooks, the parts that need no I/O: what an event is and the exact bytes a
//! receiver gets ([`event`]), how those bytes are signed ([`signature`]), and which URLs and
//! addresses a webhook may reach ([`address`]). The store fills events in the change's own
//! transaction; the task processor delivers them. See README.md for why this is a crate.

pub mod address;
pub mod event;
pub mod signature;

pub use address::{AddressClass, AddressPolicy, UrlRefusal, WebhookUrl};
pub use event::{EventType, FeatureStateData};
pub use signature::{sign, verify, Signed};
