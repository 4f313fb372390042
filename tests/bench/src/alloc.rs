//! A counting allocator: every allocation the calling thread makes is
//! counted (calls and bytes), so the suite can measure what opening a
//! descriptor costs and check that capturing a packet allocates nothing.
//! The counters are per thread: the simulator's timer thread does not
//! disturb them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counted.
pub struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static ALLOCATED: Cell<u64> = const { Cell::new(0) };
    static FREED: Cell<u64> = const { Cell::new(0) };
}

fn bump(c: &'static std::thread::LocalKey<Cell<u64>>, by: u64) {
    // try_with: never panic inside the allocator, even during thread exit.
    let _ = c.try_with(|v| v.set(v.get().wrapping_add(by)));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counting only touches
// const-initialised thread-locals without destructors, which never
// allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS, 1);
        bump(&ALLOCATED, layout.size() as u64);
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS, 1);
        bump(&ALLOCATED, layout.size() as u64);
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s
        // contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        bump(&FREED, layout.size() as u64);
        // SAFETY: forwarded as is; `ptr` came from this allocator (that is,
        // from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump(&ALLOCS, 1);
        bump(&ALLOCATED, new_size as u64);
        bump(&FREED, layout.size() as u64);
        // SAFETY: forwarded as is; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What this thread has allocated so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    /// Allocation calls (a realloc counts as one).
    pub allocs: u64,
    /// Bytes requested.
    pub allocated: u64,
    /// Bytes given back.
    pub freed: u64,
}

impl Snapshot {
    /// Now, on this thread.
    pub fn now() -> Snapshot {
        let get = |c: &'static std::thread::LocalKey<Cell<u64>>| c.try_with(Cell::get).unwrap_or(0);
        Snapshot { allocs: get(&ALLOCS), allocated: get(&ALLOCATED), freed: get(&FREED) }
    }

    /// Allocation calls since `earlier`.
    pub fn allocs_since(&self, earlier: &Snapshot) -> u64 {
        self.allocs - earlier.allocs
    }

    /// Net bytes still allocated that were allocated since `earlier`.
    pub fn live_since(&self, earlier: &Snapshot) -> i64 {
        (self.allocated - earlier.allocated) as i64 - (self.freed - earlier.freed) as i64
    }
}
