//! Pre-decoding: a validated program becomes an array of [`Op`]s, one per
//! instruction, with operands extracted, jumps turned into absolute targets,
//! and the commonest pairs of libpcap's output fused into one operation.
//!
//! Fusion never removes an instruction: the fused op sits at the first
//! instruction's index and jumps past the second, while the second stays in
//! place for any jump that lands on it. So targets need no remapping, and a
//! fused op leaves A and X exactly as the pair would.

use alloc::vec::Vec;

use crate::abi::op::*;
use crate::abi::BpfInsn;

/// Width of a packet load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 4 bytes.
    W,
    /// 2 bytes.
    H,
    /// 1 byte.
    B,
}

/// A conditional jump's test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// `A == v`
    Eq,
    /// `A > v`
    Gt,
    /// `A >= v`
    Ge,
    /// `A & v != 0`
    Set,
}

impl Cond {
    #[inline(always)]
    pub(crate) fn holds(self, a: u32, v: u32) -> bool {
        match self {
            Cond::Eq => a == v,
            Cond::Gt => a > v,
            Cond::Ge => a >= v,
            Cond::Set => a & v != 0,
        }
    }
}

/// An ALU operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alu {
    Add,
    Sub,
    Mul,
    Div,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    Xor,
}

/// One pre-decoded operation. Targets are absolute instruction indices, all
/// proven in range by the validator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A = packet[k] (big-endian), or reject when out of range.
    LdAbs(Width, u32),
    /// A = packet[X + k], or reject.
    LdInd(Width, u32),
    /// A = k.
    LdImm(u32),
    /// A = wire length.
    LdLen,
    /// A = M[k].
    LdMem(u8),
    /// X = k.
    LdxImm(u32),
    /// X = wire length.
    LdxLen,
    /// X = M[k].
    LdxMem(u8),
    /// X = 4 * (packet[k] & 0xf), or reject.
    LdxMsh(u32),
    /// M[k] = A.
    St(u8),
    /// M[k] = X.
    Stx(u8),
    /// A = A op k.
    AluK(Alu, u32),
    /// A = A op X; division or modulo by X = 0 rejects.
    AluX(Alu),
    /// A = -A.
    Neg,
    /// pc = target.
    Ja(u32),
    /// Branch on A cond k.
    JmpK(Cond, u32, u32, u32),
    /// Branch on A cond X.
    JmpX(Cond, u32, u32),
    /// Return k.
    RetK(u32),
    /// Return A.
    RetA,
    /// X = A.
    Tax,
    /// A = X.
    Txa,
    /// Fused `ld[hbw] [off]; j<cond> #v`: load, then branch.
    LdAbsJmp(Width, u32, Cond, u32, u32, u32),
    /// Fused `ld[hbw] [x+off]; j<cond> #v`.
    LdIndJmp(Width, u32, Cond, u32, u32, u32),
    /// Fused `ldxb 4*([k]&0xf); ld[hbw] [x+off]`: the transport-header pattern.
    MshLdInd(u32, Width, u32),
}

static_assertions::const_assert!(core::mem::size_of::<Op>() <= 24);

fn width(code: u16) -> Width {
    match size(code) {
        BPF_H => Width::H,
        BPF_B => Width::B,
        _ => Width::W,
    }
}

fn alu(code: u16) -> Alu {
    match op(code) {
        BPF_ADD => Alu::Add,
        BPF_SUB => Alu::Sub,
        BPF_MUL => Alu::Mul,
        BPF_DIV => Alu::Div,
        BPF_OR => Alu::Or,
        BPF_AND => Alu::And,
        BPF_LSH => Alu::Lsh,
        BPF_RSH => Alu::Rsh,
        BPF_MOD => Alu::Mod,
        _ => Alu::Xor,
    }
}

fn cond(code: u16) -> Cond {
    match op(code) {
        BPF_JEQ => Cond::Eq,
        BPF_JGT => Cond::Gt,
        BPF_JGE => Cond::Ge,
        _ => Cond::Set,
    }
}

/// Decodes one instruction of a validated program at index `i`.
fn decode_one(i: usize, insn: &BpfInsn) -> Op {
    let code = insn.code;
    let k = insn.k;
    // Indices fit in u32: programs longer than that cannot be copied in.
    let next = (i as u32).wrapping_add(1);
    let target = |off: u32| next.wrapping_add(off);
    // Scratch indices were checked against BPF_MEMWORDS by the validator.
    let mem = (k & 0xf) as u8;
    match class(code) {
        BPF_LD => match mode(code) {
            BPF_ABS => Op::LdAbs(width(code), k),
            BPF_IND => Op::LdInd(width(code), k),
            BPF_MEM => Op::LdMem(mem),
            BPF_LEN => Op::LdLen,
            _ => Op::LdImm(k),
        },
        BPF_LDX => match mode(code) {
            BPF_MEM => Op::LdxMem(mem),
            BPF_LEN => Op::LdxLen,
            BPF_MSH => Op::LdxMsh(k),
            _ => Op::LdxImm(k),
        },
        BPF_ST => Op::St(mem),
        BPF_STX => Op::Stx(mem),
        BPF_ALU if op(code) == BPF_NEG => Op::Neg,
        BPF_ALU if src(code) == BPF_X => Op::AluX(alu(code)),
        BPF_ALU => Op::AluK(alu(code), k),
        BPF_JMP if op(code) == BPF_JA => Op::Ja(target(k)),
        BPF_JMP if src(code) == BPF_X => {
            Op::JmpX(cond(code), target(insn.jt.into()), target(insn.jf.into()))
        }
        BPF_JMP => Op::JmpK(cond(code), k, target(insn.jt.into()), target(insn.jf.into())),
        BPF_RET if rval(code) == BPF_A => Op::RetA,
        BPF_RET => Op::RetK(k),
        _ if miscop(code) == BPF_TXA => Op::Txa,
        _ => Op::Tax,
    }
}

/// Fuses `first` with the op that follows it, when a fused form exists.
/// `second` was decoded at index `i + 1`, so its targets are already absolute.
fn fuse(first: Op, second: Op) -> Option<Op> {
    match (first, second) {
        (Op::LdAbs(w, off), Op::JmpK(c, v, t, f)) => Some(Op::LdAbsJmp(w, off, c, v, t, f)),
        (Op::LdInd(w, off), Op::JmpK(c, v, t, f)) => Some(Op::LdIndJmp(w, off, c, v, t, f)),
        (Op::LdxMsh(k), Op::LdInd(w, off)) => Some(Op::MshLdInd(k, w, off)),
        _ => None,
    }
}

/// Decodes a program the validator accepted. An empty program becomes a
/// single "accept everything".
pub fn decode(insns: &[BpfInsn]) -> Vec<Op> {
    if insns.is_empty() {
        return alloc::vec![Op::RetK(u32::MAX)];
    }
    let plain: Vec<Op> = insns.iter().enumerate().map(|(i, insn)| decode_one(i, insn)).collect();
    let mut ops = plain.clone();
    for (i, pair) in plain.windows(2).enumerate() {
        if let Some(fused) = fuse(pair[0], pair[1]) {
            ops[i] = fused;
        }
    }
    ops
}
