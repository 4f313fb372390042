//! The FreeBSD kernel platform (feature `kmod`): the engine's
//! [`Platform`](crate::platform::Platform) over the C shims declared in
//! `ffi/zbpf_kpi.h`, and the `extern "C"` entry points the C side calls.
//!
//! | file | concept |
//! | --- | --- |
//! | `platform.rs` | locks, counters, time, notifiers, interfaces, user memory |
//! | `mbuf.rs` | an mbuf chain as the engine's segment list |
//! | `entry.rs` | the `zbpf_rs_*` functions: cdevsw, taps, timer, sysctls, module events |
//! | `alloc.rs` | the global allocator over malloc(9), and the panic handler |
//!
//! Nothing here decides bpf semantics: each function adapts a kernel
//! service or forwards a call to the engine.

#[cfg(target_os = "none")]
mod alloc;
mod entry;
mod mbuf;
mod platform;

pub use entry::*;
pub use platform::{KIface, KPages, KUser, KernelPlatform};

/// The C side's functions.
pub(crate) use crate::kpi as ffi;
