//! ioctl dispatch, with FreeBSD's errno in every state.
//!
//! The caller (the kernel's generic ioctl layer, or the simulator's copy of
//! it) has already copied `IOCPARM_LEN(cmd)` bytes in and will copy them
//! out on success: `data` is a kernel buffer of exactly that size, zeroed
//! for commands that only copy out.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::buffers::{Buffer, Slots};
use super::descriptor::{BufMode, Buffers, DescState, Role, TimerState};
use super::heap::HeapBuf;
use super::zbuf::{ZeroBuf, HEADER_LEN};
use super::{Bpf, Descriptor};
use crate::abi::ioctl::*;
use crate::abi::*;
use crate::filter::Program;
use crate::platform::{Counter, DescLock, GlobalLock, NetIf, Notifier, Platform, UserCtx};

fn put_u32(data: &mut [u8], v: u32) {
    v.write(data)
}

/// An ioctl argument; EINVAL if `data` is too short for it.
fn arg<T: AbiField>(data: &[u8]) -> Result<T> {
    T::read(data).ok_or(Errno::EINVAL)
}

fn put_i32(data: &mut [u8], v: i32) {
    v.write(data)
}

/// Commands zbpf adds to FreeBSD's BIOCLOCK whitelist: consuming buffers is
/// not configuration, like BIOCROTZBUF.
const LOCKED_EXTENSIONS: &[u64] = &[BIOCGETZNEXT, BIOCACKZBUF];

fn permitted_when_locked(cmd: u64) -> bool {
    LOCKED_WHITELIST.contains(&cmd) || LOCKED_EXTENSIONS.contains(&cmd)
}

/// `itimerfix` then `tvtohz - 1`: a timeval to read-timeout ticks.
fn timeout_ticks(tv: &Timeval, hz: u32) -> Result<u32> {
    if tv.tv_sec < 0 || tv.tv_usec < 0 || tv.tv_usec >= 1_000_000 {
        return Err(Errno::EINVAL);
    }
    let hz = u64::from(hz.max(1));
    let tick = (1_000_000 / hz).max(1);
    let mut usec = tv.tv_usec as u64;
    if tv.tv_sec == 0 && usec != 0 && usec < tick / 16 {
        usec = tick / 16;
    }
    let sec = tv.tv_sec as u64;
    let ticks = if sec <= i64::MAX as u64 / 1_000_000 {
        (sec * 1_000_000 + usec).div_ceil(tick) + 1
    } else if sec <= i64::MAX as u64 / hz {
        sec * hz + usec.div_ceil(tick) + 1
    } else {
        i64::MAX as u64
    };
    Ok((ticks.min(i32::MAX as u64) as u32).saturating_sub(1))
}

/// The interface name in an `ifreq`: up to the first NUL, at most 16 bytes.
fn ifreq_name(ifr: &IfReq) -> Option<&str> {
    let len = ifr.ifr_name.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
    core::str::from_utf8(ifr.ifr_name.get(..len)?).ok()
}

impl<P: Platform> Bpf<P> {
    /// One ioctl on descriptor `d`.
    pub fn ioctl<U: UserCtx<Pages = P::Pages>>(
        &self,
        d: &Arc<Descriptor<P>>,
        cmd: u64,
        data: &mut [u8],
        ctx: &mut U,
    ) -> Result<()> {
        // The system call layer hands over exactly the argument the command
        // encodes (kern_ioctl's IOCPARM_LEN): any other length is a broken
        // caller, refused before a short argument could be read as zeros.
        if data.len() != crate::abi::ioccom::ioc_len(cmd) {
            return Err(Errno::EINVAL);
        }
        let locked = {
            let mut st = d.state.lock();
            st.pid = ctx.pid();
            if st.timer == TimerState::Waiting {
                d.notifier().stop_timer();
            }
            st.timer = TimerState::Idle;
            st.locked
        };
        if locked && !permitted_when_locked(cmd) {
            return Err(Errno::EPERM);
        }
        match cmd {
            FIONREAD => {
                let mut st = d.state.lock();
                let slen = st.bufs.slen();
                while st.bufs.hold_busy() {
                    st = d.state.sleep(st, 0, false).0;
                }
                put_i32(data, (slen + st.bufs.hlen()) as i32);
                Ok(())
            }
            BIOCGBLEN => {
                put_u32(data, d.state.lock().bufsize() as u32);
                Ok(())
            }
            BIOCSBLEN => self.set_blen(d, data),
            BIOCSETF | BIOCSETFNR | BIOCSETWF => self.set_filter(d, cmd, data, ctx),
            BIOCFLUSH => {
                drop(d.reset_locked(d.state.lock()));
                Ok(())
            }
            BIOCPROMISC => {
                let _reg = self.registry.lock();
                let tap = d.state.lock().tap.clone().ok_or(Errno::EINVAL)?;
                if !d.state.lock().promisc {
                    tap.iface().set_promisc(true)?;
                    d.state.lock().promisc = true;
                }
                Ok(())
            }
            BIOCGDLT => {
                let tap = d.state.lock().tap.clone().ok_or(Errno::EINVAL)?;
                put_u32(data, tap.dlt());
                Ok(())
            }
            BIOCGDLTLIST => self.get_dlt_list(d, data, ctx),
            BIOCSDLT => self.set_dlt(d, arg::<u32>(data)?),
            BIOCGETIF => {
                let tap = d.state.lock().tap.clone().ok_or(Errno::EINVAL)?;
                let ifr = IfReq { ifr_name: tap.iface().name_now(), ..IfReq::default() };
                ifr.encode(data);
                Ok(())
            }
            BIOCSETIF => {
                let ifr = arg::<IfReq>(data)?;
                self.alloc_default_buffers(d)?;
                let name = ifreq_name(&ifr).ok_or(Errno::ENXIO)?;
                self.set_iface(d, name)
            }
            BIOCSRTIMEOUT => {
                let ticks = timeout_ticks(&arg::<Timeval>(data)?, self.platform.hz())?;
                d.state.lock().rtout = ticks;
                Ok(())
            }
            BIOCGRTIMEOUT => {
                let hz = self.platform.hz().max(1);
                let rtout = d.state.lock().rtout;
                let tick = 1_000_000 / hz;
                let tv = Timeval {
                    tv_sec: i64::from(rtout / hz),
                    tv_usec: i64::from((rtout % hz) * tick),
                };
                tv.encode(data);
                Ok(())
            }
            BIOCGSTATS => {
                let c = d.counters();
                let st = BpfStat {
                    bs_recv: c.received.fetch() as u32,
                    bs_drop: c.dropped.fetch() as u32,
                };
                st.encode(data);
                Ok(())
            }
            BIOCIMMEDIATE => {
                d.state.lock().immediate = arg::<u32>(data)? != 0;
                Ok(())
            }
            BIOCVERSION => {
                BpfVersion { bv_major: BPF_MAJOR_VERSION, bv_minor: BPF_MINOR_VERSION }
                    .encode(data);
                Ok(())
            }
            BIOCGHDRCMPLT => {
                put_u32(data, u32::from(d.state.lock().hdrcmplt));
                Ok(())
            }
            BIOCSHDRCMPLT => {
                d.state.lock().hdrcmplt = arg::<u32>(data)? != 0;
                Ok(())
            }
            BIOCGDIRECTION => {
                put_u32(data, d.direction() as u32);
                Ok(())
            }
            BIOCSDIRECTION => {
                let dir = Direction::from_raw(arg::<u32>(data)?).ok_or(Errno::EINVAL)?;
                let _st = d.state.lock();
                d.set_direction(dir);
                Ok(())
            }
            BIOCGTSTAMP => {
                put_u32(data, d.state.lock().tstamp.raw());
                Ok(())
            }
            BIOCSTSTAMP => {
                d.state.lock().tstamp = Tstamp::new(arg::<u32>(data)?).ok_or(Errno::EINVAL)?;
                Ok(())
            }
            BIOCFEEDBACK => {
                d.state.lock().feedback = arg::<u32>(data)? != 0;
                Ok(())
            }
            BIOCLOCK => {
                d.state.lock().locked = true;
                Ok(())
            }
            FIONBIO => Ok(()),
            FIOASYNC => {
                d.state.lock().async_io = arg::<i32>(data)? != 0;
                Ok(())
            }
            FIOSETOWN => d.notifier().set_owner(arg::<i32>(data)?),
            FIOGETOWN => {
                put_i32(data, d.notifier().owner());
                Ok(())
            }
            TIOCSPGRP => d.notifier().set_owner(arg::<i32>(data)?.wrapping_neg()),
            TIOCGPGRP => {
                put_i32(data, d.notifier().owner().wrapping_neg());
                Ok(())
            }
            BIOCSRSIG => {
                let sig = arg::<u32>(data)?;
                if sig >= NSIG {
                    return Err(Errno::EINVAL);
                }
                d.state.lock().sig = sig;
                Ok(())
            }
            BIOCGRSIG => {
                put_u32(data, d.state.lock().sig);
                Ok(())
            }
            BIOCGETBUFMODE => {
                put_u32(data, d.state.lock().mode.raw());
                Ok(())
            }
            BIOCSETBUFMODE => {
                let mode = match arg::<u32>(data)? {
                    BPF_BUFMODE_BUFFER => BufMode::Buffer,
                    BPF_BUFMODE_ZBUF if self.config.zerocopy_enable.load(Ordering::Relaxed) => {
                        BufMode::Zbuf
                    }
                    _ => return Err(Errno::EINVAL),
                };
                let mut st = d.state.lock();
                if st.bufs.exists() || st.tap.is_some() {
                    return Err(Errno::EBUSY);
                }
                st.mode = mode;
                Ok(())
            }
            BIOCGETZMAX => {
                self.require_mode(d, BufMode::Zbuf)?;
                (BPF_ZBUF_MAX as u64).write(data);
                Ok(())
            }
            BIOCSETZBUF => {
                self.require_mode(d, BufMode::Zbuf)?;
                self.set_zbuf(d, &arg::<BpfZbuf>(data)?, ctx)
            }
            BIOCROTZBUF => {
                self.require_mode(d, BufMode::Zbuf)?;
                self.rotate_zbuf(d).encode(data);
                Ok(())
            }
            BIOCGETZNEXT => {
                self.require_mode(d, BufMode::Zbuf)?;
                self.next_zbuf(d).encode(data);
                Ok(())
            }
            BIOCACKZBUF => {
                self.require_mode(d, BufMode::Zbuf)?;
                self.ack_zbuf(d, arg::<BpfZbuf>(data)?.bz_bufa)
            }
            BIOCSETVLANPCP => {
                let pcp = arg::<u32>(data)?;
                if pcp > 7 {
                    return Err(Errno::EINVAL);
                }
                d.state.lock().vlan_pcp = pcp as u8;
                Ok(())
            }
            _ => Err(Errno::EINVAL),
        }
    }

    fn require_mode(&self, d: &Descriptor<P>, mode: BufMode) -> Result<()> {
        if d.state.lock().mode == mode {
            Ok(())
        } else {
            Err(Errno::EOPNOTSUPP)
        }
    }

    /// BIOCSBLEN: clamp, write the size back, allocate two buffers now.
    fn set_blen(&self, d: &Descriptor<P>, data: &mut [u8]) -> Result<()> {
        self.require_mode(d, BufMode::Buffer)?;
        let max = self.config.maxbufsize.load(Ordering::Relaxed);
        let size = arg::<u32>(data)?.clamp(BPF_MINBUFSIZE, max.max(BPF_MINBUFSIZE));
        put_u32(data, size);
        self.install_heap_buffers(d, size as usize)
    }

    /// BIOCSETIF in BUFFER mode allocates buffers of the current size if
    /// there are none yet.
    fn alloc_default_buffers(&self, d: &Descriptor<P>) -> Result<()> {
        let size = {
            let st = d.state.lock();
            if st.mode != BufMode::Buffer || st.bufs.exists() {
                return Ok(());
            }
            st.bufsize()
        };
        let max = self.config.maxbufsize.load(Ordering::Relaxed) as usize;
        self.install_heap_buffers(d, size.clamp(BPF_MINBUFSIZE as usize, max.max(32)))
    }

    fn install_heap_buffers(&self, d: &Descriptor<P>, size: usize) -> Result<()> {
        // Allocate before taking the lock: allocation may sleep.
        let (a, b) = (HeapBuf::new(size)?, HeapBuf::new(size)?);
        let mut st = d.state.lock();
        if st.tap.is_some() {
            return Err(Errno::EINVAL);
        }
        while st.bufs.hold_busy() {
            st = d.state.sleep(st, 0, false).0;
        }
        st.bufs = Buffers::Heap(Slots::new(a, b, size));
        Ok(())
    }

    /// BIOCSETF, BIOCSETFNR, BIOCSETWF.
    fn set_filter<U: UserCtx>(
        &self,
        d: &Arc<Descriptor<P>>,
        cmd: u64,
        data: &[u8],
        ctx: &mut U,
    ) -> Result<()> {
        let prog = arg::<BpfProgram>(data)?;
        let len = prog.bf_len;
        if len > self.config.maxinsns.load(Ordering::Relaxed)
            || (prog.bf_insns.is_null() && len != 0)
        {
            return Err(Errno::EINVAL);
        }
        let program = if len == 0 {
            None
        } else {
            let mut raw = Vec::new();
            let bytes = len as usize * BpfInsn::SIZE;
            raw.try_reserve_exact(bytes).map_err(|_| Errno::ENOMEM)?;
            raw.resize(bytes, 0);
            // A fault while copying the program is EINVAL in FreeBSD.
            ctx.copy_in(prog.bf_insns, &mut raw).map_err(|_| Errno::EINVAL)?;
            let insns: Vec<BpfInsn> = raw
                .chunks_exact(BpfInsn::SIZE)
                .map(BpfInsn::decode)
                .collect::<Option<_>>()
                .ok_or(Errno::EINVAL)?;
            Some(self.program(&insns).map_err(|_| Errno::EINVAL)?)
        };
        let mut reg = self.registry.lock();
        if cmd == BIOCSETWF {
            d.state.lock().wfilter = program.map(Arc::new);
            return Ok(());
        }
        let upgrade = {
            let mut st = d.state.lock();
            let upgrade = check_upgrade(&mut st, cmd, program.as_ref());
            if cmd == BIOCSETF {
                st = d.reset_locked(st);
            }
            st.dispatchable = program.as_ref().and_then(|p| p.dispatchable());
            drop(st);
            upgrade
        };
        // Before the new filter is in place: from here on, the dispatcher
        // built for the old one no longer answers for this reader.
        d.filter_gen.fetch_add(1, Ordering::Release);
        d.rfilter.replace(program.map(alloc::boxed::Box::new));
        if upgrade {
            self.upgrade(&mut reg, d)?;
        } else {
            // The tap's dispatcher still calls the old filter's code.
            self.republish(&mut reg, d);
        }
        Ok(())
    }

    /// BIOCGDLTLIST.
    fn get_dlt_list<U: UserCtx>(
        &self,
        d: &Descriptor<P>,
        data: &mut [u8],
        ctx: &mut U,
    ) -> Result<()> {
        let tap = d.state.lock().tap.clone().ok_or(Errno::EINVAL)?;
        let mut list = arg::<BpfDltList>(data)?;
        let dlts = tap.iface().dlts();
        let n = dlts.len() as u32;
        if list.bfl_list.is_null() {
            list.bfl_len = n;
            list.encode(data);
            return Ok(());
        }
        if n > list.bfl_len {
            return Err(Errno::ENOMEM);
        }
        let mut raw = Vec::new();
        for &(dlt, _) in dlts {
            raw.extend_from_slice(&dlt.to_ne_bytes());
        }
        ctx.copy_out(&raw, list.bfl_list)?;
        list.bfl_len = n;
        list.encode(data);
        Ok(())
    }

    /// BIOCSETZBUF, checked in FreeBSD's order.
    fn set_zbuf<U: UserCtx<Pages = P::Pages>>(
        &self,
        d: &Descriptor<P>,
        bz: &BpfZbuf,
        ctx: &mut U,
    ) -> Result<()> {
        if bz.bz_bufa.is_null() || bz.bz_bufb.is_null() || bz.bz_buflen == 0 {
            return Err(Errno::EINVAL);
        }
        let len = usize::try_from(bz.bz_buflen).map_err(|_| Errno::EINVAL)?;
        let a = hold_zbuf(ctx, bz.bz_bufa, len)?;
        let b = hold_zbuf(ctx, bz.bz_bufb, len)?;
        let mut st = d.state.lock();
        if st.bufs.exists() || st.tap.is_some() {
            return Err(Errno::EINVAL);
        }
        st.bufs = Buffers::Zero(Slots::new(a, b, len - HEADER_LEN));
        Ok(())
    }

    /// BIOCROTZBUF: hand the partly filled store buffer over if the hold
    /// slot is free. An acknowledged hold buffer is reclaimed first, so the
    /// rotation does not wait for the next packet. The answer names the
    /// buffer only if it is now the user's: a store buffer handed over
    /// earlier (buffull) that the user already gave back moves to the hold
    /// slot without being handed over again, and must not be named as new.
    fn rotate_zbuf(&self, d: &Descriptor<P>) -> BpfZbuf {
        let mut st = d.state.lock();
        let mut out = BpfZbuf::default();
        if let Buffers::Zero(s) = &mut st.bufs {
            if s.force_rotate() {
                if let Some(h) = s.hold.as_ref().filter(|h| h.user_owned()) {
                    out.bz_bufa = h.uaddr();
                    out.bz_buflen = s.hlen as u64;
                }
            }
        }
        out
    }

    /// BIOCGETZNEXT: the oldest buffer the user owns, or zeros.
    fn next_zbuf(&self, d: &Descriptor<P>) -> BpfZbuf {
        let st = d.state.lock();
        let mut out = BpfZbuf::default();
        if let Some(zb) = oldest_user_owned(&st) {
            out.bz_bufa = zb.uaddr();
            out.bz_buflen = zb.handed_len() as u64;
        }
        out
    }

    /// BIOCACKZBUF: give back the buffer BIOCGETZNEXT would name.
    fn ack_zbuf(&self, d: &Descriptor<P>, addr: UserAddr) -> Result<()> {
        let st = d.state.lock();
        match oldest_user_owned(&st) {
            Some(zb) if zb.uaddr() == addr && !addr.is_null() => {
                zb.ack();
                Ok(())
            }
            _ => Err(Errno::EINVAL),
        }
    }
}

/// The ZBUF buffer a consumer should process next.
fn oldest_user_owned<P: Platform>(st: &DescState<P>) -> Option<&ZeroBuf<P::Pages>> {
    let Buffers::Zero(s) = &st.bufs else { return None };
    s.oldest_user_owned()
}

/// zbuf_setup: page-aligned address, page-multiple length of at most
/// BPF_MAX_PAGES pages, every page held (EFAULT otherwise).
fn hold_zbuf<U: UserCtx>(ctx: &mut U, addr: UserAddr, len: usize) -> Result<ZeroBuf<U::Pages>> {
    if addr.0 % PAGE_SIZE as u64 != 0 || len % PAGE_SIZE != 0 || len / PAGE_SIZE > BPF_MAX_PAGES {
        return Err(Errno::EINVAL);
    }
    let pages = ctx.hold_pages(addr, len / PAGE_SIZE)?;
    Ok(ZeroBuf::new(pages, addr, len))
}

/// bpf_check_upgrade: whether a new read filter turns a writer-only
/// descriptor into a reader. libpcap's first "ret #snaplen" only counts down.
fn check_upgrade<P: Platform>(st: &mut DescState<P>, cmd: u64, prog: Option<&Program>) -> bool {
    let Some(prog) = prog else { return false };
    if st.role == Role::Reader {
        return false;
    }
    if cmd == BIOCSETF && prog.single_return().is_some() {
        st.role = match st.role {
            Role::Writer => Role::WriterAfterOneFilter,
            _ => Role::Reader,
        };
        st.role == Role::Reader
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_trip_like_freebsd() {
        let tv = |s, u| Timeval { tv_sec: s, tv_usec: u };
        assert_eq!(timeout_ticks(&tv(0, 0), 1000), Ok(0));
        assert_eq!(timeout_ticks(&tv(1, 0), 1000), Ok(1000));
        assert_eq!(timeout_ticks(&tv(0, 1500), 1000), Ok(2));
        assert_eq!(timeout_ticks(&tv(0, 1), 1000), Ok(1));
        assert_eq!(timeout_ticks(&tv(-1, 0), 1000), Err(Errno::EINVAL));
        assert_eq!(timeout_ticks(&tv(0, 1_000_000), 1000), Err(Errno::EINVAL));
        assert_eq!(timeout_ticks(&tv(i64::MAX, 0), 1000), Ok(i32::MAX as u32 - 1));
    }
}
