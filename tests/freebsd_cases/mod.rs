//! FreeBSD's classic-BPF filter regression suite
//! (`tools/regression/bpf/bpf_filter/tests/test0001.h` … `test0091.h`),
//! restated as zbpf data.
//!
//! Each entry keeps the facts of one FreeBSD case: the program, the packet
//! bytes, the length on the wire, how many bytes are handed to the filter,
//! whether the validator must refuse the program, and the value the filter
//! must return. The descriptions are ours.
//!
//! Two adaptations, both about the buffer the filter sees:
//!
//! * The packet given to the filter is always `&packet[..buflen]`, a
//!   contiguous slice. FreeBSD's userland harness uses `buflen == 0` to mean
//!   "no bytes available" (tests 0062-0073); zbpf has a separate entry point
//!   for segment chains, so those cases are an empty slice here.
//! * Tests 0007 and 0008 claim a buffer of 0xdeadc0de bytes that their
//!   programs never read (they only look at the wire length). We hand the
//!   filter the one byte we have; only `wirelen` carries the big number.

use zbpf::abi::op::*;
use zbpf::abi::BpfInsn;

/// One regression case.
#[derive(Clone, Debug)]
pub struct Case {
    /// FreeBSD's file stem, e.g. `test0042`.
    pub name: &'static str,
    /// What the case exercises, in a few words.
    pub what: &'static str,
    /// The filter program.
    pub insns: Vec<BpfInsn>,
    /// The packet bytes (possibly more than are handed to the filter).
    pub packet: Vec<u8>,
    /// Packet length on the wire (what `BPF_LEN` loads).
    pub wirelen: u32,
    /// Bytes handed to the filter: `&packet[..buflen]`.
    pub buflen: usize,
    /// The validator must refuse this program (it is then never run).
    pub invalid: bool,
    /// The value the filter must return (meaningless when `invalid`).
    pub expect: u32,
}

impl Case {
    /// A valid case whose whole packet is both captured and on the wire.
    fn new(
        name: &'static str,
        what: &'static str,
        insns: Vec<BpfInsn>,
        packet: &[u8],
        expect: u32,
    ) -> Case {
        Case {
            name,
            what,
            insns,
            packet: packet.to_vec(),
            wirelen: packet.len() as u32,
            buflen: packet.len(),
            invalid: false,
            expect,
        }
    }

    /// Overrides the length on the wire.
    fn wire(mut self, wirelen: u32) -> Case {
        self.wirelen = wirelen;
        self
    }

    /// Hands the filter no bytes at all (FreeBSD's `buflen = 0`).
    fn no_data(mut self) -> Case {
        self.buflen = 0;
        self
    }

    /// Marks the program as one the validator must refuse.
    fn invalid(mut self) -> Case {
        self.invalid = true;
        self
    }
}

/// Statement.
const fn s(code: u16, k: u32) -> BpfInsn {
    BpfInsn::stmt(code, k)
}

/// Conditional or unconditional jump.
const fn j(code: u16, k: u32, jt: u8, jf: u8) -> BpfInsn {
    BpfInsn::jump(code, k, jt, jf)
}

const RET_A: BpfInsn = s(BPF_RET | BPF_A, 0);
const TXA: BpfInsn = s(BPF_MISC | BPF_TXA, 0);

/// A 0xdeadc0de marker loaded into A before an out-of-range access: if the
/// access did not abort the filter, RET A would return the marker.
const MARK: BpfInsn = s(BPF_LD | BPF_IMM, 0xdeadc0de);

const P1: &[u8] = &[0x00];
const P2: &[u8] = &[0x01, 0x23];
const P3: &[u8] = &[0x01, 0x23, 0x45];
const P4: &[u8] = &[0x01, 0x23, 0x45, 0x67];
const P5: &[u8] = &[0x01, 0x23, 0x45, 0x67, 0x89];
const P6: &[u8] = &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab];

/// Instructions of the long program in test 0084: this many word loads.
pub const LONG_PROGRAM_LOADS: usize = 1000;

/// All 91 cases, in FreeBSD's order.
pub fn cases() -> Vec<Case> {
    vec![
        // ---- 0001: an opcode that does not exist -------------------------
        Case::new(
            "test0001",
            "opcode 0x55 (JMP class, no such operation) is refused",
            vec![s(0x55, 0), RET_A],
            P1,
            0,
        )
        .invalid(),
        // ---- 0002-0041: one instruction at a time ------------------------
        Case::new(
            "test0002",
            "ret #k returns k",
            vec![s(BPF_RET | BPF_K, 0xdeadc0de)],
            P1,
            0xdeadc0de,
        ),
        Case::new(
            "test0003",
            "ld #k then ret a",
            vec![s(BPF_LD | BPF_IMM, 0xdeadc0de), RET_A],
            P1,
            0xdeadc0de,
        ),
        Case::new(
            "test0004",
            "ld [1] loads a big-endian word at an odd offset",
            vec![s(BPF_LD | BPF_W | BPF_ABS, 1), RET_A],
            P5,
            0x23456789,
        ),
        Case::new(
            "test0005",
            "ldh [1] loads a big-endian halfword",
            vec![s(BPF_LD | BPF_H | BPF_ABS, 1), RET_A],
            P3,
            0x2345,
        ),
        Case::new(
            "test0006",
            "ldb [1] loads one byte",
            vec![s(BPF_LD | BPF_B | BPF_ABS, 1), RET_A],
            P2,
            0x23,
        ),
        Case::new(
            "test0007",
            "ld len gives the wire length, not the buffer length \
             (FreeBSD claims a 0xdeadc0de-byte buffer it never reads)",
            vec![s(BPF_LD | BPF_W | BPF_LEN, 0), RET_A],
            P1,
            0xdeadc0de,
        )
        .wire(0xdeadc0de),
        Case::new(
            "test0008",
            "ldx len then txa (FreeBSD claims a 0xdeadc0de-byte buffer)",
            vec![s(BPF_LDX | BPF_W | BPF_LEN, 0), TXA, RET_A],
            P1,
            0xdeadc0de,
        )
        .wire(0xdeadc0de),
        Case::new(
            "test0009",
            "ldx #1 then ld [x+1] loads the word at offset 2",
            vec![s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_W | BPF_IND, 1), RET_A],
            P6,
            0x456789ab,
        ),
        Case::new(
            "test0010",
            "ldh [x+1] with x = 1",
            vec![s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_H | BPF_IND, 1), RET_A],
            P4,
            0x4567,
        ),
        Case::new(
            "test0011",
            "ldb [x+1] with x = 1",
            vec![s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_B | BPF_IND, 1), RET_A],
            P3,
            0x45,
        ),
        Case::new(
            "test0012",
            "ldx 4*([1]&0xf) (the IP header length idiom)",
            vec![s(BPF_LDX | BPF_MSH | BPF_B, 1), TXA, RET_A],
            P2,
            (0x23 & 0xf) << 2,
        ),
        Case::new(
            "test0013",
            "st M[7] then ldx M[7]",
            vec![
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                s(BPF_ST, 7),
                s(BPF_LDX | BPF_MEM, 7),
                TXA,
                RET_A,
            ],
            P1,
            0xdeadc0de,
        ),
        Case::new(
            "test0014",
            "stx M[7] then ld M[7]",
            vec![s(BPF_LDX | BPF_IMM, 0xdeadc0de), s(BPF_STX, 7), s(BPF_LD | BPF_MEM, 7), RET_A],
            P1,
            0xdeadc0de,
        ),
        Case::new(
            "test0015",
            "ja skips one instruction",
            vec![
                s(BPF_LD | BPF_IMM, 0xc0decafe),
                s(BPF_JMP | BPF_JA, 1),
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                RET_A,
            ],
            P1,
            0xc0decafe,
        ),
        Case::new(
            "test0016",
            "jgt #k: below, above and equal (equal is not greater)",
            vec![
                s(BPF_LD | BPF_IMM, 0x01234567),
                j(BPF_JMP | BPF_JGT | BPF_K, 0x01234568, 2, 0),
                j(BPF_JMP | BPF_JGT | BPF_K, 0x01234566, 2, 1),
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                RET_A,
                j(BPF_JMP | BPF_JGT | BPF_K, 0x01234567, 1, 0),
                s(BPF_LD | BPF_IMM, 0xc0decafe),
                RET_A,
            ],
            P1,
            0xc0decafe,
        ),
        Case::new(
            "test0017",
            "jge #k: below, equal and above",
            vec![
                s(BPF_LD | BPF_IMM, 0x01234567),
                j(BPF_JMP | BPF_JGE | BPF_K, 0x01234568, 2, 0),
                j(BPF_JMP | BPF_JGE | BPF_K, 0x01234567, 2, 1),
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                RET_A,
                j(BPF_JMP | BPF_JGE | BPF_K, 0x01234566, 0, 1),
                s(BPF_LD | BPF_IMM, 0xc0decafe),
                RET_A,
            ],
            P1,
            0xc0decafe,
        ),
        Case::new(
            "test0018",
            "jeq #k: unequal, equal, unequal",
            vec![
                s(BPF_LD | BPF_IMM, 0x01234567),
                j(BPF_JMP | BPF_JEQ | BPF_K, 0x01234568, 2, 0),
                j(BPF_JMP | BPF_JEQ | BPF_K, 0x01234567, 2, 1),
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                RET_A,
                j(BPF_JMP | BPF_JEQ | BPF_K, 0x01234566, 1, 0),
                s(BPF_LD | BPF_IMM, 0xc0decafe),
                RET_A,
            ],
            P1,
            0xc0decafe,
        ),
        Case::new(
            "test0019",
            "jset #k probes clear high bits and a set low bit",
            vec![
                s(BPF_LD | BPF_IMM, 0x01234567),
                j(BPF_JMP | BPF_JSET | BPF_K, 0x80000000, 5, 0),
                j(BPF_JMP | BPF_JSET | BPF_K, 0x40000000, 4, 0),
                j(BPF_JMP | BPF_JSET | BPF_K, 0x20000000, 3, 0),
                j(BPF_JMP | BPF_JSET | BPF_K, 0x10000000, 2, 0),
                j(BPF_JMP | BPF_JSET | BPF_K, 0x1, 2, 1),
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                RET_A,
                j(BPF_JMP | BPF_JSET | BPF_K, 0x08000000, 3, 0),
                j(BPF_JMP | BPF_JSET | BPF_K, 0x04000000, 2, 0),
                j(BPF_JMP | BPF_JSET | BPF_K, 0x02000000, 1, 0),
                s(BPF_LD | BPF_IMM, 0xc0decafe),
                RET_A,
            ],
            P1,
            0xc0decafe,
        ),
        Case::new(
            "test0020",
            "jgt x: x above, below and equal to a",
            vec![
                s(BPF_LD | BPF_IMM, 0x01234567),
                s(BPF_LDX | BPF_IMM, 0x01234568),
                j(BPF_JMP | BPF_JGT | BPF_X, 0, 3, 0),
                s(BPF_LDX | BPF_IMM, 0x01234566),
                j(BPF_JMP | BPF_JGT | BPF_X, 0, 2, 1),
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                RET_A,
                s(BPF_LDX | BPF_IMM, 0x01234567),
                j(BPF_JMP | BPF_JGT | BPF_X, 0, 1, 0),
                s(BPF_LD | BPF_IMM, 0xc0decafe),
                RET_A,
            ],
            P1,
            0xc0decafe,
        ),
        Case::new(
            "test0021",
            "jge x: x above, equal and below a",
            vec![
                s(BPF_LD | BPF_IMM, 0x01234567),
                s(BPF_LDX | BPF_IMM, 0x01234568),
                j(BPF_JMP | BPF_JGE | BPF_X, 0, 3, 0),
                s(BPF_LDX | BPF_IMM, 0x01234567),
                j(BPF_JMP | BPF_JGE | BPF_X, 0, 2, 1),
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                RET_A,
                s(BPF_LDX | BPF_IMM, 0x01234566),
                j(BPF_JMP | BPF_JGE | BPF_X, 0, 0, 1),
                s(BPF_LD | BPF_IMM, 0xc0decafe),
                RET_A,
            ],
            P1,
            0xc0decafe,
        ),
        Case::new(
            "test0022",
            "jeq x: unequal, equal, unequal",
            vec![
                s(BPF_LD | BPF_IMM, 0x01234567),
                s(BPF_LDX | BPF_IMM, 0x01234568),
                j(BPF_JMP | BPF_JEQ | BPF_X, 0, 3, 0),
                s(BPF_LDX | BPF_IMM, 0x01234567),
                j(BPF_JMP | BPF_JEQ | BPF_X, 0, 2, 1),
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                RET_A,
                s(BPF_LDX | BPF_IMM, 0x01234566),
                j(BPF_JMP | BPF_JEQ | BPF_X, 0, 1, 0),
                s(BPF_LD | BPF_IMM, 0xc0decafe),
                RET_A,
            ],
            P1,
            0xc0decafe,
        ),
        Case::new(
            "test0023",
            "jset x probes clear high bits and a set low bit (k ignored)",
            vec![
                s(BPF_LD | BPF_IMM, 0x01234567),
                s(BPF_LDX | BPF_IMM, 0x80000000),
                j(BPF_JMP | BPF_JSET | BPF_X, 0, 9, 0),
                s(BPF_LDX | BPF_IMM, 0x40000000),
                j(BPF_JMP | BPF_JSET | BPF_X, 0, 7, 0),
                s(BPF_LDX | BPF_IMM, 0x20000000),
                j(BPF_JMP | BPF_JSET | BPF_X, 0, 5, 0),
                s(BPF_LDX | BPF_IMM, 0x10000000),
                j(BPF_JMP | BPF_JSET | BPF_X, 0, 3, 0),
                s(BPF_LDX | BPF_IMM, 0x1),
                j(BPF_JMP | BPF_JSET | BPF_X, 0x1, 2, 1),
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                RET_A,
                s(BPF_LDX | BPF_IMM, 0x08000000),
                j(BPF_JMP | BPF_JSET | BPF_X, 0, 5, 0),
                s(BPF_LDX | BPF_IMM, 0x04000000),
                j(BPF_JMP | BPF_JSET | BPF_X, 0, 3, 0),
                s(BPF_LDX | BPF_IMM, 0x02000000),
                j(BPF_JMP | BPF_JSET | BPF_X, 0, 1, 0),
                s(BPF_LD | BPF_IMM, 0xc0decafe),
                RET_A,
            ],
            P1,
            0xc0decafe,
        ),
        Case::new(
            "test0024",
            "add x",
            vec![
                s(BPF_LD | BPF_IMM, 0xbeadb8dd),
                s(BPF_LDX | BPF_IMM, 0x20000801),
                s(BPF_ALU | BPF_ADD | BPF_X, 0),
                RET_A,
            ],
            P1,
            0xdeadc0de,
        ),
        Case::new(
            "test0025",
            "sub x",
            vec![
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                s(BPF_LDX | BPF_IMM, 0x20000801),
                s(BPF_ALU | BPF_SUB | BPF_X, 0),
                RET_A,
            ],
            P1,
            0xbeadb8dd,
        ),
        Case::new(
            "test0026",
            "mul x",
            vec![
                s(BPF_LD | BPF_IMM, 0xdead),
                s(BPF_LDX | BPF_IMM, 0xc0de),
                s(BPF_ALU | BPF_MUL | BPF_X, 0),
                RET_A,
            ],
            P1,
            0xa7c2da06,
        ),
        Case::new(
            "test0027",
            "div x",
            vec![
                s(BPF_LD | BPF_IMM, 0xa7c2da06),
                s(BPF_LDX | BPF_IMM, 0xdead),
                s(BPF_ALU | BPF_DIV | BPF_X, 0),
                RET_A,
            ],
            P1,
            0xc0de,
        ),
        Case::new(
            "test0028",
            "and x",
            vec![
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                s(BPF_LDX | BPF_IMM, 0xc0decafe),
                s(BPF_ALU | BPF_AND | BPF_X, 0),
                RET_A,
            ],
            P1,
            0xc08cc0de,
        ),
        Case::new(
            "test0029",
            "or x",
            vec![
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                s(BPF_LDX | BPF_IMM, 0xc0decafe),
                s(BPF_ALU | BPF_OR | BPF_X, 0),
                RET_A,
            ],
            P1,
            0xdeffcafe,
        ),
        Case::new(
            "test0030",
            "lsh x by 9",
            vec![
                s(BPF_LD | BPF_IMM, 0xdefc0),
                s(BPF_LDX | BPF_IMM, 9),
                s(BPF_ALU | BPF_LSH | BPF_X, 0),
                RET_A,
            ],
            P1,
            0x1bdf8000,
        ),
        Case::new(
            "test0031",
            "rsh x by 13",
            vec![
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                s(BPF_LDX | BPF_IMM, 13),
                s(BPF_ALU | BPF_RSH | BPF_X, 0),
                RET_A,
            ],
            P1,
            0x6f56e,
        ),
        Case::new(
            "test0032",
            "add #k",
            vec![s(BPF_LD | BPF_IMM, 0xbeadb8dd), s(BPF_ALU | BPF_ADD | BPF_K, 0x20000801), RET_A],
            P1,
            0xdeadc0de,
        ),
        Case::new(
            "test0033",
            "sub #k",
            vec![s(BPF_LD | BPF_IMM, 0xdeadc0de), s(BPF_ALU | BPF_SUB | BPF_K, 0x20000801), RET_A],
            P1,
            0xbeadb8dd,
        ),
        Case::new(
            "test0034",
            "mul #k",
            vec![s(BPF_LD | BPF_IMM, 0xdead), s(BPF_ALU | BPF_MUL | BPF_K, 0xc0de), RET_A],
            P1,
            0xa7c2da06,
        ),
        Case::new(
            "test0035",
            "div #k",
            vec![s(BPF_LD | BPF_IMM, 0xa7c2da06), s(BPF_ALU | BPF_DIV | BPF_K, 0xdead), RET_A],
            P1,
            0xc0de,
        ),
        Case::new(
            "test0036",
            "and #k",
            vec![s(BPF_LD | BPF_IMM, 0xdeadc0de), s(BPF_ALU | BPF_AND | BPF_K, 0xc0decafe), RET_A],
            P1,
            0xc08cc0de,
        ),
        Case::new(
            "test0037",
            "or #k",
            vec![s(BPF_LD | BPF_IMM, 0xdeadc0de), s(BPF_ALU | BPF_OR | BPF_K, 0xc0decafe), RET_A],
            P1,
            0xdeffcafe,
        ),
        Case::new(
            "test0038",
            "lsh #9",
            vec![s(BPF_LD | BPF_IMM, 0xdefc0), s(BPF_ALU | BPF_LSH | BPF_K, 9), RET_A],
            P1,
            0x1bdf8000,
        ),
        Case::new(
            "test0039",
            "rsh #13",
            vec![s(BPF_LD | BPF_IMM, 0xdeadc0de), s(BPF_ALU | BPF_RSH | BPF_K, 13), RET_A],
            P1,
            0x6f56e,
        ),
        Case::new(
            "test0040",
            "neg is two's complement",
            vec![s(BPF_LD | BPF_IMM, 0x21523f22), s(BPF_ALU | BPF_NEG, 0), RET_A],
            P1,
            0xdeadc0de,
        ),
        Case::new(
            "test0041",
            "tax, then stx M[0] and ld M[0] carry the value back",
            vec![
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                s(BPF_MISC | BPF_TAX, 0),
                s(BPF_STX, 0),
                s(BPF_LD | BPF_MEM, 0),
                RET_A,
            ],
            P1,
            0xdeadc0de,
        ),
        // ---- 0042-0061: loads that run past the end reject ---------------
        Case::new(
            "test0042",
            "ld [2] needs 6 bytes, the packet has 5",
            vec![MARK, s(BPF_LD | BPF_W | BPF_ABS, 2), RET_A],
            P5,
            0,
        ),
        Case::new(
            "test0043",
            "ldh [2] needs 4 bytes, the packet has 3",
            vec![MARK, s(BPF_LD | BPF_H | BPF_ABS, 2), RET_A],
            P3,
            0,
        ),
        Case::new(
            "test0044",
            "ldb [2] on a 2-byte packet",
            vec![MARK, s(BPF_LD | BPF_B | BPF_ABS, 2), RET_A],
            P2,
            0,
        ),
        Case::new(
            "test0045",
            "ld [x+2] with x = 1 needs 7 bytes, the packet has 6",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_W | BPF_IND, 2), RET_A],
            P6,
            0,
        ),
        Case::new(
            "test0046",
            "ldh [x+2] with x = 1 needs 5 bytes, the packet has 4",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_H | BPF_IND, 2), RET_A],
            P4,
            0,
        ),
        Case::new(
            "test0047",
            "ldb [x+2] with x = 1 on a 3-byte packet",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_B | BPF_IND, 2), RET_A],
            P3,
            0,
        ),
        Case::new(
            "test0048",
            "ldx msh [2] on a 2-byte packet",
            vec![MARK, s(BPF_LDX | BPF_MSH | BPF_B, 2), TXA, RET_A],
            P2,
            0,
        ),
        Case::new(
            "test0049",
            "ld [6] starts past the end of a 5-byte packet",
            vec![MARK, s(BPF_LD | BPF_W | BPF_ABS, 6), RET_A],
            P5,
            0,
        ),
        Case::new(
            "test0050",
            "ldh [4] starts past the end of a 3-byte packet",
            vec![MARK, s(BPF_LD | BPF_H | BPF_ABS, 4), RET_A],
            P3,
            0,
        ),
        Case::new(
            "test0051",
            "ld [x+6] with x = 1 starts past the end",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_W | BPF_IND, 6), RET_A],
            P6,
            0,
        ),
        Case::new(
            "test0052",
            "ldh [x+4] with x = 1 starts past the end",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_H | BPF_IND, 4), RET_A],
            P4,
            0,
        ),
        Case::new(
            "test0053",
            "ldb [x+3] with x = 1 starts past the end",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_B | BPF_IND, 3), RET_A],
            P3,
            0,
        ),
        Case::new(
            "test0054",
            "ld [x+1] with x = 6 starts past the end",
            vec![MARK, s(BPF_LDX | BPF_IMM, 6), s(BPF_LD | BPF_W | BPF_IND, 1), RET_A],
            P6,
            0,
        ),
        Case::new(
            "test0055",
            "ldh [x+1] with x = 4 starts past the end",
            vec![MARK, s(BPF_LDX | BPF_IMM, 4), s(BPF_LD | BPF_H | BPF_IND, 1), RET_A],
            P4,
            0,
        ),
        Case::new(
            "test0056",
            "ld [x+0xffffffff] with x = 1: the offset wraps to 0 in 32 bits",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_W | BPF_IND, 0xffffffff), RET_A],
            P6,
            0,
        ),
        Case::new(
            "test0057",
            "ldh [x+0xffffffff] with x = 1: wrapped offset rejects",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_H | BPF_IND, 0xffffffff), RET_A],
            P4,
            0,
        ),
        Case::new(
            "test0058",
            "ldb [x+0xffffffff] with x = 1: wrapped offset rejects",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_B | BPF_IND, 0xffffffff), RET_A],
            P3,
            0,
        ),
        Case::new(
            "test0059",
            "ld [x+1] with x = 0xffffffff: wrapped offset rejects",
            vec![MARK, s(BPF_LDX | BPF_IMM, 0xffffffff), s(BPF_LD | BPF_W | BPF_IND, 1), RET_A],
            P6,
            0,
        ),
        Case::new(
            "test0060",
            "ldh [x+1] with x = 0xffffffff: wrapped offset rejects",
            vec![MARK, s(BPF_LDX | BPF_IMM, 0xffffffff), s(BPF_LD | BPF_H | BPF_IND, 1), RET_A],
            P4,
            0,
        ),
        Case::new(
            "test0061",
            "ldb [x+1] with x = 0xffffffff: wrapped offset rejects",
            vec![MARK, s(BPF_LDX | BPF_IMM, 0xffffffff), s(BPF_LD | BPF_B | BPF_IND, 1), RET_A],
            P3,
            0,
        ),
        // ---- 0062-0073: indexed loads with no bytes at all ----------------
        Case::new(
            "test0062",
            "ld [x+1], x = 1, no bytes captured",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_W | BPF_IND, 1), RET_A],
            P6,
            0,
        )
        .no_data(),
        Case::new(
            "test0063",
            "ldh [x+1], x = 1, no bytes captured",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_H | BPF_IND, 1), RET_A],
            P4,
            0,
        )
        .no_data(),
        Case::new(
            "test0064",
            "ldb [x+1], x = 1, no bytes captured",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_B | BPF_IND, 1), RET_A],
            P3,
            0,
        )
        .no_data(),
        Case::new(
            "test0065",
            "ld [x+1], x = 0, no bytes captured",
            vec![MARK, s(BPF_LDX | BPF_IMM, 0), s(BPF_LD | BPF_W | BPF_IND, 1), RET_A],
            P6,
            0,
        )
        .no_data(),
        Case::new(
            "test0066",
            "ldh [x+1], x = 0, no bytes captured",
            vec![MARK, s(BPF_LDX | BPF_IMM, 0), s(BPF_LD | BPF_H | BPF_IND, 1), RET_A],
            P4,
            0,
        )
        .no_data(),
        Case::new(
            "test0067",
            "ldb [x+1], x = 0, no bytes captured",
            vec![MARK, s(BPF_LDX | BPF_IMM, 0), s(BPF_LD | BPF_B | BPF_IND, 1), RET_A],
            P3,
            0,
        )
        .no_data(),
        Case::new(
            "test0068",
            "ld [x+0], x = 1, no bytes captured",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_W | BPF_IND, 0), RET_A],
            P6,
            0,
        )
        .no_data(),
        Case::new(
            "test0069",
            "ldh [x+0], x = 1, no bytes captured",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_H | BPF_IND, 0), RET_A],
            P4,
            0,
        )
        .no_data(),
        Case::new(
            "test0070",
            "ldb [x+0], x = 1, no bytes captured",
            vec![MARK, s(BPF_LDX | BPF_IMM, 1), s(BPF_LD | BPF_B | BPF_IND, 0), RET_A],
            P3,
            0,
        )
        .no_data(),
        Case::new(
            "test0071",
            "ld [x+0], x = 0, no bytes captured",
            vec![MARK, s(BPF_LDX | BPF_IMM, 0), s(BPF_LD | BPF_W | BPF_IND, 0), RET_A],
            P6,
            0,
        )
        .no_data(),
        Case::new(
            "test0072",
            "ldh [x+0], x = 0, no bytes captured",
            vec![MARK, s(BPF_LDX | BPF_IMM, 0), s(BPF_LD | BPF_H | BPF_IND, 0), RET_A],
            P4,
            0,
        )
        .no_data(),
        Case::new(
            "test0073",
            "ldb [x+0], x = 0, no bytes captured",
            vec![MARK, s(BPF_LDX | BPF_IMM, 0), s(BPF_LD | BPF_B | BPF_IND, 0), RET_A],
            P3,
            0,
        )
        .no_data(),
        // ---- 0074: division by a zero register ----------------------------
        Case::new(
            "test0074",
            "div x with x = 0 rejects the packet at run time",
            vec![
                s(BPF_LD | BPF_IMM, 0xa7c2da06),
                s(BPF_LDX | BPF_IMM, 0),
                s(BPF_ALU | BPF_DIV | BPF_X, 0),
                RET_A,
            ],
            P1,
            0,
        ),
        // ---- 0075-0078: scratch-memory index out of range -----------------
        Case::new(
            "test0075",
            "ld M[0x8fffffff]: scratch index out of range",
            vec![MARK, s(BPF_LD | BPF_MEM, 0x8fffffff), RET_A],
            P1,
            0xdeadc0de,
        )
        .invalid(),
        Case::new(
            "test0076",
            "ldx M[0x8fffffff]: scratch index out of range",
            vec![MARK, s(BPF_LDX | BPF_MEM, 0x8fffffff), TXA, RET_A],
            P1,
            0xdeadc0de,
        )
        .invalid(),
        Case::new(
            "test0077",
            "st M[0x8fffffff]: scratch index out of range",
            vec![MARK, s(BPF_ST, 0x8fffffff), RET_A],
            P1,
            0xdeadc0de,
        )
        .invalid(),
        Case::new(
            "test0078",
            "stx M[0x8fffffff]: scratch index out of range",
            vec![MARK, s(BPF_STX, 0x8fffffff), TXA, RET_A],
            P1,
            0xdeadc0de,
        )
        .invalid(),
        // ---- 0079-0080: empty program, fresh scratch memory ---------------
        Case::new(
            "test0079",
            "an empty program is valid and accepts everything",
            vec![],
            P1,
            u32::MAX,
        ),
        Case::new(
            "test0080",
            "all 16 scratch words start at zero (jset x with x = ~0 on each)",
            {
                // ld M[i]; jset x, with jt = jf = 0 so both ways fall
                // through; the jump k values are leftovers and ignored.
                let mut p = vec![s(BPF_LDX | BPF_IMM, 0xffffffff)];
                for i in 0..15u32 {
                    p.push(s(BPF_LD | BPF_MEM, i));
                    p.push(j(BPF_JMP | BPF_JSET | BPF_X, 30 - 2 * i, 0, 0));
                }
                p.push(s(BPF_LD | BPF_MEM, 15));
                p.push(RET_A);
                p
            },
            P1,
            0,
        ),
        // ---- 0081-0083: control flow the validator refuses ----------------
        Case::new(
            "test0081",
            "ja 2 from the second of four instructions lands past the end",
            vec![
                s(BPF_LD | BPF_IMM, 0),
                j(BPF_JMP | BPF_JA, 2, 0, 0),
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                RET_A,
            ],
            P1,
            0,
        )
        .invalid(),
        Case::new(
            "test0082",
            "jgt with jf = 2 lands past the end",
            vec![
                s(BPF_LD | BPF_IMM, 0),
                j(BPF_JMP | BPF_JGT | BPF_K, 0, 1, 2),
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                RET_A,
            ],
            P1,
            0,
        )
        .invalid(),
        Case::new(
            "test0083",
            "a program whose last instruction is not a return",
            vec![s(BPF_LD | BPF_IMM, 0)],
            P1,
            0,
        )
        .invalid(),
        // ---- 0084: a very long program ------------------------------------
        Case::new(
            "test0084",
            "1000 x ld [1] then ret a: longer than BPF_MAXINSNS, still valid",
            {
                let mut p = vec![s(BPF_LD | BPF_W | BPF_ABS, 1); LONG_PROGRAM_LOADS];
                p.push(RET_A);
                p
            },
            P5,
            0x23456789,
        ),
        // ---- 0085-0091: MOD and XOR, and constant division by zero --------
        Case::new(
            "test0085",
            "mod x",
            vec![
                s(BPF_LD | BPF_IMM, 0xdfe03de1),
                s(BPF_LDX | BPF_IMM, 0xdead),
                s(BPF_ALU | BPF_MOD | BPF_X, 0),
                RET_A,
            ],
            P1,
            0x3154,
        ),
        Case::new(
            "test0086",
            "xor x",
            vec![
                s(BPF_LD | BPF_IMM, 0xdeadc0de),
                s(BPF_LDX | BPF_IMM, 0xc0decafe),
                s(BPF_ALU | BPF_XOR | BPF_X, 0),
                RET_A,
            ],
            P1,
            0x1e730a20,
        ),
        Case::new(
            "test0087",
            "mod #k",
            vec![s(BPF_LD | BPF_IMM, 0xdfe03de1), s(BPF_ALU | BPF_MOD | BPF_K, 0xdead), RET_A],
            P1,
            0x3154,
        ),
        Case::new(
            "test0088",
            "xor #k",
            vec![s(BPF_LD | BPF_IMM, 0xdeadc0de), s(BPF_ALU | BPF_XOR | BPF_K, 0xc0decafe), RET_A],
            P1,
            0x1e730a20,
        ),
        Case::new(
            "test0089",
            "mod x with x = 0 rejects the packet at run time",
            vec![
                s(BPF_LD | BPF_IMM, 0xa7c2da06),
                s(BPF_LDX | BPF_IMM, 0),
                s(BPF_ALU | BPF_MOD | BPF_X, 0),
                RET_A,
            ],
            P1,
            0,
        ),
        Case::new(
            "test0090",
            "div #0 is refused by the validator",
            vec![s(BPF_LD | BPF_IMM, 0xa7c2da06), s(BPF_ALU | BPF_DIV | BPF_K, 0), RET_A],
            P1,
            0,
        )
        .invalid(),
        Case::new(
            "test0091",
            "mod #0 is refused by the validator",
            vec![s(BPF_LD | BPF_IMM, 0xa7c2da06), s(BPF_ALU | BPF_MOD | BPF_K, 0), RET_A],
            P1,
            0,
        )
        .invalid(),
    ]
}
