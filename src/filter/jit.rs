//! A compiler from classic BPF to x86-64 machine code, for programs the
//! validator accepted.
//!
//! An interpreter spends most of its time dispatching; native code does not
//! dispatch at all, and leaves the processor only the packet's own
//! data-dependent branches. This module only produces bytes: making them
//! executable and calling them belongs to the platform
//! ([`NativeCode`](super::NativeCode)). It also makes the dispatchers that
//! call many programs each from a call site of its own
//! ([`compile_dispatch`]).
//!
//! The generated function follows the System V AMD64 convention:
//!
//! ```text
//! u64 f(const u8 *head, u64 head_len, u32 wirelen, u32 *mem)
//! ```
//!
//! It returns the filter's verdict in the low 32 bits, or [`FALLBACK`] at
//! the first load that reaches past `head_len` bytes, having done every
//! instruction before it: the load is out of the packet (the filter rejects)
//! when the head is the whole packet, else the interpreter, which sees the
//! whole packet, decides. Constant-offset loads are checked once against the
//! furthest of them; a shorter head runs a second copy of the program that
//! checks each load. Per load the code is one instruction: the packet
//! bytes are not swapped to host order when the value is only tested for
//! equality or bits against constants, which are swapped instead at compile
//! time; A and X are zeroed only when a run may read them before setting
//! them; a jump to a `ret` is the `ret` itself, and a test whose two ways
//! both return a constant is a `cmov`, with no branch; a run of eight or more
//! `jeq #k` to one place (a list of ports or hosts) is one lookup in a
//! table of its constants (`KeySet`). It reads only `head[0..head_len]`
//! and `mem[0..16]` (16 zeroed words, or null for a program that never
//! touches scratch memory) and its own tables, writes only `mem`, uses only integer
//! instructions and caller-saved registers, and touches no stack.
//!
//! Registers: A is eax, X is r11d, r8 is scratch, rdi/rsi hold the head and
//! its length, r9d the wire length, r10 the scratch memory. edx is free for
//! division; ecx carries shift counts and table slots.

#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::abi::op::*;
use crate::abi::{BpfInsn, BPF_MAXINSNS, PAGE_SIZE};

/// What the code returns when the interpreter must decide: exactly this
/// value, its low half 0.
pub const FALLBACK: u64 = 1 << 32;

/// Jump targets to patch once every instruction has its offset.
enum Target {
    /// An instruction of the copy being emitted.
    Insn(usize),
    /// The start of the checked copy.
    Checked,
    Fallback,
    Reject,
    /// The table of a run of `jeq`s ([`KeySet`]), by its index.
    Table(usize),
}

/// One jump to patch: where its displacement is, whether it is a rel8,
/// the copy of the program it is in, and where it goes.
struct Fixup {
    at: usize,
    short: bool,
    copy: usize,
    to: Target,
}

struct Emitter {
    code: Vec<u8>,
    fixups: Vec<Fixup>,
    /// Constant-offset loads were bounds-checked once, in the prologue.
    hoisted: bool,
    /// The copy of the program being emitted: 0, the one run first; 1, the
    /// checked one for heads shorter than the prologue's bound.
    copy: usize,
    /// Per jump, in emission order: whether it is short (missing entries:
    /// short). `None`: every jump is long.
    short: Option<Vec<bool>>,
}

/// Loads kept in the packet's byte order ([`packet_order`]).
struct Order(Vec<u8>);

impl Order {
    /// The size of the load at `i` when A keeps its bytes in packet order
    /// (or of the loads whose value the compare or `and` at `i` works on),
    /// else 0.
    fn at(&self, i: usize) -> u8 {
        self.0.get(i).copied().unwrap_or(0)
    }
}

impl Emitter {
    fn bytes(&mut self, b: &[u8]) {
        self.code.extend_from_slice(b);
    }

    fn imm32(&mut self, v: u32) {
        self.code.extend_from_slice(&v.to_le_bytes());
    }

    /// A jump to `to`: conditional on `cc`, or always (`None`). Short
    /// (rel8) unless an earlier pass found its target out of reach.
    fn jump(&mut self, cc: Option<u8>, to: Target) {
        let short = self.short.as_ref().is_some_and(|s| s.get(self.fixups.len()) != Some(&false));
        match (cc, short) {
            (Some(cc), true) => self.bytes(&[0x70 | cc]),
            (Some(cc), false) => self.bytes(&[0x0f, 0x80 | cc]),
            (None, true) => self.bytes(&[0xeb]),
            (None, false) => self.bytes(&[0xe9]),
        }
        self.fixups.push(Fixup { at: self.code.len(), short, copy: self.copy, to });
        if short {
            self.bytes(&[0]);
        } else {
            self.imm32(0);
        }
    }

    fn jmp(&mut self, to: Target) {
        self.jump(None, to);
    }

    /// `op [rdi+k]`, the ModRM byte given for a disp32 (mod 10): disp8
    /// (mod 01) when `k` fits.
    fn at_head(&mut self, op: &[u8], modrm: u8, k: u32) {
        self.bytes(op);
        if k < 0x80 {
            self.bytes(&[modrm & 0x3f | 0x40, k as u8]);
        } else {
            self.bytes(&[modrm]);
            self.imm32(k);
        }
    }

    /// A = the big-endian value of `size` bytes at head + k: one load when
    /// the prologue checked the bound, else a checked load.
    /// Without the swap when `raw` (the value is only compared with
    /// constants, swapped instead: [`packet_order`]).
    fn load_abs(&mut self, k: u32, size: u8, raw: bool) {
        if !self.hoisted && !self.check_abs(k, size) {
            self.bound_abs(k, size);
            self.load_a(size, raw);
            return;
        }
        match size {
            4 => self.at_head(&[0x8b], 0x87, k),       // mov eax,[rdi+k]
            2 => self.at_head(&[0x0f, 0xb7], 0x87, k), // movzx eax,word[rdi+k]
            _ => self.at_head(&[0x0f, 0xb6], 0x87, k), // movzx eax,byte[rdi+k]
        }
        if !raw {
            self.swap_a(size);
        }
    }

    /// A's low `size` bytes from packet order to host order.
    fn swap_a(&mut self, size: u8) {
        match size {
            4 => self.bytes(&[0x0f, 0xc8]),             // bswap eax
            2 => self.bytes(&[0x66, 0xc1, 0xc0, 0x08]), // rol ax,8
            _ => {}
        }
    }

    /// X = 4 * (byte at head + k & 0xf).
    fn load_msh(&mut self, k: u32) {
        if self.hoisted || self.check_abs(k, 1) {
            self.at_head(&[0x44, 0x0f, 0xb6], 0x9f, k); // movzx r11d,byte[rdi+k]
        } else {
            self.bound_abs(k, 1);
            self.bytes(&[0x46, 0x0f, 0xb6, 0x5c, 0x07, 0xff]); // movzx r11d,byte[rdi+r8-1]
        }
        self.bytes(&[0x41, 0x83, 0xe3, 0x0f, 0x41, 0xc1, 0xe3, 0x02]); // and r11d,0xf; shl r11d,2
    }

    /// Falls back unless the head holds `k + size` bytes, by one compare
    /// with an immediate; false (nothing emitted) when `k + size` does not
    /// fit one.
    fn check_abs(&mut self, k: u32, size: u8) -> bool {
        let Ok(end) = i32::try_from(u64::from(k) + u64::from(size)) else {
            return false;
        };
        if end < 0x80 {
            self.bytes(&[0x48, 0x83, 0xfe, end as u8]); // cmp rsi,end (imm8)
        } else {
            self.bytes(&[0x48, 0x81, 0xfe]); // cmp rsi,end
            self.imm32(end as u32);
        }
        self.jump(Some(CC_B), Target::Fallback); // jb fallback
        true
    }

    /// r8 = k + size, then fall back if it passes the head's end.
    fn bound_abs(&mut self, k: u32, size: u8) {
        self.bytes(&[0x41, 0xb8]); // mov r8d, k
        self.imm32(k);
        self.bytes(&[0x49, 0x83, 0xc0, size]); // add r8, size
        self.bound_check();
    }

    /// r8 = X + k + size, then fall back if it passes the head's end.
    fn bound_ind(&mut self, k: u32, size: u8) {
        // One lea when k + size is a positive displacement (X is
        // zero-extended in r11), else a 64-bit sum.
        match i32::try_from(u64::from(k) + u64::from(size)) {
            Ok(d @ 0..=0x7f) => self.bytes(&[0x4d, 0x8d, 0x43, d as u8]), // lea r8,[r11+d8]
            Ok(d) => {
                self.bytes(&[0x4d, 0x8d, 0x83]); // lea r8,[r11+d32]
                self.imm32(d as u32);
            }
            Err(_) => {
                self.bytes(&[0x41, 0xb8]); // mov r8d, k
                self.imm32(k);
                self.bytes(&[0x4d, 0x01, 0xd8]); // add r8, r11
                self.bytes(&[0x49, 0x83, 0xc0, size]); // add r8, size
            }
        }
        self.bound_check();
    }

    /// Falls back if r8 passes the head's end.
    fn bound_check(&mut self) {
        self.bytes(&[0x49, 0x39, 0xf0]); // cmp r8, rsi
        self.jump(Some(CC_A), Target::Fallback); // ja fallback
    }

    /// A = the big-endian value of `size` bytes ending at head + r8 (left
    /// in packet order when `raw`).
    fn load_a(&mut self, size: u8, raw: bool) {
        match size {
            4 => self.bytes(&[0x42, 0x8b, 0x44, 0x07, 0xfc]), // mov eax,[rdi+r8-4]
            2 => self.bytes(&[0x42, 0x0f, 0xb7, 0x44, 0x07, 0xfe]), // movzx eax,word[rdi+r8-2]
            _ => self.bytes(&[0x42, 0x0f, 0xb6, 0x44, 0x07, 0xff]), // movzx eax,byte[rdi+r8-1]
        }
        if !raw {
            self.swap_a(size);
        }
    }

    /// A conditional jump after a compare: to `t` when `cc` holds, else `f`.
    fn branch(&mut self, insns: &[BpfInsn], cc: u8, t: usize, f: usize, next: usize) {
        if t == f {
            self.goto(insns, t, next);
            return;
        }
        // Both ways return a constant: the verdict without a branch, so a
        // packet unlike the one before costs no misprediction.
        let constant = |i: usize| {
            insns.get(i).filter(|x| class(x.code) == BPF_RET && rval(x.code) != BPF_A).map(|x| x.k)
        };
        if let (Some(kt), Some(kf)) = (constant(t), constant(f)) {
            self.bytes(&[0xb8]); // mov eax,kt (the flags stay)
            self.imm32(kt);
            self.bytes(&[0xb9]); // mov ecx,kf
            self.imm32(kf);
            self.bytes(&[0x0f, 0x40 | (cc ^ 1), 0xc1]); // cmov(not cc) eax,ecx
            self.bytes(&[0xc3]); // ret
            return;
        }
        if t == next {
            // Jump on the opposite condition (x86 condition codes pair up).
            self.jump(Some(cc ^ 1), Target::Insn(f));
        } else if f == next || returns(insns, f) || !returns(insns, t) {
            self.jump(Some(cc), Target::Insn(t));
            self.goto(insns, f, next);
        } else {
            self.jump(Some(cc ^ 1), Target::Insn(f));
            self.goto(insns, t, next);
        }
    }

    /// Goes on at instruction `to` from before `next`: nothing when `to` is
    /// `next`, the return itself when `to` returns (a copy of a few bytes
    /// in place of a taken jump), else a jump.
    fn goto(&mut self, insns: &[BpfInsn], to: usize, next: usize) {
        match insns.get(to) {
            _ if to == next => {}
            Some(insn) if class(insn.code) == BPF_RET => self.ret(insn),
            _ => self.jmp(Target::Insn(to)),
        }
    }

    /// Returns the verdict of the `ret` instruction `insn`.
    fn ret(&mut self, insn: &BpfInsn) {
        if rval(insn.code) != BPF_A && insn.k == 0 {
            self.bytes(&[0x31, 0xc0]); // xor eax,eax
        } else if rval(insn.code) != BPF_A {
            self.bytes(&[0xb8]); // mov eax,k
            self.imm32(insn.k);
        }
        self.bytes(&[0xc3]); // ret (A is in eax, upper half zero)
    }

    /// A run of `jeq` as one lookup in its table (number `t`): to the
    /// run's `hit` if A is one of its constants, else to its `miss`.
    fn lookup(&mut self, insns: &[BpfInsn], t: usize, set: &KeySet) {
        self.bytes(&[0x69, 0xc8]); // imul ecx,eax,mul
        self.imm32(set.mul);
        self.bytes(&[0xc1, 0xe9, set.shift]); // shr ecx,shift
        self.bytes(&[0x4c, 0x8d, 0x05]); // lea r8,[rip+table]
        self.fixups.push(Fixup {
            at: self.code.len(),
            short: false,
            copy: self.copy,
            to: Target::Table(t),
        });
        self.imm32(0);
        self.bytes(&[0x41, 0x3b, 0x04, 0x88]); // cmp eax,[r8+rcx*4]
        let next = set.start + set.len;
        self.branch(insns, CC_E, set.hit, set.miss, next);
    }
}

/// x86 condition codes.
const CC_E: u8 = 0x4;
const CC_NE: u8 = 0x5;
const CC_A: u8 = 0x7;
const CC_AE: u8 = 0x3;
const CC_B: u8 = 0x2;

/// How far the program's constant-offset loads reach (`off + size`).
fn abs_reach(insns: &[BpfInsn]) -> u64 {
    insns
        .iter()
        .filter_map(|i| {
            let size = match (class(i.code), mode(i.code), size(i.code)) {
                (BPF_LD, BPF_ABS, BPF_W) => 4,
                (BPF_LD, BPF_ABS, BPF_H) => 2,
                (BPF_LD, BPF_ABS, _) | (BPF_LDX, BPF_MSH, _) => 1,
                _ => return None,
            };
            Some(u64::from(i.k) + size)
        })
        .max()
        .unwrap_or(0)
}

/// Whether `insns[i]` is a return.
fn returns(insns: &[BpfInsn], i: usize) -> bool {
    insns.get(i).is_some_and(|insn| class(insn.code) == BPF_RET)
}

/// The instructions that can run after `insns[i]`.
fn successors(insns: &[BpfInsn], i: usize) -> [Option<usize>; 2] {
    let Some(insn) = insns.get(i) else {
        return [None, None];
    };
    let next = i + 1;
    match (class(insn.code), op(insn.code)) {
        (BPF_RET, _) => [None, None],
        (BPF_JMP, BPF_JA) => [Some(next.saturating_add(insn.k as usize)), None],
        (BPF_JMP, _) => [Some(next + usize::from(insn.jt)), Some(next + usize::from(insn.jf))],
        _ => [Some(next), None],
    }
}

/// Whether the instruction reads A.
fn reads_a(code: u16) -> bool {
    match class(code) {
        BPF_ALU | BPF_ST => true,
        BPF_JMP => op(code) != BPF_JA,
        BPF_RET => rval(code) == BPF_A,
        BPF_MISC => miscop(code) == BPF_TAX,
        _ => false,
    }
}

/// Whether the instruction sets A.
fn sets_a(code: u16) -> bool {
    match class(code) {
        BPF_LD | BPF_ALU => true,
        BPF_MISC => miscop(code) == BPF_TXA,
        _ => false,
    }
}

/// Whether the instruction reads X.
fn reads_x(code: u16) -> bool {
    match class(code) {
        BPF_ALU => op(code) != BPF_NEG && src(code) == BPF_X,
        BPF_JMP => op(code) != BPF_JA && src(code) == BPF_X,
        BPF_LD => mode(code) == BPF_IND,
        BPF_STX => true,
        BPF_MISC => miscop(code) == BPF_TXA,
        _ => false,
    }
}

/// Whether the instruction sets X.
fn sets_x(code: u16) -> bool {
    match class(code) {
        BPF_LDX => true,
        BPF_MISC => miscop(code) == BPF_TAX,
        _ => false,
    }
}

/// Walks of a register's values through the program: from a start, every
/// instruction reached before the register is set again. Jumps go forward
/// only, so a walk is as long as the program at most.
struct Walk {
    seen: Vec<bool>,
    stack: Vec<usize>,
}

impl Walk {
    fn new(len: usize) -> Self {
        Walk { seen: alloc::vec![false; len], stack: Vec::new() }
    }

    /// Calls `visit` on every instruction reached from `starts` before an
    /// instruction that `sets` the register (which is visited, and ends
    /// the path); stops early when `visit` says so.
    fn run(
        &mut self,
        insns: &[BpfInsn],
        starts: impl IntoIterator<Item = usize>,
        sets: fn(u16) -> bool,
        mut visit: impl FnMut(usize, &BpfInsn) -> bool,
    ) {
        self.seen.fill(false);
        self.stack.clear();
        self.stack.extend(starts);
        while let Some(i) = self.stack.pop() {
            let (Some(insn), Some(seen)) = (insns.get(i), self.seen.get_mut(i)) else {
                continue;
            };
            if core::mem::replace(seen, true) {
                continue;
            }
            if !visit(i, insn) {
                return;
            }
            if !sets(insn.code) {
                self.stack.extend(successors(insns, i).into_iter().flatten());
            }
        }
    }
}

/// Whether a run may read the register's initial value (0): whether an
/// instruction that `reads` it can run before one that `sets` it.
fn reads_entry(insns: &[BpfInsn], reads: fn(u16) -> bool, sets: fn(u16) -> bool) -> bool {
    let mut read = false;
    Walk::new(insns.len()).run(insns, [0], sets, |_, insn| {
        read = reads(insn.code);
        !read
    });
    read
}

/// Which halfword and word loads may leave A in the packet's (big-endian)
/// byte order, skipping the swap, and which instructions then take their
/// constant swapped instead: A == k exactly when swap(A) == swap(k), and
/// swap(A) & swap(k) is swap(A & k), so `jeq #k`, `jset #k` and `and #k`
/// work on either order.
///
/// A's values flow from the instructions that set A (and from its initial
/// value) to the ones that read it; a value joins its setter and its
/// readers in one group, and `and #k`, which reads and sets, joins the
/// groups before and after it. A group is kept in packet order when every
/// value in it comes from loads of one size, 2 or 4 (each constant can be
/// swapped one way only), or from an `and #k`, and is read only by those
/// three. So the two port compares of `port 80`, which see the source and
/// the destination port, stay unswapped, and so does `vlan 100`'s
/// `and #0xfff`. Gives, per instruction, that size for the loads, `and`s
/// and compares of such a group, else 0.
///
/// One walk per setter: programs longer than the default limit (raised by
/// `net.bpf.maxinsns`) keep every swap rather than take quadratic time.
fn packet_order(insns: &[BpfInsn]) -> Order {
    let n = insns.len();
    let mut order = alloc::vec![0u8; n];
    if n > BPF_MAXINSNS as usize {
        return Order(order);
    }
    // Groups: a union-find over the instructions, node `n` standing for
    // A's initial value.
    let mut parent: Vec<usize> = (0..=n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while let Some(&p) = parent.get(i) {
            if p == i {
                break;
            }
            // Path halving keeps the trees shallow.
            let grand = parent.get(p).copied().unwrap_or(p);
            if let Some(slot) = parent.get_mut(i) {
                *slot = grand;
            }
            i = grand;
        }
        i
    }
    let mut walk = Walk::new(n);
    let setters = insns.iter().enumerate().filter(|(_, insn)| sets_a(insn.code)).map(|(i, _)| i);
    for s in setters.chain(core::iter::once(n)) {
        let starts = if s == n { [Some(0), None] } else { successors(insns, s) };
        walk.run(insns, starts.into_iter().flatten(), sets_a, |i, insn| {
            if reads_a(insn.code) {
                let (a, b) = (root(&mut parent, s), root(&mut parent, i));
                if let Some(slot) = parent.get_mut(a) {
                    *slot = b;
                }
            }
            true
        });
    }
    // Per group: the one load size seen, 0 for none yet, or u8::MAX when
    // the group must keep host order.
    let mut size_of = alloc::vec![0u8; n + 1];
    let mut mark = |group: usize, size: u8| {
        if let Some(g) = size_of.get_mut(group) {
            *g = if *g == 0 || *g == size { size } else { u8::MAX };
        }
    };
    mark(root(&mut parent, n), u8::MAX);
    for (i, insn) in insns.iter().enumerate() {
        let group = root(&mut parent, i);
        let code = insn.code;
        let and_k = class(code) == BPF_ALU && op(code) == BPF_AND && src(code) == BPF_K;
        if sets_a(code) && !and_k {
            let size = match (class(code), mode(code), size(code)) {
                (BPF_LD, BPF_ABS | BPF_IND, BPF_W) => 4,
                (BPF_LD, BPF_ABS | BPF_IND, BPF_H) => 2,
                _ => u8::MAX,
            };
            mark(group, size);
        }
        if reads_a(code) && !and_k {
            let test = class(code) == BPF_JMP
                && matches!(op(code), BPF_JEQ | BPF_JSET)
                && src(code) == BPF_K;
            if !test {
                mark(group, u8::MAX);
            }
        }
    }
    for (i, insn) in insns.iter().enumerate() {
        if !(sets_a(insn.code) || reads_a(insn.code)) {
            continue;
        }
        let group = root(&mut parent, i);
        if let (Some(&size @ (2 | 4)), Some(o)) = (size_of.get(group), order.get_mut(i)) {
            *o = size;
        }
    }
    Order(order)
}

/// A run of `jeq #k` that all jump to one place when A matches, and fall
/// through to the next one otherwise (`port 20 or port 21 or ...`, `host a
/// or host b or ...`): compiled as one lookup in a table of the run's
/// constants instead of a compare and branch per constant. The table has a
/// slot per value of a multiplicative hash of A, `(A * mul) >> shift`,
/// which sends no two constants to one slot; A matches exactly when its
/// slot holds A (an empty slot holds a constant whose own slot is another).
struct KeySet {
    /// The run's first instruction and how many it has.
    start: usize,
    len: usize,
    /// Where a match goes, and where the run's last `jeq` goes otherwise.
    hit: usize,
    miss: usize,
    mul: u32,
    shift: u8,
    table: Vec<u32>,
}

/// Shortest run compiled as a table: below it the compares are as cheap.
const KEYSET_MIN: usize = 8;
/// Longest run one table holds (a longer run is cut into several).
const KEYSET_MAX: usize = 64;
/// Multipliers tried per table size before a larger table is tried.
const KEYSET_TRIES: usize = 4096;

/// The runs of `jeq #k` worth a table, in program order. `order` gives the
/// constants as the code compares them. A run takes no jump into its
/// middle (the run from there on is a run of its own).
fn key_sets(insns: &[BpfInsn], order: &Order) -> Vec<KeySet> {
    // Instructions some jump lands on other than by falling through.
    let mut landed = alloc::vec![false; insns.len()];
    for (p, insn) in insns.iter().enumerate() {
        if class(insn.code) == BPF_JMP {
            for to in successors(insns, p).into_iter().flatten() {
                if to != p + 1 {
                    if let Some(l) = landed.get_mut(to) {
                        *l = true;
                    }
                }
            }
        }
    }
    let jeq_k = |i: usize| insns.get(i).filter(|x| x.code == BPF_JMP | BPF_JEQ | BPF_K);
    let hit_of = |i: usize| jeq_k(i).map(|x| i + 1 + usize::from(x.jt));
    let mut sets = Vec::new();
    let mut i = 0;
    while i < insns.len() {
        let Some(hit) = hit_of(i) else {
            i += 1;
            continue;
        };
        // Extend while the next one is a jeq to the same place, reached
        // only from this one's failure.
        let mut end = i;
        while end - i + 1 < KEYSET_MAX
            && jeq_k(end).is_some_and(|x| x.jf == 0)
            && hit_of(end + 1) == Some(hit)
            && !landed.get(end + 1).copied().unwrap_or(true)
            && order.at(end + 1) == order.at(i)
        {
            end += 1;
        }
        let len = end - i + 1;
        let miss = end + 1 + jeq_k(end).map_or(0, |x| usize::from(x.jf));
        if len >= KEYSET_MIN && hit != miss {
            let keys: Vec<u32> = (i..=end)
                .filter_map(|j| jeq_k(j).map(|x| swapped_k(x.k, order.at(j), false)))
                .collect();
            if let Some((mul, shift, table)) = key_table(&keys) {
                sets.push(KeySet { start: i, len, hit, miss, mul, shift, table });
            }
        }
        i = end + 1;
    }
    sets
}

/// A table for `keys` (at least one): the multiplier, the shift, and the
/// slots, or `None` when no multiplier tried fits them in 2 to 8 slots per
/// key. Deterministic: the same keys always give the same table.
fn key_table(keys: &[u32]) -> Option<(u32, u8, Vec<u32>)> {
    let &first = keys.first()?;
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    // ceil(log2(len)), then 2, 4 and 8 slots per key.
    let bits = usize::BITS - (keys.len() - 1).leading_zeros();
    for bits in bits + 1..=bits + 3 {
        let shift = 32 - bits;
        let mut mul: u32 = 0x9e37_79b9;
        let mut slots: Vec<Option<u32>> = alloc::vec![None; 1 << bits];
        for _ in 0..KEYSET_TRIES {
            slots.fill(None);
            let fits = keys.iter().all(|&k| {
                let slot = slots.get_mut((k.wrapping_mul(mul) >> shift) as usize);
                slot.is_some_and(|s| s.replace(k).is_none())
            });
            if fits {
                let table = slots.iter().map(|s| s.unwrap_or(first)).collect();
                return Some((mul, shift as u8, table));
            }
            // The next odd multiplier of a fixed sequence.
            mul = mul.wrapping_mul(0x2c1b_3c6d).wrapping_add(0x297a_2d39) | 1;
        }
    }
    None
}

/// `k` for a `jeq`/`jset` (`test`) of A holding `size` bytes in packet
/// order: the constant with the same bytes swapped. A holds no more than
/// `size` bytes, so a `jset` tests only those of `k`, and a `jeq` with a
/// wider `k` never holds either way.
fn swapped_k(k: u32, size: u8, test: bool) -> u32 {
    match size {
        4 => k.swap_bytes(),
        2 if test => u32::from((k as u16).swap_bytes()),
        2 => u16::try_from(k).map_or(k, |h| u32::from(h.swap_bytes())),
        _ => k,
    }
}

/// Largest reach checked once in the prologue: offsets stay within a
/// 32-bit displacement, and no real head is longer.
const HOIST_LIMIT: u64 = 0xffff;

/// Machine code for one program: `code[entry..]` is the function;
/// the bytes before it are `int3` padding.
pub struct Compiled {
    /// The bytes to make executable.
    pub code: Vec<u8>,
    /// Where in `code` the function starts (a multiple of 64).
    pub entry: usize,
    /// Where the code a head long enough for every constant-offset load
    /// runs ends: the checked copy of the program and the exits follow.
    pub hot_end: usize,
}

/// Cache lines of the programs compiled so far, to stagger where each one
/// starts.
static PLACED: AtomicUsize = AtomicUsize::new(0);

/// The same for dispatchers, counted apart: a tap's dispatchers are rebuilt
/// at every change of its readers, and counting their lines in [`PLACED`]
/// would leave the programs' starts on a few lines only.
static DISPATCHERS_PLACED: AtomicUsize = AtomicUsize::new(0);

/// Compiles a program the validator accepted. An empty program accepts
/// every packet whole.
///
/// Executable memory comes in pages, so every program would start at the
/// same page offset, in the same L1 instruction-cache sets: with dozens of
/// descriptors on one interface their filters evicted each other. So the
/// programs are laid out as if end to end around a page: each one starts at
/// the cache line where the previous one ended, modulo the page (it may
/// then run into a second page), and every set gets its share.
pub fn compile(insns: &[BpfInsn]) -> Compiled {
    let (body, hot) = compile_body(insns);
    place(body, hot, &PLACED)
}

/// Gives `body` its start line in the page (see [`compile`]), the next one
/// of `placed`.
fn place(body: Vec<u8>, hot: usize, placed: &AtomicUsize) -> Compiled {
    // Only the hot part counts: the next program may share its sets with
    // this one's checked copy, which few packets run.
    let lines = hot.div_ceil(CACHE_LINE);
    let start = placed.fetch_add(lines, Ordering::Relaxed);
    let entry = start % (PAGE_SIZE / CACHE_LINE) * CACHE_LINE;
    let mut code = Vec::with_capacity(entry + body.len());
    code.resize(entry, INT3);
    code.extend_from_slice(&body);
    Compiled { code, entry, hot_end: entry + hot }
}

const CACHE_LINE: usize = 64;
const INT3: u8 = 0xcc;

/// Programs one dispatcher calls at most.
pub const DISPATCH_SLOTS: usize = 32;

/// Compiles a dispatcher: a function with a program's signature that calls
/// `targets[i]`, when present, on its own packet arguments and stores the
/// 64-bit answer at `out[i]`, where `out` is what it gets in place of `mem`
/// (an array of `targets.len()` u64). The targets must be compiled programs
/// that never touch scratch memory: they get a null `mem`. Slots without a
/// target get `u64::MAX`, which has [`FALLBACK`] set. Returns `None` for
/// more than [`DISPATCH_SLOTS`] targets.
///
/// Calling many programs in turn from one indirect call site, the processor
/// must guess among as many targets at that one site, and past a few dozen
/// it guesses wrong on almost every call. The dispatcher gives every
/// program its own call site, whose target never changes.
pub fn compile_dispatch(targets: &[Option<u64>]) -> Option<Compiled> {
    if targets.len() > DISPATCH_SLOTS {
        return None;
    }
    let mut c = Vec::with_capacity(40 + 32 * targets.len());
    // Keep the arguments in registers the programs never touch (they use
    // only caller-saved ones): rbx = out, r12 = head, r13 = head length,
    // r14d = wire length. Five pushes and the return address leave the
    // stack 16-byte aligned for the calls.
    c.extend_from_slice(&[0x53, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57]); // push rbx,r12..r15
    c.extend_from_slice(&[0x48, 0x89, 0xcb]); // mov rbx,rcx
    c.extend_from_slice(&[0x49, 0x89, 0xfc, 0x49, 0x89, 0xf5, 0x41, 0x89, 0xd6]); // mov r12,rdi; mov r13,rsi; mov r14d,edx
    for (i, target) in targets.iter().enumerate() {
        let Some(target) = target else {
            c.extend_from_slice(&[0x48, 0xc7, 0x83]); // mov qword [rbx+8i],-1
            c.extend_from_slice(&((8 * i) as u32).to_le_bytes());
            c.extend_from_slice(&u32::MAX.to_le_bytes());
            continue;
        };
        c.extend_from_slice(&[0x4c, 0x89, 0xe7, 0x4c, 0x89, 0xee, 0x44, 0x89, 0xf2]); // mov rdi,r12; mov rsi,r13; mov edx,r14d
        c.extend_from_slice(&[0x31, 0xc9]); // xor ecx,ecx (no scratch memory)
        c.extend_from_slice(&[0x48, 0xb8]); // mov rax,target
        c.extend_from_slice(&target.to_le_bytes());
        c.extend_from_slice(&[0xff, 0xd0]); // call rax
        c.extend_from_slice(&[0x48, 0x89, 0x83]); // mov [rbx+8i],rax
        c.extend_from_slice(&((8 * i) as u32).to_le_bytes());
    }
    c.extend_from_slice(&[0x31, 0xc0]); // xor eax,eax
    c.extend_from_slice(&[0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5b, 0xc3]); // pop r15..r12,rbx; ret
    let hot = c.len();
    Some(place(c, hot, &DISPATCHERS_PLACED))
}

/// Jumps are short (rel8) where their target is near enough: every jump
/// starts short, and each pass makes long the ones whose target was out of
/// reach. A jump made long only moves code apart, so one that did not fit
/// never fits later, and the passes end with every jump fitting. Should they
/// not end within a few passes, every jump is long.
/// Returns the code and the length of its hot part ([`Compiled::hot_end`]).
fn compile_body(insns: &[BpfInsn]) -> (Vec<u8>, usize) {
    let flow = Flow::of(insns);
    let mut short: Vec<bool> = Vec::new();
    for _ in 0..8 {
        let (code, fitted, hot) = emit(insns, &flow, Some(short.clone()));
        if fitted.iter().all(|&f| f) {
            return (code, hot);
        }
        short =
            fitted.iter().enumerate().map(|(i, &f)| f && short.get(i) != Some(&false)).collect();
    }
    let (code, _, hot) = emit(insns, &flow, None);
    (code, hot)
}

/// What the code needs to know of how values flow through the program.
struct Flow {
    /// Loads that skip the byte swap, and the compares of their values.
    order: Order,
    /// Runs of `jeq` compiled as table lookups.
    key_sets: Vec<KeySet>,
    /// Whether a run may read A's initial 0; X's.
    zero_a: bool,
    zero_x: bool,
}

impl Flow {
    fn of(insns: &[BpfInsn]) -> Flow {
        let order = packet_order(insns);
        Flow {
            key_sets: key_sets(insns, &order),
            order,
            zero_a: reads_entry(insns, reads_a, sets_a),
            zero_x: reads_entry(insns, reads_x, sets_x),
        }
    }
}

/// Emits the program, and per jump whether its displacement fitted (one
/// that did not is left unpatched), and the length of the hot part.
fn emit(insns: &[BpfInsn], flow: &Flow, short: Option<Vec<bool>>) -> (Vec<u8>, Vec<bool>, usize) {
    let reach = abs_reach(insns);
    let hoisted = reach <= HOIST_LIMIT;
    let mut e = Emitter { code: Vec::new(), fixups: Vec::new(), hoisted, copy: 0, short };
    // Prologue: r9d = wirelen and r10 = mem for the programs that use them
    // (short code keeps many programs in the instruction cache), A = 0 and
    // X = 0 for the programs that may read them before setting them.
    let uses = |class_mode: &[(u16, u16)]| {
        insns
            .iter()
            .any(|i| class_mode.iter().any(|&(c, m)| class(i.code) == c && mode(i.code) == m))
    };
    if uses(&[(BPF_LD, BPF_LEN), (BPF_LDX, BPF_LEN)]) {
        e.bytes(&[0x41, 0x89, 0xd1]); // mov r9d,edx
    }
    if uses(&[(BPF_LD, BPF_MEM), (BPF_LDX, BPF_MEM)])
        || insns.iter().any(|i| matches!(class(i.code), BPF_ST | BPF_STX))
    {
        e.bytes(&[0x49, 0x89, 0xca]); // mov r10,rcx
    }
    if flow.zero_a {
        e.bytes(&[0x31, 0xc0]); // xor eax,eax
    }
    if flow.zero_x {
        e.bytes(&[0x45, 0x31, 0xdb]); // xor r11d,r11d
    }
    // The bounds fact: one check covers every constant-offset load. A
    // shorter head runs a second copy of the program that checks each load
    // as it comes, so that a short packet stays in native code and falls
    // back only at the load that passes the head's end, where FreeBSD's
    // filter rejects a contiguous packet.
    let checked_copy = hoisted && reach > 0;
    if checked_copy {
        if reach < 0x80 {
            e.bytes(&[0x48, 0x83, 0xfe, reach as u8]); // cmp rsi,reach (imm8)
        } else {
            e.bytes(&[0x48, 0x81, 0xfe]); // cmp rsi,reach
            e.imm32(reach as u32);
        }
        e.jump(Some(CC_B), Target::Checked); // jb checked copy
    }
    if insns.is_empty() {
        e.bytes(&[0xb8]);
        e.imm32(u32::MAX);
        e.bytes(&[0xc3]);
        let hot = e.code.len();
        return (e.code, Vec::new(), hot);
    }
    let mut offsets = Vec::with_capacity(2);
    offsets.push(body(&mut e, insns, flow));
    let hot = e.code.len();
    if checked_copy {
        e.hoisted = false;
        e.copy = 1;
        offsets.push(body(&mut e, insns, flow));
    }
    // Out-of-line exits.
    let fallback = e.code.len();
    e.bytes(&[0x31, 0xc0, 0x48, 0x0f, 0xba, 0xe8, 0x20, 0xc3]); // xor eax,eax; bts rax,32; ret
    let reject = e.code.len();
    let rejects = e.fixups.iter().any(|f| match f.to {
        Target::Reject => true,
        Target::Insn(i) => i >= insns.len(),
        Target::Fallback | Target::Checked | Target::Table(_) => false,
    });
    if rejects {
        e.bytes(&[0x31, 0xc0, 0xc3]); // xor eax,eax; ret
    }
    // The lookups' tables, 4-byte aligned.
    let mut tables = Vec::with_capacity(flow.key_sets.len());
    for set in &flow.key_sets {
        while e.code.len() % 4 != 0 {
            e.bytes(&[INT3]);
        }
        tables.push(e.code.len());
        for &k in &set.table {
            e.imm32(k);
        }
    }
    let mut fitted = Vec::with_capacity(e.fixups.len());
    for Fixup { at, short, copy, to } in core::mem::take(&mut e.fixups) {
        let dest = match to {
            Target::Insn(i) => offsets[copy].get(i).copied().unwrap_or(reject),
            Target::Checked => offsets.get(1).and_then(|o| o.first()).copied().unwrap_or(fallback),
            Target::Fallback => fallback,
            Target::Reject => reject,
            Target::Table(t) => tables.get(t).copied().unwrap_or(fallback),
        };
        let width = if short { 1 } else { 4 };
        let rel = dest as i64 - (at + width) as i64;
        let done = match (short, e.code.get_mut(at..at + width)) {
            (true, Some(slot)) => {
                i8::try_from(rel).map(|r| slot.copy_from_slice(&r.to_le_bytes())).is_ok()
            }
            (false, Some(slot)) => {
                i32::try_from(rel).map(|r| slot.copy_from_slice(&r.to_le_bytes())).is_ok()
            }
            (_, None) => false,
        };
        fitted.push(done);
    }
    (e.code, fitted, hot)
}

/// Emits one copy of the program's instructions; returns where each starts.
fn body(e: &mut Emitter, insns: &[BpfInsn], flow: &Flow) -> Vec<usize> {
    let order = &flow.order;
    let mut offsets = Vec::with_capacity(insns.len());
    let mut sets = flow.key_sets.iter().enumerate().peekable();
    let mut skip = 0;
    for (i, insn) in insns.iter().enumerate() {
        offsets.push(e.code.len());
        if i < skip {
            // Inside a run compiled as a lookup: nothing jumps here.
            continue;
        }
        if let Some((t, set)) = sets.next_if(|(_, set)| set.start == i) {
            e.lookup(insns, t, set);
            skip = set.start + set.len;
            continue;
        }
        let k = insn.k;
        let next = i + 1;
        // Scratch slots are 4-byte words; the validator checked k < 16.
        let slot = ((k & 0xf) * 4) as u8;
        let code = insn.code;
        match class(code) {
            BPF_LD => match mode(code) {
                BPF_ABS | BPF_IND => {
                    let size = match size(code) {
                        BPF_W => 4,
                        BPF_H => 2,
                        _ => 1,
                    };
                    let raw = order.at(i) != 0;
                    if mode(code) == BPF_ABS {
                        e.load_abs(k, size, raw);
                    } else {
                        e.bound_ind(k, size);
                        e.load_a(size, raw);
                    }
                }
                BPF_MEM => e.bytes(&[0x41, 0x8b, 0x42, slot]), // mov eax,[r10+slot]
                BPF_LEN => e.bytes(&[0x44, 0x89, 0xc8]),       // mov eax,r9d
                _ => {
                    e.bytes(&[0xb8]); // mov eax,k
                    e.imm32(k);
                }
            },
            BPF_LDX => match mode(code) {
                BPF_MEM => e.bytes(&[0x45, 0x8b, 0x5a, slot]), // mov r11d,[r10+slot]
                BPF_LEN => e.bytes(&[0x45, 0x89, 0xcb]),       // mov r11d,r9d
                BPF_MSH => e.load_msh(k),
                _ => {
                    e.bytes(&[0x41, 0xbb]); // mov r11d,k
                    e.imm32(k);
                }
            },
            BPF_ST => e.bytes(&[0x41, 0x89, 0x42, slot]), // mov [r10+slot],eax
            BPF_STX => e.bytes(&[0x45, 0x89, 0x5a, slot]), // mov [r10+slot],r11d
            // An `and #k` of a value kept in packet order takes k swapped.
            BPF_ALU => alu(e, code, swapped_k(k, order.at(i), true)),
            BPF_JMP => {
                let t = next + usize::from(insn.jt);
                let f = next + usize::from(insn.jf);
                if op(code) == BPF_JA {
                    e.goto(insns, next.saturating_add(k as usize), next);
                    continue;
                }
                let x = src(code) == BPF_X;
                let k = swapped_k(k, order.at(i), op(code) == BPF_JSET);
                let cc = match op(code) {
                    BPF_JEQ => CC_E,
                    BPF_JGT => CC_A,
                    BPF_JGE => CC_AE,
                    _ => CC_NE, // JSET: test, jump if not zero
                };
                match (op(code), x) {
                    (BPF_JSET, false) => {
                        e.bytes(&[0xa9]); // test eax,k
                        e.imm32(k);
                    }
                    (BPF_JSET, true) => e.bytes(&[0x44, 0x85, 0xd8]), // test eax,r11d
                    (_, false) if k as i32 == i32::from(k as i8) => {
                        e.bytes(&[0x83, 0xf8, k as u8]); // cmp eax,k (sign-extended imm8)
                    }
                    (_, false) => {
                        e.bytes(&[0x3d]); // cmp eax,k
                        e.imm32(k);
                    }
                    (_, true) => e.bytes(&[0x44, 0x39, 0xd8]), // cmp eax,r11d
                }
                e.branch(insns, cc, t, f, next);
            }
            BPF_RET => e.ret(insn),
            _ => {
                if miscop(code) == BPF_TXA {
                    e.bytes(&[0x44, 0x89, 0xd8]); // mov eax,r11d
                } else {
                    e.bytes(&[0x41, 0x89, 0xc3]); // mov r11d,eax
                }
            }
        }
    }
    offsets
}

/// A = A op operand (k, or X for BPF_X).
fn alu(e: &mut Emitter, code: u16, k: u32) {
    let x = src(code) == BPF_X;
    match (op(code), x) {
        (BPF_NEG, _) => e.bytes(&[0xf7, 0xd8]), // neg eax
        (BPF_ADD, false) => imm(e, 0x05, k),
        (BPF_SUB, false) => imm(e, 0x2d, k),
        (BPF_AND, false) => imm(e, 0x25, k),
        (BPF_OR, false) => imm(e, 0x0d, k),
        (BPF_XOR, false) => imm(e, 0x35, k),
        (BPF_MUL, false) => {
            e.bytes(&[0x69, 0xc0]); // imul eax,eax,k
            e.imm32(k);
        }
        (BPF_LSH, false) => e.bytes(&[0xc1, 0xe0, (k & 31) as u8]), // shl eax,k
        (BPF_RSH, false) => e.bytes(&[0xc1, 0xe8, (k & 31) as u8]), // shr eax,k
        (BPF_DIV | BPF_MOD, false) => {
            // The validator rejected k == 0. xor edx,edx; mov r8d,k; div r8d
            e.bytes(&[0x31, 0xd2, 0x41, 0xb8]);
            e.imm32(k);
            e.bytes(&[0x41, 0xf7, 0xf0]);
            if op(code) == BPF_MOD {
                e.bytes(&[0x89, 0xd0]); // mov eax,edx
            }
        }
        (BPF_ADD, true) => e.bytes(&[0x44, 0x01, 0xd8]),
        (BPF_SUB, true) => e.bytes(&[0x44, 0x29, 0xd8]),
        (BPF_AND, true) => e.bytes(&[0x44, 0x21, 0xd8]),
        (BPF_OR, true) => e.bytes(&[0x44, 0x09, 0xd8]),
        (BPF_XOR, true) => e.bytes(&[0x44, 0x31, 0xd8]),
        (BPF_MUL, true) => e.bytes(&[0x41, 0x0f, 0xaf, 0xc3]), // imul eax,r11d
        (BPF_LSH, true) => e.bytes(&[0x44, 0x89, 0xd9, 0xd3, 0xe0]), // mov ecx,r11d; shl eax,cl
        (BPF_RSH, true) => e.bytes(&[0x44, 0x89, 0xd9, 0xd3, 0xe8]), // mov ecx,r11d; shr eax,cl
        (_, true) => {
            // DIV or MOD by X: X == 0 rejects.
            e.bytes(&[0x45, 0x85, 0xdb]); // test r11d,r11d
            e.jump(Some(CC_E), Target::Reject); // jz reject
            e.bytes(&[0x31, 0xd2, 0x41, 0xf7, 0xf3]); // xor edx,edx; div r11d
            if op(code) == BPF_MOD {
                e.bytes(&[0x89, 0xd0]); // mov eax,edx
            }
        }
        _ => {}
    }
}

fn imm(e: &mut Emitter, opcode: u8, k: u32) {
    e.bytes(&[opcode]);
    e.imm32(k);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where `count` programs compiled in a row start. A counter of its
    /// own: other tests compile programs at the same time.
    fn placements(insns: &[BpfInsn], count: usize) -> (Vec<u8>, Vec<usize>) {
        let (body, hot) = compile_body(insns);
        let placed = AtomicUsize::new(0);
        let mut entries = Vec::new();
        for _ in 0..count {
            let c = place(compile_body(insns).0, hot, &placed);
            assert_eq!(c.entry % CACHE_LINE, 0);
            assert!(c.code[..c.entry].iter().all(|&b| b == INT3));
            assert_eq!(c.code[c.entry..], body[..]);
            entries.push(c.entry);
        }
        (body, entries)
    }

    /// Places `insns` 256 times; every instruction-cache set of a page must
    /// hold a line of some copy, and every copy must start in the first page.
    fn assert_covers_every_set(insns: &[BpfInsn]) {
        let (_, entries) = placements(insns, 256);
        assert!(entries.iter().all(|&e| e < PAGE_SIZE));
        let lines = compile_body(insns).1.div_ceil(CACHE_LINE);
        let mut covered = [false; PAGE_SIZE / CACHE_LINE];
        for e in entries {
            for l in 0..lines {
                covered[(e / CACHE_LINE + l) % covered.len()] = true;
            }
        }
        assert!(covered.iter().all(|&c| c), "sets left out: {covered:?}");
    }

    #[test]
    fn short_programs_cover_every_set() {
        assert_covers_every_set(&[
            BpfInsn::stmt(BPF_LD | BPF_H | BPF_ABS, 12),
            BpfInsn::jump(BPF_JMP | BPF_JEQ | BPF_K, 0x800, 0, 1),
            BpfInsn::stmt(BPF_RET | BPF_K, 96),
            BpfInsn::stmt(BPF_RET | BPF_K, 0),
        ]);
    }

    #[test]
    fn programs_of_five_lines_cover_every_set() {
        // A length that divides the page's 64 lines badly: the placement
        // must not cycle through a few offsets only.
        let program = |loads: usize| {
            let mut insns = vec![BpfInsn::stmt(BPF_LD | BPF_W | BPF_ABS, 0); loads];
            insns.push(BpfInsn::stmt(BPF_RET | BPF_A, 0));
            insns
        };
        let five = (1..100)
            .map(program)
            .find(|p| compile_body(p).1.div_ceil(CACHE_LINE) == 5)
            .expect("some number of loads makes five lines");
        assert_covers_every_set(&five);
    }

    /// `ldh [12]` (or `ld [26]`, `ldh [x + 12]`), then `test`, then
    /// returns 1 or 0; `then` is what follows the load's first test, when
    /// it fails.
    fn tested(load: BpfInsn, test: BpfInsn, then: &[BpfInsn]) -> Vec<BpfInsn> {
        let n = then.len() as u8;
        let mut insns = vec![load, BpfInsn { jt: n, jf: 0, ..test }];
        insns.extend_from_slice(then);
        insns.extend([BpfInsn::stmt(BPF_RET | BPF_K, 0), BpfInsn::stmt(BPF_RET | BPF_K, 1)]);
        insns
    }

    /// `ldb [0]`, then `first` or `second` as that byte is 1 or not, both
    /// values then tested by one `jeq #0x0800`.
    fn meeting(first: BpfInsn, second: BpfInsn) -> Vec<BpfInsn> {
        vec![
            BpfInsn::stmt(BPF_LD | BPF_B | BPF_ABS, 0),
            BpfInsn::jump(JEQ, 1, 0, 2),
            first,
            BpfInsn::jump(BPF_JMP | BPF_JA, 1, 0, 0),
            second,
            BpfInsn::jump(JEQ, 0x0800, 0, 1),
            BpfInsn::stmt(BPF_RET | BPF_K, 1),
            BpfInsn::stmt(BPF_RET | BPF_K, 0),
        ]
    }

    fn order(insns: &[BpfInsn]) -> Vec<u8> {
        Flow::of(insns).order.0
    }

    const LDH: BpfInsn = BpfInsn::stmt(BPF_LD | BPF_H | BPF_ABS, 12);
    const LDW: BpfInsn = BpfInsn::stmt(BPF_LD | BPF_W | BPF_ABS, 26);
    const JEQ: u16 = BPF_JMP | BPF_JEQ | BPF_K;

    #[test]
    fn values_only_compared_with_constants_are_not_swapped() {
        let ip = tested(LDH, BpfInsn::jump(JEQ, 0x0800, 0, 0), &[]);
        assert_eq!(order(&ip), [2, 2, 0, 0]);
        let (code, _) = compile_body(&ip);
        // movzx eax,word [rdi+12]; cmp eax,8 (0x0800 swapped); no rol ax,8.
        let has = |b: &[u8]| code.windows(b.len()).any(|w| w == b);
        assert!(has(&[0x0f, 0xb7, 0x47, 0x0c, 0x83, 0xf8, 0x08]), "{code:02x?}");
        assert!(!has(&[0x66, 0xc1, 0xc0, 0x08]), "{code:02x?}");
        let chain = tested(
            LDW,
            BpfInsn::jump(JEQ, 1, 0, 0),
            &[BpfInsn::jump(BPF_JMP | BPF_JSET | BPF_K, 0xff00, 1, 0)],
        );
        assert_eq!(order(&chain), [4, 4, 4, 0, 0]);
        // `vlan 100`'s test: an `and #k` between the load and the compare.
        let masked = [
            LDH,
            BpfInsn::stmt(BPF_ALU | BPF_AND | BPF_K, 0x0fff),
            BpfInsn::jump(JEQ, 100, 0, 1),
            BpfInsn::stmt(BPF_RET | BPF_K, 1),
            BpfInsn::stmt(BPF_RET | BPF_K, 0),
        ];
        assert_eq!(order(&masked), [2, 2, 2, 0, 0]);
        let (code, _) = compile_body(&masked);
        // and eax,0xff0f; cmp eax,0x6400: both constants swapped.
        let has = |b: &[u8]| code.windows(b.len()).any(|w| w == b);
        assert!(has(&[0x25, 0x0f, 0xff, 0, 0, 0x3d, 0, 0x64, 0, 0]), "{code:02x?}");
        // Two halfword loads meet at one compare (as the source and the
        // destination port do in `port 80`, where libpcap merges the IPv4
        // and IPv6 tests' tails): one size, so both stay unswapped; the
        // byte load's group needs no swap and keeps its constant.
        assert_eq!(
            order(&meeting(LDH, BpfInsn::stmt(BPF_LD | BPF_H | BPF_ABS, 14))),
            [0, 0, 2, 0, 2, 2, 0, 0]
        );
    }

    #[test]
    fn values_used_otherwise_are_swapped() {
        let uses = [
            BpfInsn::jump(BPF_JMP | BPF_JGT | BPF_K, 0x0800, 0, 0),
            BpfInsn::jump(BPF_JMP | BPF_JEQ | BPF_X, 0, 0, 0),
            BpfInsn::stmt(BPF_RET | BPF_A, 0),
            BpfInsn::stmt(BPF_ALU | BPF_OR | BPF_K, 0xff),
            BpfInsn::stmt(BPF_ALU | BPF_AND | BPF_X, 0),
            BpfInsn::stmt(BPF_MISC | BPF_TAX, 0),
            BpfInsn::stmt(BPF_ST, 0),
        ];
        for used in uses {
            // The load's value reaches `used` when its compare fails.
            let insns = tested(LDH, BpfInsn::jump(JEQ, 0x0800, 0, 0), &[used]);
            assert_eq!(order(&insns)[0], 0, "{used:?}");
        }
        // Two loads' values meet at one compare: its constant can be
        // swapped for one size only.
        let meet = [
            BpfInsn::jump(JEQ, 0, 0, 2),
            LDH,
            BpfInsn::jump(BPF_JMP | BPF_JA, 1, 0, 0),
            BpfInsn::stmt(BPF_LD | BPF_B | BPF_ABS, 14),
            BpfInsn::jump(JEQ, 0x0800, 0, 1),
            BpfInsn::stmt(BPF_RET | BPF_K, 1),
            BpfInsn::stmt(BPF_RET | BPF_K, 0),
        ];
        assert_eq!(order(&meet), [0; 7]);
    }

    /// Keys of a fixed pseudo-random sequence.
    fn keys(n: usize, seed: u32) -> Vec<u32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                x
            })
            .collect()
    }

    #[test]
    fn a_key_table_finds_its_keys_and_nothing_else() {
        for (n, seed) in [(8, 1), (16, 2), (15, 3), (100, 4), (KEYSET_MAX, 5)] {
            let mut set = keys(n, seed);
            // Small and neighbouring values too, as ports are.
            set.extend(20..28);
            let (mul, shift, table) = key_table(&set).expect("a table");
            assert!(table.len() <= 8 * set.len().next_power_of_two());
            let member = |v: u32| table[(v.wrapping_mul(mul) >> shift) as usize] == v;
            for &k in &set {
                assert!(member(k), "{k:#x} of {n}");
            }
            for v in keys(20_000, seed ^ 0xffff).into_iter().chain(0..2000) {
                assert_eq!(member(v), set.contains(&v), "{v:#x} of {n}");
            }
        }
    }

    /// `ldh [12]`, a run of `jeq` on `ks` to `ret #1`, `ret #0`; with
    /// `landing`, a jump from before the run lands on its third `jeq`.
    fn run_of_jeq(ks: &[u32], landing: bool) -> Vec<BpfInsn> {
        let n = ks.len() as u8;
        let mut insns = vec![BpfInsn::stmt(BPF_LD | BPF_B | BPF_ABS, 0)];
        // ldb [0]; jeq #1 -> the third jeq, else the run's start.
        insns.push(BpfInsn::jump(JEQ, 1, if landing { 3 } else { 1 }, 1));
        insns.push(BpfInsn::stmt(BPF_LD | BPF_H | BPF_ABS, 12));
        for (j, &k) in ks.iter().enumerate() {
            insns.push(BpfInsn::jump(JEQ, k, n - j as u8, 0));
        }
        insns.extend([BpfInsn::stmt(BPF_RET | BPF_K, 0), BpfInsn::stmt(BPF_RET | BPF_K, 1)]);
        insns
    }

    #[test]
    fn runs_of_jeq_become_lookups() {
        let ports: Vec<u32> = vec![20, 21, 22, 23, 25, 53, 80, 110, 143, 443, 0x10000];
        let plain = run_of_jeq(&ports, false);
        let sets = Flow::of(&plain).key_sets;
        assert_eq!(sets.len(), 1);
        assert_eq!((sets[0].start, sets[0].len), (3, ports.len()));
        // A jump into the run: the lookup starts where it lands.
        let landed = run_of_jeq(&ports, true);
        let sets = Flow::of(&landed).key_sets;
        assert_eq!(sets.len(), 1);
        assert_eq!((sets[0].start, sets[0].len), (5, ports.len() - 2));
        // Shorter runs stay compares.
        assert!(Flow::of(&run_of_jeq(&ports[..KEYSET_MIN - 1], false)).key_sets.is_empty());
        let (code, _) = compile_body(&plain);
        assert!(code.windows(2).any(|w| w == [0x69, 0xc8]), "no imul: {code:02x?}");
    }

    /// Native code against the interpreter on runs of `jeq`, looked up.
    #[cfg(feature = "hosted")]
    #[test]
    fn lookups_give_the_interpreters_verdicts() {
        use crate::filter::Program;
        use crate::hosted::native::native_program;
        let ports: Vec<u32> = vec![20, 21, 22, 23, 25, 53, 80, 110, 143, 443, 0x1400, 0x10014];
        let mut values: Vec<u32> = (0..1024).collect();
        values.extend(ports.iter().flat_map(|&p| [p, p.wrapping_add(1), p.wrapping_sub(1)]));
        values.extend(ports.iter().map(|&p| u32::from((p as u16).swap_bytes())));
        values.extend([0xffff, 0xfffe, 0x8000]);
        for landing in [false, true] {
            for n in [KEYSET_MIN, ports.len()] {
                let insns = run_of_jeq(&ports[..n], landing);
                let interp = Program::new(&insns).expect("valid");
                let native = native_program(&insns).expect("valid");
                for &v in &values {
                    for first in [0u8, 1] {
                        let mut pkt = [0u8; 14];
                        pkt[0] = first;
                        pkt[12..14].copy_from_slice(&(v as u16).to_be_bytes());
                        assert_eq!(
                            native.run(&pkt, 14),
                            interp.run(&pkt, 14),
                            "{v:#x} {n} {landing}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_test_between_two_constant_returns_is_a_cmov() {
        let ip = [
            LDH,
            BpfInsn::jump(JEQ, 0x0800, 0, 1),
            BpfInsn::stmt(BPF_RET | BPF_K, 1),
            BpfInsn::stmt(BPF_RET | BPF_K, 0),
        ];
        let (code, _) = compile_body(&ip);
        // cmp eax,8; mov eax,1; mov ecx,0; cmovne eax,ecx; ret
        let has = |b: &[u8]| code.windows(b.len()).any(|w| w == b);
        let want = [0x83, 0xf8, 0x08, 0xb8, 1, 0, 0, 0, 0xb9, 0, 0, 0, 0, 0x0f, 0x45, 0xc1, 0xc3];
        assert!(has(&want), "{code:02x?}");
    }

    #[test]
    fn registers_are_zeroed_only_when_read_unset() {
        let flow = Flow::of(&tested(LDH, BpfInsn::jump(JEQ, 0x0800, 0, 0), &[]));
        assert!(!flow.zero_a && !flow.zero_x);
        let flow = Flow::of(&[BpfInsn::stmt(BPF_RET | BPF_A, 0)]);
        assert!(flow.zero_a && !flow.zero_x);
        // X is set on one path only before `txa`.
        let flow = Flow::of(&[
            BpfInsn::jump(JEQ, 0, 0, 1),
            BpfInsn::stmt(BPF_LDX | BPF_IMM, 1),
            BpfInsn::stmt(BPF_MISC | BPF_TXA, 0),
            BpfInsn::stmt(BPF_RET | BPF_A, 0),
        ]);
        assert!(flow.zero_a && flow.zero_x);
    }

    /// Native code against the interpreter on packets holding, at the
    /// loads' offsets, the tests' constants and their neighbours.
    #[cfg(feature = "hosted")]
    #[test]
    fn unswapped_compares_give_the_interpreters_verdicts() {
        use crate::filter::Program;
        use crate::hosted::native::native_program;
        let ind = BpfInsn::stmt(BPF_LD | BPF_H | BPF_IND, 12);
        let ind_w = BpfInsn::stmt(BPF_LD | BPF_W | BPF_IND, 26);
        let jset = BPF_JMP | BPF_JSET | BPF_K;
        let ks = [0, 1, 0x08, 0x0800, 0x0008, 0x86dd, 0xffff, 0x1_0800, 0x0a00_0001, u32::MAX];
        let mut programs = Vec::new();
        for k in ks {
            for load in [LDH, LDW, ind, ind_w] {
                for code in [JEQ, jset] {
                    let second = BpfInsn::jump(code, k.rotate_left(8), 0, 0);
                    let first = BpfInsn::jump(code, k, 0, 0);
                    programs.push(tested(load, first, &[BpfInsn { jt: 0, jf: 1, ..second }]));
                }
            }
        }
        for load in [LDH, LDW, ind, ind_w] {
            for mask in [0x0fff, 0xff00, 0x00ff, 0xffff_0000, u32::MAX] {
                for k in [0x0800, 0x0008, 0x0064, 0x6400, 0x0a00_0000] {
                    let and = BpfInsn::stmt(BPF_ALU | BPF_AND | BPF_K, mask);
                    programs.push(tested(
                        load,
                        BpfInsn::jump(JEQ, k, 0, 0),
                        &[and, BpfInsn { jt: 0, jf: 1, ..BpfInsn::jump(JEQ, k & mask, 0, 0) }],
                    ));
                }
            }
        }
        programs.push(meeting(LDH, ind));
        programs.push(meeting(LDW, ind_w));
        programs.push(meeting(LDH, LDW));
        for insns in programs {
            let interp = Program::new(&insns).expect("valid");
            let native = native_program(&insns).expect("valid");
            assert!(native.is_native());
            for k in ks {
                for v in [k, k.swap_bytes(), k >> 16, (k as u16).swap_bytes().into(), k ^ 1] {
                    let mut pkt = [0u8; 40];
                    pkt[12..14].copy_from_slice(&(v as u16).to_be_bytes());
                    pkt[26..30].copy_from_slice(&v.to_be_bytes());
                    for len in [pkt.len(), 29, 13] {
                        let p = &pkt[..len];
                        assert_eq!(native.run(p, 40), interp.run(p, 40), "{insns:?} {v:#x} {len}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_program_longer_than_a_page_starts_within_the_first() {
        let mut insns = vec![BpfInsn::stmt(BPF_LD | BPF_W | BPF_ABS, 0); 1200];
        insns.push(BpfInsn::stmt(BPF_RET | BPF_A, 0));
        let (body, entries) = placements(&insns, 4);
        assert!(body.len() > PAGE_SIZE);
        assert!(entries.iter().all(|&e| e < PAGE_SIZE));
    }
}
