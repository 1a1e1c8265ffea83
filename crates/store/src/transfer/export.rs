//! Export: an environment as a Flagsmith environment document, identity overrides included —
//! the built document (as publishing builds it) with the environment's identity overrides
//! spliced into its `identity_overrides` list, read from one snapshot. The SDK edge serves the
//! same splice from the published document. Main entry point: [`export`].

use std::io::Write;

use serde::Serialize;

use crate::document::{
    self, identity_overrides, BuildError, BuildOptions, IDENTITY_OVERRIDES_TAIL,
};
use crate::{LimitName, Result, Store, StoreError, Tx};

/// What an export wrote.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ExportSummary {
    /// The environment revision the document was built from.
    pub revision: i64,
    /// Identities with overrides written.
    pub identities: u64,
    /// Bytes written.
    pub bytes: u64,
}

fn build_error(e: BuildError) -> StoreError {
    match e {
        BuildError::EnvironmentNotFound => StoreError::not_found("environment"),
        BuildError::TooLarge { attempted, budget } => StoreError::LimitExceeded {
            limit: LimitName::MaxDocumentBytes,
            max: budget as i64,
            detail: format!("the environment document would exceed {attempted} bytes"),
        },
        BuildError::Store(e) => e,
    }
}

fn io_error(e: std::io::Error) -> StoreError {
    StoreError::Config(format!("cannot write the document: {e}"))
}

/// The output, remembering the first write error (later writes are skipped).
struct Sink<'a, W> {
    out: &'a mut W,
    written: u64,
    failed: Option<std::io::Error>,
}

impl<W: Write> Sink<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> bool {
        if self.failed.is_some() {
            return false;
        }
        match self.out.write_all(bytes) {
            Ok(()) => {
                self.written += bytes.len() as u64;
                true
            }
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
}

/// Writes the document of the environment with client key `api_key` to `out`.
pub async fn export(
    store: &Store,
    api_key: &str,
    out: &mut (impl Write + Send),
) -> Result<ExportSummary> {
    let mut tx = store.read().await?;
    if let Tx::Postgres(t) = &mut tx {
        // The document and the overrides must come from the same committed state.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut **t)
            .await?;
    }
    let env = crate::environments::get_by_key(&mut tx, api_key).await?;
    let built = document::build_in(&mut tx, env.id, &BuildOptions::default())
        .await
        .map_err(build_error)?;
    let json = built.json().map_err(|e| StoreError::Corrupt {
        what: "built document",
        detail: e.to_string(),
    })?;
    let head = json
        .strip_suffix(IDENTITY_OVERRIDES_TAIL)
        .ok_or_else(|| StoreError::Corrupt {
            what: "built document",
            detail: "does not end with identity_overrides".into(),
        })?;
    let mut sink = Sink {
        out,
        written: 0,
        failed: None,
    };
    sink.write(head);
    sink.write(b"\"identity_overrides\":[");
    let mut first = true;
    let identities = identity_overrides::stream(&mut tx, env.id, |json| {
        let ok = (first || sink.write(b",")) && sink.write(&json);
        first = false;
        std::future::ready(ok)
    })
    .await?;
    sink.write(b"]}");
    if let Some(e) = sink.failed {
        return Err(io_error(e));
    }
    sink.out.flush().map_err(io_error)?;
    Ok(ExportSummary {
        revision: built.revision,
        identities,
        bytes: sink.written,
    })
}

/// [`export`] into memory (the admin API's `GET …/document/`).
pub async fn export_to_vec(store: &Store, api_key: &str) -> Result<(Vec<u8>, ExportSummary)> {
    let mut buf = Vec::new();
    let summary = export(store, api_key, &mut buf).await?;
    Ok((buf, summary))
}
