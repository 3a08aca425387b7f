//! Short critical sections over maps shared between actors and their registry.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, also after a panic elsewhere: a poisoned map means an actor panicked mid-insert, and the
/// map itself is still consistent.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
