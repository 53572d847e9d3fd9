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

    /// SIGTERM: no new runs or janitor sweeps; running ones stop and go back to `pending`.
    pub async fn shutdown(&self, wait: Duration) {
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
    }
}
