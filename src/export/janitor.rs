//! The janitor: on a timer, deletes expired exports (record, archive, quota), drops expired
//! sessions and reclaims orphaned blobs.

use super::ExportService;
use crate::model::ids::now_iso;
use crate::store::Store;
use actix::prelude::*;
use std::time::Duration;

pub struct Janitor {
    pub store: Store,
    pub exports: ExportService,
    pub interval: Duration,
}

impl Actor for Janitor {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |act, _| {
            // a stop marks a clean shutdown only once no background writer is left: no
            // sweep starts after it began, and one under way is counted until it ends
            if act
                .exports
                .shutting_down
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return;
            }
            let in_flight = act.store.writers.enter();
            let store = act.store.clone();
            let exports = act.exports.clone();
            actix::spawn(async move {
                let swept = tokio::task::spawn_blocking(move || {
                    let _sweeping = in_flight;
                    sweep(&store, &exports)
                });
                match swept.await {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::info!(expired = n, "janitor removed expired exports")
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "janitor sweep failed"),
                    _ => {}
                }
            });
        });
    }
}

/// One sweep; returns how many exports expired.
pub fn sweep(store: &Store, exports: &ExportService) -> crate::fault::Result<usize> {
    let now = now_iso();
    let mut n = 0;
    let exports_now = store.readable_exports().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not list exports to expire");
        Vec::new()
    });
    for rec in exports_now {
        if rec.is_expired(&now) && !exports.is_running(rec.id) {
            match store.delete_export(&rec.org, rec.id) {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!(export = %rec.id, error = %e, "could not expire export"),
            }
        }
    }
    // each step on its own: one failing must not keep the others from running
    if let Err(e) = store.purge_sessions(chrono::Utc::now().timestamp()) {
        tracing::warn!(error = %e, "could not purge expired sessions");
    }
    if let Err(e) = store.sweep_export_leftovers() {
        tracing::warn!(error = %e, "could not sweep what interrupted exports left");
    }
    store.reclaim_blobs()?;
    Ok(n)
}
