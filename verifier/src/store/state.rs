//! The verifier's derived state in redb (DESIGN.md §7): revocations in
//! force, the authority views the log recorded, and a minute → log index
//! map that bounds how much of the log a restart re-reads. The SLA engine's
//! state lives beside it in its own file ([`super::snapshot`]).
//!
//! Everything here is derivable from the log: `vouch node --rebuild-state`
//! deletes the file and the node rebuilds it by reading the log from its
//! first record. The node writes state only after the log records it derives
//! from are durable, so state never runs ahead of the log. Chain positions
//! for replay detection are not stored here: they matter only within the
//! replay window, and the log tail of that window already holds them, so the
//! node re-reads that tail at start instead of writing every position twice.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// The state file's name inside the data directory.
pub const STATE_FILE: &str = "state.redb";

/// Bumped when a table's meaning changes; a file with another version is
/// refused (the node then rebuilds it from the log). Format 2 moved the SLA
/// engine's state out of redb.
pub const STATE_FORMAT: u64 = 2;

/// Minute rows kept (one per minute with commits): a week, well beyond any
/// replay window, and a hard bound on the table.
pub const MAX_MINUTE_ROWS: u64 = 7 * 24 * 60;

const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");
const MINUTES: TableDefinition<'static, u64, u64> = TableDefinition::new("minutes");
const REVOCATIONS: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("revocations");
const VIEWS: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("authority_views");

const META_FORMAT: &str = "format";

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// redb reported an error.
    #[error("state {path}: {source}")]
    Db {
        /// The state file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: Box<redb::Error>,
    },
    /// The file was written by another state format.
    #[error(
        "state {path}: format {found}, expected {STATE_FORMAT}; rebuild it with `vouch node --rebuild-state`"
    )]
    Format {
        /// The state file.
        path: PathBuf,
        /// The version found.
        found: u64,
    },
}

/// One atomic write to the state: everything in it lands together or not at all.
#[derive(Debug, Default)]
pub struct StateWrite {
    /// (UTC minute, first log index committed in it).
    pub minutes: Vec<(u64, u64)>,
    /// (principal ‖ delegate, signed revocation bytes).
    pub revocations: Vec<([u8; 40], Vec<u8>)>,
    /// (view hash, canonical JSON).
    pub views: Vec<([u8; 32], Vec<u8>)>,
}

impl StateWrite {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty() && self.revocations.is_empty() && self.views.is_empty()
    }
}

/// The open state file.
#[derive(Debug)]
pub struct StateStore {
    db: Database,
    path: PathBuf,
}

impl StateStore {
    /// Opens (creating if absent) the state file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<StateStore, StateError> {
        let path = path.as_ref().to_owned();
        let db = Database::create(&path).map_err(|e| db_err(&path, e))?;
        let store = StateStore { db, path };
        store.init()?;
        Ok(store)
    }

    fn err(&self) -> impl Fn(redb::Error) -> StateError + '_ {
        move |e| StateError::Db { path: self.path.clone(), source: Box::new(e) }
    }

    fn init(&self) -> Result<(), StateError> {
        let err = self.err();
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        let found = {
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            let found = meta.get(META_FORMAT).map_err(|e| err(e.into()))?.map(|v| v.value());
            if found.is_none() {
                meta.insert(META_FORMAT, STATE_FORMAT).map_err(|e| err(e.into()))?;
            }
            txn.open_table(MINUTES).map_err(|e| err(e.into()))?;
            txn.open_table(REVOCATIONS).map_err(|e| err(e.into()))?;
            txn.open_table(VIEWS).map_err(|e| err(e.into()))?;
            found
        };
        txn.commit().map_err(|e| err(e.into()))?;
        match found {
            Some(found) if found != STATE_FORMAT => {
                Err(StateError::Format { path: self.path.clone(), found })
            }
            _ => Ok(()),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first log index committed in UTC minute `minute` or later, if any
    /// minute at or after it is recorded.
    pub fn first_index_since(&self, minute: u64) -> Result<Option<u64>, StateError> {
        let err = self.err();
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let minutes = txn.open_table(MINUTES).map_err(|e| err(e.into()))?;
        let mut range = minutes.range(minute..).map_err(|e| err(e.into()))?;
        match range.next() {
            Some(row) => Ok(Some(row.map_err(|e| err(e.into()))?.1.value())),
            None => Ok(None),
        }
    }

    /// Every stored revocation (signed bytes), in key order.
    pub fn revocations(&self) -> Result<Vec<Vec<u8>>, StateError> {
        let err = self.err();
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let table = txn.open_table(REVOCATIONS).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| err(e.into()))? {
            out.push(row.map_err(|e| err(e.into()))?.1.value().to_vec());
        }
        Ok(out)
    }

    /// Hashes of the stored authority views.
    pub fn view_hashes(&self) -> Result<Vec<[u8; 32]>, StateError> {
        let err = self.err();
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let table = txn.open_table(VIEWS).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| err(e.into()))? {
            let key = row.map_err(|e| err(e.into()))?.0;
            if let Ok(hash) = <[u8; 32]>::try_from(key.value()) {
                out.push(hash);
            }
        }
        Ok(out)
    }

    /// Writes `w` in one durable transaction; minute rows beyond
    /// [`MAX_MINUTE_ROWS`] (the oldest) are dropped in the same transaction.
    pub fn write(&self, w: StateWrite) -> Result<(), StateError> {
        if w.is_empty() {
            return Ok(());
        }
        let err = self.err();
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        {
            let mut minutes = txn.open_table(MINUTES).map_err(|e| err(e.into()))?;
            for (minute, index) in &w.minutes {
                // The first index of a minute never moves once written.
                if minutes.get(minute).map_err(|e| err(e.into()))?.is_none() {
                    minutes.insert(minute, index).map_err(|e| err(e.into()))?;
                }
            }
            if let Some((newest, _)) = w.minutes.iter().max() {
                let floor = newest.saturating_sub(MAX_MINUTE_ROWS);
                minutes.retain_in(..floor, |_, _| false).map_err(|e| err(e.into()))?;
            }
            let mut revocations = txn.open_table(REVOCATIONS).map_err(|e| err(e.into()))?;
            for (key, bytes) in &w.revocations {
                revocations.insert(key.as_slice(), bytes.as_slice()).map_err(|e| err(e.into()))?;
            }
            let mut views = txn.open_table(VIEWS).map_err(|e| err(e.into()))?;
            for (hash, json) in &w.views {
                views.insert(hash.as_slice(), json.as_slice()).map_err(|e| err(e.into()))?;
            }
        }
        txn.commit().map_err(|e| err(e.into()))
    }
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> StateError {
    StateError::Db { path: path.to_owned(), source: Box::new(e.into()) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_together_and_survive_reopening() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join(STATE_FILE);
        {
            let s = StateStore::open(&path).unwrap();
            assert_eq!(s.first_index_since(0).unwrap(), None);
            s.write(StateWrite {
                minutes: vec![(100, 3), (102, 6)],
                revocations: vec![([1; 40], vec![9, 9])],
                views: vec![([2; 32], b"{}".to_vec())],
            })
            .unwrap();
            // A later row for a recorded minute does not move its first index.
            s.write(StateWrite { minutes: vec![(102, 99)], ..StateWrite::default() }).unwrap();
        }
        let s = StateStore::open(&path).unwrap();
        assert_eq!(s.first_index_since(0).unwrap(), Some(3));
        assert_eq!(s.first_index_since(101).unwrap(), Some(6));
        assert_eq!(s.first_index_since(103).unwrap(), None);
        assert_eq!(s.revocations().unwrap(), vec![vec![9, 9]]);
        assert_eq!(s.view_hashes().unwrap(), vec![[2; 32]]);
    }

    #[test]
    fn minute_rows_stay_bounded() {
        let dir = tempfile::TempDir::new().unwrap();
        let s = StateStore::open(dir.path().join(STATE_FILE)).unwrap();
        s.write(StateWrite { minutes: vec![(1, 1)], ..StateWrite::default() }).unwrap();
        s.write(StateWrite { minutes: vec![(MAX_MINUTE_ROWS + 10, 5)], ..StateWrite::default() })
            .unwrap();
        assert_eq!(s.first_index_since(0).unwrap(), Some(5), "the oldest row was dropped");
    }

    #[test]
    fn another_format_is_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join(STATE_FILE);
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert(META_FORMAT, 99).unwrap();
            txn.commit().unwrap();
        }
        let e = StateStore::open(&path).unwrap_err();
        assert!(e.to_string().contains("--rebuild-state"), "{e}");
    }
}
