//! The connection budget shared by every request of a process (and later by several export
//! groups): at most `max` requests in flight, fewer while the server pushes back (429/503),
//! climbing back when it is healthy. A value passed around, never a global.

use std::time::Duration;

#[derive(Clone)]
pub struct Budget {}

pub struct Permit {}

impl Budget {
    pub fn new(max_connections: usize) -> Self {
        let _ = max_connections;
        todo!()
    }

    /// Wait for a slot (and for any shared pause to end).
    pub async fn acquire(&self) -> Permit {
        todo!()
    }

    /// The server said slow down: pause everyone for `retry_after` and shrink the limit.
    pub fn throttled(&self, retry_after: Duration) {
        let _ = retry_after;
        todo!()
    }

    /// A healthy answer: let the limit climb back towards the ceiling.
    pub fn healthy(&self) {
        todo!()
    }

    /// Current allowed concurrency (for progress and `--verbose`).
    pub fn current_limit(&self) -> usize {
        todo!()
    }
}
