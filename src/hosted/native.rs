//! Native filter code in userspace: machine code from the JIT copied into
//! a fresh mapping, which is then made read-only and executable (never
//! writable and executable at once).

use std::prelude::rust_2021::*;

use std::ptr::NonNull;
use std::sync::Arc;

use crate::filter::jit::Compiled;
use crate::filter::NativeCode;

use crate::filter::NativeEntry as Entry;

/// One compiled program in an executable mapping.
pub struct HostedNative {
    map: NonNull<u8>,
    len: usize,
    entry: Entry,
}

// SAFETY: the mapping is read-only and executable, owned by this value, and
// the code it holds keeps no state between calls.
unsafe impl Send for HostedNative {}
// SAFETY: as above: concurrent calls share nothing but read-only code.
unsafe impl Sync for HostedNative {}

impl HostedNative {
    /// Maps `compiled`, which must come from `filter::jit::compile` of a
    /// program the validator accepted.
    pub fn map(compiled: &Compiled) -> Option<Arc<dyn NativeCode>> {
        let code = &compiled.code;
        if compiled.entry >= code.len() {
            return None;
        }
        let len = code.len();
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let map = NonNull::new(p.cast::<u8>())?;
        // SAFETY: the mapping is `len` >= `code.len()` writable bytes, fresh.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), map.as_ptr(), code.len()) };
        // SAFETY: changes only this mapping's protection, to read + execute.
        if unsafe { libc::mprotect(p, len, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
            // SAFETY: unmapping what we mapped above.
            unsafe { libc::munmap(p, len) };
            return None;
        }
        let start = map.as_ptr().wrapping_add(compiled.entry);
        // SAFETY: `start` is inside the mapping (checked above) and is the
        // compiled function, which follows `Entry` (filter::jit's contract).
        let entry = unsafe { std::mem::transmute::<*mut u8, Entry>(start) };
        Some(Arc::new(HostedNative { map, len, entry }))
    }
}

// SAFETY: `entry` is the mapping `new` filled with the JIT's code and made
// read-only and executable; it stays mapped until `self` is dropped.
unsafe impl NativeCode for HostedNative {
    fn entry(&self) -> Entry {
        self.entry
    }
}

impl Drop for HostedNative {
    fn drop(&mut self) {
        // SAFETY: the mapping was created in `new` with this length; no call
        // can be running (the program owning this value is being dropped).
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.len) };
    }
}

/// A validated program that runs as native code (for tests and benchmarks;
/// the engine does the same through `Bpf::program`).
pub fn native_program(
    insns: &[crate::abi::BpfInsn],
) -> Result<crate::filter::Program, crate::filter::ValidateError> {
    let mut prog = crate::filter::Program::new(insns)?;
    if let Some(code) = HostedNative::map(&crate::filter::jit::compile(insns)) {
        prog.attach_native(code);
    }
    Ok(prog)
}
