//! One bpf descriptor: its configuration, its buffers, its counters, and
//! the capture of one packet.
//!
//! What the delivery path reads without the descriptor lock (the read
//! filter, the direction, the counters) lives outside [`DescState`]; the
//! rest is under the lock. Only packets the filter accepts take the lock.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::buffers::{Caught, Slots};
use super::heap::HeapBuf;
use super::record::{needs_boottime, PacketTime, Quality, Stamp};
use super::zbuf::ZeroBuf;
use super::{Bpf, Tap, BATCH};
use crate::abi::{Direction, Tstamp, XbpfD, BPF_BUFMODE_BUFFER, BPF_BUFMODE_ZBUF, IFNAMSIZ, SIGIO};
use crate::filter::Program;
use crate::packet::PacketBytes;
use crate::platform::epoch::EpochCell;
use crate::platform::{Bintime, Counter, DescLock, HeldPages, Notifier, Platform, TapPacket};
use crate::tap::Answer;

/// The buffer mode (BIOCSETBUFMODE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufMode {
    /// Kernel buffers, read(2).
    Buffer,
    /// Zero-copy buffers shared with the process.
    Zbuf,
}

impl BufMode {
    /// The BPF_BUFMODE_* value.
    pub fn raw(self) -> u32 {
        match self {
            BufMode::Buffer => BPF_BUFMODE_BUFFER,
            BufMode::Zbuf => BPF_BUFMODE_ZBUF,
        }
    }
}

/// The two buffers, in whichever mode, once they exist.
pub(crate) enum Buffers<Pg: HeldPages> {
    /// Not allocated (BUFFER mode before BIOCSBLEN/BIOCSETIF, ZBUF mode
    /// before BIOCSETZBUF).
    None,
    /// BUFFER mode.
    Heap(Slots<HeapBuf>),
    /// ZBUF mode.
    Zero(Slots<ZeroBuf<Pg>>),
}

/// Runs `$body` with `$s` bound to the slots of either mode, or evaluates
/// `$none` when no buffers exist.
macro_rules! with_slots {
    ($bufs:expr, $s:ident => $body:expr, none => $none:expr) => {
        match $bufs {
            Buffers::Heap($s) => $body,
            Buffers::Zero($s) => $body,
            Buffers::None => $none,
        }
    };
}

impl<Pg: HeldPages> Buffers<Pg> {
    pub(crate) fn exists(&self) -> bool {
        !matches!(self, Buffers::None)
    }
    pub(crate) fn slen(&self) -> usize {
        with_slots!(self, s => s.slen, none => 0)
    }
    pub(crate) fn hlen(&self) -> usize {
        with_slots!(self, s => if s.hold_occupied() { s.hlen } else { 0 }, none => 0)
    }
    pub(crate) fn hold_busy(&self) -> bool {
        with_slots!(self, s => s.hold_busy, none => false)
    }
    pub(crate) fn ready(&self, eager: bool) -> bool {
        with_slots!(self, s => s.ready(eager), none => false)
    }
    /// reset_d's buffer part.
    pub(crate) fn reset(&mut self) {
        match self {
            Buffers::Heap(s) => s.reset(true),
            Buffers::Zero(s) => s.reset(false),
            Buffers::None => {}
        }
    }
}

/// The read-timeout state (`bd_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerState {
    /// No timer.
    Idle,
    /// poll/kevent armed the timer.
    Waiting,
    /// The timer fired: the next read or readiness check treats pending
    /// data as ready.
    TimedOut,
}

/// Whether a descriptor reads, or only writes (FreeBSD's `bd_writer`
/// countdown): a writer is on its tap's writers, which packets never reach,
/// until a read filter shows it means to read (bpf_check_upgrade).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// On its tap's readers (`bd_writer` 0).
    Reader,
    /// Writes only (`bd_writer` 2): opened write-only, or attached with
    /// `optimize_writers`.
    Writer,
    /// Writes only, and has set one trivial read filter, as libpcap's first
    /// "ret #snaplen" (`bd_writer` 1): the next one makes it a reader.
    WriterAfterOneFilter,
}

/// Everything under the descriptor lock.
pub struct DescState<P: Platform> {
    pub(crate) mode: BufMode,
    pub(crate) bufs: Buffers<P::Pages>,
    /// `bd_bufsize` while no buffers exist.
    pub(crate) unset_bufsize: usize,
    pub(crate) tap: Option<Arc<Tap<P>>>,
    pub(crate) timer: TimerState,
    pub(crate) timer_token: u64,
    /// Read timeout in ticks (0 = none).
    pub(crate) rtout: u32,
    pub(crate) immediate: bool,
    pub(crate) tstamp: Tstamp,
    pub(crate) hdrcmplt: bool,
    pub(crate) feedback: bool,
    pub(crate) async_io: bool,
    pub(crate) sig: u32,
    pub(crate) locked: bool,
    pub(crate) promisc: bool,
    pub(crate) vlan_pcp: u8,
    /// Reader or writer only (`bd_writer`).
    pub(crate) role: Role,
    pub(crate) pid: i32,
    pub(crate) wfilter: Option<Arc<Program>>,
    /// The read filter's native code that the tap's dispatcher may call
    /// (`Program::dispatchable`). Set with `rfilter`, both under the
    /// global lock, which the tap's publication holds when it reads this.
    pub(crate) dispatchable: Option<crate::filter::Dispatchable>,
}

impl<P: Platform> DescState<P> {
    /// `bd_bufsize`: what BIOCGBLEN reports and read(2) must ask for.
    pub(crate) fn bufsize(&self) -> usize {
        with_slots!(&self.bufs, s => s.bufsize, none => self.unset_bufsize)
    }

    /// Whether the reader should be woken for every packet.
    pub(crate) fn eager(&self) -> bool {
        self.immediate || self.timer == TimerState::TimedOut
    }

    /// bpf_ready.
    pub(crate) fn ready(&self) -> bool {
        self.bufs.ready(self.eager())
    }
}

/// The seven statistics counters of a descriptor.
pub struct Counters<C: Counter> {
    /// Packets that passed the direction check (before the filter).
    pub received: C,
    /// Packets lost for lack of buffer space (or a detach race).
    pub dropped: C,
    /// Packets the filter accepted.
    pub matched: C,
    /// write(2) calls.
    pub written: C,
    /// Writes that passed the write filter.
    pub write_matched: C,
    /// Writes that failed.
    pub write_dropped: C,
    /// Zero-copy append operations.
    pub zcopy: C,
}

impl<C: Counter> Counters<C> {
    fn new() -> Self {
        Counters {
            received: C::new(),
            dropped: C::new(),
            matched: C::new(),
            written: C::new(),
            write_matched: C::new(),
            write_dropped: C::new(),
            zcopy: C::new(),
        }
    }

    /// reset_d zeroes all seven.
    pub(crate) fn zero(&self) {
        self.zero_for_stats();
        self.write_dropped.zero();
    }

    /// A write to `net.bpf.stats` zeroes all but the write-drop count, as
    /// FreeBSD does.
    pub(crate) fn zero_for_stats(&self) {
        for c in [&self.received, &self.dropped, &self.matched, &self.written, &self.write_matched]
        {
            c.zero();
        }
        self.zcopy.zero();
    }
}

/// One open of the device.
pub struct Descriptor<P: Platform> {
    /// The read filter; empty means "accept every packet whole".
    pub(crate) rfilter: EpochCell<P, Program>,
    /// Counts the read filter's changes: a tap's dispatcher answers for a
    /// reader only while this is what it was when the dispatcher was built.
    pub(crate) filter_gen: AtomicU64,
    direction: AtomicU32,
    counters: Counters<P::Counter>,
    pub(crate) state: P::Lock<DescState<P>>,
    notifier: P::Notifier,
}

impl<P: Platform> Descriptor<P> {
    pub(crate) fn new(notifier: P::Notifier, bufsize: usize, writer_only: bool, pid: i32) -> Self {
        Descriptor {
            rfilter: EpochCell::new(None),
            filter_gen: AtomicU64::new(0),
            direction: AtomicU32::new(Direction::InOut as u32),
            counters: Counters::new(),
            state: P::Lock::new(DescState {
                mode: BufMode::Buffer,
                bufs: Buffers::None,
                unset_bufsize: bufsize,
                tap: None,
                timer: TimerState::Idle,
                timer_token: 0,
                rtout: 0,
                immediate: false,
                tstamp: Tstamp::DEFAULT,
                hdrcmplt: false,
                feedback: false,
                async_io: false,
                sig: SIGIO,
                locked: false,
                promisc: false,
                vlan_pcp: 0,
                role: if writer_only { Role::Writer } else { Role::Reader },
                pid,
                wfilter: None,
                dispatchable: None,
            }),
            notifier,
        }
    }

    /// The counters.
    pub fn counters(&self) -> &Counters<P::Counter> {
        &self.counters
    }

    /// The notification resources.
    pub fn notifier(&self) -> &P::Notifier {
        &self.notifier
    }

    /// The capture direction.
    pub fn direction(&self) -> Direction {
        Direction::from_raw(self.direction.load(Ordering::Relaxed)).unwrap_or(Direction::InOut)
    }

    pub(crate) fn set_direction(&self, d: Direction) {
        self.direction.store(d as u32, Ordering::Relaxed);
    }

    /// Captures one packet offered by `tap`: direction check, filter, and
    /// only when accepted, the lock, the copy and the wakeup. `answer` is
    /// what the tap's dispatcher answered for this reader, if it ran this
    /// reader's filter.
    #[inline(always)]
    pub(crate) fn deliver<B: PacketBytes + ?Sized>(
        &self,
        bpf: &Bpf<P>,
        tap: &Tap<P>,
        section: &P::EpochGuard,
        pkt: &TapPacket<'_, B>,
        time: &mut PacketTime,
        answer: Option<Answer>,
    ) {
        let snaplen = self.admit(section, pkt, answer);
        if snaplen == 0 {
            return;
        }
        let mut st = self.state.lock();
        if !Self::still_on(&st, tap) {
            self.counters.dropped.add(1);
            return;
        }
        let wakeup = self.store(bpf, tap, &mut st, pkt, snaplen, time);
        self.finish(st, wakeup);
    }

    /// Captures a driver's batch of packets offered by `tap`, each filtered
    /// as [`deliver`](Self::deliver) does, the accepted ones stored under
    /// one hold of the lock: the lock's atomics, and the wait for the
    /// previous copies' stores they impose, are paid once per batch instead
    /// of once per packet. `times` holds each packet's timestamp. At most
    /// [`BATCH`] packets: [`Bpf::deliver_batch`] cuts longer lists.
    pub(crate) fn deliver_batch<B: PacketBytes + ?Sized>(
        &self,
        bpf: &Bpf<P>,
        tap: &Tap<P>,
        section: &P::EpochGuard,
        pkts: &[TapPacket<'_, B>],
        times: &mut [PacketTime],
    ) {
        let mut snaplens = [0u32; BATCH];
        let mut accepted = 0;
        for (pkt, snaplen) in pkts.iter().zip(snaplens.iter_mut()) {
            *snaplen = self.admit(section, pkt, None);
            accepted += u64::from(*snaplen != 0);
        }
        if accepted == 0 {
            return;
        }
        let mut st = self.state.lock();
        if !Self::still_on(&st, tap) {
            self.counters.dropped.add(accepted);
            return;
        }
        let mut wakeup = false;
        for ((pkt, &snaplen), time) in pkts.iter().zip(&snaplens).zip(times.iter_mut()) {
            if snaplen != 0 {
                wakeup |= self.store(bpf, tap, &mut st, pkt, snaplen, time);
            }
        }
        self.finish(st, wakeup);
    }

    /// What is decided before the lock: the direction, the `received`
    /// count, the filter (the dispatcher's `answer` if it still stands),
    /// the `matched` count. The snapshot length to capture, 0 for none.
    #[inline(always)]
    fn admit<B: PacketBytes + ?Sized>(
        &self,
        section: &P::EpochGuard,
        pkt: &TapPacket<'_, B>,
        answer: Option<Answer>,
    ) -> u32 {
        if !self.direction().admits(pkt.inbound) {
            return 0;
        }
        self.counters.received.add(1);
        let wirelen = pkt.wirelen();
        // The tap's dispatcher ran this reader's filter as it is now: its
        // answer stands, unless the interpreter must finish the run.
        let dispatched = answer
            .filter(|a| a.filter_gen == self.filter_gen.load(Ordering::Acquire))
            .and_then(|a| {
                let whole = pkt.bytes.head().len() == pkt.bytes.len();
                crate::filter::native_answer(a.result, whole)
            });
        let snaplen = match dispatched {
            Some(answer) => answer,
            None => match self.rfilter.get(section) {
                Some(prog) => prog.run_on(pkt.bytes, wirelen),
                None => u32::MAX,
            },
        };
        if snaplen != 0 {
            self.counters.matched.add(1);
        }
        snaplen
    }

    /// Whether the descriptor is still on `tap`: it may have been detached
    /// (or moved) since the tap's readers were read. Under the lock.
    fn still_on(st: &DescState<P>, tap: &Tap<P>) -> bool {
        st.tap.as_ref().is_some_and(|t| core::ptr::eq(Arc::as_ptr(t), tap))
    }

    /// catchpacket, under the lock, on the tap checked by
    /// [`still_on`](Self::still_on): the timestamp and the copy, or a drop.
    /// Whether the reader is to be woken.
    #[inline(always)]
    fn store<B: PacketBytes + ?Sized>(
        &self,
        bpf: &Bpf<P>,
        tap: &Tap<P>,
        st: &mut DescState<P>,
        pkt: &TapPacket<'_, B>,
        snaplen: u32,
        time: &mut PacketTime,
    ) -> bool {
        let stamp = Stamp {
            tstamp: st.tstamp,
            uptime: time.get(&bpf.platform, Quality::of(st.tstamp)),
            boottime: if needs_boottime(st.tstamp) {
                time.boottime(&bpf.platform)
            } else {
                Bintime::default()
            },
        };
        let eager = st.eager();
        let hdrlen = tap.record_hdrlen();
        let caught = match &mut st.bufs {
            Buffers::Heap(s) => s.catch(pkt.bytes, snaplen, hdrlen, &stamp, eager),
            Buffers::Zero(s) => {
                let c = s.catch(pkt.bytes, snaplen, hdrlen, &stamp, eager);
                if c != Caught::Dropped {
                    // A header and a data append, as FreeBSD counts them.
                    self.counters.zcopy.add(2);
                }
                c
            }
            Buffers::None => Caught::Dropped,
        };
        match caught {
            Caught::Dropped => {
                self.counters.dropped.add(1);
                false
            }
            Caught::Stored { wakeup } => wakeup,
        }
    }

    /// Releases the lock, waking the reader first if a stored packet asked
    /// for it (bpf_wakeup).
    #[inline(always)]
    fn finish(
        &self,
        mut st: <P::Lock<DescState<P>> as DescLock<DescState<P>>>::Guard<'_>,
        wakeup: bool,
    ) {
        if wakeup {
            let sig = self.prepare_wakeup(&mut st);
            drop(st);
            self.notify(sig);
        }
    }

    /// The part of bpf_wakeup done under the lock: a pending timer is no
    /// longer needed. Returns the signal to send, if any.
    pub(crate) fn prepare_wakeup(&self, st: &mut DescState<P>) -> Option<u32> {
        if st.timer == TimerState::Waiting {
            self.notifier.stop_timer();
            st.timer = TimerState::Idle;
        }
        (st.async_io && st.sig != 0).then_some(st.sig)
    }

    /// The part of bpf_wakeup done after the lock is dropped: sleepers,
    /// SIGIO, select/poll and kqueue.
    pub(crate) fn notify(&self, sig: Option<u32>) {
        self.state.wakeup();
        if let Some(sig) = sig {
            self.notifier.signal(sig);
        }
        self.notifier.select_wakeup();
    }

    /// Wakes everything waiting on this descriptor (detach, close).
    pub(crate) fn wakeup_all(&self) {
        let sig = {
            let mut st = self.state.lock();
            self.prepare_wakeup(&mut st)
        };
        self.notify(sig);
    }

    /// Cancels the read timer (close).
    pub(crate) fn stop_timer(&self) {
        let mut st = self.state.lock();
        if st.timer == TimerState::Waiting {
            self.notifier.stop_timer();
        }
        st.timer = TimerState::Idle;
    }

    /// reset_d: flush what the kernel owns and zero the counters. Waits for
    /// a read that is copying the hold buffer out.
    pub(crate) fn reset_locked<'a>(
        &'a self,
        mut st: <P::Lock<DescState<P>> as DescLock<DescState<P>>>::Guard<'a>,
    ) -> <P::Lock<DescState<P>> as DescLock<DescState<P>>>::Guard<'a> {
        while st.bufs.hold_busy() {
            st = self.state.sleep(st, 0, false).0;
        }
        st.bufs.reset();
        self.counters.zero();
        st
    }

    /// One `net.bpf.stats` record.
    pub(crate) fn xbpf(&self, name: [u8; IFNAMSIZ]) -> XbpfD {
        let st = self.state.lock();
        let c = &self.counters;
        XbpfD {
            bd_structsize: XbpfD::SIZE as u32,
            bd_promisc: u8::from(st.promisc),
            bd_immediate: u8::from(st.immediate),
            bd_hdrcmplt: i32::from(st.hdrcmplt),
            bd_direction: self.direction() as i32,
            bd_feedback: i32::from(st.feedback),
            bd_async: i32::from(st.async_io),
            bd_rcount: c.received.fetch(),
            bd_dcount: c.dropped.fetch(),
            bd_fcount: c.matched.fetch(),
            bd_sig: st.sig as i32,
            bd_slen: st.bufs.slen() as i32,
            bd_hlen: st.bufs.hlen() as i32,
            bd_bufsize: st.bufsize() as i32,
            bd_pid: st.pid,
            bd_ifname: name,
            bd_locked: i32::from(st.locked),
            bd_wcount: c.written.fetch(),
            bd_wfcount: c.write_matched.fetch(),
            bd_wdcount: c.write_dropped.fetch(),
            bd_zcopy: c.zcopy.fetch(),
            bd_bufmode: st.mode.raw() as i32,
            ..XbpfD::default()
        }
    }
}
