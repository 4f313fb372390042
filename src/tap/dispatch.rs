//! Running the filters of a tap's readers from one dispatcher per group of
//! readers ([`jit::compile_dispatch`](crate::filter::jit::compile_dispatch)):
//! each program gets its own call site, so the processor predicts every
//! call, where one call site in the delivery loop jumping to dozens of
//! programs in turn is mispredicted on almost every call.
//!
//! A dispatcher is built from the read filters of the moment it is
//! published, and keeps their code alive. Each slot records its reader's
//! filter generation (`Descriptor::filter_gen`): when the filter changes,
//! the generation moves first, the slot's answer no longer counts, and the
//! new program runs by itself until the tap is republished with a new
//! dispatcher.

use alloc::vec::Vec;
use core::mem::MaybeUninit;

use crate::filter::{Dispatchable, Dispatcher};
use crate::platform::Platform;

/// Readers per group, and so per dispatcher.
pub(crate) const GROUP: usize = crate::filter::jit::DISPATCH_SLOTS;

/// One group's dispatcher and the filter generation of each slot.
pub(crate) struct Group {
    /// The dispatcher, which keeps the code it calls mapped.
    code: Dispatcher,
    /// Per reader of the group: the filter generation its slot's program
    /// belongs to, or `None` for a slot without a program.
    slots: Vec<Option<u64>>,
}

impl Group {
    /// A dispatcher for one group of readers, given the native code of each
    /// one's read filter that a dispatcher may call, and that filter's
    /// generation. `None` when fewer than two readers have such code
    /// (nothing to gain) or the platform cannot run native code.
    pub(crate) fn build<P: Platform>(
        platform: &P,
        codes: Vec<Option<(Dispatchable, u64)>>,
    ) -> Option<Group> {
        if codes.len() > GROUP || codes.iter().flatten().count() < 2 {
            return None;
        }
        let slots = codes.iter().map(|c| c.as_ref().map(|&(_, gen)| gen)).collect();
        let programs = codes.into_iter().map(|c| c.map(|(code, _)| code)).collect();
        let code = Dispatcher::new(programs, |compiled| platform.native_code(compiled))?;
        Some(Group { code, slots })
    }

    /// How many programs the dispatcher calls.
    pub(crate) fn calls(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Runs the group's programs on a packet whose first segment is `head`,
    /// their answers kept in `out`. Yields, per reader of the group in
    /// order, its slot's [`Answer`].
    #[inline]
    pub(crate) fn run<'a>(
        &'a self,
        head: &[u8],
        wirelen: u32,
        out: &'a mut Answers,
    ) -> impl Iterator<Item = Answer> + 'a {
        let answers = self.code.run(head, wirelen, out);
        self.slots
            .iter()
            .zip(answers)
            .map(|(&gen, &result)| Answer { filter_gen: gen.unwrap_or(u64::MAX), result })
    }
}

/// What a dispatcher answered for one reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The filter generation of the program its slot ran (`u64::MAX` for
    /// a slot without one): the answer counts only while the reader's
    /// filter is still that one.
    pub filter_gen: u64,
    /// The program's result (the snapshot length, 0 = reject), or the
    /// [`FALLBACK`](crate::filter::jit::FALLBACK) bit when the native code
    /// could not decide and the reader's own filter must run.
    pub result: u64,
}

/// Room for a group's answers to one packet.
pub(crate) type Answers = [MaybeUninit<u64>; GROUP];

/// An empty [`Answers`], for the dispatcher to fill.
#[inline]
pub(crate) fn answers() -> Answers {
    [MaybeUninit::uninit(); GROUP]
}

#[cfg(all(test, feature = "hosted"))]
mod tests {
    use std::prelude::rust_2021::*;

    use core::sync::atomic::Ordering;

    use crate::abi::ioctl::{BIOCSETF, BIOCSETIF};
    use crate::abi::{dlt, BpfInsn, BpfProgram, IfReq, UserAddr};
    use crate::hosted::net::{Segmentation, SimIface};
    use crate::hosted::platform::HostedPlatform;
    use crate::hosted::sim::Sim;
    use crate::hosted::{libpcap, traffic};
    use crate::platform::{Counter, Platform};

    fn reader(sim: &Sim, filter: &[BpfInsn]) -> i32 {
        let fd = sim.open(2).expect("open");
        let mut insns = filter.to_vec();
        let mut prog = BpfProgram {
            bf_len: insns.len() as u32,
            bf_insns: UserAddr(insns.as_mut_ptr() as u64),
        };
        sim.ioctl(fd, BIOCSETF, (&mut prog as *mut BpfProgram).cast()).expect("BIOCSETF");
        let mut ifr = IfReq::default();
        ifr.ifr_name[..3].copy_from_slice(b"em0");
        sim.ioctl(fd, BIOCSETIF, (&mut ifr as *mut IfReq).cast()).expect("BIOCSETIF");
        fd
    }

    /// Between a new read filter and the tap's new dispatcher (BIOCSETF
    /// republishes the tap right after), the old dispatcher still runs; its
    /// answer for the changed reader must not count.
    #[test]
    fn a_changed_filter_is_not_answered_by_the_old_dispatcher() {
        let sim = Sim::new();
        let iface = sim.add_iface(SimIface::ethernet("em0", [2, 0, 0x5e, 0x10, 0, 1]));
        // Whole frames: the native code decides, no fallback.
        iface.set_segmentation(Segmentation::Contiguous);
        let compile = |e: &str| libpcap::compile(e, dlt::DLT_EN10MB, 65535).expect("compiles");
        let (udp, tcp) = (compile("udp"), compile("tcp"));
        let _a = reader(&sim, &udp);
        let b = reader(&sim, &tcp);
        let dispatched = || {
            let epoch = &sim.bpf().platform.services.epoch;
            let section = epoch.enter();
            let key = <HostedPlatform as Platform>::iface_key(&iface);
            let n = sim
                .bpf()
                .tap_with_readers(&section, key, dlt::DLT_EN10MB)
                .map(|t| t.dispatched(&section));
            epoch.exit(section);
            n
        };
        assert_eq!(dispatched(), Some(2), "two native filters, one dispatcher");
        // What BIOCSETF does to B, without the republication that follows.
        let d = sim.descriptor(b).expect("open");
        d.filter_gen.fetch_add(1, Ordering::Release);
        let program = sim.bpf().program(&udp).expect("valid");
        d.rfilter.replace(Some(Box::new(program)));
        // A UDP frame: the old dispatcher ran "tcp" for B and rejected it.
        sim.receive(&iface, &traffic::fixed(1, 64)[0]);
        assert_eq!(d.counters().matched.fetch(), 1, "B's new filter decides");
    }
}
