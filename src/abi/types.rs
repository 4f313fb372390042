//! The structures of the bpf(4) user ABI on amd64 (FreeBSD `net/bpf.h`,
//! `net/bpfdesc.h`, `net/if.h`, `sys/_timeval.h`).

use super::layout::{abi_struct, UserAddr};

abi_struct! {
    /// One classic BPF instruction (`struct bpf_insn`).
    pub struct BpfInsn = "struct bpf_insn", size 8, align 4 {
        /// Opcode: class, size or source, mode or operation.
        pub code: u16 = 0,
        /// Jump offset when the condition holds.
        pub jt: u8 = 2,
        /// Jump offset when it does not.
        pub jf: u8 = 3,
        /// Generic operand.
        pub k: u32 = 4,
    }
}

impl BpfInsn {
    /// `BPF_STMT(code, k)`.
    pub const fn stmt(code: u16, k: u32) -> BpfInsn {
        BpfInsn { code, jt: 0, jf: 0, k }
    }

    /// `BPF_JUMP(code, k, jt, jf)`.
    pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> BpfInsn {
        BpfInsn { code, jt, jf, k }
    }
}

abi_struct! {
    /// A filter program as passed to BIOCSETF, BIOCSETFNR and BIOCSETWF.
    pub struct BpfProgram = "struct bpf_program", size 16, align 8 {
        /// Number of instructions.
        pub bf_len: u32 = 0,
        /// User address of the instruction array.
        pub bf_insns: UserAddr = 8,
    }
}

abi_struct! {
    /// BIOCGSTATS output.
    pub struct BpfStat = "struct bpf_stat", size 8, align 4 {
        /// Packets received (low 32 bits of the counter).
        pub bs_recv: u32 = 0,
        /// Packets dropped (low 32 bits of the counter).
        pub bs_drop: u32 = 4,
    }
}

abi_struct! {
    /// BIOCVERSION output.
    pub struct BpfVersion = "struct bpf_version", size 4, align 2 {
        /// Major version (1).
        pub bv_major: u16 = 0,
        /// Minor version (1).
        pub bv_minor: u16 = 2,
    }
}

abi_struct! {
    /// BIOCGDLTLIST argument.
    pub struct BpfDltList = "struct bpf_dltlist", size 16, align 8 {
        /// Capacity of `bfl_list` in, count out.
        pub bfl_len: u32 = 0,
        /// User address of a `u_int` array, or null to ask for the count.
        pub bfl_list: UserAddr = 8,
    }
}

abi_struct! {
    /// BIOCSETZBUF input, BIOCROTZBUF output (and zbpf's BIOCGETZNEXT and
    /// BIOCACKZBUF).
    pub struct BpfZbuf = "struct bpf_zbuf", size 24, align 8 {
        /// User address of buffer a (or of the buffer concerned).
        pub bz_bufa: UserAddr = 0,
        /// User address of buffer b.
        pub bz_bufb: UserAddr = 8,
        /// Size of each buffer (or bytes of data).
        pub bz_buflen: u64 = 16,
    }
}

abi_struct! {
    /// The 32-byte header at the front of each zero-copy buffer.
    pub struct BpfZbufHeader = "struct bpf_zbuf_header", size 32, align 4 {
        /// Bumped by the kernel when it hands the buffer to the user.
        pub bzh_kernel_gen: u32 = 0,
        /// Bytes of records after the header, valid while the user owns it.
        pub bzh_kernel_len: u32 = 4,
        /// Set to `bzh_kernel_gen` by the user to give the buffer back.
        pub bzh_user_gen: u32 = 8,
        /// Reserved.
        pub _bzh_pad: [u32; 5] = 12,
    }
}

abi_struct! {
    /// `struct timeval` (amd64: 64-bit seconds and microseconds).
    pub struct Timeval = "struct timeval", size 16, align 8 {
        /// Seconds.
        pub tv_sec: i64 = 0,
        /// Microseconds.
        pub tv_usec: i64 = 8,
    }
}

abi_struct! {
    /// The timestamp of a `bpf_xhdr`.
    pub struct BpfTs = "struct bpf_ts", size 16, align 8 {
        /// Seconds.
        pub bt_sec: i64 = 0,
        /// Nanoseconds, or a 2^-64 binary fraction for BPF_T_BINTIME.
        pub bt_frac: u64 = 8,
    }
}

abi_struct! {
    /// The record header for BPF_T_MICROTIME and BPF_T_NONE.
    pub struct BpfHdr = "struct bpf_hdr", size 32, align 8 {
        /// Capture time.
        pub bh_tstamp: Timeval = 0,
        /// Bytes of packet stored.
        pub bh_caplen: u32 = 16,
        /// Length of the packet on the wire.
        pub bh_datalen: u32 = 20,
        /// Header length including alignment padding.
        pub bh_hdrlen: u16 = 24,
    }
}

abi_struct! {
    /// The record header for BPF_T_NANOTIME and BPF_T_BINTIME.
    pub struct BpfXhdr = "struct bpf_xhdr", size 32, align 8 {
        /// Capture time.
        pub bh_tstamp: BpfTs = 0,
        /// Bytes of packet stored.
        pub bh_caplen: u32 = 16,
        /// Length of the packet on the wire.
        pub bh_datalen: u32 = 20,
        /// Header length including alignment padding.
        pub bh_hdrlen: u16 = 24,
    }
}

abi_struct! {
    /// `struct ifreq`; bpf only uses the name.
    pub struct IfReq = "struct ifreq", size 32, align 8 {
        /// NUL-padded interface name.
        pub ifr_name: [u8; 16] = 0,
        /// The request union, unused by bpf.
        pub ifr_ifru: [u64; 2] = 16,
    }
}

abi_struct! {
    /// One record of the `net.bpf.stats` sysctl.
    pub struct XbpfD = "struct xbpf_d", size 168, align 8 {
        /// `sizeof(struct xbpf_d)`.
        pub bd_structsize: u32 = 0,
        /// Promiscuous mode requested.
        pub bd_promisc: u8 = 4,
        /// Immediate mode.
        pub bd_immediate: u8 = 5,
        /// Reserved.
        pub __bd_pad: [u8; 6] = 6,
        /// Header-complete flag.
        pub bd_hdrcmplt: i32 = 12,
        /// Direction (BPF_D_*).
        pub bd_direction: i32 = 16,
        /// Feedback flag.
        pub bd_feedback: i32 = 20,
        /// Async (SIGIO) flag.
        pub bd_async: i32 = 24,
        /// Packets received.
        pub bd_rcount: u64 = 32,
        /// Packets dropped.
        pub bd_dcount: u64 = 40,
        /// Packets matched by the filter.
        pub bd_fcount: u64 = 48,
        /// Signal sent on wakeups.
        pub bd_sig: i32 = 56,
        /// Bytes in the store buffer.
        pub bd_slen: i32 = 60,
        /// Bytes in the hold buffer.
        pub bd_hlen: i32 = 64,
        /// Buffer size.
        pub bd_bufsize: i32 = 68,
        /// Last process that used the descriptor.
        pub bd_pid: i32 = 72,
        /// Attached interface.
        pub bd_ifname: [u8; 16] = 76,
        /// BIOCLOCK was issued.
        pub bd_locked: i32 = 92,
        /// Packets written.
        pub bd_wcount: u64 = 96,
        /// Writes that passed the write filter.
        pub bd_wfcount: u64 = 104,
        /// Writes dropped.
        pub bd_wdcount: u64 = 112,
        /// Zero-copy append operations.
        pub bd_zcopy: u64 = 120,
        /// Buffer mode.
        pub bd_bufmode: i32 = 128,
        /// Reserved.
        pub bd_spare: [u64; 4] = 136,
    }
}

/// `SIZEOF_BPF_HDR`: the bytes of a record header that carry meaning; the
/// data follows at the padded `bh_hdrlen`.
pub const SIZEOF_BPF_HDR: usize = core::mem::offset_of!(BpfHdr, bh_hdrlen) + 2;
static_assertions::const_assert_eq!(SIZEOF_BPF_HDR, 26);

/// Every structure, for the C layout check.
pub const STRUCT_LAYOUTS: &[super::layout::StructLayout] = &[
    BpfInsn::LAYOUT,
    BpfProgram::LAYOUT,
    BpfStat::LAYOUT,
    BpfVersion::LAYOUT,
    BpfDltList::LAYOUT,
    BpfZbuf::LAYOUT,
    BpfZbufHeader::LAYOUT,
    Timeval::LAYOUT,
    BpfTs::LAYOUT,
    BpfHdr::LAYOUT,
    BpfXhdr::LAYOUT,
    IfReq::LAYOUT,
    XbpfD::LAYOUT,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::layout::AbiField;

    #[test]
    fn round_trips_and_zeroes_padding() {
        let p = BpfProgram { bf_len: 7, bf_insns: UserAddr(0x1122_3344_5566_7788) };
        let b = p.to_bytes();
        assert_eq!(&b[0..4], &7u32.to_le_bytes());
        assert_eq!(&b[4..8], &[0, 0, 0, 0]);
        assert_eq!(BpfProgram::decode(&b), Some(p));
        let h = BpfHdr { bh_caplen: 3, bh_hdrlen: 26, ..Default::default() };
        let img = h.to_bytes();
        assert_eq!(&img[26..], &[0; 6]);
        assert_eq!(BpfHdr::decode(&img), Some(h));
    }

    #[test]
    fn short_input_is_refused_not_zero_filled() {
        let full = BpfZbuf { bz_bufa: UserAddr(1), bz_bufb: UserAddr(2), bz_buflen: 4096 };
        let img = full.to_bytes();
        assert_eq!(BpfZbuf::decode(&img), Some(full));
        assert_eq!(BpfZbuf::decode(&img[..BpfZbuf::SIZE - 1]), None);
        assert_eq!(BpfZbuf::decode(&[1, 0, 0]), None);
        assert_eq!(u32::read(&[1, 2, 3]), None);
        assert_eq!(u32::read(&[1, 0, 0, 0, 9]), Some(1));
        assert_eq!(<[u16; 2]>::read(&[1, 0, 2]), None);
    }
}
