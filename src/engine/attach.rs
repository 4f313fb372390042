//! The interface registry (FreeBSD's `bpf_if` list under the global lock):
//! which descriptors are attached where, attach and detach, and the offer
//! of a packet to the descriptors reading on an interface.
//!
//! The [`Registry`], under the device's global lock, is the truth about who
//! is attached where; each [`Tap`] publishes a copy of its readers for the
//! delivery path, and the device publishes the list of taps that have
//! readers.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::descriptor::Role;
use super::record::{hdrlen, BootTime, PacketTime};
use super::{Bpf, Descriptor, Tap, BATCH};
use crate::abi::{Errno, Result};
use crate::packet::PacketBytes;
use crate::platform::epoch::EpochCell;
use crate::platform::{DescLock, GlobalLock, NetIf, Platform, TapCookie, TapPacket};

/// Descriptors attached to one tap (its readers, or its writers).
type Attached<P> = Vec<Arc<Descriptor<P>>>;

/// The descriptors attached to a tap. Changed only under the global lock.
pub(crate) struct Entry<P: Platform> {
    pub(crate) tap: Arc<Tap<P>>,
    pub(crate) readers: Attached<P>,
    pub(crate) writers: Attached<P>,
}

/// Every tap with at least one descriptor attached.
pub struct Registry<P: Platform> {
    entries: Vec<Entry<P>>,
}

/// The taps that have readers, as published for the delivery path.
pub(crate) type ActiveTaps<P> = EpochCell<P, Vec<Arc<Tap<P>>>>;

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
        entry.tap.publish(platform, &entry.readers, |d| {
            let code = d.state.lock().dispatchable.clone();
            code.map(|c| (c, d.filter_gen.load(Ordering::Acquire)))
        });
        let taps: Vec<Arc<Tap<P>>> =
            self.entries.iter().filter(|e| !e.readers.is_empty()).map(|e| e.tap.clone()).collect();
        active.replace((!taps.is_empty()).then(|| Box::new(taps)));
    }
}

/// Removes `d` from `list`; whether it was there.
fn remove<P: Platform>(list: &mut Attached<P>, d: &Arc<Descriptor<P>>) -> bool {
    let before = list.len();
    list.retain(|x| !Arc::ptr_eq(x, d));
    list.len() != before
}

impl<P: Platform> Bpf<P> {
    /// Offers a packet seen on the interface whose key is `iface` to the
    /// descriptors reading there with data-link type `dlt`. Runs inside
    /// the caller's epoch section.
    pub fn tap<B: PacketBytes + ?Sized>(
        &self,
        section: &P::EpochGuard,
        iface: usize,
        dlt: u32,
        pkt: &TapPacket<'_, B>,
    ) {
        if let Some(tap) = self.tap_with_readers(section, iface, dlt) {
            self.deliver(tap, section, pkt);
        }
    }

    /// Offers one packet to every reader of `tap`; the packet's timestamp
    /// is taken once, when the first reader accepts it.
    #[inline]
    pub fn deliver<B: PacketBytes + ?Sized>(
        &self,
        tap: &Tap<P>,
        section: &P::EpochGuard,
        pkt: &TapPacket<'_, B>,
    ) {
        let boot = BootTime::default();
        let mut time = PacketTime::new(pkt.hw_time, &boot);
        tap.deliver(section, pkt, |d, answer| {
            d.deliver(self, tap, section, pkt, &mut time, answer);
        });
    }

    /// Offers a driver's batch of packets to every reader of `tap`, reader
    /// by reader, [`BATCH`] packets at a time: each reader filters them and
    /// stores the accepted ones under one hold of its lock. Each packet's
    /// timestamp is still taken once, when the first reader accepts it; the
    /// boot time once for the batch.
    pub fn deliver_batch<B: PacketBytes + ?Sized>(
        &self,
        tap: &Tap<P>,
        section: &P::EpochGuard,
        pkts: &[TapPacket<'_, B>],
    ) {
        if let [pkt] = pkts {
            // One packet: the tap's dispatchers serve many readers better.
            return self.deliver(tap, section, pkt);
        }
        let boot = BootTime::default();
        for part in pkts.chunks(BATCH) {
            let mut times: [PacketTime; BATCH] = core::array::from_fn(|i| {
                PacketTime::new(part.get(i).and_then(|p| p.hw_time), &boot)
            });
            tap.for_each_reader(section, |d| d.deliver_batch(self, tap, section, part, &mut times));
        }
    }

    /// The tap on (`iface`, `dlt`) if a descriptor reads there now (there is
    /// at most one per pair): callers that must prepare a packet look it up
    /// first, then [`deliver`](Self::deliver) to it.
    pub fn tap_with_readers<'a>(
        &'a self,
        section: &'a P::EpochGuard,
        iface: usize,
        dlt: u32,
    ) -> Option<&'a Tap<P>> {
        self.active_taps(section).iter().find(|t| t.is_on(iface, dlt)).map(|t| &**t)
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
    ) -> Result<()> {
        self.detach_locked(reg, d);
        let index = match reg.entries.iter().position(|e| e.tap.is_on(P::iface_key(&iface), dlt)) {
            Some(i) => i,
            None => {
                reg.entries.push(Entry {
                    tap: Arc::new(Tap::new(iface, dlt, link_hdrlen, hdrlen(link_hdrlen))),
                    readers: Vec::new(),
                    writers: Vec::new(),
                });
                reg.entries.len() - 1
            }
        };
        let Some(entry) = reg.entries.get_mut(index) else { return Ok(()) };
        let writer_only = {
            let mut st = d.state.lock();
            st.tap = Some(entry.tap.clone());
            let writer_only =
                st.role != Role::Reader || self.config.optimize_writers.load(Ordering::Relaxed);
            if writer_only {
                st.role = Role::Writer;
            }
            writer_only
        };
        if writer_only {
            entry.writers.push(d.clone());
        } else {
            entry.readers.push(d.clone());
            if let Err(e) = self.start_reading(reg, index) {
                self.detach_locked(reg, d);
                return Err(e);
            }
        }
        // bpf_attachd ends with bpf_wakeup ("trigger EVFILT_WRITE events"):
        // writers waiting for the attachment, pollers, SIGIO.
        d.wakeup_all();
        Ok(())
    }

    /// A reader joined the tap at `index`: publishes it, and taps the
    /// interface if it is the first. Undone by the caller on error.
    fn start_reading(&self, reg: &mut Registry<P>, index: usize) -> Result<()> {
        let Some(entry) = reg.entries.get(index) else { return Ok(()) };
        let tap = entry.tap.clone();
        if entry.readers.len() == 1 {
            tap.iface().set_tapped(Some(TapCookie::of(&tap)))?;
        }
        reg.publish(&self.platform, &self.active, index);
        Ok(())
    }

    /// Moves a writer-only descriptor to its tap's readers (bpf_upgraded).
    /// If the interface cannot be tapped, the descriptor stays a writer.
    pub(crate) fn upgrade(&self, reg: &mut Registry<P>, d: &Arc<Descriptor<P>>) -> Result<()> {
        let tap = {
            let mut st = d.state.lock();
            st.role = Role::Reader;
            st.tap.clone()
        };
        let Some(tap) = tap else { return Ok(()) };
        let Some(index) = reg.position(&tap) else { return Ok(()) };
        let Some(entry) = reg.entries.get_mut(index) else { return Ok(()) };
        if remove(&mut entry.writers, d) {
            entry.readers.push(d.clone());
            if let Err(e) = self.start_reading(reg, index) {
                if let Some(entry) = reg.entries.get_mut(index) {
                    remove(&mut entry.readers, d);
                    entry.writers.push(d.clone());
                }
                d.state.lock().role = Role::Writer;
                return Err(e);
            }
        }
        Ok(())
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
        self.detach_from(reg, d, false);
    }

    /// Detaches `d`; with `departing`, its interface is in the middle of
    /// leaving and is not asked to leave promiscuous mode, as bpf's
    /// detach for a departing interface does not.
    fn detach_from(&self, reg: &mut Registry<P>, d: &Arc<Descriptor<P>>, departing: bool) {
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
                        // Nothing to undo if the hook must stay: the
                        // platform keeps it as a pass-through.
                        let _ = tap.iface().set_tapped(None);
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
        if promisc && !departing {
            // Errors are ignored, as FreeBSD does.
            let _ = tap.iface().set_promisc(false);
        }
    }

    /// The interface whose key is `iface` is leaving: every descriptor on
    /// it is detached and woken, so readers get ENXIO.
    pub fn iface_departed(&self, iface: usize) {
        let mut reg = self.registry.lock();
        let mut gone: Attached<P> = Vec::new();
        for e in reg.entries.iter() {
            if P::iface_key(e.tap.iface()) == iface {
                e.tap.set_dying();
                gone.extend(e.readers.iter().cloned());
                gone.extend(e.writers.iter().cloned());
            }
        }
        for d in gone.iter() {
            self.detach_from(&mut reg, d, true);
            d.wakeup_all();
        }
    }

    /// BIOCSETIF: attach to the interface named `name`.
    pub(crate) fn set_iface(&self, d: &Arc<Descriptor<P>>, name: &str) -> Result<()> {
        let mut reg = self.registry.lock();
        let iface = self.platform.find_iface(name).ok_or(Errno::ENXIO)?;
        let &(dlt, link_hdrlen) = iface.dlts().first().ok_or(Errno::ENXIO)?;
        if reg
            .entries
            .iter()
            .any(|e| P::iface_key(e.tap.iface()) == P::iface_key(&iface) && e.tap.is_dying())
        {
            return Err(Errno::ENXIO);
        }
        if !d.state.lock().bufs.exists() {
            return Err(Errno::EINVAL);
        }
        let current = d.state.lock().tap.clone();
        let same = current.as_ref().is_some_and(|t| t.is_on(P::iface_key(&iface), dlt));
        if !same {
            self.attach(&mut reg, d, iface, dlt, link_hdrlen)?;
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
        if tap.dlt() == dlt {
            return Ok(());
        }
        let &(_, link_hdrlen) =
            tap.iface().dlts().iter().find(|(t, _)| *t == dlt).ok_or(Errno::EINVAL)?;
        let promisc = d.state.lock().promisc;
        self.attach(&mut reg, d, tap.iface().clone(), dlt, link_hdrlen)?;
        drop(reg);
        drop(d.reset_locked(d.state.lock()));
        if promisc && tap.iface().set_promisc(true).is_ok() {
            d.state.lock().promisc = true;
        }
        Ok(())
    }
}
