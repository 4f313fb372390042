//! FreeBSD's bpf(4) user ABI for amd64: ioctl numbers computed from their
//! encoding, `repr(C)` structures with compile-time layout checks, and the
//! constants and flags of `net/bpf.h`.
//!
//! The tables at the bottom ([`ioctl::IOCTL_TABLE`], [`types::STRUCT_LAYOUTS`],
//! [`CONST_TABLE`], [`errno::ERRNO_TABLE`]) are what `zbpf-abigen` turns into a C
//! file of `_Static_assert`s, compiled in CI against FreeBSD 15.0's own headers:
//! the Rust side cannot drift from FreeBSD without CI failing.

#![forbid(unsafe_code)]

pub mod consts;
pub mod errno;
pub mod ioccom;
pub mod ioctl;
pub mod layout;
pub mod types;

pub use consts::*;
pub use errno::{Errno, Result};
pub use layout::{AbiField, StructLayout, UserAddr};
pub use types::*;

/// `(C macro, value)` for every constant the C check compares.
pub const CONST_TABLE: &[(&str, i64)] = &[
    ("BPF_ALIGNMENT", BPF_ALIGNMENT as i64),
    ("BPF_MAXINSNS", BPF_MAXINSNS as i64),
    ("BPF_MAXBUFSIZE", BPF_MAXBUFSIZE as i64),
    ("BPF_MINBUFSIZE", BPF_MINBUFSIZE as i64),
    ("BPF_MEMWORDS", BPF_MEMWORDS as i64),
    ("BPF_RELEASE", BPF_RELEASE as i64),
    ("BPF_MAJOR_VERSION", BPF_MAJOR_VERSION as i64),
    ("BPF_MINOR_VERSION", BPF_MINOR_VERSION as i64),
    ("BPF_BUFMODE_BUFFER", BPF_BUFMODE_BUFFER as i64),
    ("BPF_BUFMODE_ZBUF", BPF_BUFMODE_ZBUF as i64),
    ("BPF_D_IN", BPF_D_IN as i64),
    ("BPF_D_INOUT", BPF_D_INOUT as i64),
    ("BPF_D_OUT", BPF_D_OUT as i64),
    ("BPF_T_MICROTIME", BPF_T_MICROTIME as i64),
    ("BPF_T_NANOTIME", BPF_T_NANOTIME as i64),
    ("BPF_T_BINTIME", BPF_T_BINTIME as i64),
    ("BPF_T_NONE", BPF_T_NONE as i64),
    ("BPF_T_FORMAT_MASK", BPF_T_FORMAT_MASK as i64),
    ("BPF_T_NORMAL", BPF_T_NORMAL as i64),
    ("BPF_T_FAST", BPF_T_FAST as i64),
    ("BPF_T_MONOTONIC", BPF_T_MONOTONIC as i64),
    ("BPF_T_FLAG_MASK", BPF_T_FLAG_MASK as i64),
    ("PAGE_SIZE", PAGE_SIZE as i64),
    ("IFNAMSIZ", IFNAMSIZ as i64),
    ("DLT_NULL", dlt::DLT_NULL as i64),
    ("DLT_EN10MB", dlt::DLT_EN10MB as i64),
    ("DLT_RAW", dlt::DLT_RAW as i64),
    ("DLT_LOOP", dlt::DLT_LOOP as i64),
    ("BPF_LD", op::BPF_LD as i64),
    ("BPF_LDX", op::BPF_LDX as i64),
    ("BPF_ST", op::BPF_ST as i64),
    ("BPF_STX", op::BPF_STX as i64),
    ("BPF_ALU", op::BPF_ALU as i64),
    ("BPF_JMP", op::BPF_JMP as i64),
    ("BPF_RET", op::BPF_RET as i64),
    ("BPF_MISC", op::BPF_MISC as i64),
    ("BPF_W", op::BPF_W as i64),
    ("BPF_H", op::BPF_H as i64),
    ("BPF_B", op::BPF_B as i64),
    ("BPF_IMM", op::BPF_IMM as i64),
    ("BPF_ABS", op::BPF_ABS as i64),
    ("BPF_IND", op::BPF_IND as i64),
    ("BPF_MEM", op::BPF_MEM as i64),
    ("BPF_LEN", op::BPF_LEN as i64),
    ("BPF_MSH", op::BPF_MSH as i64),
    ("BPF_ADD", op::BPF_ADD as i64),
    ("BPF_SUB", op::BPF_SUB as i64),
    ("BPF_MUL", op::BPF_MUL as i64),
    ("BPF_DIV", op::BPF_DIV as i64),
    ("BPF_OR", op::BPF_OR as i64),
    ("BPF_AND", op::BPF_AND as i64),
    ("BPF_LSH", op::BPF_LSH as i64),
    ("BPF_RSH", op::BPF_RSH as i64),
    ("BPF_NEG", op::BPF_NEG as i64),
    ("BPF_MOD", op::BPF_MOD as i64),
    ("BPF_XOR", op::BPF_XOR as i64),
    ("BPF_JA", op::BPF_JA as i64),
    ("BPF_JEQ", op::BPF_JEQ as i64),
    ("BPF_JGT", op::BPF_JGT as i64),
    ("BPF_JGE", op::BPF_JGE as i64),
    ("BPF_JSET", op::BPF_JSET as i64),
    ("BPF_K", op::BPF_K as i64),
    ("BPF_X", op::BPF_X as i64),
    ("BPF_A", op::BPF_A as i64),
    ("BPF_TAX", op::BPF_TAX as i64),
    ("BPF_TXA", op::BPF_TXA as i64),
    ("POLLIN", PollEvents::POLLIN.bits() as i64),
    ("POLLPRI", PollEvents::POLLPRI.bits() as i64),
    ("POLLOUT", PollEvents::POLLOUT.bits() as i64),
    ("POLLERR", PollEvents::POLLERR.bits() as i64),
    ("POLLHUP", PollEvents::POLLHUP.bits() as i64),
    ("POLLNVAL", PollEvents::POLLNVAL.bits() as i64),
    ("POLLRDNORM", PollEvents::POLLRDNORM.bits() as i64),
    ("POLLRDBAND", PollEvents::POLLRDBAND.bits() as i64),
    ("POLLWRBAND", PollEvents::POLLWRBAND.bits() as i64),
    ("POLLWRNORM", POLLWRNORM.bits() as i64),
    ("NSIG", NSIG as i64),
    ("SIGIO", SIGIO as i64),
    ("O_NONBLOCK", O_NONBLOCK as i64),
    ("EVFILT_READ", EVFILT_READ as i64),
    ("EVFILT_WRITE", EVFILT_WRITE as i64),
];

/// The BPF_WORDALIGN'ed record header length for a link header of `link_hdrlen`
/// bytes: it puts the network-layer header on an 8-byte boundary.
pub const fn bpf_hdrlen(link_hdrlen: usize) -> usize {
    bpf_wordalign(SIZEOF_BPF_HDR + link_hdrlen) - link_hdrlen
}
