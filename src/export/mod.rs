//! Exports: the record and its validation, the formats, the pipeline, and the actors that
//! run one export at a time per org (`OrgExporter`) under a global limit
//! (`ExportSupervisor`), plus the janitor that expires them.

pub mod actors;
pub mod create;
pub mod deflate;
pub mod direct;
pub mod files;
pub mod formats;
pub mod janitor;
pub mod pipeline;
pub mod prefix;
pub mod record;

use crate::model::ids::ObjectId;
use crate::store::writers::Writers;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running export's stop flag and a signal for when it has ended.
pub struct RunHandle {
    pub flag: Arc<AtomicU8>,
    pub done: tokio::sync::watch::Receiver<bool>,
}

/// What the HTTP side needs to talk to the running exports.
#[derive(Clone)]
pub struct ExportService {
    pub supervisor: actix::Addr<actors::ExportSupervisor>,
    pub running: Arc<Mutex<HashMap<ObjectId, RunHandle>>>,
    pub shutting_down: Arc<AtomicBool>,
    /// The store's count of background writers; runs (until settled), afterScripts and the
    /// janitor's sweeps enter it.
    pub in_flight: Writers,
}

impl ExportService {
    pub fn enqueue(&self, org: &str, id: ObjectId) {
        self.supervisor.do_send(actors::Enqueued {
            org: org.to_string(),
            id,
        });
    }

    /// Asks a running export to stop and waits (up to `wait`) until it has. Returns false
    /// when it was not running here.
    pub async fn stop(&self, id: ObjectId, reason: u8, wait: Duration) -> bool {
        let done = {
            let map = self.running.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&id) {
                Some(h) => {
                    h.flag.store(reason, Ordering::SeqCst);
                    h.done.clone()
                }
                None => return false,
            }
        };
        let mut done = done;
        let _ = tokio::time::timeout(wait, done.wait_for(|d| *d)).await;
        true
    }

    pub fn is_running(&self, id: ObjectId) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
    }

    /// SIGTERM: no new runs; running ones stop and go back to `pending`. Returns whether
    /// every background writer of the store (runs, afterScripts, janitor sweeps, bulk inserts
    /// and uploads) ended within `wait`.
    pub async fn shutdown(&self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        self.shutting_down.store(true, Ordering::SeqCst);
        let ids: Vec<ObjectId> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        let stops = ids
            .into_iter()
            .map(|id| self.stop(id, pipeline::STOP_SHUTDOWN, wait));
        futures_util::future::join_all(stops).await;
        while self.in_flight.count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}
