//! A bound on how many sessions compute at once.
//!
//! A server with hundreds of clients runs a thread per connection; if every thread computes
//! whenever it can, the cores switch between hundreds of threads and their buffers, and
//! throughput past saturation falls far below its peak. A [`Gate`] has a fixed number of
//! turns; a session given one ([`Session::with_gate`](crate::Session::with_gate)) holds a turn
//! while it computes and gives it back while it waits for its peer (an exchange, a control
//! message), so waiting on the network never keeps another connection from the cores.

use std::num::NonZeroUsize;
use std::sync::{Arc, Condvar, Mutex};

/// At most so many holders of a turn at once.
#[derive(Debug)]
pub struct Gate {
    free: Mutex<usize>,
    freed: Condvar,
    turns: usize,
}

impl Gate {
    /// A gate of `turns` turns; 0 for one per core.
    pub fn new(turns: usize) -> Arc<Gate> {
        let turns = match turns {
            0 => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            n => n,
        };
        Arc::new(Gate {
            free: Mutex::new(turns),
            freed: Condvar::new(),
            turns,
        })
    }

    /// Its number of turns.
    pub fn turns(&self) -> usize {
        self.turns
    }

    /// Waits for a turn.
    pub fn enter(self: &Arc<Self>) -> Turn {
        // A poisoned lock only means another holder panicked: the count is still right.
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Turn(Arc::clone(self))
    }
}

/// A turn through a [`Gate`], given back when dropped.
#[derive(Debug)]
pub struct Turn(Arc<Gate>);

impl Drop for Turn {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Gate;

    #[test]
    fn no_more_than_its_turns_hold_one_at_once() {
        let gate = Gate::new(2);
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        let _turn = gate.enter();
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::yield_now();
                        now.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(
            Gate::new(0).turns(),
            std::thread::available_parallelism().unwrap().get()
        );
    }
}
