//! ioctl command numbers, computed from the encoding and the argument types.
//!
//! Values are amd64's. The C check (`make abi-check`) compares each one with
//! the macro of the same name in FreeBSD's headers.

use super::ioccom::{io, ior, iow, iowr};
use super::types::{BpfDltList, BpfProgram, BpfStat, BpfVersion, BpfZbuf, IfReq, Timeval};

/// Get the buffer size.
pub const BIOCGBLEN: u64 = ior::<u32>(b'B', 102);
/// Set the buffer size (clamped value written back).
pub const BIOCSBLEN: u64 = iowr::<u32>(b'B', 102);
/// Set the read filter and reset the descriptor.
pub const BIOCSETF: u64 = iow::<BpfProgram>(b'B', 103);
/// Discard buffered packets and zero the counters.
pub const BIOCFLUSH: u64 = io(b'B', 104);
/// Put the interface in promiscuous mode.
pub const BIOCPROMISC: u64 = io(b'B', 105);
/// Get the data-link type.
pub const BIOCGDLT: u64 = ior::<u32>(b'B', 106);
/// Get the attached interface's name.
pub const BIOCGETIF: u64 = ior::<IfReq>(b'B', 107);
/// Attach to an interface.
pub const BIOCSETIF: u64 = iow::<IfReq>(b'B', 108);
/// Set the read timeout.
pub const BIOCSRTIMEOUT: u64 = iow::<Timeval>(b'B', 109);
/// Get the read timeout.
pub const BIOCGRTIMEOUT: u64 = ior::<Timeval>(b'B', 110);
/// Get received and dropped counts.
pub const BIOCGSTATS: u64 = ior::<BpfStat>(b'B', 111);
/// Set immediate mode.
pub const BIOCIMMEDIATE: u64 = iow::<u32>(b'B', 112);
/// Get the filter machine's version.
pub const BIOCVERSION: u64 = ior::<BpfVersion>(b'B', 113);
/// Get the signal sent on wakeups.
pub const BIOCGRSIG: u64 = ior::<u32>(b'B', 114);
/// Set the signal sent on wakeups.
pub const BIOCSRSIG: u64 = iow::<u32>(b'B', 115);
/// Get the header-complete flag.
pub const BIOCGHDRCMPLT: u64 = ior::<u32>(b'B', 116);
/// Set the header-complete flag.
pub const BIOCSHDRCMPLT: u64 = iow::<u32>(b'B', 117);
/// Get the capture direction.
pub const BIOCGDIRECTION: u64 = ior::<u32>(b'B', 118);
/// Set the capture direction.
pub const BIOCSDIRECTION: u64 = iow::<u32>(b'B', 119);
/// Choose another data-link type of the interface.
pub const BIOCSDLT: u64 = iow::<u32>(b'B', 120);
/// List the interface's data-link types.
pub const BIOCGDLTLIST: u64 = iowr::<BpfDltList>(b'B', 121);
/// Lock the descriptor's configuration.
pub const BIOCLOCK: u64 = io(b'B', 122);
/// Set the write filter.
pub const BIOCSETWF: u64 = iow::<BpfProgram>(b'B', 123);
/// Set the feedback flag.
pub const BIOCFEEDBACK: u64 = iow::<u32>(b'B', 124);
/// Get the buffer mode.
pub const BIOCGETBUFMODE: u64 = ior::<u32>(b'B', 125);
/// Set the buffer mode.
pub const BIOCSETBUFMODE: u64 = iow::<u32>(b'B', 126);
/// Get the largest zero-copy buffer size (a `size_t`: 8 bytes).
pub const BIOCGETZMAX: u64 = ior::<u64>(b'B', 127);
/// Force a rotation of the zero-copy buffers.
pub const BIOCROTZBUF: u64 = ior::<BpfZbuf>(b'B', 128);
/// Install the zero-copy buffers.
pub const BIOCSETZBUF: u64 = iow::<BpfZbuf>(b'B', 129);
/// Set the read filter without resetting.
pub const BIOCSETFNR: u64 = iow::<BpfProgram>(b'B', 130);
/// Get the timestamp type.
pub const BIOCGTSTAMP: u64 = ior::<u32>(b'B', 131);
/// Set the timestamp type.
pub const BIOCSTSTAMP: u64 = iow::<u32>(b'B', 132);
/// Set the VLAN priority of written frames.
pub const BIOCSETVLANPCP: u64 = iow::<u32>(b'B', 133);
/// Obsolete alias of BIOCGDIRECTION.
pub const BIOCGSEESENT: u64 = BIOCGDIRECTION;
/// Obsolete alias of BIOCSDIRECTION.
pub const BIOCSSEESENT: u64 = BIOCSDIRECTION;

/// zbpf extension (the 2007 Zero-Copy BPF design): the next zero-copy buffer
/// the user owns, as `{bz_bufa = its address, bz_bufb = 0, bz_buflen = data
/// length}`, or all zeros when the user owns none. Numbered in 224..=239, a
/// range of the 'B' group that FreeBSD does not use.
pub const BIOCGETZNEXT: u64 = ior::<BpfZbuf>(b'B', 224);
/// zbpf extension: give the buffer at `bz_bufa` back to the kernel, exactly
/// as storing `bzh_user_gen = bzh_kernel_gen` would. EINVAL unless it is the
/// buffer the user currently holds.
pub const BIOCACKZBUF: u64 = iow::<BpfZbuf>(b'B', 225);

/// Bytes readable (store plus hold).
pub const FIONREAD: u64 = ior::<i32>(b'f', 127);
/// Set non-blocking I/O (handled by the file layer).
pub const FIONBIO: u64 = iow::<i32>(b'f', 126);
/// Set asynchronous (signal-driven) I/O.
pub const FIOASYNC: u64 = iow::<i32>(b'f', 125);
/// Set the owner that receives the signal.
pub const FIOSETOWN: u64 = iow::<i32>(b'f', 124);
/// Get the owner.
pub const FIOGETOWN: u64 = ior::<i32>(b'f', 123);
/// Deprecated: set the owning process group.
pub const TIOCSPGRP: u64 = iow::<i32>(b't', 118);
/// Deprecated: get the owning process group.
pub const TIOCGPGRP: u64 = ior::<i32>(b't', 119);

/// `SIOCGIFADDR`: documented by bpf(4), not implemented by it (EINVAL).
pub const SIOCGIFADDR: u64 = iowr::<IfReq>(b'i', 33);

/// Commands still permitted after BIOCLOCK (FreeBSD's whitelist, including its
/// oddities: BIOCSTSTAMP is allowed, BIOCGTSTAMP and FIONBIO are not).
pub const LOCKED_WHITELIST: &[u64] = &[
    BIOCGBLEN,
    BIOCFLUSH,
    BIOCGDLT,
    BIOCGDLTLIST,
    BIOCGETIF,
    BIOCGRTIMEOUT,
    BIOCGSTATS,
    BIOCVERSION,
    BIOCGRSIG,
    BIOCGHDRCMPLT,
    BIOCSTSTAMP,
    BIOCFEEDBACK,
    FIONREAD,
    BIOCLOCK,
    BIOCSRTIMEOUT,
    BIOCIMMEDIATE,
    TIOCGPGRP,
    BIOCROTZBUF,
];

/// `(name, value)` for every command, for the C check and for tools.
pub const IOCTL_TABLE: &[(&str, u64)] = &[
    ("BIOCGBLEN", BIOCGBLEN),
    ("BIOCSBLEN", BIOCSBLEN),
    ("BIOCSETF", BIOCSETF),
    ("BIOCFLUSH", BIOCFLUSH),
    ("BIOCPROMISC", BIOCPROMISC),
    ("BIOCGDLT", BIOCGDLT),
    ("BIOCGETIF", BIOCGETIF),
    ("BIOCSETIF", BIOCSETIF),
    ("BIOCSRTIMEOUT", BIOCSRTIMEOUT),
    ("BIOCGRTIMEOUT", BIOCGRTIMEOUT),
    ("BIOCGSTATS", BIOCGSTATS),
    ("BIOCIMMEDIATE", BIOCIMMEDIATE),
    ("BIOCVERSION", BIOCVERSION),
    ("BIOCGRSIG", BIOCGRSIG),
    ("BIOCSRSIG", BIOCSRSIG),
    ("BIOCGHDRCMPLT", BIOCGHDRCMPLT),
    ("BIOCSHDRCMPLT", BIOCSHDRCMPLT),
    ("BIOCGDIRECTION", BIOCGDIRECTION),
    ("BIOCSDIRECTION", BIOCSDIRECTION),
    ("BIOCSDLT", BIOCSDLT),
    ("BIOCGDLTLIST", BIOCGDLTLIST),
    ("BIOCLOCK", BIOCLOCK),
    ("BIOCSETWF", BIOCSETWF),
    ("BIOCFEEDBACK", BIOCFEEDBACK),
    ("BIOCGETBUFMODE", BIOCGETBUFMODE),
    ("BIOCSETBUFMODE", BIOCSETBUFMODE),
    ("BIOCGETZMAX", BIOCGETZMAX),
    ("BIOCROTZBUF", BIOCROTZBUF),
    ("BIOCSETZBUF", BIOCSETZBUF),
    ("BIOCSETFNR", BIOCSETFNR),
    ("BIOCGTSTAMP", BIOCGTSTAMP),
    ("BIOCSTSTAMP", BIOCSTSTAMP),
    ("BIOCSETVLANPCP", BIOCSETVLANPCP),
    ("BIOCGSEESENT", BIOCGSEESENT),
    ("BIOCSSEESENT", BIOCSSEESENT),
    ("FIONREAD", FIONREAD),
    ("FIONBIO", FIONBIO),
    ("FIOASYNC", FIOASYNC),
    ("FIOSETOWN", FIOSETOWN),
    ("FIOGETOWN", FIOGETOWN),
    ("TIOCSPGRP", TIOCSPGRP),
    ("TIOCGPGRP", TIOCGPGRP),
    ("SIOCGIFADDR", SIOCGIFADDR),
];

/// zbpf's own commands: the C check asserts that none of them equals a
/// FreeBSD command.
pub const ZBPF_IOCTL_TABLE: &[(&str, u64)] =
    &[("BIOCGETZNEXT", BIOCGETZNEXT), ("BIOCACKZBUF", BIOCACKZBUF)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_values() {
        assert_eq!(BIOCGBLEN, 0x4004_4266);
        assert_eq!(BIOCSETIF, 0x8020_426c);
        assert_eq!(BIOCSETF, 0x8010_4267);
        assert_eq!(BIOCGETZMAX, 0x4008_427f);
        assert_eq!(BIOCROTZBUF, 0x4018_4280);
        assert_eq!(FIONREAD, 0x4004_667f);
    }

    #[test]
    fn extensions_do_not_collide() {
        for (_, z) in ZBPF_IOCTL_TABLE {
            assert!(IOCTL_TABLE.iter().all(|(_, v)| v != z));
            assert!((z & 0xff) >= 224);
        }
    }
}
