//! read(2), write(2), poll(2), kqueue and the read timeout.

use alloc::vec::Vec;

use super::descriptor::{BufMode, Buffers, DescState, TimerState};
use super::{Bpf, Descriptor};
use crate::abi::{dlt, Direction, Errno, PollEvents, Result, POLLWRNORM};
use crate::platform::{
    Cast, Counter, DescLock, NetIf, Notifier, Outgoing, Platform, ReadSink, Sleep, WriteSource,
};

/// Largest frame write(2) accepts: FreeBSD's biggest mbuf cluster (16 KiB).
const MAX_WRITE: usize = 16 * 1024;

/// The link-header length write(2) expects for a data-link type, or `None`
/// when bpf cannot write on it (EIO).
pub fn write_hdrlen(dlt: u32) -> Option<usize> {
    match dlt {
        dlt::DLT_EN10MB => Some(14),
        dlt::DLT_NULL => Some(4),
        dlt::DLT_RAW => Some(0),
        _ => None,
    }
}

/// M_BCAST or M_MCAST for a frame written on data-link type `dlt`, from
/// its Ethernet destination, as bpf_movein sets them; other link types
/// carry no such distinction.
pub fn write_cast(dlt: u32, frame: &[u8]) -> Cast {
    match frame.get(..6) {
        Some(dst) if dlt == dlt::DLT_EN10MB && dst == [0xff; 6] => Cast::Broadcast,
        Some(dst) if dlt == dlt::DLT_EN10MB && dst[0] & 1 != 0 => Cast::Multicast,
        _ => Cast::Unicast,
    }
}

/// The marks the network stack leaves on a packet the taps see: in the
/// kernel, its mbuf's flags and receiving interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackMarks {
    /// Received (as opposed to sent).
    pub inbound: bool,
    /// M_PROMISC: the platform's output marks the original of a feedback
    /// write with it ([`Outgoing::hide_from_taps`]).
    pub promisc: bool,
    /// The packet names a receiving interface (`m_pkthdr.rcvif`).
    pub rcvif: bool,
}

/// What the taps do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapVerdict {
    /// Offer it to the readers.
    Deliver,
    /// The outgoing original of a feedback write: no reader sees it (they
    /// see the injected copy, once), and the mark is consumed, as bpf_mtap
    /// does, so that the stack passes the frame on unmarked.
    HideAndClearMark,
}

impl StackMarks {
    /// The taps' verdict on a packet with these marks.
    pub fn verdict(self) -> TapVerdict {
        if !self.inbound && self.promisc && !self.rcvif {
            TapVerdict::HideAndClearMark
        } else {
            TapVerdict::Deliver
        }
    }
}

/// What poll(2) reports for a descriptor that is not attached.
pub const POLL_DETACHED: PollEvents = PollEvents::POLLHUP
    .union(PollEvents::POLLIN)
    .union(PollEvents::POLLRDNORM)
    .union(PollEvents::POLLOUT)
    .union(POLLWRNORM);

/// kqueue filters bpf supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KqFilter {
    /// EVFILT_READ.
    Read,
    /// EVFILT_WRITE.
    Write,
}

impl<P: Platform> Bpf<P> {
    /// read(2) in BUFFER mode. `sink.resid()` must equal the buffer size.
    pub fn read<S: ReadSink>(
        &self,
        d: &Descriptor<P>,
        sink: &mut S,
        nonblock: bool,
        pid: i32,
    ) -> Result<usize> {
        let mut st = d.state.lock();
        if sink.resid() != st.bufsize() {
            return Err(Errno::EINVAL);
        }
        st.pid = pid;
        if st.mode != BufMode::Buffer {
            return Err(Errno::EOPNOTSUPP);
        }
        if st.timer == TimerState::Waiting {
            d.notifier().stop_timer();
        }
        let mut timed_out = st.timer == TimerState::TimedOut;
        st.timer = TimerState::Idle;
        while st.bufs.hold_busy() {
            let (g, how) = d.state.sleep(st, 0, true);
            st = g;
            if let Sleep::Interrupted(e) = how {
                return Err(e);
            }
        }
        loop {
            let immediate = st.immediate;
            let Buffers::Heap(s) = &mut st.bufs else {
                // BUFFER mode without buffers: never attached.
                return Err(if st.tap.is_none() { Errno::ENXIO } else { Errno::EINVAL });
            };
            if s.hold.is_some() {
                break;
            }
            if s.hold_busy {
                // Another reader is copying the held buffer out (so there
                // is no free buffer to rotate into): wait until it is done.
                let (g, how) = d.state.sleep(st, 0, true);
                st = g;
                if let Sleep::Interrupted(e) = how {
                    return Err(e);
                }
                continue;
            }
            if s.slen != 0 && (immediate || nonblock || timed_out) {
                s.rotate();
                break;
            }
            if st.tap.is_none() {
                return Err(Errno::ENXIO);
            }
            if nonblock {
                return Err(Errno::EWOULDBLOCK);
            }
            let rtout = st.rtout;
            let (g, how) = d.state.sleep(st, rtout, true);
            st = g;
            match how {
                Sleep::Interrupted(e) => return Err(e),
                Sleep::TimedOut => {
                    let Buffers::Heap(s) = &mut st.bufs else { return Err(Errno::ENXIO) };
                    if s.hold.is_some() {
                        break;
                    }
                    if s.slen == 0 {
                        return Ok(0);
                    }
                    if s.rotate() {
                        break;
                    }
                    // Another reader holds the buffer: rotate after it.
                    timed_out = true;
                }
                Sleep::Woken => {}
            }
        }
        // Take the hold buffer out and copy it without the lock.
        let Buffers::Heap(s) = &mut st.bufs else { return Err(Errno::ENXIO) };
        let Some(held) = s.hold.take() else { return Err(Errno::ENXIO) };
        let hlen = s.hlen;
        s.hold_busy = true;
        drop(st);
        let copied = sink.copy_out(held.data(hlen));
        let mut st = d.state.lock();
        if let Buffers::Heap(s) = &mut st.bufs {
            s.hold_busy = false;
            s.hlen = 0;
            s.free = Some(held);
        }
        drop(st);
        d.state.wakeup();
        copied.map(|()| hlen)
    }

    /// write(2): inject one frame on the attached interface.
    pub fn write<W: WriteSource>(&self, d: &Descriptor<P>, src: &mut W, pid: i32) -> Result<usize> {
        let c = d.counters();
        c.written.add(1);
        let (tap, hdrcmplt, feedback, pcp, wfilter) = {
            let mut st = d.state.lock();
            st.pid = pid;
            let Some(tap) = st.tap.clone() else {
                c.write_dropped.add(1);
                return Err(Errno::ENXIO);
            };
            (tap, st.hdrcmplt, st.feedback, st.vlan_pcp, st.wfilter.clone())
        };
        let result = self.inject(d, &tap, src, hdrcmplt, feedback, pcp, wfilter.as_deref());
        if !matches!(result, Ok(n) if n > 0) {
            c.write_dropped.add(1);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn inject<W: WriteSource>(
        &self,
        d: &Descriptor<P>,
        tap: &super::Tap<P>,
        src: &mut W,
        hdrcmplt: bool,
        feedback: bool,
        pcp: u8,
        wfilter: Option<&crate::filter::Program>,
    ) -> Result<usize> {
        let iface = tap.iface();
        if !iface.is_up() {
            return Err(Errno::ENETDOWN);
        }
        let len = src.resid();
        if len == 0 {
            return Ok(0);
        }
        let hlen = write_hdrlen(tap.dlt()).ok_or(Errno::EIO)?;
        if len < hlen || len - hlen > iface.mtu() as usize {
            return Err(Errno::EMSGSIZE);
        }
        if len > MAX_WRITE {
            return Err(Errno::EIO);
        }
        let mut frame = Vec::new();
        frame.try_reserve_exact(len).map_err(|_| Errno::EIO)?;
        frame.resize(len, 0);
        src.copy_in(&mut frame)?;
        let wirelen = len as u32;
        if wfilter.is_some_and(|f| f.run(&frame, wirelen) == 0) {
            return Err(Errno::EPERM);
        }
        d.counters().write_matched.add(1);
        if tap.dlt() == dlt::DLT_EN10MB && !hdrcmplt {
            if let (Some(mac), Some(src_mac)) = (iface.lladdr(), frame.get_mut(6..12)) {
                src_mac.copy_from_slice(&mac);
            }
        }
        iface.output(&Outgoing {
            frame: &frame,
            link_hdrlen: hlen,
            hdrcmplt,
            pcp,
            hide_from_taps: feedback && d.direction() == Direction::InOut,
            cast: write_cast(tap.dlt(), &frame),
        })?;
        if feedback {
            // A failed duplicate is not an error of the write, as in FreeBSD.
            let _ = iface.input(&frame);
        }
        Ok(len)
    }

    /// poll(2). `record` is called (under the lock) when the caller will
    /// sleep: selrecord.
    pub fn poll(
        &self,
        d: &Descriptor<P>,
        events: PollEvents,
        pid: i32,
        record: impl FnOnce(),
    ) -> PollEvents {
        let rw = PollEvents::POLLIN | PollEvents::POLLRDNORM | PollEvents::POLLOUT | POLLWRNORM;
        let mut st = d.state.lock();
        if st.tap.is_none() {
            return events & (rw | PollEvents::POLLHUP);
        }
        st.pid = pid;
        let mut revents = events & (PollEvents::POLLOUT | POLLWRNORM);
        let readable = PollEvents::POLLIN | PollEvents::POLLRDNORM;
        if events.intersects(readable) {
            if st.ready() {
                revents |= events & readable;
            } else {
                record();
                self.arm_timer(d, &mut st);
            }
        }
        revents
    }

    /// kqueue attach: EVFILT_READ and EVFILT_WRITE only.
    pub fn kq_attach(&self, filter: i16) -> Result<KqFilter> {
        match filter {
            crate::abi::EVFILT_READ => Ok(KqFilter::Read),
            crate::abi::EVFILT_WRITE => Ok(KqFilter::Write),
            _ => Err(Errno::EINVAL),
        }
    }

    /// A kqueue note's event check, with the descriptor lock held: `Some`
    /// with the note's data when ready.
    pub fn kq_event(
        &self,
        d: &Descriptor<P>,
        st: &mut DescState<P>,
        filter: KqFilter,
    ) -> Option<i64> {
        match filter {
            KqFilter::Read => {
                if st.ready() {
                    let hold = if st.bufs.hold_busy() { 0 } else { st.bufs.hlen() };
                    Some((st.bufs.slen() + hold) as i64)
                } else {
                    self.arm_timer(d, st);
                    None
                }
            }
            KqFilter::Write => st.tap.as_ref().map(|t| i64::from(t.iface().mtu())),
        }
    }

    /// Runs `f` on the state of a descriptor whose lock the caller holds
    /// through the platform (kqueue notes locked by the knlist).
    pub fn with_state<R>(&self, d: &Descriptor<P>, f: impl FnOnce(&mut DescState<P>) -> R) -> R {
        let mut st = d.state.lock();
        f(&mut st)
    }

    /// Arms the read timeout if one is set and nothing is pending.
    fn arm_timer(&self, d: &Descriptor<P>, st: &mut DescState<P>) {
        if st.rtout > 0 && st.timer == TimerState::Idle {
            let token = self.token();
            st.timer_token = token;
            st.timer = TimerState::Waiting;
            d.notifier().arm_timer(st.rtout, token);
        }
    }

    /// The read timeout fired (callout): readers waiting through poll or
    /// kqueue are woken if data is pending.
    pub fn timer_fired(&self, d: &Descriptor<P>, token: u64) {
        self.timer_fired_locked(d, d.state.lock(), token);
    }

    /// [`timer_fired`](Self::timer_fired) for a timer that runs with the
    /// descriptor's lock taken (the kernel's callout): releases it.
    pub fn timer_fired_locked<'a>(
        &self,
        d: &'a Descriptor<P>,
        mut st: <P::Lock<DescState<P>> as DescLock<DescState<P>>>::Guard<'a>,
        token: u64,
    ) {
        if st.timer != TimerState::Waiting || st.timer_token != token {
            return;
        }
        st.timer = TimerState::TimedOut;
        if st.bufs.slen() != 0 {
            let sig = d.prepare_wakeup(&mut st);
            drop(st);
            d.notify(sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{StackMarks, TapVerdict};

    /// Only an outgoing frame marked M_PROMISC without a receiving
    /// interface is the hidden original of a feedback write.
    #[test]
    fn only_the_unreceived_marked_outgoing_frame_is_hidden() {
        for inbound in [false, true] {
            for promisc in [false, true] {
                for rcvif in [false, true] {
                    let hidden = !inbound && promisc && !rcvif;
                    let verdict = StackMarks { inbound, promisc, rcvif }.verdict();
                    assert_eq!(verdict == TapVerdict::HideAndClearMark, hidden);
                }
            }
        }
    }
}
