//! Counts background work that writes to the store, so a stop can tell whether the store is
//! quiet before it marks a clean shutdown (the mark must be the last write).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone, Default)]
pub struct Writers(Arc<AtomicUsize>);

/// One writer, counted by [`Writers`] until it is dropped (also when its task panics).
pub struct WriterGuard(Arc<AtomicUsize>);

impl Writers {
    pub fn enter(&self) -> WriterGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        WriterGuard(self.0.clone())
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Waits until no writer is left, at most until `deadline`; whether none is.
    pub async fn quiet_by(&self, deadline: tokio::time::Instant) -> bool {
        while self.count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        true
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_counts_until_its_guard_is_gone_also_after_a_panic() {
        let writers = Writers::default();
        let a = writers.enter();
        let b = writers.clone().enter();
        assert_eq!(writers.count(), 2);
        drop(a);
        assert_eq!(writers.count(), 1);
        let w = writers.clone();
        let _ = std::thread::spawn(move || {
            let _guard = w.enter();
            panic!("a writer that fails");
        })
        .join();
        assert_eq!(writers.count(), 1);
        drop(b);
        assert_eq!(writers.count(), 0);
    }
}
