//! The interface registry (FreeBSD's `bpf_if` list) and the delivery of one
//! packet to every descriptor listening on an interface.
//!
//! A [`Tap`] is one (interface, data-link type) pair with listeners. The
//! [`Registry`], under the device's global lock, is the truth about who
//! listens where; each tap publishes a copy of its readers in an
//! [`EpochCell`], and the device publishes the list of taps that have
//! readers. The delivery path reads only those published copies, inside an
//! epoch section and without any lock: adding or removing a listener never
//! blocks delivery to the others. Filters run before any descriptor lock;
//! only accepted packets lock one descriptor at a time; wakeups happen after
//! that lock is dropped.

mod dispatch;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::abi::{Errno, Result};
use crate::engine::record::{hdrlen, PacketTime};
use crate::engine::{Bpf, Descriptor};
use crate::packet::PacketBytes;
use crate::platform::epoch::EpochCell;
use crate::platform::{DescLock, GlobalLock, NetIf, Platform, TapPacket};

type Listeners<P> = Vec<Arc<Descriptor<P>>>;

/// A tap's readers as published for the delivery path: the list, and a
/// dispatcher for each group of [`dispatch::GROUP`] readers that has one.
struct Readers<P: Platform> {
    list: Listeners<P>,
    groups: Vec<Option<dispatch::Group>>,
}

/// One (interface, data-link type) with listeners.
pub struct Tap<P: Platform> {
    iface: P::Iface,
    dlt: u32,
    link_hdrlen: u32,
    record_hdrlen: usize,
    readers: EpochCell<Readers<P>>,
    dying: AtomicBool,
}

impl<P: Platform> Tap<P> {
    fn new(iface: P::Iface, dlt: u32, link_hdrlen: u32) -> Self {
        Tap {
            iface,
            dlt,
            link_hdrlen,
            record_hdrlen: hdrlen(link_hdrlen),
            readers: EpochCell::new(None),
            dying: AtomicBool::new(false),
        }
    }

    /// The interface.
    pub fn iface(&self) -> &P::Iface {
        &self.iface
    }

    /// The interface's name.
    pub fn iface_name(&self) -> &str {
        self.iface.name()
    }

    /// The data-link type.
    pub fn dlt(&self) -> u32 {
        self.dlt
    }

    /// The link-header length.
    pub fn link_hdrlen(&self) -> u32 {
        self.link_hdrlen
    }

    /// The record header length for this link type.
    pub fn record_hdrlen(&self) -> usize {
        self.record_hdrlen
    }

    /// How many readers' filters a dispatcher runs now (see
    /// [`dispatch`]), for tests and statistics.
    pub fn dispatched(&self, section: &P::EpochGuard) -> usize {
        self.readers.get(section).map_or(0, |r| r.groups.iter().flatten().map(|g| g.calls()).sum())
    }

    /// Offers one packet to every reader of this tap.
    pub fn deliver<B: PacketBytes + ?Sized>(
        &self,
        bpf: &Bpf<P>,
        section: &P::EpochGuard,
        pkt: &TapPacket<'_, B>,
    ) {
        let Some(readers) = self.readers.get(section) else { return };
        let mut time = PacketTime::new(pkt.hw_time);
        if readers.groups.is_empty() {
            for d in readers.list.iter() {
                d.deliver(bpf, self, section, pkt, &mut time, None);
            }
            return;
        }
        let wirelen = u32::try_from(pkt.bytes.len()).unwrap_or(u32::MAX);
        let mut out = dispatch::answers();
        for (group, list) in readers.groups.iter().zip(readers.list.chunks(dispatch::GROUP)) {
            match group {
                Some(group) => {
                    let answers = group.run(pkt.bytes.head(), wirelen, &mut out);
                    for (d, given) in list.iter().zip(answers) {
                        d.deliver(bpf, self, section, pkt, &mut time, Some(given));
                    }
                }
                None => {
                    for d in list.iter() {
                        d.deliver(bpf, self, section, pkt, &mut time, None);
                    }
                }
            }
        }
    }
}

/// Who listens on a tap. Changed only under the global lock.
pub(crate) struct Entry<P: Platform> {
    pub(crate) tap: Arc<Tap<P>>,
    pub(crate) readers: Listeners<P>,
    pub(crate) writers: Listeners<P>,
}

/// Every tap with at least one descriptor attached.
pub struct Registry<P: Platform> {
    entries: Vec<Entry<P>>,
}

/// The taps that have readers, as published for the delivery path.
pub(crate) type ActiveTaps<P> = EpochCell<Vec<Arc<Tap<P>>>>;

impl<P: Platform> Registry<P> {
    pub(crate) fn new() -> Self {
        Registry { entries: Vec::new() }
    }

    pub(crate) fn entries(&self) -> &[Entry<P>] {
        &self.entries
    }

    fn position(&self, tap: &Arc<Tap<P>>) -> Option<usize> {
        self.entries.iter().position(|e| Arc::ptr_eq(&e.tap, tap))
    }

    /// Republishes a tap's readers, and the list of active taps.
    fn publish(&self, platform: &P, active: &ActiveTaps<P>, index: usize) {
        let Some(entry) = self.entries.get(index) else { return };
        let readers = (!entry.readers.is_empty()).then(|| {
            let list = entry.readers.clone();
            let mut groups: Vec<Option<dispatch::Group>> = list
                .chunks(dispatch::GROUP)
                .map(|group| {
                    let codes = group.iter().map(|d| d.state.lock().dispatchable.clone()).collect();
                    dispatch::Group::build(platform, codes)
                })
                .collect();
            if groups.iter().all(Option::is_none) {
                groups.clear();
            }
            Box::new(Readers { list, groups })
        });
        entry.tap.readers.replace(platform, readers);
        let taps: Vec<Arc<Tap<P>>> =
            self.entries.iter().filter(|e| !e.readers.is_empty()).map(|e| e.tap.clone()).collect();
        active.replace(platform, (!taps.is_empty()).then(|| Box::new(taps)));
    }
}

/// Removes `d` from `list`; whether it was there.
fn remove<P: Platform>(list: &mut Listeners<P>, d: &Arc<Descriptor<P>>) -> bool {
    let before = list.len();
    list.retain(|x| !Arc::ptr_eq(x, d));
    list.len() != before
}

impl<P: Platform> Bpf<P> {
    /// Offers a packet seen on the interface whose key is `iface` to the
    /// descriptors listening there with data-link type `dlt`. Runs inside
    /// the caller's epoch section.
    pub fn tap<B: PacketBytes + ?Sized>(
        &self,
        section: &P::EpochGuard,
        iface: usize,
        dlt: u32,
        pkt: &TapPacket<'_, B>,
    ) {
        if let Some(tap) = self.listening(section, iface, dlt) {
            tap.deliver(self, section, pkt);
        }
    }

    /// The tap on (`iface`, `dlt`) if a descriptor reads there now (there is
    /// at most one per pair): callers that must prepare a packet look it up
    /// first, then [`Tap::deliver`] to it.
    pub fn listening<'a>(
        &'a self,
        section: &'a P::EpochGuard,
        iface: usize,
        dlt: u32,
    ) -> Option<&'a Tap<P>> {
        self.active_taps(section)
            .iter()
            .find(|t| t.dlt == dlt && P::iface_key(&t.iface) == iface)
            .map(|t| &**t)
    }

    fn active_taps<'a>(&'a self, section: &'a P::EpochGuard) -> &'a [Arc<Tap<P>>] {
        self.active.get(section).map_or(&[], |v| v.as_slice())
    }

    /// Attaches `d` to (`iface`, `dlt`): bpf_attachd. Detaches it from any
    /// other tap first. Caller holds the global lock (`reg`).
    pub(crate) fn attach(
        &self,
        reg: &mut Registry<P>,
        d: &Arc<Descriptor<P>>,
        iface: P::Iface,
        dlt: u32,
        link_hdrlen: u32,
    ) {
        self.detach_locked(reg, d);
        let index =
            match reg.entries.iter().position(|e| {
                e.tap.dlt == dlt && P::iface_key(&e.tap.iface) == P::iface_key(&iface)
            }) {
                Some(i) => i,
                None => {
                    reg.entries.push(Entry {
                        tap: Arc::new(Tap::new(iface, dlt, link_hdrlen)),
                        readers: Vec::new(),
                        writers: Vec::new(),
                    });
                    reg.entries.len() - 1
                }
            };
        let Some(entry) = reg.entries.get_mut(index) else { return };
        let writer_only = {
            let mut st = d.state.lock();
            st.tap = Some(entry.tap.clone());
            let writer_only =
                st.writer != 0 || self.config.optimize_writers.load(Ordering::Relaxed);
            if writer_only {
                st.writer = 2;
            }
            writer_only
        };
        if writer_only {
            entry.writers.push(d.clone());
        } else {
            let first = entry.readers.is_empty();
            entry.readers.push(d.clone());
            let tap = entry.tap.clone();
            reg.publish(&self.platform, &self.active, index);
            if first {
                tap.iface.set_tapped(true);
            }
        }
        // bpf_attachd ends with bpf_wakeup ("trigger EVFILT_WRITE events"):
        // writers waiting for the attachment, pollers, SIGIO.
        d.wakeup_all();
    }

    /// Moves a writer-only descriptor to its tap's readers (bpf_upgraded).
    pub(crate) fn upgrade(&self, reg: &mut Registry<P>, d: &Arc<Descriptor<P>>) {
        let tap = {
            let mut st = d.state.lock();
            st.writer = 0;
            st.tap.clone()
        };
        let Some(tap) = tap else { return };
        let Some(index) = reg.position(&tap) else { return };
        let Some(entry) = reg.entries.get_mut(index) else { return };
        if remove(&mut entry.writers, d) {
            let first = entry.readers.is_empty();
            entry.readers.push(d.clone());
            reg.publish(&self.platform, &self.active, index);
            if first {
                tap.iface.set_tapped(true);
            }
        }
    }

    /// Publishes `d`'s tap again if `d` reads there: its read filter changed.
    pub(crate) fn republish(&self, reg: &mut Registry<P>, d: &Arc<Descriptor<P>>) {
        let Some(tap) = d.state.lock().tap.clone() else { return };
        let Some(index) = reg.position(&tap) else { return };
        if reg.entries.get(index).is_some_and(|e| e.readers.iter().any(|r| Arc::ptr_eq(r, d))) {
            reg.publish(&self.platform, &self.active, index);
        }
    }

    /// Detaches `d` from its tap, if any (bpf_detachd).
    pub(crate) fn detach(&self, d: &Arc<Descriptor<P>>) {
        let mut reg = self.registry.lock();
        self.detach_locked(&mut reg, d);
    }

    pub(crate) fn detach_locked(&self, reg: &mut Registry<P>, d: &Arc<Descriptor<P>>) {
        let Some(tap) = d.state.lock().tap.clone() else { return };
        if let Some(index) = reg.position(&tap) {
            if let Some(entry) = reg.entries.get_mut(index) {
                let was_reader = remove(&mut entry.readers, d);
                remove(&mut entry.writers, d);
                let now_idle = entry.readers.is_empty();
                let empty = now_idle && entry.writers.is_empty();
                if was_reader {
                    reg.publish(&self.platform, &self.active, index);
                    if now_idle {
                        tap.iface.set_tapped(false);
                    }
                }
                if empty {
                    reg.entries.remove(index);
                }
            }
        }
        let promisc = {
            let mut st = d.state.lock();
            st.tap = None;
            core::mem::replace(&mut st.promisc, false)
        };
        if promisc {
            // Errors are ignored, as FreeBSD does: the interface may be gone.
            let _ = tap.iface.set_promisc(false);
        }
    }

    /// The interface whose key is `iface` is leaving: every descriptor on
    /// it is detached and woken, so readers get ENXIO.
    pub fn iface_departed(&self, iface: usize) {
        let mut reg = self.registry.lock();
        let mut gone: Listeners<P> = Vec::new();
        for e in reg.entries.iter() {
            if P::iface_key(&e.tap.iface) == iface {
                e.tap.dying.store(true, Ordering::Relaxed);
                gone.extend(e.readers.iter().cloned());
                gone.extend(e.writers.iter().cloned());
            }
        }
        for d in gone.iter() {
            self.detach_locked(&mut reg, d);
            d.wakeup_all();
        }
    }

    /// BIOCSETIF: attach to the interface named `name`.
    pub(crate) fn set_iface(&self, d: &Arc<Descriptor<P>>, name: &str) -> Result<()> {
        let mut reg = self.registry.lock();
        let iface = self.platform.find_iface(name).ok_or(Errno::ENXIO)?;
        let &(dlt, link_hdrlen) = iface.dlts().first().ok_or(Errno::ENXIO)?;
        if reg.entries.iter().any(|e| {
            P::iface_key(&e.tap.iface) == P::iface_key(&iface)
                && e.tap.dying.load(Ordering::Relaxed)
        }) {
            return Err(Errno::ENXIO);
        }
        if !d.state.lock().bufs.exists() {
            return Err(Errno::EINVAL);
        }
        let current = d.state.lock().tap.clone();
        let same = current
            .as_ref()
            .is_some_and(|t| t.dlt == dlt && P::iface_key(&t.iface) == P::iface_key(&iface));
        if !same {
            self.attach(&mut reg, d, iface, dlt, link_hdrlen);
        }
        drop(reg);
        let st = d.state.lock();
        drop(d.reset_locked(st));
        Ok(())
    }

    /// BIOCSDLT: move to another data-link type of the same interface.
    pub(crate) fn set_dlt(&self, d: &Arc<Descriptor<P>>, dlt: u32) -> Result<()> {
        let mut reg = self.registry.lock();
        let tap = d.state.lock().tap.clone().ok_or(Errno::EINVAL)?;
        if tap.dlt == dlt {
            return Ok(());
        }
        let &(_, link_hdrlen) =
            tap.iface.dlts().iter().find(|(t, _)| *t == dlt).ok_or(Errno::EINVAL)?;
        let promisc = d.state.lock().promisc;
        self.attach(&mut reg, d, tap.iface.clone(), dlt, link_hdrlen);
        drop(reg);
        drop(d.reset_locked(d.state.lock()));
        if promisc && tap.iface.set_promisc(true).is_ok() {
            d.state.lock().promisc = true;
        }
        Ok(())
    }
}
