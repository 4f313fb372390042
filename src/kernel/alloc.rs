//! The global allocator (malloc(9) with M_ZBPF) and the panic handler of
//! the kernel build.
//!
//! Allocations happen only in sleepable contexts (open, ioctl, write), never
//! on the delivery path, so they ask for M_WAITOK and cannot fail: the
//! engine uses fallible `try_reserve` only where FreeBSD returns ENOMEM.

use core::alloc::{GlobalAlloc, Layout};

use super::ffi;

struct KernelAlloc;

// SAFETY: malloc(9) returns memory of at least `size` bytes aligned to
// `align` (malloc_aligned), never shared with another allocation, and
// free(9) releases exactly what malloc returned.
unsafe impl GlobalAlloc for KernelAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain call into the C shim.
        unsafe { ffi::zbpf_kpi_malloc(layout.size(), layout.align(), 1).cast() }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above (GlobalAlloc's contract).
        unsafe { ffi::zbpf_kpi_free(ptr.cast()) }
    }
}

#[global_allocator]
static ALLOCATOR: KernelAlloc = KernelAlloc;

/// The last resort: no panic is reachable from user input, but if one
/// happens it must not unwind into C. Report and stop the kernel.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let msg: &[u8] = match info.message().as_str() {
        Some(s) => s.as_bytes(),
        None => b"zbpf: panic in Rust code",
    };
    // SAFETY: the shim formats `len` bytes and does not return.
    unsafe { ffi::zbpf_kpi_panic(msg.as_ptr().cast(), msg.len()) };
    loop {
        core::hint::spin_loop();
    }
}
