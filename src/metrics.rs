//! Process-wide counters for `/metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

#[derive(Default)]
pub struct Metrics {
    pub exports_ready: AtomicU64,
    pub exports_failed: AtomicU64,
    pub exports_cancelled: AtomicU64,
    pub documents_exported: AtomicU64,
    pub bytes_exported: AtomicU64,
    /// Export run durations: bucket upper bounds in seconds → count, plus sum and count.
    pub durations: Mutex<(Vec<u64>, f64, u64)>,
    pub faults: Mutex<BTreeMap<String, u64>>,
    pub requests: Mutex<BTreeMap<u16, u64>>,
}

pub const DURATION_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0];

pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics {
        durations: Mutex::new((vec![0; DURATION_BUCKETS.len()], 0.0, 0)),
        ..Default::default()
    })
}

impl Metrics {
    pub fn fault(&self, err_code: &str) {
        *self
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(err_code.to_string())
            .or_default() += 1;
    }

    pub fn request(&self, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    pub fn export_ready(&self, docs: u64, bytes: u64, seconds: f64) {
        self.exports_ready.fetch_add(1, Ordering::Relaxed);
        self.documents_exported.fetch_add(docs, Ordering::Relaxed);
        self.bytes_exported.fetch_add(bytes, Ordering::Relaxed);
        let mut d = self.durations.lock().unwrap_or_else(|e| e.into_inner());
        for (i, b) in DURATION_BUCKETS.iter().enumerate() {
            if seconds <= *b {
                d.0[i] += 1;
            }
        }
        d.1 += seconds;
        d.2 += 1;
    }

    /// The text exposition; `running` and `queues` are read at scrape time.
    /// `queued` is the total across orgs; `queues` the per-org depths to show (the operator's).
    pub fn render(&self, running: usize, queued: usize, queues: &[(String, usize)]) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "exportd_exports_ready_total",
            "Exports that ended ready.",
            self.exports_ready.load(Ordering::Relaxed),
        );
        counter(
            "exportd_exports_failed_total",
            "Exports that ended in error.",
            self.exports_failed.load(Ordering::Relaxed),
        );
        counter(
            "exportd_exports_cancelled_total",
            "Exports cancelled.",
            self.exports_cancelled.load(Ordering::Relaxed),
        );
        counter(
            "exportd_documents_exported_total",
            "Documents written to archives.",
            self.documents_exported.load(Ordering::Relaxed),
        );
        counter(
            "exportd_bytes_exported_total",
            "Archive bytes written.",
            self.bytes_exported.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            s,
            "# HELP exportd_exports_running Exports running now.\n# TYPE exportd_exports_running gauge\nexportd_exports_running {running}"
        );
        let _ = writeln!(
            s,
            "# HELP exportd_queued_exports Exports pending or running, all orgs.\n# TYPE exportd_queued_exports gauge\nexportd_queued_exports {queued}"
        );
        let _ = writeln!(
            s,
            "# HELP exportd_queue_depth Exports pending or running per org (system token only).\n# TYPE exportd_queue_depth gauge"
        );
        for (org, n) in queues {
            let _ = writeln!(s, "exportd_queue_depth{{org=\"{org}\"}} {n}");
        }
        {
            let d = self.durations.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(
                s,
                "# HELP exportd_export_duration_seconds Run time of exports that ended ready.\n# TYPE exportd_export_duration_seconds histogram"
            );
            for (i, b) in DURATION_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "exportd_export_duration_seconds_bucket{{le=\"{b}\"}} {}",
                    d.0[i]
                );
            }
            let _ = writeln!(
                s,
                "exportd_export_duration_seconds_bucket{{le=\"+Inf\"}} {}\nexportd_export_duration_seconds_sum {}\nexportd_export_duration_seconds_count {}",
                d.2, d.1, d.2
            );
        }
        let _ = writeln!(
            s,
            "# HELP exportd_faults_total Faults answered, by errCode.\n# TYPE exportd_faults_total counter"
        );
        for (code, n) in self.faults.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(s, "exportd_faults_total{{err_code=\"{code}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "# HELP exportd_http_requests_total HTTP requests, by status.\n# TYPE exportd_http_requests_total counter"
        );
        for (status, n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(s, "exportd_http_requests_total{{status=\"{status}\"}} {n}");
        }
        s
    }
}
