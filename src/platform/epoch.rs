//! A pointer read without locks inside an epoch section and replaced by
//! writers who wait for the epoch before freeing the old value: how the
//! delivery path reads filters and listener lists while ioctls change them.

use alloc::boxed::Box;
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::Platform;

/// An optional boxed `T` with epoch-protected reads.
pub struct EpochCell<T> {
    ptr: AtomicPtr<T>,
    _owns: PhantomData<Box<T>>,
}

// SAFETY: the cell owns its `T` like a `Box<T>` and hands out only shared
// references, so it is Send and Sync exactly when `T` is.
unsafe impl<T: Send + Sync> Send for EpochCell<T> {}
// SAFETY: as above; concurrent readers get `&T`, which needs `T: Sync`.
unsafe impl<T: Send + Sync> Sync for EpochCell<T> {}

fn into_raw<T>(value: Option<Box<T>>) -> *mut T {
    value.map_or(ptr::null_mut(), Box::into_raw)
}

impl<T> EpochCell<T> {
    /// A cell holding `value`.
    pub fn new(value: Option<Box<T>>) -> Self {
        EpochCell { ptr: AtomicPtr::new(into_raw(value)), _owns: PhantomData }
    }

    /// Reads the value inside an epoch section. The reference cannot
    /// outlive the section's guard.
    pub fn get<'a, G>(&'a self, _section: &'a G) -> Option<&'a T> {
        let p = self.ptr.load(Ordering::Acquire);
        // `replace` frees a value only after `epoch_wait`, which waits for
        // every section that could have loaded it.
        // SAFETY: non-null pointers come from `Box::into_raw`; `_section`
        // keeps the caller's section open as long as the result lives.
        unsafe { p.as_ref() }
    }

    /// Reads the value when the caller has exclusive access to the cell.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        // SAFETY: `&mut self` excludes every reader and writer; the pointer
        // is null or owned by this cell.
        unsafe { self.ptr.load(Ordering::Acquire).as_mut() }
    }

    /// Installs `value`, waits until no reader can still see the old one,
    /// then drops it. May sleep: call without spin or descriptor locks held.
    pub fn replace<P: Platform>(&self, platform: &P, value: Option<Box<T>>) {
        let old = self.ptr.swap(into_raw(value), Ordering::AcqRel);
        if !old.is_null() {
            platform.epoch_wait();
            // SAFETY: from `Box::into_raw`, unlinked by the swap (so no other
            // `replace` gets it) and, after `epoch_wait`, held by no section.
            drop(unsafe { Box::from_raw(old) });
        }
    }

    /// Whether the cell is empty right now (a racy hint for statistics).
    pub fn is_none(&self) -> bool {
        self.ptr.load(Ordering::Relaxed).is_null()
    }
}

impl<T> Drop for EpochCell<T> {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: we own the value and `&mut self` proves no reader exists.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}
