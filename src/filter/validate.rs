//! FreeBSD's `bpf_validate` rules, with an error that names the instruction
//! and the reason.

#![forbid(unsafe_code)]

use core::fmt;

use crate::abi::op::*;
use crate::abi::{BpfInsn, BPF_MEMWORDS};

/// Why a program was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The opcode is not one of the 49 the kernel accepts.
    UnknownOpcode(u16),
    /// A jump would leave the program or land past its last instruction.
    JumpOutOfRange(u32),
    /// A scratch-memory index is not below `BPF_MEMWORDS`.
    ScratchIndex(u32),
    /// Division or modulo by the constant zero.
    DivisionByZero,
    /// The last instruction is not a return.
    NoFinalReturn,
}

/// A rejected program: which instruction, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidateError {
    /// Index of the offending instruction.
    pub index: usize,
    /// What is wrong with it.
    pub reason: Reason,
}

impl fmt::Display for ValidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "instruction {}: ", self.index)?;
        match self.reason {
            Reason::UnknownOpcode(c) => write!(f, "unknown opcode {c:#x}"),
            Reason::JumpOutOfRange(o) => write!(f, "jump offset {o} leaves the program"),
            Reason::ScratchIndex(k) => write!(f, "scratch index {k} is not below {BPF_MEMWORDS}"),
            Reason::DivisionByZero => write!(f, "division by the constant zero"),
            Reason::NoFinalReturn => write!(f, "the last instruction is not a return"),
        }
    }
}

/// The opcodes FreeBSD's kernel validator accepts, as a 256-bit map.
const fn accepted_opcodes() -> [bool; 256] {
    const CODES: [u16; 49] = [
        // LD
        BPF_LD | BPF_IMM,
        BPF_LD | BPF_W | BPF_ABS,
        BPF_LD | BPF_H | BPF_ABS,
        BPF_LD | BPF_B | BPF_ABS,
        BPF_LD | BPF_W | BPF_IND,
        BPF_LD | BPF_H | BPF_IND,
        BPF_LD | BPF_B | BPF_IND,
        BPF_LD | BPF_MEM,
        BPF_LD | BPF_W | BPF_LEN,
        // LDX
        BPF_LDX | BPF_IMM,
        BPF_LDX | BPF_MEM,
        BPF_LDX | BPF_W | BPF_LEN,
        BPF_LDX | BPF_B | BPF_MSH,
        // ST, STX
        BPF_ST,
        BPF_STX,
        // ALU with K
        BPF_ALU | BPF_ADD | BPF_K,
        BPF_ALU | BPF_SUB | BPF_K,
        BPF_ALU | BPF_MUL | BPF_K,
        BPF_ALU | BPF_DIV | BPF_K,
        BPF_ALU | BPF_OR | BPF_K,
        BPF_ALU | BPF_AND | BPF_K,
        BPF_ALU | BPF_LSH | BPF_K,
        BPF_ALU | BPF_RSH | BPF_K,
        BPF_ALU | BPF_NEG,
        BPF_ALU | BPF_MOD | BPF_K,
        BPF_ALU | BPF_XOR | BPF_K,
        // ALU with X
        BPF_ALU | BPF_ADD | BPF_X,
        BPF_ALU | BPF_SUB | BPF_X,
        BPF_ALU | BPF_MUL | BPF_X,
        BPF_ALU | BPF_DIV | BPF_X,
        BPF_ALU | BPF_OR | BPF_X,
        BPF_ALU | BPF_AND | BPF_X,
        BPF_ALU | BPF_LSH | BPF_X,
        BPF_ALU | BPF_RSH | BPF_X,
        BPF_ALU | BPF_MOD | BPF_X,
        BPF_ALU | BPF_XOR | BPF_X,
        // JMP
        BPF_JMP | BPF_JA,
        BPF_JMP | BPF_JEQ | BPF_K,
        BPF_JMP | BPF_JEQ | BPF_X,
        BPF_JMP | BPF_JGT | BPF_K,
        BPF_JMP | BPF_JGT | BPF_X,
        BPF_JMP | BPF_JGE | BPF_K,
        BPF_JMP | BPF_JGE | BPF_X,
        BPF_JMP | BPF_JSET | BPF_K,
        BPF_JMP | BPF_JSET | BPF_X,
        // RET
        BPF_RET | BPF_K,
        BPF_RET | BPF_A,
        // MISC
        BPF_MISC | BPF_TAX,
        BPF_MISC | BPF_TXA,
    ];
    let mut map = [false; 256];
    let mut i = 0;
    while i < CODES.len() {
        map[CODES[i] as usize] = true;
        i += 1;
    }
    map
}

static ACCEPTED: [bool; 256] = accepted_opcodes();

/// Whether FreeBSD's validator accepts `code`.
pub fn opcode_accepted(code: u16) -> bool {
    ACCEPTED.get(usize::from(code)).copied().unwrap_or(false)
}

/// The rules for one instruction with `after` instructions following it.
fn check_one(insn: &BpfInsn, after: u64) -> Option<Reason> {
    let code = insn.code;
    if !opcode_accepted(code) {
        return Some(Reason::UnknownOpcode(code));
    }
    let scratch = [BPF_ST, BPF_STX, BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM];
    let div_k = [BPF_ALU | BPF_DIV | BPF_K, BPF_ALU | BPF_MOD | BPF_K];
    if class(code) == BPF_JMP {
        let offset =
            if code == BPF_JMP | BPF_JA { insn.k } else { u32::from(insn.jt.max(insn.jf)) };
        (u64::from(offset) >= after).then_some(Reason::JumpOutOfRange(offset))
    } else if scratch.contains(&code) {
        (insn.k as usize >= BPF_MEMWORDS).then_some(Reason::ScratchIndex(insn.k))
    } else if div_k.contains(&code) {
        (insn.k == 0).then_some(Reason::DivisionByZero)
    } else {
        None
    }
}

/// Checks a program by FreeBSD's rules. An empty program is valid (it accepts
/// every packet whole). Length limits belong to the ioctl layer.
pub fn validate(insns: &[BpfInsn]) -> Result<(), ValidateError> {
    let len = insns.len();
    for (index, insn) in insns.iter().enumerate() {
        // Instructions after this one; every jump must land on one of them.
        let after = (len - index - 1) as u64;
        if let Some(reason) = check_one(insn, after) {
            return Err(ValidateError { index, reason });
        }
    }
    match insns.last() {
        Some(last) if class(last.code) != BPF_RET => {
            Err(ValidateError { index: len - 1, reason: Reason::NoFinalReturn })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_49_opcodes() {
        assert_eq!((0u16..=0xffff).filter(|&c| opcode_accepted(c)).count(), 49);
        assert!(opcode_accepted(0x94) && opcode_accepted(0xac) && !opcode_accepted(0x8c));
        assert!(!opcode_accepted(0x106), "codes above 0xff are rejected");
    }

    #[test]
    fn rules() {
        let ret = BpfInsn::stmt(BPF_RET | BPF_K, 1);
        assert!(validate(&[]).is_ok());
        assert!(validate(&[ret]).is_ok());
        let ja = |k| BpfInsn::jump(BPF_JMP | BPF_JA, k, 0, 0);
        assert!(validate(&[ja(0), ret]).is_ok());
        assert_eq!(validate(&[ja(1), ret]).unwrap_err().reason, Reason::JumpOutOfRange(1));
        assert_eq!(validate(&[ja(u32::MAX), ret]).unwrap_err().index, 0);
        let jeq = BpfInsn::jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0);
        assert!(validate(&[jeq, ret, ret]).is_ok());
        assert!(validate(&[jeq, ret]).is_err());
        let st = BpfInsn::stmt(BPF_ST, 16);
        assert_eq!(validate(&[st, ret]).unwrap_err().reason, Reason::ScratchIndex(16));
        let div = BpfInsn::stmt(BPF_ALU | BPF_DIV | BPF_K, 0);
        assert_eq!(validate(&[div, ret]).unwrap_err().reason, Reason::DivisionByZero);
        let tax = BpfInsn::stmt(BPF_MISC | BPF_TAX, 0);
        assert_eq!(
            validate(&[ret, tax]).unwrap_err(),
            ValidateError { index: 1, reason: Reason::NoFinalReturn }
        );
    }
}
