//! The actors of DESIGN.md. `ExportSupervisor` recovers at start and routes new exports to
//! the `OrgExporter` of their org; each `OrgExporter` owns its org's FIFO and runs exactly
//! one export at a time, on a blocking thread, after taking a permit of the global limit.
//! OrgExporters stay alive once started (they are small) so no wake-up can be lost between
//! an exporter going idle and a new export arriving.

use super::pipeline::{self, Outcome};
use super::record::{Event, State};
use super::{ExportService, RunHandle};
use crate::hook::runner::HookConfig;
use crate::model::ids::ObjectId;
use crate::store::Store;
use actix::prelude::*;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use tokio::sync::Semaphore;

#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueued {
    pub org: String,
    pub id: ObjectId,
}

pub struct ExportSupervisor {
    store: Store,
    hook: Arc<HookConfig>,
    permits: Arc<Semaphore>,
    orgs: HashMap<String, Addr<OrgExporter>>,
    running: Arc<std::sync::Mutex<HashMap<ObjectId, RunHandle>>>,
    shutting_down: Arc<AtomicBool>,
}

impl ExportSupervisor {
    /// Recovers interrupted runs, starts the supervisor, and returns the service handle.
    pub fn start(
        store: Store,
        max_concurrent: usize,
        hook: HookConfig,
    ) -> crate::fault::Result<ExportService> {
        let recovered = store.recover_running()?;
        for r in &recovered {
            tracing::info!(org = %r.org, export = %r.id, "export interrupted by a stop; queued again");
        }
        let running = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let shutting_down = Arc::new(AtomicBool::new(false));
        let orgs = store.orgs_with_queue()?;
        let sup = ExportSupervisor {
            hook: Arc::new(hook),
            store,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            orgs: HashMap::new(),
            running: running.clone(),
            shutting_down: shutting_down.clone(),
        }
        .start();
        for org in orgs {
            sup.do_send(Kick { org });
        }
        Ok(ExportService {
            supervisor: sup,
            running,
            shutting_down,
        })
    }

    fn exporter(&mut self, org: &str) -> Addr<OrgExporter> {
        if let Some(a) = self.orgs.get(org)
            && a.connected()
        {
            return a.clone();
        }
        let a = OrgExporter {
            hook: self.hook.clone(),
            org: org.to_string(),
            store: self.store.clone(),
            queue: VecDeque::new(),
            busy: false,
            permits: self.permits.clone(),
            running: self.running.clone(),
            shutting_down: self.shutting_down.clone(),
        }
        .start();
        self.orgs.insert(org.to_string(), a.clone());
        a
    }
}

impl Actor for ExportSupervisor {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Kick {
    org: String,
}

impl Handler<Kick> for ExportSupervisor {
    type Result = ();
    fn handle(&mut self, msg: Kick, _: &mut Context<Self>) {
        self.exporter(&msg.org).do_send(Pump);
    }
}

impl Handler<Enqueued> for ExportSupervisor {
    type Result = ();
    fn handle(&mut self, msg: Enqueued, _: &mut Context<Self>) {
        self.exporter(&msg.org).do_send(Push(msg.id));
    }
}

pub struct OrgExporter {
    hook: Arc<HookConfig>,
    org: String,
    store: Store,
    queue: VecDeque<ObjectId>,
    busy: bool,
    permits: Arc<Semaphore>,
    running: Arc<std::sync::Mutex<HashMap<ObjectId, RunHandle>>>,
    shutting_down: Arc<AtomicBool>,
}

impl Actor for OrgExporter {
    type Context = Context<Self>;

    /// The FIFO is rebuilt from the durable queue.
    fn started(&mut self, _: &mut Context<Self>) {
        match self.store.queue(&self.org) {
            Ok(q) => self.queue = q.into(),
            Err(e) => tracing::error!(org = %self.org, error = %e, "cannot read the export queue"),
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Push(ObjectId);

#[derive(Message)]
#[rtype(result = "()")]
struct Pump;

#[derive(Message)]
#[rtype(result = "()")]
struct Finished;

impl Handler<Push> for OrgExporter {
    type Result = ();
    fn handle(&mut self, msg: Push, ctx: &mut Context<Self>) {
        if !self.queue.contains(&msg.0) {
            self.queue.push_back(msg.0);
        }
        self.pump(ctx);
    }
}

impl Handler<Pump> for OrgExporter {
    type Result = ();
    fn handle(&mut self, _: Pump, ctx: &mut Context<Self>) {
        self.pump(ctx);
    }
}

impl Handler<Finished> for OrgExporter {
    type Result = ();
    fn handle(&mut self, _: Finished, ctx: &mut Context<Self>) {
        self.busy = false;
        self.pump(ctx);
    }
}

impl OrgExporter {
    /// Starts the head of the queue unless one is running. Entries that are no longer
    /// pending (cancelled, deleted) are dropped.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        while let Some(id) = self.queue.pop_front() {
            match self.store.get_export(&self.org, id) {
                Ok(Some(r)) if r.state == State::Pending || r.state == State::Running => {
                    self.busy = true;
                    self.launch(id, ctx);
                    return;
                }
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(org = %self.org, export = %id, error = %e, "cannot read export");
                    continue;
                }
            }
        }
    }

    fn launch(&mut self, id: ObjectId, ctx: &mut Context<Self>) {
        let flag = Arc::new(AtomicU8::new(pipeline::RUN));
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                RunHandle {
                    flag: flag.clone(),
                    done: done_rx,
                },
            );
        let store = self.store.clone();
        let org = self.org.clone();
        let permits = self.permits.clone();
        let running = self.running.clone();
        let hook = self.hook.clone();
        let me = ctx.address();
        let writers = self.store.writers.clone();
        let run_in_flight = writers.enter();
        actix::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let (s2, o2, f2) = (store.clone(), org.clone(), flag.clone());
            let outcome = tokio::task::spawn_blocking(move || pipeline::run(&s2, &o2, id, f2))
                .await
                .unwrap_or_else(|e| {
                    Outcome::Failed(crate::fault::Fault::internal("export run panicked", e))
                });
            let (s3, o3) = (store.clone(), org.clone());
            let _ = tokio::task::spawn_blocking(move || settle(&s3, &o3, id, outcome)).await;
            // the afterScript runs beside the queue: the org's next export need not wait
            if let Ok(Some(rec)) = store.get_export(&org, id)
                && rec.after_script.is_some()
                && matches!(rec.state, State::Ready | State::Error)
            {
                let s4 = store.clone();
                let hook_in_flight = writers.enter();
                tokio::task::spawn_blocking(move || {
                    let _running = hook_in_flight;
                    crate::hook::runner::after_run(&s4, &hook, &rec)
                });
            }
            running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            drop(run_in_flight);
            let _ = done_tx.send(true);
            me.do_send(Finished);
        });
    }
}

/// Records how a run ended.
fn settle(store: &Store, org: &str, id: ObjectId, outcome: Outcome) {
    let res = match outcome {
        Outcome::Ready(rec) => {
            let docs = rec.stats.as_ref().map_or(0, |s| s.docs);
            let bytes = rec.data_file.as_ref().map_or(0, |d| d.size);
            let secs = match (&rec.started, &rec.completed) {
                (Some(a), Some(b)) => match (
                    chrono::DateTime::parse_from_rfc3339(a),
                    chrono::DateTime::parse_from_rfc3339(b),
                ) {
                    (Ok(a), Ok(b)) => (b - a).num_milliseconds() as f64 / 1000.0,
                    _ => 0.0,
                },
                _ => 0.0,
            };
            crate::metrics::get().export_ready(docs, bytes, secs);
            tracing::info!(%org, export = %id, docs, bytes, secs, "export ready");
            Ok(())
        }
        Outcome::Skipped => Ok(()),
        Outcome::Failed(f) => {
            crate::metrics::get()
                .exports_failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(%org, export = %id, fault = %f, "export failed");
            store.finish_error(org, id, &f).map(|_| ())
        }
        Outcome::Stopped(pipeline::STOP_CANCEL) => {
            crate::metrics::get()
                .exports_cancelled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            store
                .add_event(org, id, &Event::new("cancelled", json!({})))
                .and_then(|_| {
                    store
                        .finish_error(org, id, &pipeline::cancelled_fault())
                        .map(|_| ())
                })
        }
        Outcome::Stopped(pipeline::STOP_SHUTDOWN) => store
            .update_export(org, id, |r| {
                if r.state == State::Running {
                    r.state = State::Pending;
                    r.progress = Default::default();
                }
                Ok(())
            })
            .and_then(|_| {
                store.add_event(
                    org,
                    id,
                    &Event::new("aborted", json!({"willRestart": true})),
                )
            })
            .and_then(|_| store.flush()),
        // deleted: the DELETE handler removes the record once the run has stopped
        Outcome::Stopped(_) => Ok(()),
    };
    if let Err(e) = res {
        tracing::error!(%org, export = %id, error = %e, "could not record the end of an export");
    }
}
