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

use super::decode::{Alu, Op, Width};
use crate::abi::BPF_MEMWORDS;
use crate::packet::PacketBytes;

#[inline(always)]
fn load<P: PacketBytes + ?Sized>(pkt: &P, w: Width, off: u64) -> Option<u32> {
    let off = usize::try_from(off).ok()?;
    match w {
        Width::W => pkt.load::<4>(off).map(u32::from_be_bytes),
        Width::H => pkt.load::<2>(off).map(|b| u32::from(u16::from_be_bytes(b))),
        Width::B => pkt.load::<1>(off).map(|b| u32::from(b[0])),
    }
}

#[inline(always)]
fn alu(op: Alu, a: u32, v: u32) -> Option<u32> {
    Some(match op {
        Alu::Add => a.wrapping_add(v),
        Alu::Sub => a.wrapping_sub(v),
        Alu::Mul => a.wrapping_mul(v),
        Alu::Div => a.checked_div(v)?,
        Alu::Mod => a.checked_rem(v)?,
        Alu::Or => a | v,
        Alu::And => a & v,
        Alu::Xor => a ^ v,
        Alu::Lsh => a.wrapping_shl(v),
        Alu::Rsh => a.wrapping_shr(v),
    })
}

/// Runs `ops` over `pkt`. `wirelen` is what LD LEN reports.
pub(crate) fn run<P: PacketBytes + ?Sized>(ops: &[Op], pkt: &P, wirelen: u32) -> u32 {
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
    loop {
        let op = or_reject!(ops.get(pc));
        pc += 1;
        match *op {
            Op::LdAbs(w, k) => a = or_reject!(load(pkt, w, u64::from(k))),
            Op::LdInd(w, k) => a = or_reject!(load(pkt, w, u64::from(x) + u64::from(k))),
            Op::LdImm(k) => a = k,
            Op::LdLen => a = wirelen,
            Op::LdMem(i) => a = *or_reject!(mem.get(usize::from(i))),
            Op::LdxImm(k) => x = k,
            Op::LdxLen => x = wirelen,
            Op::LdxMem(i) => x = *or_reject!(mem.get(usize::from(i))),
            Op::LdxMsh(k) => x = (or_reject!(load(pkt, Width::B, u64::from(k))) & 0xf) << 2,
            Op::St(i) => *or_reject!(mem.get_mut(usize::from(i))) = a,
            Op::Stx(i) => *or_reject!(mem.get_mut(usize::from(i))) = x,
            Op::AluK(f, k) => a = or_reject!(alu(f, a, k)),
            Op::AluX(f) => a = or_reject!(alu(f, a, x)),
            Op::Neg => a = a.wrapping_neg(),
            Op::Ja(t) => pc = t as usize,
            Op::JmpK(c, k, t, f) => pc = if c.holds(a, k) { t } else { f } as usize,
            Op::JmpX(c, t, f) => pc = if c.holds(a, x) { t } else { f } as usize,
            Op::RetK(k) => return k,
            Op::RetA => return a,
            Op::Tax => x = a,
            Op::Txa => a = x,
            Op::LdAbsJmp(w, off, c, k, t, f) => {
                a = or_reject!(load(pkt, w, u64::from(off)));
                pc = if c.holds(a, k) { t } else { f } as usize;
            }
            Op::LdIndJmp(w, off, c, k, t, f) => {
                a = or_reject!(load(pkt, w, u64::from(x) + u64::from(off)));
                pc = if c.holds(a, k) { t } else { f } as usize;
            }
            Op::MshLdInd(k, w, off) => {
                x = (or_reject!(load(pkt, Width::B, u64::from(k))) & 0xf) << 2;
                a = or_reject!(load(pkt, w, u64::from(x) + u64::from(off)));
                pc += 1;
            }
        }
    }
}
