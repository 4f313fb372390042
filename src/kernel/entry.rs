//! The `zbpf_rs_*` functions the C side calls: module events, cdevsw
//! operations, taps, the timer, kqueue, interface departure and sysctls.
//! Each one finds the device and the descriptor and calls the engine.
//!
//! # Safety
//!
//! Every `unsafe extern "C"` function here is called by the C side only,
//! as `ffi/zbpf_kpi.h` describes:
//! - a `cookie` is live: it came from `zbpf_rs_open` and has not been given
//!   to `zbpf_rs_close`, which gets it once, after every other use (the
//!   cdevpriv destructor runs after the last file operation; the callout
//!   and the knotes are drained first);
//! - kernel objects passed in (uio, thread, knote, ifnet, the packet
//!   description and its mbuf chain, a tap from `KIface::set_tapped`) are
//!   valid and unchanged by others for the call;
//! - data pointers are valid for the sizes given, out-pointers for writes.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::{c_int, c_ulong, c_void};
use core::mem::{ManuallyDrop, MaybeUninit};
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use super::ffi;
use super::mbuf::{self, Mbufs};
use super::platform::{InNetEpoch, KUio, KUser, KernelPlatform};
use crate::abi::{Errno, PollEvents, XbpfD, FREAD, O_NONBLOCK};
use crate::engine::{Bpf, Descriptor, Knob, StackMarks, Tap, TapVerdict, BATCH};
use crate::packet::Chain;
use crate::platform::{Bintime, TapPacket};

type Device = Bpf<KernelPlatform>;

// The C wrapper describes a driver's list this many packets at a time.
static_assertions::const_assert_eq!(ffi::ZBPF_TAP_BATCH as usize, BATCH);
type Desc = Descriptor<KernelPlatform>;

static DEVICE: AtomicPtr<Device> = AtomicPtr::new(core::ptr::null_mut());

/// Set by a MOD_UNLOAD that found the module idle: no descriptor opens any
/// more, so none can attach between that check and destroy_dev.
static UNLOADING: AtomicBool = AtomicBool::new(false);

/// The device, between load and unload.
fn device() -> Option<&'static Device> {
    // C calls zbpf_rs_unload only after destroy_dev and the removal of
    // every tap, sysctl and event handler: no entry point runs after it.
    // SAFETY: set by zbpf_rs_load, cleared by zbpf_rs_unload (see above).
    unsafe { DEVICE.load(Ordering::Acquire).as_ref() }
}

/// The cdevpriv cookie of a new descriptor: its `Arc`'s pointer, which
/// holds one reference until [`take`] gives it back.
fn cookie_of(d: Arc<Desc>) -> *mut c_void {
    Arc::into_raw(d).cast_mut().cast()
}

/// The descriptor behind a cookie, for the call: its `Arc`, borrowed (no
/// reference taken or dropped; never take it out of the `ManuallyDrop`).
///
/// # Safety
/// `cookie` is live (the module's contract) for as long as the result is.
unsafe fn desc(cookie: *mut c_void) -> ManuallyDrop<Arc<Desc>> {
    // SAFETY: a live cookie is `cookie_of`'s pointer and its reference is
    // still held; ManuallyDrop keeps us from releasing it.
    ManuallyDrop::new(unsafe { Arc::from_raw(cookie.cast_const().cast::<Desc>()) })
}

/// Takes back the reference a cookie holds.
///
/// # Safety
/// `cookie` is live and is never used again.
unsafe fn take(cookie: *mut c_void) -> Arc<Desc> {
    // SAFETY: `cookie_of`'s pointer, whose reference the caller gives up.
    unsafe { Arc::from_raw(cookie.cast_const().cast::<Desc>()) }
}

fn errno(r: crate::abi::Result<()>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.get(),
    }
}

/// Logs a message (printf with a "zbpf: " prefix).
pub(crate) fn log(msg: &str) {
    // SAFETY: the shim prints `len` bytes.
    unsafe { ffi::zbpf_kpi_log(msg.as_ptr().cast(), msg.len()) }
}

#[no_mangle]
pub extern "C" fn zbpf_rs_load() -> c_int {
    crate::copy::choose_for_this_processor();
    let dev = Box::into_raw(Box::new(Bpf::new(KernelPlatform)));
    if DEVICE
        .compare_exchange(core::ptr::null_mut(), dev, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // SAFETY: `dev` was just created and never shared.
        drop(unsafe { Box::from_raw(dev) });
        return Errno::EBUSY.get();
    }
    0
}

#[no_mangle]
pub extern "C" fn zbpf_rs_quiesce(unloading: c_int) -> c_int {
    if unloading != 0 {
        UNLOADING.store(true, Ordering::SeqCst);
    }
    let open = device().map_or(0, |d| d.open_count());
    // Hooks that had to stay: under another module's wrapper, or on an
    // interface that calls if_input outside the epoch (KIface::set_tapped).
    // SAFETY: plain call; no lock is held here.
    let hooks = if open == 0 { unsafe { ffi::zbpf_kpi_hooks_settle() } } else { 0 };
    if open == 0 && hooks == 0 {
        return 0;
    }
    UNLOADING.store(false, Ordering::SeqCst);
    if hooks != 0 {
        log("unload refused: an interface still runs through zbpf's hook (another module \
             wrapped it after zbpf, or its driver calls if_input outside the network epoch); \
             unload the other module or destroy the interface first");
    }
    Errno::EBUSY.get()
}

#[no_mangle]
pub extern "C" fn zbpf_rs_unload() {
    let dev = DEVICE.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !dev.is_null() {
        // SAFETY: created by zbpf_rs_load; C guarantees no entry point runs
        // any more (see `device`).
        drop(unsafe { Box::from_raw(dev) });
    }
}

#[no_mangle]
pub extern "C" fn zbpf_rs_choose_replace(
    dev_bpf_taken: c_int,
    sysctl_bpf_taken: c_int,
    tunable: c_int,
) -> c_int {
    match tunable {
        0 => 0,
        1 => 1,
        _ => c_int::from(dev_bpf_taken == 0 && sysctl_bpf_taken == 0),
    }
}

/// # Safety
/// The C side's contract: see the module's `# Safety`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_rs_open(fflags: c_int, cookie: *mut *mut c_void) -> c_int {
    let Some(dev) = device() else { return Errno::ENXIO.get() };
    if UNLOADING.load(Ordering::SeqCst) {
        return Errno::ENXIO.get();
    }
    let pid = crate::platform::UserCtx::pid(&KUser);
    match dev.open(fflags & FREAD != 0, pid) {
        Ok(d) => {
            d.notifier().bind(Arc::as_ptr(&d).cast(), d.state.raw());
            // SAFETY: C passes a valid out-pointer.
            unsafe { *cookie = cookie_of(d) };
            0
        }
        Err(e) => e.get(),
    }
}

/// # Safety
/// The C side's contract: see the module's `# Safety`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_rs_close(cookie: *mut c_void) {
    let Some(dev) = device() else { return };
    // SAFETY: the cdevpriv destructor passes a live cookie, once, last.
    let d = unsafe { take(cookie) };
    dev.close(d);
}

/// # Safety
/// The C side's contract: see the module's `# Safety`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_rs_read(
    cookie: *mut c_void,
    uio: *mut ffi::uio,
    ioflag: c_int,
) -> c_int {
    let Some(dev) = device() else { return Errno::ENXIO.get() };
    // SAFETY: C passes a live cookie.
    let d = unsafe { desc(cookie) };
    let pid = crate::platform::UserCtx::pid(&KUser);
    errno(dev.read(&d, &mut KUio(uio), ioflag & O_NONBLOCK != 0, pid).map(|_| ()))
}

/// # Safety
/// The C side's contract: see the module's `# Safety`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_rs_write(
    cookie: *mut c_void,
    uio: *mut ffi::uio,
    _ioflag: c_int,
) -> c_int {
    let Some(dev) = device() else { return Errno::ENXIO.get() };
    // SAFETY: C passes a live cookie.
    let d = unsafe { desc(cookie) };
    let pid = crate::platform::UserCtx::pid(&KUser);
    errno(dev.write(&d, &mut KUio(uio), pid).map(|_| ()))
}

/// # Safety
/// The C side's contract: see the module's `# Safety`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_rs_ioctl(
    cookie: *mut c_void,
    cmd: c_ulong,
    data: *mut u8,
    datalen: usize,
) -> c_int {
    let Some(dev) = device() else { return Errno::ENXIO.get() };
    // The generic ioctl layer gives a kernel buffer of IOCPARM_LEN(cmd).
    let buf: &mut [u8] = if data.is_null() || datalen == 0 {
        &mut []
    } else {
        // SAFETY: `data` is valid for `datalen` bytes during the call.
        unsafe { core::slice::from_raw_parts_mut(data, datalen) }
    };
    // SAFETY: C passes a live cookie (attaching needs the Arc).
    let d = unsafe { desc(cookie) };
    errno(dev.ioctl(&d, cmd, buf, &mut KUser))
}

/// # Safety
/// The C side's contract: see the module's `# Safety`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_rs_poll(
    cookie: *mut c_void,
    events: c_int,
    td: *mut ffi::thread,
) -> c_int {
    let ev = PollEvents::from_bits_truncate(events);
    let (Some(dev), false) = (device(), cookie.is_null()) else {
        // No descriptor: report what FreeBSD reports for a detached one.
        return (ev & crate::engine::POLL_DETACHED).bits();
    };
    // SAFETY: C passes a live cookie.
    let d = unsafe { desc(cookie) };
    let pid = crate::platform::UserCtx::pid(&KUser);
    dev.poll(&d, ev, pid, || d.notifier().record(td)).bits()
}

/// # Safety
/// The C side's contract: see the module's `# Safety`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_rs_kqfilter(cookie: *mut c_void, kn: *mut ffi::knote) -> c_int {
    let Some(dev) = device() else { return Errno::ENXIO.get() };
    // SAFETY: C passes a live cookie.
    let d = unsafe { desc(cookie) };
    // SAFETY: `kn` is the knote d_kqfilter received.
    let filter = unsafe { ffi::zbpf_kpi_knote_filter(kn) };
    match dev.kq_attach(filter as i16) {
        Ok(f) => {
            let which = match f {
                crate::engine::KqFilter::Read => ffi::ZBPF_KQ_READ,
                crate::engine::KqFilter::Write => ffi::ZBPF_KQ_WRITE,
            };
            d.notifier().knote_attach(kn, which as c_int);
            0
        }
        Err(e) => e.get(),
    }
}

/// # Safety
/// The C side's contract: see the module's `# Safety`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_rs_kq_event(
    cookie: *mut c_void,
    filter: c_int,
    data: *mut i64,
) -> c_int {
    let Some(dev) = device() else { return 0 };
    // SAFETY: the notes are drained before the descriptor goes away.
    let d = unsafe { desc(cookie) };
    let f = if filter == ffi::ZBPF_KQ_WRITE as c_int {
        crate::engine::KqFilter::Write
    } else {
        crate::engine::KqFilter::Read
    };
    match dev.with_state(&d, |st| dev.kq_event(&d, st, f)) {
        Some(n) => {
            // SAFETY: C passes a valid out-pointer.
            unsafe { *data = n };
            1
        }
        None => 0,
    }
}

/// # Safety
/// The C side's contract: see the module's `# Safety`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_rs_timer(cookie: *mut c_void, token: u64) {
    // SAFETY: the callout is drained before the descriptor goes away.
    let d = unsafe { desc(cookie) };
    // SAFETY: the callout runs with the descriptor's mutex held
    // (zbpf_kpi_notes_bind) and leaves releasing it to us.
    let st = unsafe { d.state.adopt() };
    match device() {
        Some(dev) => dev.timer_fired_locked(&d, st, token),
        None => drop(st),
    }
}

/// # Safety
/// The C side's contract: see the module's `# Safety`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_rs_tap(
    tap: *mut c_void,
    pkts: *const ffi::zbpf_packet,
    n: u32,
) -> u32 {
    let Some(dev) = device() else { return 0 };
    if pkts.is_null() || n == 0 {
        return 0;
    }
    // SAFETY: the wrapper passes `n` packet descriptions (at most
    // ZBPF_TAP_BATCH, clamped again here) for this call.
    let pkts = unsafe { core::slice::from_raw_parts(pkts, (n as usize).min(BATCH)) };
    // The registry keeps the tap alive until the hook's removal has waited
    // for every wrapper (zbpf_kpi_tap_remove).
    // SAFETY: the hook hands back the live tap KIface::set_tapped gave it.
    let tap = unsafe { &*tap.cast_const().cast::<Tap<KernelPlatform>>() };
    // SAFETY: the C wrappers call us inside the network epoch.
    let section = unsafe { InNetEpoch::assume() };
    if let Some(clear) = tap_whole(dev, tap, &section, pkts) {
        return clear;
    }
    // A packet in a chain of mbufs: every packet through the chain's path.
    // The packets to deliver, by index; the others are hidden (feedback)
    // and get their mark cleared.
    let mut kept = [0usize; BATCH];
    let mut count = 0;
    let mut clear = 0u32;
    for (i, pkt) in pkts.iter().enumerate() {
        if marks_of(pkt).verdict() == TapVerdict::HideAndClearMark {
            clear |= 1 << i;
        } else if let Some(slot) = kept.get_mut(count) {
            *slot = i;
            count += 1;
        }
    }
    let Some(first) = pkts.get(kept[0]).filter(|_| count > 0) else { return clear };
    let desc = |j: usize| kept.get(j).and_then(|&i| pkts.get(i)).unwrap_or(first);
    // SAFETY: each chain is neither freed nor changed during the tap.
    let mbufs: [(Mbufs<'_>, usize); BATCH] =
        core::array::from_fn(|j| unsafe { Mbufs::new(desc(j)) });
    let chains: [Chain<'_, Mbufs<'_>>; BATCH] =
        core::array::from_fn(|j| Chain::with_len(&mbufs[j].0, mbufs[j].1));
    let batch: [TapPacket<'_, Chain<'_, Mbufs<'_>>>; BATCH] = core::array::from_fn(|j| {
        let pkt = desc(j);
        TapPacket { bytes: &chains[j], inbound: marks_of(pkt).inbound, hw_time: hw_time(dev, pkt) }
    });
    dev.deliver_batch(tap, &section, batch.get(..count).unwrap_or(&[]));
    clear
}

/// The usual case, every packet whole in its one mbuf: their bytes as
/// slices, delivered; the mask of marks to clear. `None`, having delivered
/// nothing, if a packet is in a chain.
///
/// The batch is written in place, packet by packet: an array built and then
/// moved is a call to memcpy in the kernel build (no vector registers, so
/// the compiler copies more than 64 bytes out of line), once per batch.
fn tap_whole(
    dev: &Device,
    tap: &Tap<KernelPlatform>,
    section: &InNetEpoch,
    pkts: &[ffi::zbpf_packet],
) -> Option<u32> {
    let mut batch = [const { MaybeUninit::<TapPacket<'_, [u8]>>::uninit() }; BATCH];
    let mut count = 0;
    let mut clear = 0u32;
    for (i, pkt) in pkts.iter().enumerate() {
        let marks = marks_of(pkt);
        if marks.verdict() == TapVerdict::HideAndClearMark {
            clear |= 1 << i;
            continue;
        }
        // SAFETY: each chain is neither freed nor changed during the tap.
        let bytes = unsafe { mbuf::whole(pkt) }?;
        let slot = batch.get_mut(count)?;
        slot.write(TapPacket { bytes, inbound: marks.inbound, hw_time: hw_time(dev, pkt) });
        count += 1;
    }
    let written = batch.get(..count)?;
    // A MaybeUninit<T> has T's layout, and the first `count` were written
    // above (a TapPacket holds references and plain values: nothing to drop).
    // SAFETY: `written` is exactly those `count` initialized packets.
    let packets: &[TapPacket<'_, [u8]>] =
        unsafe { core::slice::from_raw_parts(written.as_ptr().cast(), count) };
    if count > 0 {
        dev.deliver_batch(tap, section, packets);
    }
    Some(clear)
}

/// What the stack marked on a packet.
fn marks_of(pkt: &ffi::zbpf_packet) -> StackMarks {
    StackMarks {
        inbound: pkt.flags & ffi::ZBPF_PKT_INBOUND != 0,
        promisc: pkt.flags & ffi::ZBPF_PKT_PROMISC != 0,
        rcvif: pkt.flags & ffi::ZBPF_PKT_RCVIF != 0,
    }
}

/// The timestamp the driver or the stack attached to a packet, as uptime.
fn hw_time(dev: &Device, pkt: &ffi::zbpf_packet) -> Option<Bintime> {
    let time = Bintime { sec: pkt.tstamp.sec, frac: pkt.tstamp.frac };
    if pkt.flags & ffi::ZBPF_PKT_TSTAMP_UPTIME != 0 {
        Some(time)
    } else if pkt.flags & ffi::ZBPF_PKT_TSTAMP_WALL != 0 {
        Some(time - crate::platform::Platform::boottime(&dev.platform))
    } else {
        None
    }
}

/// # Safety
/// The C side's contract: see the module's `# Safety`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_rs_ifnet_departure(ifp: *mut ffi::ifnet) {
    let Some(dev) = device() else { return };
    // A rename is announced as a departure and an arrival: ignore it.
    // SAFETY: the event handler runs with the departing ifnet still valid.
    if unsafe { ffi::zbpf_kpi_if_is_renaming(ifp) } != 0 {
        return;
    }
    dev.iface_departed(ifp as usize);
    // SAFETY: as above; every tap on it is gone.
    unsafe { ffi::zbpf_kpi_tap_forget(ifp) };
}

#[no_mangle]
pub extern "C" fn zbpf_rs_sysctl_get(knob: c_int) -> c_int {
    let (Some(dev), Some(k)) = (device(), knob_of(knob)) else { return 0 };
    dev.config.get(k)
}

fn knob_of(knob: c_int) -> Option<Knob> {
    Some(match u32::try_from(knob).ok()? {
        ffi::ZBPF_SYSCTL_BUFSIZE => Knob::BufSize,
        ffi::ZBPF_SYSCTL_MAXBUFSIZE => Knob::MaxBufSize,
        ffi::ZBPF_SYSCTL_MAXINSNS => Knob::MaxInsns,
        ffi::ZBPF_SYSCTL_ZEROCOPY_ENABLE => Knob::ZerocopyEnable,
        ffi::ZBPF_SYSCTL_OPTIMIZE_WRITERS => Knob::OptimizeWriters,
        ffi::ZBPF_SYSCTL_JIT_ENABLE => Knob::JitEnable,
        _ => return None,
    })
}

#[no_mangle]
pub extern "C" fn zbpf_rs_sysctl_set(knob: c_int, value: c_int) -> c_int {
    let Some(dev) = device() else { return Errno::ENXIO.get() };
    let Some(k) = knob_of(knob) else { return Errno::EINVAL.get() };
    errno(dev.config.set(k, value))
}

/// # Safety
/// The C side's contract: see the module's `# Safety`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_rs_stats(buf: *mut u8, len: usize, needed: *mut usize) -> c_int {
    let Some(dev) = device() else { return Errno::ENXIO.get() };
    let records: Vec<XbpfD> = dev.stats();
    let want = records.len() * XbpfD::SIZE;
    // SAFETY: C passes a valid out-pointer.
    unsafe { *needed = want };
    if buf.is_null() {
        return 0;
    }
    if len < want {
        return Errno::ENOMEM.get();
    }
    // SAFETY: `buf` is valid for `len` >= `want` bytes.
    let out = unsafe { core::slice::from_raw_parts_mut(buf, want) };
    for (chunk, r) in out.chunks_exact_mut(XbpfD::SIZE).zip(records.iter()) {
        r.encode(chunk);
    }
    0
}

/// # Safety
/// The C side's contract: see the module's `# Safety`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_rs_stats_write(buf: *const u8, len: usize) -> c_int {
    let Some(dev) = device() else { return Errno::ENXIO.get() };
    if buf.is_null() {
        return Errno::EINVAL.get();
    }
    // SAFETY: `buf` is valid for `len` bytes.
    let new = unsafe { core::slice::from_raw_parts(buf, len) };
    errno(dev.stats_write(new))
}
