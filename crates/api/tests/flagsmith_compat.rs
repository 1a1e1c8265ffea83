//! Flagsmith compatibility suite: per endpoint, the requests Flagsmith's own clients send (its
//! dashboard's services under `frontend/common/services`, the Terraform provider's Go API client
//! `Flagsmith/flagsmith-go-api-client`, the Python admin client), replayed against Flagstone, with
//! the answers checked against the fields Flagsmith's serializers (`api/*/serializers.py`) give.
//! Runs on SQLite, and on PostgreSQL when `FLAGSTONE_TEST_DATABASE_URL` is set.
//! docs/flagsmith-compat.md lists what is the same, what differs and what Flagstone adds.

mod common;

#[path = "flagsmith_compat/feature_segments.rs"]
mod feature_segments;
#[path = "flagsmith_compat/options.rs"]
mod options;
#[path = "flagsmith_compat/owners.rs"]
mod owners;
#[path = "flagsmith_compat/projects.rs"]
mod projects;
#[path = "flagsmith_compat/segments.rs"]
mod segments;
#[path = "flagsmith_compat/shapes.rs"]
mod shapes;
#[path = "flagsmith_compat/state_list.rs"]
mod state_list;
#[path = "flagsmith_compat/tags.rs"]
mod tags;
#[path = "flagsmith_compat/timestamps.rs"]
mod timestamps;
#[path = "flagsmith_compat/uuids.rs"]
mod uuids;
#[path = "flagsmith_compat/values.rs"]
mod values;
