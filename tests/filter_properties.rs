//! Properties of the filter machine, on generated programs and packets:
//!
//! (a) the validator never panics, and agrees with an independent model of
//!     FreeBSD's `bpf_validate`;
//! (b) every program it accepts runs on any packet without panicking, with
//!     the same result over a contiguous buffer and over a segment chain;
//! (c) random valid programs give exactly what libpcap's `bpf_filter` gives.
//!
//! For (c) the generator steers around the two places where libpcap 1.10's
//! userland interpreter differs from FreeBSD's kernel (and zbpf): every
//! program starts by storing to all 16 scratch words (libpcap does not zero
//! them), and a shift by X first masks X to 0..31 (libpcap yields 0 for 32
//! and more, FreeBSD's amd64 kernel takes the count modulo 32). Constant
//! shifts stay below 32 (C leaves larger ones undefined).

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;

use zbpf::abi::op::*;
use zbpf::abi::BpfInsn;
use zbpf::filter::{validate, Program};
use zbpf::hosted::libpcap;

/// The 49 opcodes FreeBSD's validator accepts, listed independently of
/// zbpf's table.
const VALID_CODES: [u16; 49] = [
    0x00, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x60, 0x80, // LD
    0x01, 0x61, 0x81, 0xb1, // LDX
    0x02, 0x03, // ST, STX
    0x04, 0x14, 0x24, 0x34, 0x44, 0x54, 0x64, 0x74, 0x84, 0x94, 0xa4, // ALU K, NEG
    0x0c, 0x1c, 0x2c, 0x3c, 0x4c, 0x5c, 0x6c, 0x7c, 0x9c, 0xac, // ALU X
    0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d, // JMP
    0x06, 0x16, // RET
    0x07, 0x87, // TAX, TXA
];

/// FreeBSD's `bpf_validate`, written from its source, for a non-empty
/// program; an empty one is valid in zbpf (it accepts everything).
fn model_valid(insns: &[BpfInsn]) -> bool {
    let len = insns.len();
    for (i, p) in insns.iter().enumerate() {
        if !VALID_CODES.contains(&p.code) {
            return false;
        }
        if p.code & 0x07 == BPF_JMP {
            let offset = if p.code == BPF_JMP | BPF_JA { p.k } else { u32::from(p.jt.max(p.jf)) };
            if u64::from(offset) >= (len - i) as u64 - 1 {
                return false;
            }
            continue;
        }
        if [BPF_ST, BPF_STX, BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM].contains(&p.code) {
            if p.k >= 16 {
                return false;
            }
            continue;
        }
        if [BPF_ALU | BPF_DIV | BPF_K, BPF_ALU | BPF_MOD | BPF_K].contains(&p.code) && p.k == 0 {
            return false;
        }
    }
    insns.last().is_none_or(|p| p.code & 0x07 == BPF_RET)
}

fn config(cases: u32) -> Config {
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// Opcodes: mostly valid ones, some arbitrary bytes, some arbitrary u16s.
fn any_code() -> impl Strategy<Value = u16> {
    prop_oneof![6 => select(&VALID_CODES[..]), 2 => 0u16..256, 1 => any::<u16>()]
}

/// Operands: small numbers, scratch-index edges, or anything.
fn any_k() -> impl Strategy<Value = u32> {
    prop_oneof![3 => 0u32..40, 1 => 14u32..18, 2 => any::<u32>(), 1 => (u32::MAX - 8)..=u32::MAX]
}

fn raw_insn(jumps: impl Strategy<Value = u8> + Clone) -> impl Strategy<Value = BpfInsn> {
    (any_code(), jumps.clone(), jumps, any_k()).prop_map(|(code, jt, jf, k)| BpfInsn {
        code,
        jt,
        jf,
        k,
    })
}

/// Cut points turning a packet into a segment chain (repeats make empty
/// segments).
fn segment<'a>(pkt: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (pkt.len() + 1)).collect();
    cuts.sort_unstable();
    let mut segs: Vec<&[u8]> = vec![&[]];
    let mut from = 0;
    for c in cuts {
        segs.push(&pkt[from..c]);
        from = c;
    }
    segs.push(&pkt[from..]);
    segs
}

proptest! {
    #![proptest_config(config(3000))]

    /// (a) Arbitrary instruction arrays: no panic, and the verdict is
    /// FreeBSD's.
    #[test]
    fn validator_never_panics_and_matches_freebsd(
        insns in prop::collection::vec(raw_insn(any::<u8>()), 0..64),
    ) {
        let verdict = validate(&insns);
        prop_assert_eq!(verdict.is_ok(), model_valid(&insns), "{:?}: {:?}", insns, verdict);
        prop_assert_eq!(Program::new(&insns).is_ok(), verdict.is_ok());
        if let Err(e) = verdict {
            prop_assert!(e.index < insns.len());
        }
    }
}

/// Nearly valid programs: mostly valid opcodes, short jumps, scratch
/// indices and divisors usually in range, and usually a final return.
fn nearly_valid_program() -> impl Strategy<Value = Vec<BpfInsn>> {
    let insn = (
        prop_oneof![40 => select(&VALID_CODES[..]), 1 => any_code()],
        0u8..5,
        0u8..5,
        any_k(),
        0u8..16,
    )
        .prop_map(|(code, jt, jf, k, dice)| {
            // Repair most (not all) operands the validator would refuse.
            let k = match code {
                0x02 | 0x03 | 0x60 | 0x61 if dice != 0 => k % 16,
                0x05 if dice != 0 => k % 5,
                0x34 | 0x94 if dice != 0 => k.max(1),
                _ => k,
            };
            BpfInsn { code, jt, jf, k }
        });
    (
        prop::collection::vec(insn, 0..63),
        prop_oneof![8 => select(&[0x06u16, 0x16][..]), 1 => any_code()],
        any::<u32>(),
    )
        .prop_map(|(mut insns, code, k)| {
            insns.push(BpfInsn { code, jt: 0, jf: 0, k });
            insns
        })
}

proptest! {
    #![proptest_config(config(1500))]

    /// (b) Accepted programs run on any packet without panicking, alike over
    /// a contiguous buffer and over segments.
    #[test]
    fn accepted_programs_run_alike_contiguous_and_segmented(
        insns in nearly_valid_program(),
        packets in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..256), any::<u32>(),
             prop::collection::vec(any::<usize>(), 0..6)),
            1..6,
        ),
    ) {
        prop_assert_eq!(validate(&insns).is_ok(), model_valid(&insns));
        let Ok(prog) = Program::new(&insns) else {
            return Ok(());
        };
        let native = zbpf::hosted::native::native_program(&insns).expect("validated");
        prop_assert!(native.is_native());
        for (pkt, wirelen, cuts) in &packets {
            let whole = prog.run(pkt, *wirelen);
            let segs = segment(pkt, cuts);
            prop_assert_eq!(prog.run_segments(&segs[..], *wirelen), whole);
            prop_assert_eq!(native.run(pkt, *wirelen), whole, "native code, program {:?}", insns);
            // A contiguous packet, however short, never leaves native code.
            prop_assert!(!native.interprets(&pkt[..], *wirelen), "program {:?}", insns);
            prop_assert_eq!(native.run_segments(&segs[..], *wirelen), whole);
            let len = pkt.len() as u32;
            prop_assert_eq!(prog.run_segments(&segs[..], len), prog.run(pkt, len));
        }
    }
}

/// One step of a generated valid program.
#[derive(Clone, Debug)]
enum Step {
    /// A load, store, ALU or register op other than a shift by X: one
    /// instruction, taken as is.
    Plain(BpfInsn),
    /// `A <<= X` or `A >>= X`, with X masked to 0..31 first (six
    /// instructions, scratch word 15 as temporary).
    ShiftX(u16),
    /// A conditional jump; targets are chosen among later steps.
    Jump { code: u16, k: u32, t: u32, f: u32 },
    /// An unconditional jump to a later step.
    Ja(u32),
    /// An early return.
    Ret(BpfInsn),
}

impl Step {
    fn len(&self) -> usize {
        match self {
            Step::ShiftX(_) => 6,
            _ => 1,
        }
    }
}

fn width() -> impl Strategy<Value = u16> {
    select(&[BPF_W, BPF_H, BPF_B][..])
}

/// Packet offsets: mostly inside or just past a packet of up to 256 bytes,
/// sometimes huge (overflow checks).
fn offset() -> impl Strategy<Value = u32> {
    prop_oneof![6 => 0u32..270, 1 => any::<u32>(), 1 => (u32::MAX - 4)..=u32::MAX]
}

fn step() -> impl Strategy<Value = Step> {
    const ALU_OPS: [u16; 10] =
        [BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_MOD, BPF_XOR];
    const CONDS: [u16; 4] = [BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET];
    prop_oneof![
        3 => (width(), offset()).prop_map(|(w, k)| Step::Plain(BpfInsn::stmt(BPF_LD | w | BPF_ABS, k))),
        2 => (width(), offset()).prop_map(|(w, k)| Step::Plain(BpfInsn::stmt(BPF_LD | w | BPF_IND, k))),
        1 => any_k().prop_map(|k| Step::Plain(BpfInsn::stmt(BPF_LD | BPF_IMM, k))),
        1 => Just(Step::Plain(BpfInsn::stmt(BPF_LD | BPF_W | BPF_LEN, 0))),
        1 => (0u32..16).prop_map(|k| Step::Plain(BpfInsn::stmt(BPF_LD | BPF_MEM, k))),
        2 => prop_oneof![0u32..300, any::<u32>()]
            .prop_map(|k| Step::Plain(BpfInsn::stmt(BPF_LDX | BPF_IMM, k))),
        1 => Just(Step::Plain(BpfInsn::stmt(BPF_LDX | BPF_W | BPF_LEN, 0))),
        1 => (0u32..16).prop_map(|k| Step::Plain(BpfInsn::stmt(BPF_LDX | BPF_MEM, k))),
        2 => offset().prop_map(|k| Step::Plain(BpfInsn::stmt(BPF_LDX | BPF_B | BPF_MSH, k))),
        1 => (0u32..16).prop_map(|k| Step::Plain(BpfInsn::stmt(BPF_ST, k))),
        1 => (0u32..16).prop_map(|k| Step::Plain(BpfInsn::stmt(BPF_STX, k))),
        4 => (select(&ALU_OPS[..]), any_k()).prop_map(|(op, k)| {
            let k = match op {
                BPF_DIV | BPF_MOD => k.max(1),
                BPF_LSH | BPF_RSH => k % 32,
                _ => k,
            };
            Step::Plain(BpfInsn::stmt(BPF_ALU | op | BPF_K, k))
        }),
        3 => select(&ALU_OPS[..]).prop_map(|op| match op {
            BPF_LSH | BPF_RSH => Step::ShiftX(op),
            _ => Step::Plain(BpfInsn::stmt(BPF_ALU | op | BPF_X, 0)),
        }),
        1 => Just(Step::Plain(BpfInsn::stmt(BPF_ALU | BPF_NEG, 0))),
        1 => Just(Step::Plain(BpfInsn::stmt(BPF_MISC | BPF_TAX, 0))),
        1 => Just(Step::Plain(BpfInsn::stmt(BPF_MISC | BPF_TXA, 0))),
        5 => (select(&CONDS[..]), any::<bool>(), any_k(), any::<u32>(), any::<u32>())
            .prop_map(|(c, x, k, t, f)| Step::Jump {
                code: BPF_JMP | c | if x { BPF_X } else { BPF_K },
                k,
                t,
                f,
            }),
        1 => any::<u32>().prop_map(Step::Ja),
        1 => prop_oneof![
            any::<u32>().prop_map(|k| BpfInsn::stmt(BPF_RET | BPF_K, k)),
            Just(BpfInsn::stmt(BPF_RET | BPF_A, 0)),
        ]
        .prop_map(Step::Ret),
    ]
}

/// Lays out a valid program: the scratch prologue, the steps (jumps
/// resolved to the start of a later step or the final return), the final
/// return.
fn assemble(init: &[u32; 16], steps: &[Step], ret_a: bool) -> Vec<BpfInsn> {
    let mut insns = Vec::new();
    for (i, &v) in init.iter().enumerate() {
        insns.push(BpfInsn::stmt(BPF_LD | BPF_IMM, v));
        insns.push(BpfInsn::stmt(BPF_ST, i as u32));
    }
    // Index of each step's first instruction, and of the final return.
    let mut starts = Vec::with_capacity(steps.len() + 1);
    let mut at = insns.len();
    for s in steps {
        starts.push(at);
        at += s.len();
    }
    starts.push(at);
    // The offset from step `i` (a one-instruction jump) to a later step
    // picked by `pick`.
    let target = |i: usize, pick: u32| -> usize {
        let later = steps.len() - i;
        let j = i + 1 + pick as usize % later;
        starts[j] - (starts[i] + 1)
    };
    for (i, s) in steps.iter().enumerate() {
        match *s {
            Step::Plain(insn) | Step::Ret(insn) => insns.push(insn),
            Step::ShiftX(op) => insns.extend([
                BpfInsn::stmt(BPF_ST, 15),
                BpfInsn::stmt(BPF_MISC | BPF_TXA, 0),
                BpfInsn::stmt(BPF_ALU | BPF_AND | BPF_K, 31),
                BpfInsn::stmt(BPF_MISC | BPF_TAX, 0),
                BpfInsn::stmt(BPF_LD | BPF_MEM, 15),
                BpfInsn::stmt(BPF_ALU | op | BPF_X, 0),
            ]),
            Step::Jump { code, k, t, f } => {
                let (jt, jf) = (target(i, t), target(i, f));
                insns.push(BpfInsn::jump(code, k, jt as u8, jf as u8));
            }
            Step::Ja(pick) => {
                insns.push(BpfInsn::jump(BPF_JMP | BPF_JA, target(i, pick) as u32, 0, 0))
            }
        }
    }
    insns.push(if ret_a {
        BpfInsn::stmt(BPF_RET | BPF_A, 0)
    } else {
        BpfInsn::stmt(BPF_RET | BPF_K, 0x0004_0000)
    });
    insns
}

proptest! {
    #![proptest_config(config(1500))]

    /// (c) Random valid programs agree with libpcap's interpreter on random
    /// non-empty packets, and with themselves over segments.
    #[test]
    fn valid_programs_agree_with_libpcap(
        init in prop::array::uniform16(any_k()),
        // At most 40 steps of at most 6 instructions: every jump fits in 8 bits.
        steps in prop::collection::vec(step(), 0..40),
        ret_a in any::<bool>(),
        packets in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 1..256), prop_oneof![Just(None), any::<u32>().prop_map(Some)],
             prop::collection::vec(any::<usize>(), 0..6)),
            1..8,
        ),
    ) {
        let insns = assemble(&init, &steps, ret_a);
        prop_assert!(validate(&insns).is_ok(), "{:?}", validate(&insns));
        let prog = Program::new(&insns).unwrap();
        let native = zbpf::hosted::native::native_program(&insns).unwrap();
        for (pkt, wirelen, cuts) in &packets {
            let wirelen = wirelen.unwrap_or(pkt.len() as u32);
            let want = libpcap::bpf_filter(&insns, pkt, wirelen);
            prop_assert_eq!(prog.run(pkt, wirelen), want, "program {:?} packet {:?}", insns, pkt);
            prop_assert_eq!(native.run(pkt, wirelen), want, "native: program {:?} packet {:?}", insns, pkt);
            prop_assert!(!native.interprets(&pkt[..], wirelen), "program {:?}", insns);
            let segs = segment(pkt, cuts);
            prop_assert_eq!(prog.run_segments(&segs[..], wirelen), want);
        }
    }
}

/// The generators are not vacuous: (b) sees many accepted programs, and (c)
/// programs both accept and reject, and reach their loads.
#[test]
fn generators_cover_both_outcomes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let accepted = (0..500)
        .filter(|_| {
            let insns = nearly_valid_program().new_tree(&mut runner).unwrap().current();
            validate(&insns).is_ok()
        })
        .count();
    assert!(accepted > 100, "only {accepted} of 500 nearly valid programs accepted");

    let (mut zero, mut nonzero) = (0, 0);
    let pkt: Vec<u8> = (0..=255u8).collect();
    for _ in 0..500 {
        let steps = prop::collection::vec(step(), 0..40).new_tree(&mut runner).unwrap().current();
        let insns = assemble(&[7; 16], &steps, true);
        match libpcap::bpf_filter(&insns, &pkt[..100], 100) {
            0 => zero += 1,
            _ => nonzero += 1,
        }
    }
    println!("nearly valid programs accepted: {accepted}/500; valid programs: {zero} zero, {nonzero} non-zero");
    assert!(zero > 50 && nonzero > 50, "{zero} zero, {nonzero} non-zero results");
}
