//! Gauges that mirror shared state, published without racing each other.
//!
//! A gauge set from a value read outside any lock can go back in time: a thread that
//! read the state before another changed it may publish after it, and the gauge then
//! keeps the stale value until the next change. [`GaugeMirror`] reads and publishes
//! under one lock, so the last publication always read the state after every change
//! that was published before it.

use std::sync::{Mutex, PoisonError};

/// Serializes "read the state, set the gauges" for one piece of shared state.
#[derive(Debug, Default)]
pub struct GaugeMirror {
    lock: Mutex<()>,
}

impl GaugeMirror {
    /// Calls `publish`, which reads the state and sets the gauges, under the lock. Call
    /// it after the change: the change must happen before the lock is taken.
    pub fn publish<T>(&self, publish: impl FnOnce() -> T) -> T {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        publish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[test]
    fn the_last_publication_sees_every_change() {
        let state = Arc::new(AtomicI64::new(0));
        let published = Arc::new(Mutex::new(Vec::new()));
        let mirror = Arc::new(GaugeMirror::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (state, published, mirror) = (state.clone(), published.clone(), mirror.clone());
                std::thread::spawn(move || {
                    for k in 0..2_000 {
                        let delta = if k % 2 == 0 { 1 } else { -1 };
                        state.fetch_add(delta, Ordering::Relaxed);
                        mirror.publish(|| {
                            let seen = state.load(Ordering::Relaxed);
                            published.lock().expect("not poisoned").push(seen);
                        });
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread ran");
        }
        let published = published.lock().expect("not poisoned");
        assert_eq!(published.len(), 8_000);
        assert_eq!(
            published.last(),
            Some(&0),
            "the final state is what stays published"
        );
    }
}
