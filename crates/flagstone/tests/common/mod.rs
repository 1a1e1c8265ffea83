//! Helpers shared by the tests that run `flagstone` as child processes.

use std::process::Child;

use flagstone_store::testing::TestStore;

/// A child process, killed (SIGKILL) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The test store's URL as a child process must use it (on PostgreSQL, with the test's
/// schema on the search path).
pub fn child_url(t: &TestStore) -> String {
    match &t.pg_schema {
        Some(schema) => format!("{}?options=-c%20search_path%3D{schema}", t.url),
        None => t.url.clone(),
    }
}
