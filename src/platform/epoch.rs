//! A pointer read without locks inside an epoch section and replaced by
//! writers who wait for the epoch before freeing the old value: how the
//! delivery path reads filters and tap readers while ioctls change them.
//!
//! Only a platform's epoch guard opens a read:
//!
//! ```
//! # #[cfg(feature = "hosted")] {
//! use zbpf::hosted::platform::{HostedPlatform, NET_EPOCH};
//! use zbpf::platform::epoch::EpochCell;
//!
//! let cell = EpochCell::<HostedPlatform, u32>::new(Some(Box::new(7)));
//! let section = NET_EPOCH.enter();
//! assert_eq!(cell.get(&section), Some(&7));
//! NET_EPOCH.exit(section);
//! # }
//! ```
//!
//! and anything else is refused at compile time:
//!
//! ```compile_fail,E0308
//! use zbpf::platform::{epoch::EpochCell, Platform};
//!
//! fn peek<P: Platform>(cell: &EpochCell<P, u32>) -> Option<&u32> {
//!     cell.get(&()) // not an epoch section: does not compile
//! }
//! ```

use alloc::boxed::Box;
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::Platform;

/// Proof that the caller is inside a read section of an epoch: the type of
/// [`Platform::EpochGuard`].
///
/// # Safety
/// Implementors promise that:
/// - while a value of the type exists, a read section of one epoch is open
///   (the value stands for it), and safe code cannot make a value any other
///   way;
/// - [`wait_readers`](Self::wait_readers) returns only after every read
///   section of that epoch open when it was called has ended.
///
/// [`EpochCell`] relies on both: it frees a value only after
/// `wait_readers`, and hands out references that borrow a guard.
pub unsafe trait EpochSection {
    /// Waits until every read section open now has ended. May sleep: call
    /// without spin or descriptor locks held.
    fn wait_readers();
}

/// An optional boxed `T` with epoch-protected reads, in the epoch of
/// platform `P`.
pub struct EpochCell<P: Platform, T> {
    ptr: AtomicPtr<T>,
    _owns: PhantomData<Box<T>>,
    _epoch: PhantomData<fn() -> P>,
}

// SAFETY: the cell owns its `T` like a `Box<T>` and hands out only shared
// references, so it is Send and Sync exactly when `T` is.
unsafe impl<P: Platform, T: Send + Sync> Send for EpochCell<P, T> {}
// SAFETY: as above; concurrent readers get `&T`, which needs `T: Sync`.
unsafe impl<P: Platform, T: Send + Sync> Sync for EpochCell<P, T> {}

fn into_raw<T>(value: Option<Box<T>>) -> *mut T {
    value.map_or(ptr::null_mut(), Box::into_raw)
}

impl<P: Platform, T> EpochCell<P, T> {
    /// A cell holding `value`.
    pub fn new(value: Option<Box<T>>) -> Self {
        EpochCell { ptr: AtomicPtr::new(into_raw(value)), _owns: PhantomData, _epoch: PhantomData }
    }

    /// Reads the value inside an epoch section. The reference cannot
    /// outlive the section's guard.
    pub fn get<'a>(&'a self, _section: &'a P::EpochGuard) -> Option<&'a T> {
        let p = self.ptr.load(Ordering::Acquire);
        // `replace` frees a value only after `wait_readers`, which waits for
        // the section `_section` stands for (EpochSection's contract).
        // SAFETY: from `Box::into_raw`, alive while `_section`, borrowed, is.
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
    pub fn replace(&self, value: Option<Box<T>>) {
        let old = self.ptr.swap(into_raw(value), Ordering::AcqRel);
        if !old.is_null() {
            <P::EpochGuard as EpochSection>::wait_readers();
            // The swap unlinked it (no other `replace` gets it); after
            // `wait_readers` no section holds it (EpochSection's contract).
            // SAFETY: from `Box::into_raw`, and no longer reachable.
            drop(unsafe { Box::from_raw(old) });
        }
    }

    /// Whether the cell is empty right now (a racy hint for statistics).
    pub fn is_none(&self) -> bool {
        self.ptr.load(Ordering::Relaxed).is_null()
    }
}

impl<P: Platform, T> Drop for EpochCell<P, T> {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: we own the value and `&mut self` proves no reader exists.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}
