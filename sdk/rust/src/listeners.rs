//! [`ListenerSet`]: the registered listeners of a `SignalClient` or `CallApi`.
//!
//! Callbacks run on the SDK's dispatch task, outside every SDK lock (a listener may call back into the SDK),
//! on a snapshot of the list (adding or removing a listener inside a callback takes effect for the next
//! event). A panicking listener is logged and skipped: one bad listener must not stop the event stream for
//! the others.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use crate::lock;

pub(crate) struct ListenerSet<T: ?Sized> {
    list: Mutex<Vec<Arc<T>>>,
}

impl<T: ?Sized> Default for ListenerSet<T> {
    fn default() -> Self {
        ListenerSet {
            list: Mutex::new(Vec::new()),
        }
    }
}

/// Listeners are identified by their allocation (comparing `dyn` pointers would also compare vtables,
/// which may differ for the same object across codegen units).
fn same<T: ?Sized>(a: &Arc<T>, b: &Arc<T>) -> bool {
    std::ptr::eq(Arc::as_ptr(a).cast::<()>(), Arc::as_ptr(b).cast::<()>())
}

impl<T: ?Sized> ListenerSet<T> {
    /// Adds a listener; adding the same one twice has no effect.
    pub fn add(&self, listener: Arc<T>) {
        let mut list = lock(&self.list);
        if !list.iter().any(|l| same(l, &listener)) {
            list.push(listener);
        }
    }

    /// Removes a listener; returns whether it was registered.
    pub fn remove(&self, listener: &Arc<T>) -> bool {
        let mut list = lock(&self.list);
        let before = list.len();
        list.retain(|l| !same(l, listener));
        list.len() != before
    }

    /// Calls `f` on every listener, in registration order.
    pub fn each(&self, f: impl Fn(&T)) {
        let snapshot: Vec<Arc<T>> = lock(&self.list).clone();
        for listener in snapshot {
            if catch_unwind(AssertUnwindSafe(|| f(&listener))).is_err() {
                tracing::error!(
                    "an SDK listener panicked; the event was still delivered to the others"
                );
            }
        }
    }
}
