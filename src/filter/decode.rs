//! Pre-decoding: a validated program becomes an array of [`Op`]s, one per
//! instruction, with operands extracted, jumps turned into absolute targets,
//! and the commonest pairs of libpcap's output fused into one operation.
//!
//! Every variant is one flat case (no nested width or condition enums), so
//! the interpreter dispatches once per op and each handler is straight-line
//! code but for the test a jump makes.
//!
//! Fusion never removes an instruction: the fused op sits at the first
//! instruction's index and jumps past the second, while the second stays in
//! place for any jump that lands on it. So targets need no remapping, and a
//! fused op leaves A and X exactly as the pair would.

#![forbid(unsafe_code)]

use alloc::vec::Vec;

use crate::abi::op::*;
use crate::abi::BpfInsn;

/// A comparison of A with a constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// `A == k`
    Eq,
    /// `A > k`
    Gt,
    /// `A >= k`
    Ge,
    /// `A & k != 0`
    Set,
}

/// One test of a comparison chain: when `A cond k` equals `exit_when`, jump
/// to `exit`; otherwise try the next arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arm {
    /// The comparison.
    pub cond: Cond,
    /// The constant.
    pub k: u32,
    /// Which outcome leaves the chain.
    pub exit_when: bool,
    /// Where it goes.
    pub exit: u32,
}

impl Arm {
    #[inline(always)]
    pub(crate) fn exits(&self, a: u32) -> bool {
        let holds = match self.cond {
            Cond::Eq => a == self.k,
            Cond::Gt => a > self.k,
            Cond::Ge => a >= self.k,
            Cond::Set => a & self.k != 0,
        };
        holds == self.exit_when
    }
}

/// Shortest chain worth an op: two jumps dispatch faster than a loop.
const MIN_ARMS: usize = 3;

/// Longest comparison chain folded into one op.
const MAX_ARMS: usize = 32;

/// One pre-decoded operation. `t` and `f` are absolute instruction indices
/// (validated in range); `k` is the operand; `off` a packet offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op {
    // A = packet[off] (big-endian), or reject when out of range.
    LdAbsW { off: u32 },
    LdAbsH { off: u32 },
    LdAbsB { off: u32 },
    // A = packet[X + off], or reject.
    LdIndW { off: u32 },
    LdIndH { off: u32 },
    LdIndB { off: u32 },
    LdImm { k: u32 },
    LdLen,
    LdMem { i: u8 },
    LdxImm { k: u32 },
    LdxLen,
    LdxMem { i: u8 },
    // X = 4 * (packet[off] & 0xf), or reject.
    LdxMsh { off: u32 },
    St { i: u8 },
    Stx { i: u8 },
    AddK { k: u32 },
    SubK { k: u32 },
    MulK { k: u32 },
    DivK { k: u32 },
    ModK { k: u32 },
    OrK { k: u32 },
    AndK { k: u32 },
    XorK { k: u32 },
    LshK { k: u32 },
    RshK { k: u32 },
    AddX,
    SubX,
    MulX,
    // Division and modulo by X = 0 reject.
    DivX,
    ModX,
    OrX,
    AndX,
    XorX,
    LshX,
    RshX,
    Neg,
    Ja { t: u32 },
    JeqK { k: u32, t: u32, f: u32 },
    JgtK { k: u32, t: u32, f: u32 },
    JgeK { k: u32, t: u32, f: u32 },
    JsetK { k: u32, t: u32, f: u32 },
    JeqX { t: u32, f: u32 },
    JgtX { t: u32, f: u32 },
    JgeX { t: u32, f: u32 },
    JsetX { t: u32, f: u32 },
    RetK { k: u32 },
    RetA,
    Tax,
    Txa,
    // Fused `ld[whb] [off]; j<cond> #k`.
    LdAbsWJeq { off: u32, k: u32, t: u32, f: u32 },
    LdAbsHJeq { off: u32, k: u32, t: u32, f: u32 },
    LdAbsBJeq { off: u32, k: u32, t: u32, f: u32 },
    LdAbsWJgt { off: u32, k: u32, t: u32, f: u32 },
    LdAbsHJgt { off: u32, k: u32, t: u32, f: u32 },
    LdAbsBJgt { off: u32, k: u32, t: u32, f: u32 },
    LdAbsWJge { off: u32, k: u32, t: u32, f: u32 },
    LdAbsHJge { off: u32, k: u32, t: u32, f: u32 },
    LdAbsBJge { off: u32, k: u32, t: u32, f: u32 },
    LdAbsWJset { off: u32, k: u32, t: u32, f: u32 },
    LdAbsHJset { off: u32, k: u32, t: u32, f: u32 },
    LdAbsBJset { off: u32, k: u32, t: u32, f: u32 },
    // Fused `ld[whb] [x+off]; j<cond> #k`.
    LdIndWJeq { off: u32, k: u32, t: u32, f: u32 },
    LdIndHJeq { off: u32, k: u32, t: u32, f: u32 },
    LdIndBJeq { off: u32, k: u32, t: u32, f: u32 },
    LdIndWJgt { off: u32, k: u32, t: u32, f: u32 },
    LdIndHJgt { off: u32, k: u32, t: u32, f: u32 },
    LdIndBJgt { off: u32, k: u32, t: u32, f: u32 },
    LdIndWJge { off: u32, k: u32, t: u32, f: u32 },
    LdIndHJge { off: u32, k: u32, t: u32, f: u32 },
    LdIndBJge { off: u32, k: u32, t: u32, f: u32 },
    LdIndWJset { off: u32, k: u32, t: u32, f: u32 },
    LdIndHJset { off: u32, k: u32, t: u32, f: u32 },
    LdIndBJset { off: u32, k: u32, t: u32, f: u32 },
    // Fused `ldxb 4*([msh]&0xf); ld[whb] [x+off]`: the transport header.
    MshLdIndW { msh: u32, off: u32 },
    MshLdIndH { msh: u32, off: u32 },
    MshLdIndB { msh: u32, off: u32 },
    // Fused `ldxb 4*([msh]&0xf); ldh [x+off]; jeq #k`: a port test.
    MshLdIndHJeq { msh: u32, off: u32, k: u32, t: u32, f: u32 },
    // A chain of jumps testing the same A, each jumping to the next on one
    // outcome: the `len` arms from `first` of the program's arm table, then
    // `default`. libpcap's protocol and port lists.
    Chain { first: u32, len: u32, default: u32 },
    // A load, then a chain.
    LdAbsWChain { off: u32, first: u32, len: u32, default: u32 },
    LdAbsHChain { off: u32, first: u32, len: u32, default: u32 },
    LdAbsBChain { off: u32, first: u32, len: u32, default: u32 },
    LdIndWChain { off: u32, first: u32, len: u32, default: u32 },
    LdIndHChain { off: u32, first: u32, len: u32, default: u32 },
    LdIndBChain { off: u32, first: u32, len: u32, default: u32 },
    MshLdIndHChain { msh: u32, off: u32, first: u32, len: u32, default: u32 },
}

static_assertions::const_assert!(core::mem::size_of::<Op>() <= 24);

/// Decodes one instruction of a validated program at index `i`.
fn decode_one(i: usize, insn: &BpfInsn) -> Op {
    let code = insn.code;
    let k = insn.k;
    // Indices fit in u32: programs longer than that cannot be copied in.
    let next = (i as u32).wrapping_add(1);
    let (t, f) = (next.wrapping_add(insn.jt.into()), next.wrapping_add(insn.jf.into()));
    // Scratch indices were checked against BPF_MEMWORDS by the validator.
    let i = (k & 0xf) as u8;
    let off = k;
    match class(code) {
        BPF_LD => match (mode(code), size(code)) {
            (BPF_ABS, BPF_H) => Op::LdAbsH { off },
            (BPF_ABS, BPF_B) => Op::LdAbsB { off },
            (BPF_ABS, _) => Op::LdAbsW { off },
            (BPF_IND, BPF_H) => Op::LdIndH { off },
            (BPF_IND, BPF_B) => Op::LdIndB { off },
            (BPF_IND, _) => Op::LdIndW { off },
            (BPF_MEM, _) => Op::LdMem { i },
            (BPF_LEN, _) => Op::LdLen,
            _ => Op::LdImm { k },
        },
        BPF_LDX => match mode(code) {
            BPF_MEM => Op::LdxMem { i },
            BPF_LEN => Op::LdxLen,
            BPF_MSH => Op::LdxMsh { off },
            _ => Op::LdxImm { k },
        },
        BPF_ST => Op::St { i },
        BPF_STX => Op::Stx { i },
        BPF_ALU if op(code) == BPF_NEG => Op::Neg,
        BPF_ALU if src(code) == BPF_X => match op(code) {
            BPF_ADD => Op::AddX,
            BPF_SUB => Op::SubX,
            BPF_MUL => Op::MulX,
            BPF_DIV => Op::DivX,
            BPF_MOD => Op::ModX,
            BPF_OR => Op::OrX,
            BPF_AND => Op::AndX,
            BPF_LSH => Op::LshX,
            BPF_RSH => Op::RshX,
            _ => Op::XorX,
        },
        BPF_ALU => match op(code) {
            BPF_ADD => Op::AddK { k },
            BPF_SUB => Op::SubK { k },
            BPF_MUL => Op::MulK { k },
            BPF_DIV => Op::DivK { k },
            BPF_MOD => Op::ModK { k },
            BPF_OR => Op::OrK { k },
            BPF_AND => Op::AndK { k },
            BPF_LSH => Op::LshK { k },
            BPF_RSH => Op::RshK { k },
            _ => Op::XorK { k },
        },
        BPF_JMP if op(code) == BPF_JA => Op::Ja { t: next.wrapping_add(k) },
        BPF_JMP if src(code) == BPF_X => match op(code) {
            BPF_JEQ => Op::JeqX { t, f },
            BPF_JGT => Op::JgtX { t, f },
            BPF_JGE => Op::JgeX { t, f },
            _ => Op::JsetX { t, f },
        },
        BPF_JMP => match op(code) {
            BPF_JEQ => Op::JeqK { k, t, f },
            BPF_JGT => Op::JgtK { k, t, f },
            BPF_JGE => Op::JgeK { k, t, f },
            _ => Op::JsetK { k, t, f },
        },
        BPF_RET if rval(code) == BPF_A => Op::RetA,
        BPF_RET => Op::RetK { k },
        _ if miscop(code) == BPF_TXA => Op::Txa,
        _ => Op::Tax,
    }
}

/// Fuses `first` with `second` (decoded at the next index, so its targets
/// are already absolute) when a fused form exists.
fn fuse(first: Op, second: Op) -> Option<Op> {
    use Op::*;
    Some(match (first, second) {
        (LdAbsW { off }, JeqK { k, t, f }) => LdAbsWJeq { off, k, t, f },
        (LdAbsH { off }, JeqK { k, t, f }) => LdAbsHJeq { off, k, t, f },
        (LdAbsB { off }, JeqK { k, t, f }) => LdAbsBJeq { off, k, t, f },
        (LdAbsW { off }, JgtK { k, t, f }) => LdAbsWJgt { off, k, t, f },
        (LdAbsH { off }, JgtK { k, t, f }) => LdAbsHJgt { off, k, t, f },
        (LdAbsB { off }, JgtK { k, t, f }) => LdAbsBJgt { off, k, t, f },
        (LdAbsW { off }, JgeK { k, t, f }) => LdAbsWJge { off, k, t, f },
        (LdAbsH { off }, JgeK { k, t, f }) => LdAbsHJge { off, k, t, f },
        (LdAbsB { off }, JgeK { k, t, f }) => LdAbsBJge { off, k, t, f },
        (LdAbsW { off }, JsetK { k, t, f }) => LdAbsWJset { off, k, t, f },
        (LdAbsH { off }, JsetK { k, t, f }) => LdAbsHJset { off, k, t, f },
        (LdAbsB { off }, JsetK { k, t, f }) => LdAbsBJset { off, k, t, f },
        (LdIndW { off }, JeqK { k, t, f }) => LdIndWJeq { off, k, t, f },
        (LdIndH { off }, JeqK { k, t, f }) => LdIndHJeq { off, k, t, f },
        (LdIndB { off }, JeqK { k, t, f }) => LdIndBJeq { off, k, t, f },
        (LdIndW { off }, JgtK { k, t, f }) => LdIndWJgt { off, k, t, f },
        (LdIndH { off }, JgtK { k, t, f }) => LdIndHJgt { off, k, t, f },
        (LdIndB { off }, JgtK { k, t, f }) => LdIndBJgt { off, k, t, f },
        (LdIndW { off }, JgeK { k, t, f }) => LdIndWJge { off, k, t, f },
        (LdIndH { off }, JgeK { k, t, f }) => LdIndHJge { off, k, t, f },
        (LdIndB { off }, JgeK { k, t, f }) => LdIndBJge { off, k, t, f },
        (LdIndW { off }, JsetK { k, t, f }) => LdIndWJset { off, k, t, f },
        (LdIndH { off }, JsetK { k, t, f }) => LdIndHJset { off, k, t, f },
        (LdIndB { off }, JsetK { k, t, f }) => LdIndBJset { off, k, t, f },
        (LdxMsh { off: msh }, LdIndW { off }) => MshLdIndW { msh, off },
        (LdxMsh { off: msh }, LdIndH { off }) => MshLdIndH { msh, off },
        (LdxMsh { off: msh }, LdIndB { off }) => MshLdIndB { msh, off },
        (LdxMsh { off: msh }, LdIndHJeq { off, k, t, f }) => MshLdIndHJeq { msh, off, k, t, f },
        (LdAbsW { off }, Chain { first, len, default }) => LdAbsWChain { off, first, len, default },
        (LdAbsH { off }, Chain { first, len, default }) => LdAbsHChain { off, first, len, default },
        (LdAbsB { off }, Chain { first, len, default }) => LdAbsBChain { off, first, len, default },
        (LdIndW { off }, Chain { first, len, default }) => LdIndWChain { off, first, len, default },
        (LdIndH { off }, Chain { first, len, default }) => LdIndHChain { off, first, len, default },
        (LdIndB { off }, Chain { first, len, default }) => LdIndBChain { off, first, len, default },
        (LdxMsh { off: msh }, LdIndHChain { off, first, len, default }) => {
            MshLdIndHChain { msh, off, first, len, default }
        }
        _ => return None,
    })
}

/// A conditional jump on A and a constant, as (cond, k, t, f).
fn k_jump(op: Option<&Op>) -> Option<(Cond, u32, u32, u32)> {
    match *op? {
        Op::JeqK { k, t, f } => Some((Cond::Eq, k, t, f)),
        Op::JgtK { k, t, f } => Some((Cond::Gt, k, t, f)),
        Op::JgeK { k, t, f } => Some((Cond::Ge, k, t, f)),
        Op::JsetK { k, t, f } => Some((Cond::Set, k, t, f)),
        _ => None,
    }
}

/// The chain of jumps on A starting at `start`: follow whichever branch
/// leads to another jump on A (A cannot change along it). Returns the arms
/// and the final fall-through target, or `None` for a lone jump.
fn chain_at(plain: &[Op], start: usize) -> Option<(Vec<Arm>, u32)> {
    let mut arms = Vec::new();
    let mut at = start;
    loop {
        let (cond, k, t, f) = k_jump(plain.get(at))?;
        let room = arms.len() + 1 < MAX_ARMS;
        if room && k_jump(plain.get(f as usize)).is_some() {
            arms.push(Arm { cond, k, exit_when: true, exit: t });
            at = f as usize;
        } else if room && k_jump(plain.get(t as usize)).is_some() {
            arms.push(Arm { cond, k, exit_when: false, exit: f });
            at = t as usize;
        } else {
            arms.push(Arm { cond, k, exit_when: true, exit: t });
            return (arms.len() >= MIN_ARMS).then_some((arms, f));
        }
    }
}

/// Decodes a program the validator accepted, with the table of chain arms
/// its chain ops index. An empty program becomes a single "accept
/// everything".
pub fn decode(insns: &[BpfInsn]) -> (Vec<Op>, Vec<Arm>) {
    let mut arms = Vec::new();
    if insns.is_empty() {
        return (alloc::vec![Op::RetK { k: u32::MAX }], arms);
    }
    let plain: Vec<Op> = insns.iter().enumerate().map(|(i, insn)| decode_one(i, insn)).collect();
    let mut ops = plain.clone();
    for (i, op) in ops.iter_mut().enumerate() {
        if let Some((chain, default)) = chain_at(&plain, i) {
            *op = Op::Chain { first: arms.len() as u32, len: chain.len() as u32, default };
            arms.extend(chain);
        }
    }
    // Fuse back to front, so that a pair can absorb an already fused pair
    // (`ldxb; ldh [x+k]; jeq` becomes one op).
    for i in (0..ops.len().saturating_sub(1)).rev() {
        if let (Some(&a), Some(&b)) = (ops.get(i), ops.get(i + 1)) {
            if let Some(fused) = fuse(a, b) {
                ops[i] = fused;
            }
        }
    }
    (ops, arms)
}

/// How far into the packet the program's constant-offset loads reach: the
/// largest `off + size` over `ld[whb] [off]` and `ldxb 4*([off]&0xf)`.
pub fn abs_reach(ops: &[Op]) -> u64 {
    use Op::*;
    let end = |off: u32, size: u64| u64::from(off) + size;
    ops.iter()
        .map(|op| match *op {
            LdAbsW { off }
            | LdAbsWJeq { off, .. }
            | LdAbsWJgt { off, .. }
            | LdAbsWJge { off, .. }
            | LdAbsWJset { off, .. } => end(off, 4),
            LdAbsH { off }
            | LdAbsHJeq { off, .. }
            | LdAbsHJgt { off, .. }
            | LdAbsHJge { off, .. }
            | LdAbsHJset { off, .. } => end(off, 2),
            LdAbsB { off }
            | LdAbsBJeq { off, .. }
            | LdAbsBJgt { off, .. }
            | LdAbsBJge { off, .. }
            | LdAbsBJset { off, .. }
            | LdxMsh { off } => end(off, 1),
            MshLdIndW { msh, .. } | MshLdIndH { msh, .. } | MshLdIndB { msh, .. } => end(msh, 1),
            MshLdIndHJeq { msh, .. } | MshLdIndHChain { msh, .. } => end(msh, 1),
            LdAbsWChain { off, .. } => end(off, 4),
            LdAbsHChain { off, .. } => end(off, 2),
            LdAbsBChain { off, .. } => end(off, 1),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}
