//! The classic BPF filter machine: FreeBSD's validator, a pre-decoder, and an
//! interpreter that runs over a contiguous packet or a segment chain with the
//! same result.
//!
//! A [`Program`] can only be built from instructions the validator accepts,
//! so running one never fails: it returns 0 (reject) or the number of bytes
//! to capture.
//!
//! ```
//! use zbpf::abi::{op::*, BpfInsn};
//! use zbpf::filter::Program;
//!
//! // "ip": accept IPv4 Ethernet frames whole.
//! let prog = Program::new(&[
//!     BpfInsn::stmt(BPF_LD | BPF_H | BPF_ABS, 12),
//!     BpfInsn::jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, 1),
//!     BpfInsn::stmt(BPF_RET | BPF_K, 262144),
//!     BpfInsn::stmt(BPF_RET | BPF_K, 0),
//! ])
//! .unwrap();
//! let mut frame = [0u8; 60];
//! frame[12] = 0x08;
//! assert_eq!(prog.run(&frame, 60), 262144);
//! let segments: [&[u8]; 3] = [&frame[..5], &[], &frame[5..]];
//! assert_eq!(prog.run_segments(&segments[..], 60), 262144);
//! frame[12] = 0x86;
//! assert_eq!(prog.run(&frame, 60), 0);
//! ```

mod decode;
mod exec;
mod validate;

use alloc::vec::Vec;

pub use decode::Op;
pub use validate::{opcode_accepted, validate, Reason, ValidateError};

use crate::abi::BpfInsn;
use crate::packet::{Chain, PacketBytes, Segments};

/// A validated, pre-decoded program.
#[derive(Clone, Debug)]
pub struct Program {
    ops: Vec<Op>,
    arms: Vec<decode::Arm>,
    len: usize,
    /// How far constant-offset loads reach, when that is within the head
    /// the interpreter can serve without bounds checks.
    head_reach: Option<usize>,
}

impl Program {
    /// Validates `insns` by FreeBSD's rules and pre-decodes them.
    pub fn new(insns: &[BpfInsn]) -> Result<Program, ValidateError> {
        validate(insns)?;
        Ok(Self::from_decoded(decode::decode(insns), insns.len()))
    }

    fn from_decoded((ops, arms): (Vec<Op>, Vec<decode::Arm>), len: usize) -> Program {
        let reach = decode::abs_reach(&ops);
        let head_reach = usize::try_from(reach).ok().filter(|&r| r <= exec::HEAD);
        Program { ops, arms, len, head_reach }
    }

    /// A program that accepts every packet whole (what no filter means).
    pub fn accept_all() -> Program {
        Self::from_decoded(decode::decode(&[]), 0)
    }

    /// Instructions in the original program.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the original program was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this program is exactly a single `ret #k` (libpcap's initial
    /// snap-length filter), and the `k`.
    pub fn single_return(&self) -> Option<u32> {
        match self.ops.as_slice() {
            [Op::RetK { k }] if self.len == 1 => Some(*k),
            _ => None,
        }
    }

    /// Runs over a contiguous packet of `pkt.len()` bytes whose length on the
    /// wire was `wirelen`. Returns 0 to reject, else the bytes to keep.
    #[inline]
    pub fn run(&self, pkt: &[u8], wirelen: u32) -> u32 {
        self.run_on(pkt, wirelen)
    }

    /// Runs over a packet given as segments (an mbuf chain's shape).
    pub fn run_segments<S: Segments + ?Sized>(&self, segs: &S, wirelen: u32) -> u32 {
        self.run_on(&Chain::new(segs), wirelen)
    }

    /// Runs over any packet representation. When the packet's first
    /// segment covers every constant-offset load of the program (the bounds
    /// fact computed at validation), those loads run without checks.
    #[inline]
    pub fn run_on<P: PacketBytes + ?Sized>(&self, pkt: &P, wirelen: u32) -> u32 {
        if let [Op::RetK { k }] = self.ops.as_slice() {
            return *k;
        }
        let head = pkt.head();
        match (self.head_reach, head.first_chunk::<{ exec::WINDOW }>()) {
            (Some(_), Some(h)) => exec::run(&self.ops, &self.arms, pkt, &exec::Head(h), wirelen),
            _ => exec::run(&self.ops, &self.arms, pkt, &exec::Checked(pkt), wirelen),
        }
    }
}
