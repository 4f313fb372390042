//! Running the filters of a tap's readers from one dispatcher per group of
//! readers ([`jit::compile_dispatch`](crate::filter::jit::compile_dispatch)):
//! each program gets its own call site, so the processor predicts every
//! call, where one call site in the delivery loop jumping to dozens of
//! programs in turn is mispredicted on almost every call.
//!
//! A dispatcher is built from the read filters of the moment it is
//! published, and keeps their code alive. When a reader's filter changes
//! afterwards, its slot's answer no longer belongs to its program
//! ([`Program::run_given`](crate::filter::Program::run_given) compares the
//! code) and the program runs by itself until the tap is republished with a
//! new dispatcher.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem::MaybeUninit;

use crate::filter::{NativeCode, NativeEntry};
use crate::platform::Platform;

/// Readers per group, and so per dispatcher.
#[cfg(target_arch = "x86_64")]
pub(crate) const GROUP: usize = crate::filter::jit::DISPATCH_SLOTS;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const GROUP: usize = 32;

/// One group's dispatcher and what it calls in each slot.
pub(crate) struct Group {
    /// The dispatcher, kept mapped by its owner.
    code: (NativeEntry, Arc<dyn NativeCode>),
    /// Per reader of the group: the address of the program code its slot
    /// calls, or 0.
    slots: Vec<usize>,
    /// Keeps the code the slots call mapped while the dispatcher may run.
    _held: Vec<Arc<dyn NativeCode>>,
}

impl Group {
    /// A dispatcher for one group of readers, given the native code of each
    /// one's read filter that a dispatcher may call. `None` when fewer than
    /// two readers have such code (nothing to gain) or the platform cannot
    /// run native code.
    pub(crate) fn build<P: Platform>(
        platform: &P,
        codes: Vec<Option<Arc<dyn NativeCode>>>,
    ) -> Option<Group> {
        if codes.len() > GROUP || codes.iter().flatten().count() < 2 {
            return None;
        }
        let slots: Vec<usize> =
            codes.iter().map(|c| c.as_ref().map_or(0, |c| c.entry() as usize)).collect();
        let code = compile(platform, &slots)?;
        let held = codes.into_iter().flatten().collect();
        Some(Group { code: (code.entry(), code), slots, _held: held })
    }

    /// How many programs the dispatcher calls.
    pub(crate) fn calls(&self) -> usize {
        self.slots.iter().filter(|&&e| e != 0).count()
    }

    /// Runs the group's programs on a packet whose first segment is `head`,
    /// their answers kept in `out`. Yields, per reader of the group in
    /// order, the address of the code its slot ran (0 for none) and the
    /// answer (with the fallback bit for none).
    #[inline]
    pub(crate) fn run<'a>(
        &'a self,
        head: &[u8],
        wirelen: u32,
        out: &'a mut Answers,
    ) -> impl Iterator<Item = (usize, u64)> + 'a {
        let (entry, _owner) = &self.code;
        // The dispatcher calls each slot's program, which reads only
        // head[..head.len()] and gets no scratch memory, and writes out[i]
        // for every slot, all within `out` (slots.len() <= GROUP).
        // SAFETY: `entry` is compile_dispatch's code for `slots`, kept mapped
        // by `_owner`; every program it calls is kept mapped by `_held`.
        unsafe { entry(head.as_ptr(), head.len() as u64, wirelen, out.as_mut_ptr().cast()) };
        self.slots.iter().zip(out.iter()).map(|(&entry, answer)| {
            // SAFETY: the dispatcher wrote the answer of every slot.
            (entry, unsafe { answer.assume_init() })
        })
    }
}

/// Room for a group's answers to one packet.
pub(crate) type Answers = [MaybeUninit<u64>; GROUP];

/// An empty [`Answers`], for the dispatcher to fill.
#[inline]
pub(crate) fn answers() -> Answers {
    [MaybeUninit::uninit(); GROUP]
}

#[cfg(target_arch = "x86_64")]
fn compile<P: Platform>(platform: &P, slots: &[usize]) -> Option<Arc<dyn NativeCode>> {
    let targets: Vec<Option<u64>> = slots.iter().map(|&e| (e != 0).then_some(e as u64)).collect();
    platform.native_code(&crate::filter::jit::compile_dispatch(&targets)?)
}

#[cfg(not(target_arch = "x86_64"))]
fn compile<P: Platform>(_: &P, _: &[usize]) -> Option<Arc<dyn NativeCode>> {
    None
}
