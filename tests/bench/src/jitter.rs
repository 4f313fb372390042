//! FreeBSD's own amd64 BPF JIT (`bpf_jitter`), linked by `build.rs` when a
//! FreeBSD source tree was at hand: the filter benchmark times zbpf's JIT
//! beside it. Without the tree, `compile` gives `None` and `source` says why.

use zbpf::abi::BpfInsn;

/// The FreeBSD source tree bpf_jitter was built from, or why it was not.
pub fn source() -> Result<&'static str, &'static str> {
    match (option_env!("ZBPF_BPF_JITTER_SRC"), option_env!("ZBPF_BPF_JITTER_MISSING")) {
        (Some(src), _) if cfg!(zbpf_bpf_jitter) => Ok(src),
        (_, Some(why)) => Err(why),
        _ => Err("not built (tests/bench/build.rs did not run)"),
    }
}

#[cfg(zbpf_bpf_jitter)]
mod linked {
    use std::ffi::c_void;
    use std::ptr::NonNull;

    use zbpf::abi::BpfInsn;

    /// A compiled function: (packet, wire length, captured length).
    type Func = unsafe extern "C" fn(*const u8, u32, u32) -> u32;

    extern "C" {
        fn zbpf_bench_jit(insns: *const BpfInsn, n: i32) -> *mut c_void;
        fn zbpf_bench_jit_func(handle: *mut c_void) -> Option<Func>;
        fn zbpf_bench_jit_size(handle: *mut c_void) -> usize;
        fn zbpf_bench_jit_free(handle: *mut c_void);
        fn zbpf_bench_code_place(code: *const u8, size: usize, offset: usize) -> *mut c_void;
        fn zbpf_bench_code_unplace(map: *mut c_void, size: usize, offset: usize);
    }

    /// Who owns the code `func` points into.
    enum Owner {
        /// bpf_jitter's filter, at the start of its own mapping.
        Jitted(NonNull<c_void>),
        /// A copy of `size` bytes placed `offset` bytes into a mapping.
        Placed { map: NonNull<c_void>, size: usize, offset: usize },
    }

    /// One program compiled by bpf_jitter.
    pub struct Jitter {
        /// Keeps the code mapped.
        _owner: Owner,
        func: Func,
        size: usize,
    }

    impl Jitter {
        /// Compiles `insns` (a program libpcap emitted, so a valid one:
        /// bpf_jitter trusts bpf_validate() to have run).
        pub fn new(insns: &[BpfInsn]) -> Result<Self, String> {
            let n = i32::try_from(insns.len()).map_err(|e| e.to_string())?;
            // SAFETY: `insns` is n valid instructions, read only during the call.
            let handle = NonNull::new(unsafe { zbpf_bench_jit(insns.as_ptr(), n) })
                .ok_or("bpf_jitter could not compile the program")?;
            let owner = Owner::Jitted(handle);
            // SAFETY: `handle` is a live filter bpf_jitter returned.
            let (func, size) = unsafe {
                (zbpf_bench_jit_func(handle.as_ptr()), zbpf_bench_jit_size(handle.as_ptr()))
            };
            // On error `owner` frees the filter.
            let func = func.ok_or("bpf_jitter gave no function")?;
            Ok(Jitter { _owner: owner, func, size })
        }

        /// The same code copied `offset` bytes into a fresh mapping (the
        /// filter benchmark's code layouts).
        pub fn placed(&self, offset: usize) -> Result<Self, String> {
            let code = self.func as *const u8;
            // SAFETY: `func` starts the `size` bytes of code bpf_jitter
            // made (readable: mapped read + execute), kept by `_owner`.
            let map = NonNull::new(unsafe { zbpf_bench_code_place(code, self.size, offset) })
                .ok_or("could not map a copy of bpf_jitter's code")?;
            let owner = Owner::Placed { map, size: self.size, offset };
            let start = map.as_ptr().cast::<u8>().wrapping_add(offset);
            // The code is position-independent (relative jumps only), so
            // its copy runs the same.
            // SAFETY: `start` is the executable copy of the function.
            let func = unsafe { std::mem::transmute::<*mut u8, Func>(start) };
            Ok(Jitter { _owner: owner, func, size: self.size })
        }

        /// The verdict on a contiguous packet, as bpf(4) asks for it.
        #[inline]
        pub fn run(&self, pkt: &[u8], wirelen: u32) -> u32 {
            // The length fits: the mix holds captured packets.
            let buflen = pkt.len() as u32;
            // Every load of the code is bounds-checked against `buflen`.
            // SAFETY: the code reads the packet only below `buflen`; no writes.
            unsafe { (self.func)(pkt.as_ptr(), wirelen, buflen) }
        }
    }

    impl Jitter {
        /// The compiled function's first byte (for `crate::driver`).
        pub fn entry(&self) -> *const u8 {
            self.func as *const u8
        }
    }

    /// Machine code of the benchmark's own (`crate::driver`'s loop, zbpf's
    /// JIT output) copied `offset` bytes into a fresh mapping.
    pub struct Code {
        _owner: Owner,
        start: *const u8,
    }

    impl Code {
        pub fn place(bytes: &[u8], offset: usize) -> Result<Self, String> {
            // SAFETY: `bytes` is readable for its length during the call.
            let map =
                NonNull::new(unsafe { zbpf_bench_code_place(bytes.as_ptr(), bytes.len(), offset) })
                    .ok_or("could not map a copy of the code")?;
            let start = map.as_ptr().cast::<u8>().wrapping_add(offset).cast_const();
            Ok(Code { _owner: Owner::Placed { map, size: bytes.len(), offset }, start })
        }

        /// The first byte of the copy.
        pub fn start(&self) -> *const u8 {
            self.start
        }
    }

    impl Drop for Owner {
        fn drop(&mut self) {
            match *self {
                // SAFETY: `handle` came from bpf_jitter and is freed once.
                Owner::Jitted(handle) => unsafe { zbpf_bench_jit_free(handle.as_ptr()) },
                // SAFETY: the mapping zbpf_bench_code_place made, unmapped once.
                Owner::Placed { map, size, offset } => unsafe {
                    zbpf_bench_code_unplace(map.as_ptr(), size, offset)
                },
            }
        }
    }
}

#[cfg(zbpf_bpf_jitter)]
pub use linked::{Code, Jitter};

/// Never made: bpf_jitter was not built.
#[cfg(not(zbpf_bpf_jitter))]
pub struct Jitter(std::convert::Infallible);

#[cfg(not(zbpf_bpf_jitter))]
impl Jitter {
    fn new(_: &[BpfInsn]) -> Result<Self, String> {
        Err(source().err().unwrap_or_default().to_string())
    }

    /// Unreachable: no value of this type exists.
    pub fn run(&self, _: &[u8], _: u32) -> u32 {
        match self.0 {}
    }

    /// Unreachable: no value of this type exists.
    pub fn placed(&self, _: usize) -> Result<Self, String> {
        match self.0 {}
    }

    /// Unreachable: no value of this type exists.
    pub fn entry(&self) -> *const u8 {
        match self.0 {}
    }
}

/// Never made: the mapping helper is built with bpf_jitter.
#[cfg(not(zbpf_bpf_jitter))]
pub struct Code(std::convert::Infallible);

#[cfg(not(zbpf_bpf_jitter))]
impl Code {
    pub fn place(_: &[u8], _: usize) -> Result<Self, String> {
        Err(source().err().unwrap_or_default().to_string())
    }

    /// Unreachable: no value of this type exists.
    pub fn start(&self) -> *const u8 {
        match self.0 {}
    }
}

/// `insns` compiled by bpf_jitter; `Ok(None)` when it was not built.
pub fn compile(insns: &[BpfInsn]) -> Result<Option<Jitter>, String> {
    if source().is_err() {
        return Ok(None);
    }
    Jitter::new(insns).map(Some)
}
