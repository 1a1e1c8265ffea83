//! Reading a document file without ever holding it: a Flagsmith document of a large
//! environment is almost entirely `identity_overrides` (a million of them is hundreds of
//! megabytes), while the rest — features, segments, settings — is small. So the file is read
//! more than once, each time as a stream:
//!
//! * [`read_header`]: everything except `identity_overrides`, which is skipped element by
//!   element (its JSON syntax still checked) — the part [`super::plan`] holds in memory;
//! * [`overrides`]: only `identity_overrides`, handed over in batches through a bounded
//!   channel by a reader thread, so the importer checks (first read) or writes (second read)
//!   one batch while the next is parsed, and memory holds a few batches at most.
//!
//! What the file holds may not change between the reads; [`Stamp`] tells when it did.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use flagstone_engine::{EnvironmentDocument, IdentityOverride};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::{Result, StoreError};

/// The top-level key streamed rather than held.
const OVERRIDES: &str = "identity_overrides";

/// Identity overrides per batch handed from the reader thread.
pub(super) const BATCH: usize = 1_000;

/// Batches parsed ahead of the importer (the channel's capacity).
const AHEAD: usize = 2;

fn invalid(e: impl fmt::Display) -> StoreError {
    StoreError::invalid("document", e.to_string())
}

fn open(path: &Path) -> Result<BufReader<File>> {
    let f =
        File::open(path).map_err(|e| invalid(format!("cannot open {}: {e}", path.display())))?;
    Ok(BufReader::with_capacity(1 << 16, f))
}

/// Size and modification time of the file: equal before the first read and after the last,
/// or the file changed during the import.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Stamp(u64, Option<SystemTime>);

impl Stamp {
    pub fn of(path: &Path) -> Result<Stamp> {
        let m = std::fs::metadata(path)
            .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
        Ok(Stamp(m.len(), m.modified().ok()))
    }
}

/// The refusal when the file's content differed between two reads.
pub(crate) fn changed() -> StoreError {
    invalid("the file changed while it was being imported")
}

/// The document without its identity overrides (`identity_overrides` is empty), checking the
/// whole file's JSON syntax on the way.
pub(crate) fn read_header(path: &Path) -> Result<EnvironmentDocument> {
    let mut de = serde_json::Deserializer::from_reader(open(path)?);
    let map = Header.deserialize(&mut de).map_err(invalid)?;
    de.end().map_err(invalid)?;
    serde_json::from_value(Value::Object(map)).map_err(invalid)
}

/// Collects the top-level object, skipping `identity_overrides`.
struct Header;

impl<'de> DeserializeSeed<'de> for Header {
    type Value = Map<String, Value>;
    fn deserialize<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Header {
    type Value = Map<String, Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Flagsmith environment document (a JSON object)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Self::Value, A::Error> {
        let mut out = Map::new();
        let mut seen_overrides = false;
        while let Some(key) = m.next_key::<String>()? {
            if key == OVERRIDES {
                if std::mem::replace(&mut seen_overrides, true) {
                    return Err(de::Error::duplicate_field(OVERRIDES));
                }
                m.next_value::<IgnoredAny>()?;
            } else {
                let v = m.next_value::<Value>()?;
                if out.insert(key.clone(), v).is_some() {
                    return Err(de::Error::custom(format!("duplicate field `{key}`")));
                }
            }
        }
        Ok(out)
    }
}

/// One batch of the file's identity overrides, in document order.
pub(crate) type Batch = Vec<IdentityOverride>;

/// Reads the file's `identity_overrides` on a thread of its own and hands them over in
/// batches of [`BATCH`]; a problem ends the stream with an `Err` naming the override
/// (`identity_overrides[i]`). Dropping the receiver stops the thread.
pub(crate) fn overrides(path: &Path) -> mpsc::Receiver<Result<Batch>> {
    let (tx, rx) = mpsc::channel(AHEAD);
    let path: PathBuf = path.to_path_buf();
    std::thread::spawn(move || {
        let sent = |b: Batch| tx.blocking_send(Ok(b)).is_ok();
        let r: Result<()> = (|| {
            let mut de = serde_json::Deserializer::from_reader(open(&path)?);
            Top { sink: sent }.deserialize(&mut de).map_err(invalid)?;
            de.end().map_err(invalid)
        })();
        if let Err(e) = r {
            // The importer may have stopped reading already; then nobody needs the error.
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

/// The top-level object: every key but `identity_overrides` skipped.
struct Top<F> {
    sink: F,
}

/// The importer stopped reading; not an error of the document (never reaches anyone).
const STOPPED: &str = "import stopped";

impl<'de, F: FnMut(Batch) -> bool> DeserializeSeed<'de> for Top<F> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(Batch) -> bool> Visitor<'de> for Top<F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Flagsmith environment document (a JSON object)")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut m: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = m.next_key::<String>()? {
            if key == OVERRIDES {
                m.next_value_seed(List {
                    sink: &mut self.sink,
                })?;
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A parser message without its " at line L column C": the error made from it gets the
/// position again.
fn unplaced(e: &impl fmt::Display) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(at) => msg[..at].to_string(),
        None => msg,
    }
}

/// `identity_overrides`: `null` or an array, streamed in batches.
struct List<'s, F> {
    sink: &'s mut F,
}

impl<'de, F: FnMut(Batch) -> bool> DeserializeSeed<'de> for List<'_, F> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, F: FnMut(Batch) -> bool> Visitor<'de> for List<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of identity overrides")
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> std::result::Result<(), A::Error> {
        let mut batch = Vec::with_capacity(BATCH);
        let mut i = 0usize;
        loop {
            let next = s
                .next_element::<IdentityOverride>()
                .map_err(|e| de::Error::custom(format!("{OVERRIDES}[{i}]: {}", unplaced(&e))))?;
            let Some(io) = next else { break };
            batch.push(io);
            i += 1;
            if batch.len() == BATCH && !(self.sink)(std::mem::take(&mut batch)) {
                return Err(de::Error::custom(STOPPED));
            }
        }
        if !batch.is_empty() && !(self.sink)(batch) {
            return Err(de::Error::custom(STOPPED));
        }
        Ok(())
    }
}
