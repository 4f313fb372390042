//! Constants of the bpf(4) ABI and of the FreeBSD headers it leans on.

use bitflags::bitflags;

/// `BPF_ALIGNMENT`: records are aligned to `sizeof(long)`.
pub const BPF_ALIGNMENT: usize = 8;

/// `BPF_WORDALIGN(x)`.
pub const fn bpf_wordalign(x: usize) -> usize {
    (x + (BPF_ALIGNMENT - 1)) & !(BPF_ALIGNMENT - 1)
}

/// Default limit on program length (`net.bpf.maxinsns`).
pub const BPF_MAXINSNS: u32 = 512;
/// Default upper clamp of BIOCSBLEN (`net.bpf.maxbufsize`).
pub const BPF_MAXBUFSIZE: u32 = 0x80000;
/// Lower clamp of BIOCSBLEN.
pub const BPF_MINBUFSIZE: u32 = 32;
/// Default buffer size of a new descriptor (`net.bpf.bufsize`).
pub const BPF_DEFAULTBUFSIZE: u32 = 4096;
/// Scratch memory words of the filter machine.
pub const BPF_MEMWORDS: usize = 16;
/// `BPF_RELEASE`.
pub const BPF_RELEASE: u32 = 199606;
/// Filter machine major version.
pub const BPF_MAJOR_VERSION: u16 = 1;
/// Filter machine minor version.
pub const BPF_MINOR_VERSION: u16 = 1;

/// Kernel buffers copied out by read(2).
pub const BPF_BUFMODE_BUFFER: u32 = 1;
/// Zero-copy buffers shared with the process.
pub const BPF_BUFMODE_ZBUF: u32 = 2;

/// See incoming packets only.
pub const BPF_D_IN: u32 = 0;
/// See both directions.
pub const BPF_D_INOUT: u32 = 1;
/// See outgoing packets only.
pub const BPF_D_OUT: u32 = 2;

/// amd64 page size.
pub const PAGE_SIZE: usize = 4096;
/// Most pages in one zero-copy buffer (`BPF_MAX_PAGES` in bpf_zerocopy.c).
pub const BPF_MAX_PAGES: usize = 512;
/// BIOCGETZMAX's answer.
pub const BPF_ZBUF_MAX: usize = BPF_MAX_PAGES * PAGE_SIZE;

/// Interface name length, NUL included.
pub const IFNAMSIZ: usize = 16;

/// The two timestamp flag bits of BPF_T_*.
pub const BPF_T_MICROTIME: u32 = 0x0000;
/// (sec, ns) timestamps in a `bpf_xhdr`.
pub const BPF_T_NANOTIME: u32 = 0x0001;
/// (sec, 2^-64 fraction) timestamps in a `bpf_xhdr`.
pub const BPF_T_BINTIME: u32 = 0x0002;
/// No timestamp.
pub const BPF_T_NONE: u32 = 0x0003;
/// Mask of the format.
pub const BPF_T_FORMAT_MASK: u32 = 0x0003;
/// Full-precision clock read.
pub const BPF_T_NORMAL: u32 = 0x0000;
/// Tick-precision clock read.
pub const BPF_T_FAST: u32 = 0x0100;
/// Time since boot instead of wall clock.
pub const BPF_T_MONOTONIC: u32 = 0x0200;
/// Mask of the flags.
pub const BPF_T_FLAG_MASK: u32 = 0x0300;

/// The format part of a BPF_T_* value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TstampFormat {
    /// Microseconds, legacy `bpf_hdr`.
    Micro,
    /// Nanoseconds, `bpf_xhdr`.
    Nano,
    /// Binary fraction, `bpf_xhdr`.
    Bin,
    /// Zeroed timestamp, legacy `bpf_hdr`.
    None,
}

bitflags! {
    /// The flag part of a BPF_T_* value.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct TstampFlags: u32 {
        /// Tick precision is enough.
        const FAST = BPF_T_FAST;
        /// Uptime rather than wall-clock time.
        const MONOTONIC = BPF_T_MONOTONIC;
    }
}

/// A validated BPF_T_* value (`BPF_T_VALID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tstamp(u32);

impl Tstamp {
    /// The default: microseconds, precise, wall clock.
    pub const DEFAULT: Tstamp = Tstamp(BPF_T_MICROTIME);

    /// Accepts exactly what FreeBSD's `BPF_T_VALID` accepts.
    pub const fn new(raw: u32) -> Option<Tstamp> {
        let valid = raw == BPF_T_NONE
            || ((raw & BPF_T_FORMAT_MASK) != BPF_T_NONE
                && raw & !(BPF_T_FORMAT_MASK | BPF_T_FLAG_MASK) == 0);
        if valid {
            Some(Tstamp(raw))
        } else {
            None
        }
    }

    /// The raw value, as BIOCGTSTAMP returns it.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// The format.
    pub const fn format(self) -> TstampFormat {
        match self.0 & BPF_T_FORMAT_MASK {
            BPF_T_MICROTIME => TstampFormat::Micro,
            BPF_T_NANOTIME => TstampFormat::Nano,
            BPF_T_BINTIME => TstampFormat::Bin,
            _ => TstampFormat::None,
        }
    }

    /// The flags.
    pub const fn flags(self) -> TstampFlags {
        TstampFlags::from_bits_truncate(self.0)
    }

    /// Whether records carry the extended header (`bpf_xhdr`).
    pub const fn extended_header(self) -> bool {
        matches!(self.format(), TstampFormat::Nano | TstampFormat::Bin)
    }
}

/// Which packets a descriptor sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Direction {
    /// Received by the interface.
    In = BPF_D_IN,
    /// Both.
    InOut = BPF_D_INOUT,
    /// Sent by the interface.
    Out = BPF_D_OUT,
}

impl Direction {
    /// Decodes a BIOCSDIRECTION argument.
    pub const fn from_raw(v: u32) -> Option<Direction> {
        match v {
            BPF_D_IN => Some(Direction::In),
            BPF_D_INOUT => Some(Direction::InOut),
            BPF_D_OUT => Some(Direction::Out),
            _ => None,
        }
    }

    /// Whether a packet travelling `inbound` (or not) is seen.
    pub const fn admits(self, inbound: bool) -> bool {
        match self {
            Direction::In => inbound,
            Direction::Out => !inbound,
            Direction::InOut => true,
        }
    }
}

/// Data-link types zbpf's simulator and tools use (FreeBSD `net/dlt.h`).
pub mod dlt {
    /// BSD loopback: a 4-byte host-order address family.
    pub const DLT_NULL: u32 = 0;
    /// Ethernet.
    pub const DLT_EN10MB: u32 = 1;
    /// Raw IP (FreeBSD's value).
    pub const DLT_RAW: u32 = 12;
    /// OpenBSD-style loopback: a 4-byte network-order address family.
    pub const DLT_LOOP: u32 = 108;
}

/// Classic BPF opcode fields (`net/bpf.h`).
pub mod op {
    /// Instruction class mask.
    pub const fn class(code: u16) -> u16 {
        code & 0x07
    }
    /// Load size mask.
    pub const fn size(code: u16) -> u16 {
        code & 0x18
    }
    /// Load mode mask.
    pub const fn mode(code: u16) -> u16 {
        code & 0xe0
    }
    /// ALU/JMP operation mask.
    pub const fn op(code: u16) -> u16 {
        code & 0xf0
    }
    /// Operand source mask.
    pub const fn src(code: u16) -> u16 {
        code & 0x08
    }
    /// RET value source mask.
    pub const fn rval(code: u16) -> u16 {
        code & 0x18
    }
    /// MISC operation mask.
    pub const fn miscop(code: u16) -> u16 {
        code & 0xf8
    }

    pub const BPF_LD: u16 = 0x00;
    pub const BPF_LDX: u16 = 0x01;
    pub const BPF_ST: u16 = 0x02;
    pub const BPF_STX: u16 = 0x03;
    pub const BPF_ALU: u16 = 0x04;
    pub const BPF_JMP: u16 = 0x05;
    pub const BPF_RET: u16 = 0x06;
    pub const BPF_MISC: u16 = 0x07;

    pub const BPF_W: u16 = 0x00;
    pub const BPF_H: u16 = 0x08;
    pub const BPF_B: u16 = 0x10;

    pub const BPF_IMM: u16 = 0x00;
    pub const BPF_ABS: u16 = 0x20;
    pub const BPF_IND: u16 = 0x40;
    pub const BPF_MEM: u16 = 0x60;
    pub const BPF_LEN: u16 = 0x80;
    pub const BPF_MSH: u16 = 0xa0;

    pub const BPF_ADD: u16 = 0x00;
    pub const BPF_SUB: u16 = 0x10;
    pub const BPF_MUL: u16 = 0x20;
    pub const BPF_DIV: u16 = 0x30;
    pub const BPF_OR: u16 = 0x40;
    pub const BPF_AND: u16 = 0x50;
    pub const BPF_LSH: u16 = 0x60;
    pub const BPF_RSH: u16 = 0x70;
    pub const BPF_NEG: u16 = 0x80;
    pub const BPF_MOD: u16 = 0x90;
    pub const BPF_XOR: u16 = 0xa0;

    pub const BPF_JA: u16 = 0x00;
    pub const BPF_JEQ: u16 = 0x10;
    pub const BPF_JGT: u16 = 0x20;
    pub const BPF_JGE: u16 = 0x30;
    pub const BPF_JSET: u16 = 0x40;

    pub const BPF_K: u16 = 0x00;
    pub const BPF_X: u16 = 0x08;
    pub const BPF_A: u16 = 0x10;

    pub const BPF_TAX: u16 = 0x00;
    pub const BPF_TXA: u16 = 0x80;
}

bitflags! {
    /// poll(2) event bits (FreeBSD `sys/poll.h`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PollEvents: i32 {
        /// Data to read.
        const POLLIN = 0x0001;
        /// Urgent data.
        const POLLPRI = 0x0002;
        /// Writable.
        const POLLOUT = 0x0004;
        /// Error.
        const POLLERR = 0x0008;
        /// Hung up.
        const POLLHUP = 0x0010;
        /// Invalid descriptor.
        const POLLNVAL = 0x0020;
        /// Normal data to read.
        const POLLRDNORM = 0x0040;
        /// Priority data to read.
        const POLLRDBAND = 0x0080;
        /// Priority data writable.
        const POLLWRBAND = 0x0100;
    }
}

/// `POLLWRNORM` equals `POLLOUT` on FreeBSD.
pub const POLLWRNORM: PollEvents = PollEvents::POLLOUT;

/// Signals below this number are accepted by BIOCSRSIG.
pub const NSIG: u32 = 32;
/// The default wakeup signal.
pub const SIGIO: u32 = 23;

/// `O_NONBLOCK` (and the kernel's `FNONBLOCK`, `IO_NDELAY`).
pub const O_NONBLOCK: i32 = 0x0004;
/// Open for reading (kernel `FREAD`).
pub const FREAD: i32 = 0x0001;
/// Open for writing (kernel `FWRITE`).
pub const FWRITE: i32 = 0x0002;

/// kqueue read filter.
pub const EVFILT_READ: i16 = -1;
/// kqueue write filter.
pub const EVFILT_WRITE: i16 = -2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tstamp_validity_matches_bpf_t_valid() {
        let valid: alloc::vec::Vec<u32> =
            (0..0x1000u32).filter(|&t| Tstamp::new(t).is_some()).collect();
        assert_eq!(
            valid,
            [0, 1, 2, 3, 0x100, 0x101, 0x102, 0x200, 0x201, 0x202, 0x300, 0x301, 0x302]
        );
        assert_eq!(Tstamp::new(0x101).map(|t| t.format()), Some(TstampFormat::Nano));
        assert!(Tstamp::new(0x102).is_some_and(|t| t.extended_header()));
        assert!(Tstamp::new(0x300).is_some_and(|t| t.flags().contains(TstampFlags::FAST)));
    }

    #[test]
    fn wordalign() {
        assert_eq!(bpf_wordalign(26 + 14) - 14, 26);
        assert_eq!(bpf_wordalign(26 + 4) - 4, 28);
        assert_eq!(bpf_wordalign(26), 32);
    }
}
