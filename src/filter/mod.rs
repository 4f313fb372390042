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
#[cfg(target_arch = "x86_64")]
pub mod jit;
mod validate;

use alloc::sync::Arc;
use alloc::vec::Vec;

pub use decode::Op;
pub use validate::{opcode_accepted, validate, Reason, ValidateError};

use crate::abi::BpfInsn;
use crate::packet::{Chain, PacketBytes, Segments};

/// The entry point of a compiled program: `jit`'s calling convention.
pub type NativeEntry = unsafe extern "sysv64" fn(*const u8, u64, u32, *mut u32) -> u64;

/// A program compiled to native code ([`jit`]) and made executable by the
/// platform, which keeps the code mapped for as long as the value lives.
///
/// # Safety
/// `entry` must return the address of the function [`jit::compile`]
/// produced for the instructions the program was built from, or that
/// [`jit::compile_dispatch`] produced (its `code[entry..]`), executable and
/// unchanged for the lifetime of `self`.
pub unsafe trait NativeCode: Send + Sync {
    /// The compiled function.
    fn entry(&self) -> NativeEntry;
}

/// A program's native code that a [`Dispatcher`] may call: it never
/// touches scratch memory ([`Program::dispatchable`]).
#[derive(Clone)]
pub struct Dispatchable(Arc<dyn NativeCode>);

/// A dispatcher from [`jit::compile_dispatch`] made executable, with the
/// code of every program it calls kept mapped for as long as it lives.
#[cfg(target_arch = "x86_64")]
pub struct Dispatcher {
    entry: NativeEntry,
    _code: Arc<dyn NativeCode>,
    _held: Vec<Dispatchable>,
    slots: usize,
}

#[cfg(target_arch = "x86_64")]
impl Dispatcher {
    /// A dispatcher calling `programs[i]` in slot `i` (a slot without one
    /// answers with [`jit::FALLBACK`] set), made executable by `map` (the
    /// platform's `native_code`). `None` for more than
    /// [`jit::DISPATCH_SLOTS`] programs, or when `map` cannot.
    pub fn new(
        programs: Vec<Option<Dispatchable>>,
        map: impl FnOnce(&jit::Compiled) -> Option<Arc<dyn NativeCode>>,
    ) -> Option<Dispatcher> {
        let targets: Vec<Option<u64>> =
            programs.iter().map(|p| p.as_ref().map(|p| p.0.entry() as usize as u64)).collect();
        let code = map(&jit::compile_dispatch(&targets)?)?;
        let slots = programs.len();
        let held = programs.into_iter().flatten().collect();
        Some(Dispatcher { entry: code.entry(), _code: code, _held: held, slots })
    }

    /// Runs every slot's program on a packet whose first segment is `head`;
    /// returns their answers, one per slot, kept in `out`.
    #[inline]
    pub fn run<'a>(
        &self,
        head: &[u8],
        wirelen: u32,
        out: &'a mut [core::mem::MaybeUninit<u64>; jit::DISPATCH_SLOTS],
    ) -> &'a [u64] {
        // The dispatcher calls each slot's program, which reads only
        // head[..head.len()] and gets no scratch memory (Dispatchable), and
        // writes out[i] for every slot, all within `out` (slots <=
        // DISPATCH_SLOTS, checked by compile_dispatch).
        // `_code` keeps the dispatcher mapped (NativeCode's contract) and
        // `_held` every program it calls.
        // SAFETY: `entry` is compile_dispatch's live code for these slots.
        unsafe { (self.entry)(head.as_ptr(), head.len() as u64, wirelen, out.as_mut_ptr().cast()) };
        // SAFETY: the dispatcher initialised out[..slots], and
        // `MaybeUninit<u64>` has the layout of `u64`.
        unsafe { core::slice::from_raw_parts(out.as_ptr().cast::<u64>(), self.slots) }
    }
}

/// What a native run's raw result `r` means: the filter's answer, or `None`
/// when the interpreter must finish the run. The code falls back only at a
/// load past the head; when the head is the whole packet (`head_is_whole`)
/// that load is out of bounds, and bpf rejects the packet.
#[inline(always)]
pub fn native_answer(r: u64, head_is_whole: bool) -> Option<u32> {
    if r & jit::FALLBACK == 0 {
        Some(r as u32)
    } else {
        head_is_whole.then_some(0)
    }
}

/// A validated, pre-decoded program.
#[derive(Clone)]
pub struct Program {
    ops: Vec<Op>,
    arms: Vec<decode::Arm>,
    len: usize,
    /// How far constant-offset loads reach, when that is within the head
    /// the interpreter can serve without bounds checks.
    head_reach: Option<usize>,
    /// Whether the program touches scratch memory.
    uses_mem: bool,
    /// The answer, when the program is a single `ret #k`.
    constant: Option<u32>,
    /// The same program as native code, when the platform runs it: the
    /// entry point, and the owner that keeps it mapped.
    native: Option<(NativeEntry, Arc<dyn NativeCode>)>,
}

impl core::fmt::Debug for Program {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Program")
            .field("ops", &self.ops)
            .field("arms", &self.arms)
            .field("native", &self.native.is_some())
            .finish()
    }
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
        let uses_mem = ops.iter().any(|op| {
            matches!(op, Op::LdMem { .. } | Op::LdxMem { .. } | Op::St { .. } | Op::Stx { .. })
        });
        let constant = match ops.as_slice() {
            [Op::RetK { k }] => Some(*k),
            _ => None,
        };
        Program { ops, arms, len, head_reach, uses_mem, constant, native: None }
    }

    /// A program that accepts every packet whole (what no filter means).
    pub fn accept_all() -> Program {
        Self::from_decoded(decode::decode(&[]), 0)
    }

    /// Runs the program as `code` from now on: native code the platform
    /// made executable from [`jit::compile`] of the same instructions.
    pub fn attach_native(&mut self, code: Arc<dyn NativeCode>) {
        self.native = Some((code.entry(), code));
    }

    /// Whether every packet gets the same answer without running anything
    /// (a single `ret #k`): native code would never be called.
    pub fn is_constant(&self) -> bool {
        self.constant.is_some()
    }

    /// Whether the program runs as native code.
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }

    /// The native code a dispatcher may call for this program
    /// ([`jit::compile_dispatch`]): it has some, and it never touches
    /// scratch memory.
    pub fn dispatchable(&self) -> Option<Dispatchable> {
        self.native.as_ref().filter(|_| !self.uses_mem).map(|(_, code)| Dispatchable(code.clone()))
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
        self.constant.filter(|_| self.len == 1)
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
    ///
    /// The common cases (a constant answer, native code) are kept small
    /// enough to inline into the delivery loop; the interpreter is a call.
    #[inline]
    pub fn run_on<P: PacketBytes + ?Sized>(&self, pkt: &P, wirelen: u32) -> u32 {
        if let Some(k) = self.constant {
            return k;
        }
        match self.run_native(pkt, wirelen) {
            Some(r) => r,
            None => self.interpret(pkt, wirelen),
        }
    }

    /// Whether [`run_on`](Self::run_on) would give this packet to the
    /// interpreter (the benchmarks count these fallbacks).
    pub fn interprets<P: PacketBytes + ?Sized>(&self, pkt: &P, wirelen: u32) -> bool {
        self.constant.is_none() && self.run_native(pkt, wirelen).is_none()
    }

    /// The native code's answer, or `None` when there is no native code or
    /// it left the packet to the interpreter.
    ///
    /// The code falls back exactly at the first load that passes the head's
    /// end, with everything before it done as the interpreter does it. When
    /// the head is the whole packet, that load is out of the packet, and the
    /// interpreter would reject there: the answer is 0 without it.
    #[inline]
    fn run_native<P: PacketBytes + ?Sized>(&self, pkt: &P, wirelen: u32) -> Option<u32> {
        let (entry, _owner) = self.native.as_ref()?;
        let head = pkt.head();
        let call = |mem: *mut u32| {
            // For a validated program the code reads only head[..len]
            // and mem[..16] (16 live zeroed words when the program uses
            // them), writes only mem, and returns.
            // SAFETY: `entry` is this program's JIT code, kept mapped by
            // `_owner` (NativeCode's contract); see above for its reach.
            unsafe { entry(head.as_ptr(), head.len() as u64, wirelen, mem) }
        };
        let r = if self.uses_mem {
            call([0u32; crate::abi::BPF_MEMWORDS].as_mut_ptr())
        } else {
            call(core::ptr::null_mut())
        };
        // The code falls back with exactly FALLBACK, whose low half is 0:
        // for a whole head that is the answer (the load is past the
        // packet's end), so the low half is the answer either way.
        if head.len() == pkt.len() {
            return Some(r as u32);
        }
        native_answer(r, false)
    }

    /// The interpreter, for programs without native code and for segmented
    /// packets whose head is too short for them.
    #[inline(never)]
    fn interpret<P: PacketBytes + ?Sized>(&self, pkt: &P, wirelen: u32) -> u32 {
        let head = pkt.head();
        match (self.head_reach, head.first_chunk::<{ exec::WINDOW }>()) {
            (Some(_), Some(h)) => exec::run(&self.ops, &self.arms, pkt, &exec::Head(h), wirelen),
            _ => exec::run(&self.ops, &self.arms, pkt, &exec::Checked(pkt), wirelen),
        }
    }
}
