//! Global state for a kernel that runs on one CPU at a time, without
//! interrupts.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A value shared by the whole kernel, lent out one borrower at a time.
///
/// The kernel never enables interrupts for itself and runs on one CPU at a
/// time (a native function's VM has one CPU; a Linux program's CPUs take
/// the kernel lock, see `linux::smp`), so the only way to reach a `Global`
/// twice at once is re-entry from the same call stack (a panic while the
/// value is lent, say). [`Global::with`] detects that and
/// refuses instead of aliasing.
pub struct Global<T> {
    busy: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: one CPU at a time in the kernel, no interrupts: access is
// serialised by the kernel lock and the call stack, and `busy` rules out
// re-entrant aliasing.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Global {
            busy: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` on the value; `None` if the value is already lent (re-entry).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: `busy` was false, so no other reference exists until we
        // clear it again below.
        let result = f(unsafe { &mut *self.value.get() });
        self.busy.store(false, Ordering::Release);
        Some(result)
    }
}
