//! The WAL's checkpoints, on a thread and connection of their own.
//!
//! SQLite checkpoints on the committing connection by default: once the WAL holds 1,000
//! pages, the commit that crossed the mark copies them into the database file and syncs it
//! before it returns. On the single writer that stalled every queued write for the copy and
//! the `fsync` (a fifth of the creates per second under load). Here the writer's commit only
//! notes the WAL's size; each [`CHECKPOINT_PAGES`] it wakes this thread, which runs a passive
//! checkpoint (never blocks the writer or a reader). Copying while the writer goes on, the
//! thread never catches up with the WAL's end, and only a checkpoint that has copied all of it
//! lets the next transaction start the WAL over; so at [`RESTART_PAGES`] the writer checkpoints
//! the little the thread has not copied yet, as SQLite would, sixteen times less often. That
//! checkpoint is short, but its two `fsync`s still stall every queued write: at 4,000 pages
//! (a 16 MB WAL) it cost an eighth of the creates per second on a virtual disk; at 16,000 the
//! WAL file stays under 64 MB.
//! The last connection to close still checkpoints everything, so a closed database has no WAL.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags};

use crate::error::{StoreError, StoreResult};

/// The WAL size, in pages, that calls for a checkpoint: SQLite's own default.
pub(crate) const CHECKPOINT_PAGES: i32 = 1_000;

/// The WAL size, in pages, at which the writer checkpoints itself, so that the WAL starts over.
pub(crate) const RESTART_PAGES: i32 = 16 * CHECKPOINT_PAGES;

/// The checkpoint thread of one database; dropping the writer's connection stops it.
pub(crate) struct Checkpointer {
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Opens the checkpoint connection and installs the writer's commit hook, which replaces
    /// SQLite's automatic checkpoint on `writer`.
    pub(crate) fn start(
        path: &Path,
        busy_timeout: Duration,
        writer: &mut Connection,
    ) -> StoreResult<Checkpointer> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(busy_timeout)?;
        // A connection learns the journal mode when it first reads the file; until then a
        // checkpoint does nothing (the writer has switched the file to WAL already).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // One pending wake is enough: a checkpoint copies everything committed before it.
        let (wake, woken) = flume::bounded::<()>(1);
        // The WAL size at which the thread is woken next.
        let mut mark = CHECKPOINT_PAGES;
        writer.wal_hook(Some(move |wal: &mut Wal, pages: i32| {
            if pages < mark - CHECKPOINT_PAGES {
                // The WAL started over: count again from its start.
                mark = CHECKPOINT_PAGES;
            }
            if pages >= RESTART_PAGES {
                // Copies what the thread has not yet (its last checkpoint did the rest), so
                // that the next transaction can start the WAL over: the thread's checkpoints
                // alone never catch up with a writer that keeps committing.
                if wal.checkpoint_v2(CheckpointMode::PASSIVE).is_ok() {
                    mark = CHECKPOINT_PAGES;
                }
            } else if pages >= mark {
                let _ = wake.try_send(());
                mark = pages + CHECKPOINT_PAGES;
            }
            Ok(())
        }))?;
        let thread = std::thread::Builder::new()
            .name("parlor-sqlite-checkpoint".to_owned())
            .spawn(move || {
                while woken.recv().is_ok() {
                    match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
                        Ok((-1, _)) => tracing::warn!("a WAL checkpoint could not run"),
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%error, "a WAL checkpoint failed; the next one retries");
                        }
                    }
                }
                if let Err((_, error)) = conn.close() {
                    tracing::error!(%error, "closing the checkpoint connection failed");
                }
            })
            .map_err(|error| StoreError::Database(Box::new(error)))?;
        Ok(Checkpointer { thread })
    }

    /// Removes the writer's hook (the thread's only waker), so the thread closes its
    /// connection, and waits for it: the writer's connection is then the last one open and
    /// its close checkpoints the whole WAL.
    pub(crate) fn stop(self, writer: &mut Connection) {
        type Hook = fn(&mut Wal, i32) -> rusqlite::Result<()>;
        if let Err(error) = writer.wal_hook(None::<Hook>) {
            tracing::error!(%error, "removing the WAL hook failed");
        }
        if self.thread.join().is_err() {
            tracing::error!("the checkpoint thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::Store;
    use crate::sqlite::SqliteStore;

    /// Commits `data` (2 MiB in these tests: 512 pages) as the file `f<index>`.
    async fn put_blob(store: &SqliteStore, index: usize, data: &[u8]) {
        store
            .put_file(
                &format!("f{index}"),
                "application/octet-stream",
                data.to_vec(),
            )
            .await
            .expect("put");
    }

    /// Commits past the mark reach the database file while the store is open (below its own
    /// mark the writer does not checkpoint: this thread does), and closing leaves everything
    /// in the file, no WAL.
    #[tokio::test]
    async fn commits_are_checkpointed_while_the_store_is_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("checkpointed.db");
        let url = format!("sqlite://{}", path.display());
        let store = SqliteStore::open(&url).await.expect("open");
        let data = vec![7_u8; 2 << 20];
        for index in 0..3 {
            put_blob(&store, index, &data).await;
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let file_size = || std::fs::metadata(&path).map_or(0, |meta| meta.len());
        while file_size() < 4 << 20 && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(
            file_size() >= 4 << 20,
            "the database file holds {} bytes of the 4 MiB committed past the mark: no checkpoint ran",
            file_size()
        );
        store.close().await;
        assert!(!dir.path().join("checkpointed.db-wal").exists());
        let reopened = SqliteStore::open(&url).await.expect("reopen");
        let (_, read) = reopened.get_file("f2").await.expect("get").expect("file");
        assert_eq!(read, data);
        reopened.close().await;
    }

    /// Under writes that never stop, the WAL starts over (the writer's own checkpoint at
    /// [`RESTART_PAGES`](super::RESTART_PAGES), once the thread is idle) instead of growing
    /// with everything written.
    #[tokio::test]
    async fn the_wal_starts_over_under_steady_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/steady.db", dir.path().display());
        let store = SqliteStore::open(&url).await.expect("open");
        let wal_size =
            || std::fs::metadata(dir.path().join("steady.db-wal")).map_or(0, |meta| meta.len());
        // Commits of 512 pages, back to back: the thread's checkpoints never catch up.
        let data = vec![7_u8; 2 << 20];
        let mut written = 0;
        let mut started_over = false;
        // Up to 256 MiB: four times `RESTART_PAGES`, as a busy machine (other tests running)
        // can keep the thread from finding an idle moment for a while.
        for index in 0..128 {
            put_blob(&store, index, &data).await;
            written += data.len() as u64;
            if wal_size() < written {
                started_over = true;
                break;
            }
        }
        assert!(
            started_over,
            "the WAL holds {} bytes after {written} bytes of commits: it never started over",
            wal_size()
        );
        store.close().await;
    }
}
