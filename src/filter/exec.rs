//! The interpreter: runs pre-decoded ops over any [`PacketBytes`].
//!
//! Semantics are FreeBSD's `bpf_filter` for a contiguous buffer, applied to
//! the packet's logical bytes whatever their segmentation: a load that does
//! not fit in the packet rejects it (returns 0), division or modulo by X = 0
//! returns 0, arithmetic wraps at 32 bits, shifts take the count modulo 32 as
//! amd64 does, and scratch memory starts zeroed on every run.
//!
//! The loop cannot panic: every index is checked (and returns 0 if ever out
//! of range, which the validator makes impossible), and it allocates nothing.

#![forbid(unsafe_code)]

use super::decode::{Arm, Op};
use crate::abi::BPF_MEMWORDS;
use crate::packet::PacketBytes;

#[inline(always)]
fn word<P: PacketBytes + ?Sized>(pkt: &P, off: u64) -> Option<u32> {
    pkt.load::<4>(usize::try_from(off).ok()?).map(u32::from_be_bytes)
}

#[inline(always)]
fn half<P: PacketBytes + ?Sized>(pkt: &P, off: u64) -> Option<u32> {
    pkt.load::<2>(usize::try_from(off).ok()?).map(|b| u32::from(u16::from_be_bytes(b)))
}

#[inline(always)]
fn byte<P: PacketBytes + ?Sized>(pkt: &P, off: u64) -> Option<u32> {
    pkt.load::<1>(usize::try_from(off).ok()?).map(|b| u32::from(b[0]))
}

/// Where loads at constant offsets (`ld [k]`, `ldxb 4*([k]&0xf)`) read.
pub(crate) trait AbsLoads {
    fn word(&self, off: u32) -> Option<u32>;
    fn half(&self, off: u32) -> Option<u32>;
    fn byte(&self, off: u32) -> Option<u32>;
}

/// Checked loads from the packet itself.
pub(crate) struct Checked<'a, P: ?Sized>(pub &'a P);

impl<P: PacketBytes + ?Sized> AbsLoads for Checked<'_, P> {
    #[inline(always)]
    fn word(&self, off: u32) -> Option<u32> {
        word(self.0, u64::from(off))
    }
    #[inline(always)]
    fn half(&self, off: u32) -> Option<u32> {
        half(self.0, u64::from(off))
    }
    #[inline(always)]
    fn byte(&self, off: u32) -> Option<u32> {
        byte(self.0, u64::from(off))
    }
}

/// How far into the packet's head constant-offset loads may reach and run
/// without a bounds check.
pub(crate) const HEAD: usize = 64;

/// The head window: [`HEAD`] bytes plus room for a word starting at the
/// last of them, so that a masked offset always indexes inside it.
pub(crate) const WINDOW: usize = HEAD + 4;

/// Loads from the packet's head, used only when the head is at least as
/// long as the program's furthest constant-offset load (validated to be
/// within [`HEAD`]): then every such load is in range and needs no check.
/// The mask only lets the compiler see that indexing cannot panic.
pub(crate) struct Head<'a>(pub &'a [u8; WINDOW]);

impl Head<'_> {
    #[inline(always)]
    fn bytes<const N: usize>(&self, off: u32) -> [u8; N] {
        let o = off as usize & (HEAD - 1);
        let mut out = [0u8; N];
        out.copy_from_slice(&self.0[o..o + N]);
        out
    }
}

impl AbsLoads for Head<'_> {
    #[inline(always)]
    fn word(&self, off: u32) -> Option<u32> {
        Some(u32::from_be_bytes(self.bytes::<4>(off)))
    }
    #[inline(always)]
    fn half(&self, off: u32) -> Option<u32> {
        Some(u32::from(u16::from_be_bytes(self.bytes::<2>(off))))
    }
    #[inline(always)]
    fn byte(&self, off: u32) -> Option<u32> {
        Some(u32::from(self.bytes::<1>(off)[0]))
    }
}

/// Runs `ops` over `pkt`, with constant-offset loads served by `abs`.
/// `wirelen` is what LD LEN reports.
#[inline(always)]
pub(crate) fn run<P: PacketBytes + ?Sized, A: AbsLoads>(
    ops: &[Op],
    arms: &[Arm],
    pkt: &P,
    abs: &A,
    wirelen: u32,
) -> u32 {
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; BPF_MEMWORDS];
    let mut pc: usize = 0;
    macro_rules! or_reject {
        ($e:expr) => {
            match $e {
                Some(v) => v,
                None => return 0,
            }
        };
    }
    // Runs a chain of arms on `a`: the first arm whose outcome exits wins.
    macro_rules! chain {
        ($a:expr, $first:expr, $len:expr, $default:expr) => {{
            let from = $first as usize;
            let arms = or_reject!(arms.get(from..from + $len as usize));
            let a = $a;
            pc = match arms.iter().find(|arm| arm.exits(a)) {
                Some(arm) => arm.exit,
                None => $default,
            } as usize
        }};
    }
    macro_rules! branch {
        ($cond:expr, $t:expr, $f:expr) => {
            pc = if $cond { $t } else { $f } as usize
        };
    }
    let ind = |x: u32, off: u32| u64::from(x) + u64::from(off);
    loop {
        let op = or_reject!(ops.get(pc));
        pc += 1;
        match *op {
            Op::LdAbsW { off } => a = or_reject!(abs.word(off)),
            Op::LdAbsH { off } => a = or_reject!(abs.half(off)),
            Op::LdAbsB { off } => a = or_reject!(abs.byte(off)),
            Op::LdIndW { off } => a = or_reject!(word(pkt, ind(x, off))),
            Op::LdIndH { off } => a = or_reject!(half(pkt, ind(x, off))),
            Op::LdIndB { off } => a = or_reject!(byte(pkt, ind(x, off))),
            Op::LdImm { k } => a = k,
            Op::LdLen => a = wirelen,
            Op::LdMem { i } => a = *or_reject!(mem.get(usize::from(i))),
            Op::LdxImm { k } => x = k,
            Op::LdxLen => x = wirelen,
            Op::LdxMem { i } => x = *or_reject!(mem.get(usize::from(i))),
            Op::LdxMsh { off } => x = (or_reject!(abs.byte(off)) & 0xf) << 2,
            Op::St { i } => *or_reject!(mem.get_mut(usize::from(i))) = a,
            Op::Stx { i } => *or_reject!(mem.get_mut(usize::from(i))) = x,
            Op::AddK { k } => a = a.wrapping_add(k),
            Op::SubK { k } => a = a.wrapping_sub(k),
            Op::MulK { k } => a = a.wrapping_mul(k),
            Op::DivK { k } => a = or_reject!(a.checked_div(k)),
            Op::ModK { k } => a = or_reject!(a.checked_rem(k)),
            Op::OrK { k } => a |= k,
            Op::AndK { k } => a &= k,
            Op::XorK { k } => a ^= k,
            Op::LshK { k } => a = a.wrapping_shl(k),
            Op::RshK { k } => a = a.wrapping_shr(k),
            Op::AddX => a = a.wrapping_add(x),
            Op::SubX => a = a.wrapping_sub(x),
            Op::MulX => a = a.wrapping_mul(x),
            Op::DivX => a = or_reject!(a.checked_div(x)),
            Op::ModX => a = or_reject!(a.checked_rem(x)),
            Op::OrX => a |= x,
            Op::AndX => a &= x,
            Op::XorX => a ^= x,
            Op::LshX => a = a.wrapping_shl(x),
            Op::RshX => a = a.wrapping_shr(x),
            Op::Neg => a = a.wrapping_neg(),
            Op::Ja { t } => pc = t as usize,
            Op::JeqK { k, t, f } => branch!(a == k, t, f),
            Op::JgtK { k, t, f } => branch!(a > k, t, f),
            Op::JgeK { k, t, f } => branch!(a >= k, t, f),
            Op::JsetK { k, t, f } => branch!(a & k != 0, t, f),
            Op::JeqX { t, f } => branch!(a == x, t, f),
            Op::JgtX { t, f } => branch!(a > x, t, f),
            Op::JgeX { t, f } => branch!(a >= x, t, f),
            Op::JsetX { t, f } => branch!(a & x != 0, t, f),
            Op::RetK { k } => return k,
            Op::RetA => return a,
            Op::Tax => x = a,
            Op::Txa => a = x,
            Op::LdAbsWJeq { off, k, t, f } => {
                a = or_reject!(abs.word(off));
                branch!(a == k, t, f)
            }
            Op::LdAbsHJeq { off, k, t, f } => {
                a = or_reject!(abs.half(off));
                branch!(a == k, t, f)
            }
            Op::LdAbsBJeq { off, k, t, f } => {
                a = or_reject!(abs.byte(off));
                branch!(a == k, t, f)
            }
            Op::LdAbsWJgt { off, k, t, f } => {
                a = or_reject!(abs.word(off));
                branch!(a > k, t, f)
            }
            Op::LdAbsHJgt { off, k, t, f } => {
                a = or_reject!(abs.half(off));
                branch!(a > k, t, f)
            }
            Op::LdAbsBJgt { off, k, t, f } => {
                a = or_reject!(abs.byte(off));
                branch!(a > k, t, f)
            }
            Op::LdAbsWJge { off, k, t, f } => {
                a = or_reject!(abs.word(off));
                branch!(a >= k, t, f)
            }
            Op::LdAbsHJge { off, k, t, f } => {
                a = or_reject!(abs.half(off));
                branch!(a >= k, t, f)
            }
            Op::LdAbsBJge { off, k, t, f } => {
                a = or_reject!(abs.byte(off));
                branch!(a >= k, t, f)
            }
            Op::LdAbsWJset { off, k, t, f } => {
                a = or_reject!(abs.word(off));
                branch!(a & k != 0, t, f)
            }
            Op::LdAbsHJset { off, k, t, f } => {
                a = or_reject!(abs.half(off));
                branch!(a & k != 0, t, f)
            }
            Op::LdAbsBJset { off, k, t, f } => {
                a = or_reject!(abs.byte(off));
                branch!(a & k != 0, t, f)
            }
            Op::LdIndWJeq { off, k, t, f } => {
                a = or_reject!(word(pkt, ind(x, off)));
                branch!(a == k, t, f)
            }
            Op::LdIndHJeq { off, k, t, f } => {
                a = or_reject!(half(pkt, ind(x, off)));
                branch!(a == k, t, f)
            }
            Op::LdIndBJeq { off, k, t, f } => {
                a = or_reject!(byte(pkt, ind(x, off)));
                branch!(a == k, t, f)
            }
            Op::LdIndWJgt { off, k, t, f } => {
                a = or_reject!(word(pkt, ind(x, off)));
                branch!(a > k, t, f)
            }
            Op::LdIndHJgt { off, k, t, f } => {
                a = or_reject!(half(pkt, ind(x, off)));
                branch!(a > k, t, f)
            }
            Op::LdIndBJgt { off, k, t, f } => {
                a = or_reject!(byte(pkt, ind(x, off)));
                branch!(a > k, t, f)
            }
            Op::LdIndWJge { off, k, t, f } => {
                a = or_reject!(word(pkt, ind(x, off)));
                branch!(a >= k, t, f)
            }
            Op::LdIndHJge { off, k, t, f } => {
                a = or_reject!(half(pkt, ind(x, off)));
                branch!(a >= k, t, f)
            }
            Op::LdIndBJge { off, k, t, f } => {
                a = or_reject!(byte(pkt, ind(x, off)));
                branch!(a >= k, t, f)
            }
            Op::LdIndWJset { off, k, t, f } => {
                a = or_reject!(word(pkt, ind(x, off)));
                branch!(a & k != 0, t, f)
            }
            Op::LdIndHJset { off, k, t, f } => {
                a = or_reject!(half(pkt, ind(x, off)));
                branch!(a & k != 0, t, f)
            }
            Op::LdIndBJset { off, k, t, f } => {
                a = or_reject!(byte(pkt, ind(x, off)));
                branch!(a & k != 0, t, f)
            }
            Op::MshLdIndW { msh, off } => {
                x = (or_reject!(abs.byte(msh)) & 0xf) << 2;
                a = or_reject!(word(pkt, ind(x, off)));
                pc += 1;
            }
            Op::MshLdIndH { msh, off } => {
                x = (or_reject!(abs.byte(msh)) & 0xf) << 2;
                a = or_reject!(half(pkt, ind(x, off)));
                pc += 1;
            }
            Op::MshLdIndB { msh, off } => {
                x = (or_reject!(abs.byte(msh)) & 0xf) << 2;
                a = or_reject!(byte(pkt, ind(x, off)));
                pc += 1;
            }
            Op::Chain { first, len, default } => chain!(a, first, len, default),
            Op::LdAbsWChain { off, first, len, default } => {
                a = or_reject!(abs.word(off));
                chain!(a, first, len, default)
            }
            Op::LdAbsHChain { off, first, len, default } => {
                a = or_reject!(abs.half(off));
                chain!(a, first, len, default)
            }
            Op::LdAbsBChain { off, first, len, default } => {
                a = or_reject!(abs.byte(off));
                chain!(a, first, len, default)
            }
            Op::LdIndWChain { off, first, len, default } => {
                a = or_reject!(word(pkt, ind(x, off)));
                chain!(a, first, len, default)
            }
            Op::LdIndHChain { off, first, len, default } => {
                a = or_reject!(half(pkt, ind(x, off)));
                chain!(a, first, len, default)
            }
            Op::LdIndBChain { off, first, len, default } => {
                a = or_reject!(byte(pkt, ind(x, off)));
                chain!(a, first, len, default)
            }
            Op::MshLdIndHChain { msh, off, first, len, default } => {
                x = (or_reject!(abs.byte(msh)) & 0xf) << 2;
                a = or_reject!(half(pkt, ind(x, off)));
                chain!(a, first, len, default)
            }
            Op::MshLdIndHJeq { msh, off, k, t, f } => {
                x = (or_reject!(abs.byte(msh)) & 0xf) << 2;
                a = or_reject!(half(pkt, ind(x, off)));
                branch!(a == k, t, f)
            }
        }
    }
}
