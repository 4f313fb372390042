//! [`KernelPlatform`]: the engine's platform over the C shims.

use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use super::ffi;
use crate::abi::{dlt, Errno, Result, UserAddr, IFNAMSIZ};
use crate::platform::epoch::EpochSection;
use crate::platform::{
    Bintime, Cast, Counter, DescLock, GlobalLock, HeldPages, NetIf, Notifier, Outgoing, Platform,
    ReadSink, Sleep, TapCookie, UserCtx, WriteSource,
};

/// A kernel errno into a `Result`.
fn check(err: i32) -> Result<()> {
    if err == 0 {
        Ok(())
    } else {
        // An unknown value from the kernel is still an error.
        Err(Errno::new(err).unwrap_or(Errno::EIO))
    }
}

/// The kernel as the engine's platform.
pub struct KernelPlatform;

/// An mtx(9) around a `T`; the mutex is allocated by the C side so that it
/// never moves.
pub struct KMutex<T> {
    mtx: NonNull<ffi::zbpf_mtx>,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex serialises every access to `data`, so sharing the lock
// between threads only needs `T: Send`, as for std's Mutex.
unsafe impl<T: Send> Send for KMutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for KMutex<T> {}

/// The guard of a [`KMutex`].
pub struct KGuard<'a, T> {
    lock: &'a KMutex<T>,
}

impl<T> Deref for KGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while the mutex is held.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for KGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while the mutex is held, and `&mut
        // self` makes this the only reference through the guard.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for KGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard took the mutex and releases it once.
        unsafe { ffi::zbpf_kpi_mtx_unlock(self.lock.mtx.as_ptr()) }
    }
}

fn alloc_or_panic<T>(p: *mut T) -> NonNull<T> {
    // M_WAITOK allocations do not fail; a null here is a broken kernel.
    NonNull::new(p).unwrap_or_else(|| panic!("zbpf: M_WAITOK allocation returned NULL"))
}

impl<T: Send> DescLock<T> for KMutex<T> {
    type Guard<'a>
        = KGuard<'a, T>
    where
        Self: 'a;

    fn new(value: T) -> Self {
        // SAFETY: plain call; the mutex is initialised by the shim.
        let mtx = alloc_or_panic(unsafe { ffi::zbpf_kpi_mtx_alloc() });
        KMutex { mtx, data: UnsafeCell::new(value) }
    }

    fn lock(&self) -> KGuard<'_, T> {
        // SAFETY: the mutex lives as long as `self`.
        unsafe { ffi::zbpf_kpi_mtx_lock(self.mtx.as_ptr()) };
        KGuard { lock: self }
    }

    fn sleep<'a>(
        &'a self,
        guard: KGuard<'a, T>,
        ticks: u32,
        interruptible: bool,
    ) -> (KGuard<'a, T>, Sleep) {
        let chan = (self as *const Self).cast::<c_void>();
        let ticks = i32::try_from(ticks).unwrap_or(i32::MAX);
        // SAFETY: `guard` proves the mutex is held; mtx_sleep releases and
        // retakes it, so the guard stays valid across the call.
        let err = unsafe {
            ffi::zbpf_kpi_mtx_sleep(self.mtx.as_ptr(), chan, i32::from(interruptible), ticks)
        };
        let how = match err {
            0 => Sleep::Woken,
            e if e == Errno::EWOULDBLOCK.get() => Sleep::TimedOut,
            e => Sleep::Interrupted(Errno::new(e).unwrap_or(Errno::EINTR)),
        };
        (guard, how)
    }

    fn wakeup(&self) {
        // SAFETY: wakeup(9) only compares the channel address.
        unsafe { ffi::zbpf_kpi_wakeup((self as *const Self).cast()) }
    }
}

impl<T> KMutex<T> {
    /// The mtx(9), for a callout that runs with it (callout_init_mtx).
    pub fn raw(&self) -> *mut ffi::zbpf_mtx {
        self.mtx.as_ptr()
    }

    /// The guard of a lock this thread already holds (a callout bound to
    /// the mutex runs with it held); dropping it releases the mutex.
    ///
    /// # Safety
    /// The calling thread must hold the mutex, and nothing else may
    /// release it.
    pub unsafe fn adopt(&self) -> KGuard<'_, T> {
        KGuard { lock: self }
    }
}

impl<T> Drop for KMutex<T> {
    fn drop(&mut self) {
        // SAFETY: no guard can outlive `self`; the mutex is freed once.
        unsafe { ffi::zbpf_kpi_mtx_free(self.mtx.as_ptr()) }
    }
}

/// An sx(9) around a `T`, exclusive only.
pub struct KSx<T> {
    sx: NonNull<ffi::zbpf_sx>,
    data: UnsafeCell<T>,
}

// SAFETY: the sx lock serialises every access to `data`.
unsafe impl<T: Send> Send for KSx<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for KSx<T> {}

/// The guard of a [`KSx`].
pub struct KSxGuard<'a, T> {
    lock: &'a KSx<T>,
}

impl<T> Deref for KSxGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while the lock is held.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for KSxGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while the lock is held exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for KSxGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard took the lock and releases it once.
        unsafe { ffi::zbpf_kpi_sx_xunlock(self.lock.sx.as_ptr()) }
    }
}

impl<T: Send> GlobalLock<T> for KSx<T> {
    type Guard<'a>
        = KSxGuard<'a, T>
    where
        Self: 'a;

    fn new(value: T) -> Self {
        // SAFETY: plain call; the lock is initialised by the shim.
        let sx = alloc_or_panic(unsafe { ffi::zbpf_kpi_sx_alloc() });
        KSx { sx, data: UnsafeCell::new(value) }
    }

    fn lock(&self) -> KSxGuard<'_, T> {
        // SAFETY: the lock lives as long as `self`.
        unsafe { ffi::zbpf_kpi_sx_xlock(self.sx.as_ptr()) };
        KSxGuard { lock: self }
    }
}

impl<T> Drop for KSx<T> {
    fn drop(&mut self) {
        // SAFETY: freed once, with no guard alive.
        unsafe { ffi::zbpf_kpi_sx_free(self.sx.as_ptr()) }
    }
}

/// A counter(9).
pub struct KCounter(NonNull<u64>);

// SAFETY: counter(9) is designed for concurrent updates from any CPU.
unsafe impl Send for KCounter {}
// SAFETY: as above.
unsafe impl Sync for KCounter {}

impl Counter for KCounter {
    fn new() -> Self {
        // SAFETY: plain call (M_WAITOK).
        KCounter(alloc_or_panic(unsafe { ffi::zbpf_kpi_counter_alloc() }))
    }
    /// counter_u64_add as amd64's headers inline it (zpcpu_add in
    /// machine/pcpu.h): one add at the counter's offset from %gs, the
    /// current CPU's pcpu base. Inline here too, so that the three or four
    /// bumps per packet and reader are not calls into the shims.
    #[inline]
    fn add(&self, n: u64) {
        // `self.0` came from counter_u64_alloc and lives as long as `self`;
        // on amd64 such a counter is its CPU slot's offset from the %gs
        // base, which the kernel keeps at the running CPU's pcpu area. One
        // instruction: a migration cannot split it (the headers rely on the
        // same).
        // SAFETY: a live counter(9), added to in one %gs-relative add.
        unsafe {
            core::arch::asm!(
                "add qword ptr gs:[{slot}], {n}",
                slot = in(reg) self.0.as_ptr(),
                n = in(reg) n,
                options(nostack),
            )
        }
    }
    fn fetch(&self) -> u64 {
        // SAFETY: as above.
        unsafe { ffi::zbpf_kpi_counter_fetch(self.0.as_ptr()) }
    }
    fn zero(&self) {
        // SAFETY: as above.
        unsafe { ffi::zbpf_kpi_counter_zero(self.0.as_ptr()) }
    }
}

impl Drop for KCounter {
    fn drop(&mut self) {
        // SAFETY: freed once.
        unsafe { ffi::zbpf_kpi_counter_free(self.0.as_ptr()) }
    }
}

/// selinfo, knlist, sigio and callout of one descriptor.
pub struct KNotifier(NonNull<ffi::zbpf_notes>);

// SAFETY: every shim below locks what it touches.
unsafe impl Send for KNotifier {}
// SAFETY: as above.
unsafe impl Sync for KNotifier {}

impl KNotifier {
    /// Makes the timer and kqueue callbacks pass `cookie` (the descriptor),
    /// and the timer run with the descriptor's mutex `mtx`.
    pub fn bind(&self, cookie: *const c_void, mtx: *mut ffi::zbpf_mtx) {
        // The mutex is the descriptor's, which outlives its notes' timer
        // (drained at close); the cookie is only stored.
        // SAFETY: the notes live as long as `self`, the mutex longer.
        unsafe { ffi::zbpf_kpi_notes_bind(self.0.as_ptr(), cookie.cast_mut(), mtx) }
    }

    /// selrecord(td).
    pub fn record(&self, td: *mut ffi::thread) {
        // SAFETY: `td` is the polling thread handed to d_poll.
        unsafe { ffi::zbpf_kpi_select_record(self.0.as_ptr(), td) }
    }

    /// Attaches a knote.
    pub fn knote_attach(&self, kn: *mut ffi::knote, filter: i32) {
        // SAFETY: `kn` is the live knote d_kqfilter received.
        unsafe { ffi::zbpf_kpi_knote_attach(self.0.as_ptr(), kn, filter) }
    }
}

impl Notifier for KNotifier {
    fn select_wakeup(&self) {
        // SAFETY: the notes live as long as `self`.
        unsafe { ffi::zbpf_kpi_select_wakeup(self.0.as_ptr()) }
    }
    fn signal(&self, sig: u32) {
        // SAFETY: as above.
        unsafe { ffi::zbpf_kpi_signal(self.0.as_ptr(), sig as i32) }
    }
    fn set_owner(&self, owner: i32) -> Result<()> {
        // SAFETY: as above.
        check(unsafe { ffi::zbpf_kpi_set_owner(self.0.as_ptr(), owner) })
    }
    fn owner(&self) -> i32 {
        // SAFETY: as above.
        unsafe { ffi::zbpf_kpi_get_owner(self.0.as_ptr()) }
    }
    fn arm_timer(&self, ticks: u32, token: u64) {
        let ticks = i32::try_from(ticks).unwrap_or(i32::MAX);
        // SAFETY: as above.
        unsafe { ffi::zbpf_kpi_timer_arm(self.0.as_ptr(), ticks, token) }
    }
    fn stop_timer(&self) {
        // SAFETY: as above.
        unsafe { ffi::zbpf_kpi_timer_stop(self.0.as_ptr()) }
    }
    fn drain(&self) {
        // SAFETY: the notes live as long as `self`; drained once, at close.
        unsafe { ffi::zbpf_kpi_notes_drain(self.0.as_ptr()) }
    }
}

impl Drop for KNotifier {
    fn drop(&mut self) {
        // SAFETY: freed once, after `drain` (Bpf::close) stopped callbacks.
        unsafe { ffi::zbpf_kpi_notes_free(self.0.as_ptr()) }
    }
}

/// A referenced ifnet.
pub struct KIface {
    ifp: NonNull<ffi::ifnet>,
    name: [u8; IFNAMSIZ],
    name_len: usize,
    dlts: [(u32, u32); 1],
}

// SAFETY: an ifnet reference may be used and released from any thread.
unsafe impl Send for KIface {}
// SAFETY: the shims only read the ifnet or call its thread-safe methods.
unsafe impl Sync for KIface {}

/// The data-link type bpf offers for an interface of type `if_type` whose
/// driver is `dname`, if zbpf can tap it: its hooks wrap if_input and
/// if_transmit, which carry Ethernet frames. lagg(4) and if_bridge(4)
/// receive through their ports (ether_input hands the frames over), never
/// through their own if_input, so zbpf would see only what they send:
/// they are refused. A lagg port (also of type IFT_IEEE8023ADLAG, under
/// its own driver's name) is tapped like any Ethernet.
pub(crate) fn dlt_of(if_type: i32, dname: &[u8]) -> Option<(u32, u32)> {
    const IFT_ETHER: i32 = 0x06;
    const IFT_IEEE8023ADLAG: i32 = 0xa1;
    const IFT_L2VLAN: i32 = 0x87;
    match if_type {
        IFT_IEEE8023ADLAG if dname == b"lagg" => None,
        IFT_ETHER | IFT_IEEE8023ADLAG | IFT_L2VLAN => Some((dlt::DLT_EN10MB, 14)),
        _ => None,
    }
}

/// A NUL-terminated C string's bytes (empty for NULL).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives the result.
unsafe fn c_bytes<'a>(p: *const core::ffi::c_char) -> &'a [u8] {
    if p.is_null() {
        return &[];
    }
    // SAFETY: see the function's contract.
    unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes()
}

impl KIface {
    /// Takes ownership of a referenced ifnet; releases it if bpf cannot
    /// tap that kind of interface.
    fn from_ref(ifp: NonNull<ffi::ifnet>) -> Option<KIface> {
        // SAFETY: `ifp` is referenced, so its fields stay readable.
        let if_type = unsafe { ffi::zbpf_kpi_if_type(ifp.as_ptr()) };
        // SAFETY: as above; if_dname is a static string of the driver.
        let dname = unsafe { c_bytes(ffi::zbpf_kpi_if_dname(ifp.as_ptr())) };
        let Some(dlt) = dlt_of(if_type, dname) else {
            // SAFETY: drops the reference we were given.
            unsafe { ffi::zbpf_kpi_if_rele(ifp.as_ptr()) };
            return None;
        };
        let mut name = [0u8; IFNAMSIZ];
        // SAFETY: if_xname is a NUL-terminated array of IFNAMSIZ bytes.
        let bytes = unsafe { c_bytes(ffi::zbpf_kpi_if_name(ifp.as_ptr())) };
        let name_len = bytes.len().min(IFNAMSIZ - 1);
        name[..name_len].copy_from_slice(&bytes[..name_len]);
        Some(KIface { ifp, name, name_len, dlts: [dlt] })
    }

    /// The ifnet.
    pub fn ifp(&self) -> *mut ffi::ifnet {
        self.ifp.as_ptr()
    }
}

impl Clone for KIface {
    fn clone(&self) -> Self {
        // SAFETY: we hold a reference, so taking another is valid.
        unsafe { ffi::zbpf_kpi_if_ref(self.ifp.as_ptr()) };
        KIface { ifp: self.ifp, name: self.name, name_len: self.name_len, dlts: self.dlts }
    }
}

impl Drop for KIface {
    fn drop(&mut self) {
        // SAFETY: releases the reference this handle owns.
        unsafe { ffi::zbpf_kpi_if_rele(self.ifp.as_ptr()) }
    }
}

impl NetIf for KIface {
    fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }
    fn name_now(&self) -> [u8; IFNAMSIZ] {
        let mut out = [0u8; IFNAMSIZ];
        // if_rename writes if_xname whole; bpf reads it without a lock too.
        // SAFETY: referenced ifnet; if_xname is NUL-terminated in IFNAMSIZ.
        let now = unsafe { c_bytes(ffi::zbpf_kpi_if_name(self.ifp.as_ptr())) };
        for (d, s) in out.iter_mut().zip(now.iter().take(IFNAMSIZ - 1)) {
            *d = *s;
        }
        out
    }
    fn dlts(&self) -> &[(u32, u32)] {
        &self.dlts
    }
    fn is_up(&self) -> bool {
        // SAFETY: the ifnet is referenced.
        unsafe { ffi::zbpf_kpi_if_is_up(self.ifp.as_ptr()) != 0 }
    }
    fn mtu(&self) -> u32 {
        // SAFETY: as above.
        unsafe { ffi::zbpf_kpi_if_mtu(self.ifp.as_ptr()) }
    }
    fn lladdr(&self) -> Option<[u8; 6]> {
        let mut mac = [0u8; 6];
        // SAFETY: the shim writes at most 6 bytes.
        let ok = unsafe { ffi::zbpf_kpi_if_lladdr(self.ifp.as_ptr(), mac.as_mut_ptr()) };
        (ok != 0).then_some(mac)
    }
    fn set_promisc(&self, on: bool) -> Result<()> {
        // SAFETY: the ifnet is referenced.
        check(unsafe { ffi::zbpf_kpi_ifpromisc(self.ifp.as_ptr(), i32::from(on)) })
    }
    fn output(&self, out: &Outgoing<'_>) -> Result<()> {
        let mut flags = 0;
        if out.hdrcmplt {
            flags |= ffi::ZBPF_OUT_HDRCMPLT;
        }
        if out.hide_from_taps {
            flags |= ffi::ZBPF_OUT_HIDE;
        }
        flags |= match out.cast {
            Cast::Unicast => 0,
            Cast::Broadcast => ffi::ZBPF_OUT_BCAST,
            Cast::Multicast => ffi::ZBPF_OUT_MCAST,
        };
        // SAFETY: `frame` is valid for `len` bytes during the call.
        check(unsafe {
            ffi::zbpf_kpi_if_output(
                self.ifp.as_ptr(),
                out.frame.as_ptr(),
                out.frame.len(),
                out.link_hdrlen,
                flags as i32,
                i32::from(out.pcp),
            )
        })
    }
    fn input(&self, frame: &[u8]) -> Result<()> {
        // SAFETY: as above.
        check(unsafe { ffi::zbpf_kpi_if_input(self.ifp.as_ptr(), frame.as_ptr(), frame.len()) })
    }
    fn set_tapped(&self, tap: Option<TapCookie>) -> Result<()> {
        let ifp = self.ifp.as_ptr();
        match tap {
            // The hook hands `tap` back only until the removal below, which
            // returns once no wrapper can be using it (entry.rs: zbpf_rs_tap).
            // SAFETY: the ifnet is referenced and the tap outlives its hook.
            Some(tap) => check(unsafe { ffi::zbpf_kpi_tap_install(ifp, tap.0.as_ptr()) }),
            None => {
                // A driver that calls if_input outside the epoch may be
                // about to enter the wrapper whatever we wait for: its hook
                // stays (passing frames on) until the interface leaves.
                // SAFETY: the ifnet is referenced.
                let keep = unsafe { ffi::zbpf_kpi_if_needs_epoch(ifp) } != 0;
                // SAFETY: as above. EBUSY says the hook stays under
                // another module's wrapper: unload waits for it.
                let _ = unsafe { ffi::zbpf_kpi_tap_remove(ifp, i32::from(keep)) };
                Ok(())
            }
        }
    }
}

/// Held user pages: vm_page_t handles and their direct-map addresses.
pub struct KPages {
    pages: Vec<*mut c_void>,
    kva: Vec<NonNull<u8>>,
    /// The pages mapped one after the other (zbpf_kpi_map_pages), when
    /// kernel address space was left for them.
    span: Option<NonNull<u8>>,
}

// SAFETY: wired pages and their direct-map addresses are valid on every CPU.
unsafe impl Send for KPages {}
// SAFETY: as above; writes are serialised by the descriptor lock.
unsafe impl Sync for KPages {}

// `kva` holds the direct-map address of each page `pages` holds (wired by
// zbpf_kpi_hold_pages, released only in `drop`): page-aligned, PAGE_SIZE
// bytes each, distinct, valid from every CPU, and user memory, so no Rust
// object lives there; `page` indexes the fixed `kva`. `span`, when set, maps
// the same pages in order (pmap_qenter(9)) until `drop` unmaps it before
// releasing them.
// SAFETY: held pages and their mappings, as HeldPages requires.
unsafe impl HeldPages for KPages {
    fn count(&self) -> usize {
        self.kva.len()
    }
    fn page(&self, index: usize) -> Option<NonNull<u8>> {
        self.kva.get(index).copied()
    }
    fn span(&self) -> Option<NonNull<u8>> {
        self.span
    }
}

impl Drop for KPages {
    fn drop(&mut self) {
        if let Some(span) = self.span.take() {
            // SAFETY: the mapping zbpf_kpi_map_pages made of these pages,
            // undone once, before they are released below.
            unsafe { ffi::zbpf_kpi_unmap_pages(span.as_ptr().cast(), self.pages.len() as i32) }
        }
        // SAFETY: the pages were held by zbpf_kpi_hold_pages and are
        // released exactly once.
        unsafe { ffi::zbpf_kpi_release_pages(self.pages.as_mut_ptr(), self.pages.len() as i32) }
    }
}

/// The calling thread's process.
pub struct KUser;

impl UserCtx for KUser {
    type Pages = KPages;

    fn copy_in(&mut self, src: UserAddr, dst: &mut [u8]) -> Result<()> {
        // SAFETY: copyin(9) checks the user range and writes only `dst`.
        check(unsafe { ffi::zbpf_kpi_copyin(src.0, dst.as_mut_ptr().cast(), dst.len()) })
    }

    fn copy_out(&mut self, src: &[u8], dst: UserAddr) -> Result<()> {
        // SAFETY: copyout(9) checks the user range and reads only `src`.
        check(unsafe { ffi::zbpf_kpi_copyout(src.as_ptr().cast(), dst.0, src.len()) })
    }

    fn hold_pages(&mut self, addr: UserAddr, npages: usize) -> Result<KPages> {
        let n = i32::try_from(npages).map_err(|_| Errno::EINVAL)?;
        let mut pages: Vec<*mut c_void> = Vec::new();
        let mut kva: Vec<*mut c_void> = Vec::new();
        pages.try_reserve_exact(npages).map_err(|_| Errno::ENOMEM)?;
        kva.try_reserve_exact(npages).map_err(|_| Errno::ENOMEM)?;
        pages.resize(npages, core::ptr::null_mut());
        kva.resize(npages, core::ptr::null_mut());
        // SAFETY: both arrays have room for `npages` entries; on error the
        // shim has released everything it held.
        check(unsafe {
            ffi::zbpf_kpi_hold_pages(addr.0, n, pages.as_mut_ptr(), kva.as_mut_ptr())
        })?;
        let kva: Vec<NonNull<u8>> =
            kva.into_iter().filter_map(|p| NonNull::new(p.cast())).collect();
        let mut held = KPages { pages, kva, span: None };
        if held.kva.len() != npages {
            return Err(Errno::EFAULT);
        }
        // Without kernel address space left, the pages stay apart.
        // SAFETY: `pages` are the `n` pages just held; `drop` unmaps them.
        held.span = NonNull::new(
            unsafe { ffi::zbpf_kpi_map_pages(held.pages.as_mut_ptr(), n) }.cast::<u8>(),
        );
        Ok(held)
    }

    fn pid(&self) -> i32 {
        // SAFETY: plain call.
        unsafe { ffi::zbpf_kpi_curpid() }
    }
}

/// A `struct uio` of a read or a write.
pub struct KUio(pub *mut ffi::uio);

impl ReadSink for KUio {
    fn resid(&self) -> usize {
        // SAFETY: the uio is the one handed to d_read for this call.
        unsafe { ffi::zbpf_kpi_uio_resid(self.0) }
    }
    fn copy_out(&mut self, data: &[u8]) -> Result<()> {
        // SAFETY: uiomove for UIO_READ only reads `data`.
        check(unsafe { ffi::zbpf_kpi_uiomove(data.as_ptr().cast_mut().cast(), data.len(), self.0) })
    }
}

impl WriteSource for KUio {
    fn resid(&self) -> usize {
        // SAFETY: the uio is the one handed to d_write for this call.
        unsafe { ffi::zbpf_kpi_uio_resid(self.0) }
    }
    fn copy_in(&mut self, dst: &mut [u8]) -> Result<()> {
        // SAFETY: uiomove for UIO_WRITE writes only `dst`.
        check(unsafe { ffi::zbpf_kpi_uiomove(dst.as_mut_ptr().cast(), dst.len(), self.0) })
    }
}

/// A compiled filter in malloc_exec(9) memory.
pub struct KNative {
    /// What zbpf_kpi_exec_alloc returned, to free.
    base: NonNull<c_void>,
    /// The function, inside that memory.
    entry: NonNull<c_void>,
}

// SAFETY: the code is immutable once copied and keeps no state.
unsafe impl Send for KNative {}
// SAFETY: as above: concurrent calls share only read-only code.
unsafe impl Sync for KNative {}

// SAFETY: `native_code` filled this memory with the JIT's code for the
// program, and it is freed only when this value drops.
unsafe impl crate::filter::NativeCode for KNative {
    fn entry(&self) -> crate::filter::NativeEntry {
        // SAFETY: the memory holds a function with the JIT's calling
        // convention (filter::jit's contract).
        unsafe {
            core::mem::transmute::<*mut c_void, crate::filter::NativeEntry>(self.entry.as_ptr())
        }
    }
}

impl Drop for KNative {
    fn drop(&mut self) {
        // SAFETY: allocated by zbpf_kpi_exec_alloc and freed once; the
        // program holding it is gone, so no call can be running.
        unsafe { ffi::zbpf_kpi_exec_free(self.base.as_ptr()) }
    }
}

/// Proof of being inside the network epoch: the C wrappers enter it before
/// calling `zbpf_rs_tap`.
pub struct InNetEpoch(());

impl InNetEpoch {
    /// # Safety
    /// The caller must be inside the network epoch for as long as the value
    /// lives.
    pub(crate) unsafe fn assume() -> InNetEpoch {
        InNetEpoch(())
    }
}

// SAFETY: a value exists only where `assume`'s caller is inside the network
// epoch (the field is private), and net_epoch_wait waits for every section
// of that epoch in progress.
unsafe impl EpochSection for InNetEpoch {
    fn wait_readers() {
        // EpochSection::wait_readers may sleep: callers hold no spin or
        // descriptor lock.
        // SAFETY: a plain call, made where sleeping is allowed.
        unsafe { ffi::zbpf_kpi_net_epoch_wait() }
    }
}

/// A bintime from one of binuptime(9) and its kin, called directly.
fn bintime(f: unsafe extern "C" fn(*mut ffi::zbpf_bintime)) -> Bintime {
    let mut bt = ffi::zbpf_bintime { sec: 0, frac: 0 };
    // SAFETY: the kernel function fills the struct, whose layout is struct
    // bintime's (checked in kmod/zbpf_kpi.c), and keeps no pointer to it.
    unsafe { f(&mut bt) };
    Bintime { sec: bt.sec, frac: bt.frac }
}

impl Platform for KernelPlatform {
    type Lock<T: Send> = KMutex<T>;
    type Global<T: Send> = KSx<T>;
    type Counter = KCounter;
    type Notifier = KNotifier;
    type Iface = KIface;
    type Pages = KPages;
    type EpochGuard = InNetEpoch;

    fn uptime(&self) -> Bintime {
        bintime(ffi::binuptime)
    }

    fn uptime_fast(&self) -> Bintime {
        bintime(ffi::getbinuptime)
    }

    fn boottime(&self) -> Bintime {
        bintime(ffi::getboottimebin)
    }

    fn hz(&self) -> u32 {
        // SAFETY: reads the kernel's `hz`; no argument.
        let hz = unsafe { ffi::zbpf_kpi_hz() };
        u32::try_from(hz).unwrap_or(1000).max(1)
    }

    fn new_notifier(&self) -> Result<KNotifier> {
        // SAFETY: plain call (M_WAITOK).
        let n = unsafe { ffi::zbpf_kpi_notes_alloc() };
        NonNull::new(n).map(KNotifier).ok_or(Errno::ENOMEM)
    }

    fn find_iface(&self, name: &str) -> Option<KIface> {
        let mut cname = [0u8; IFNAMSIZ + 1];
        let bytes = name.as_bytes();
        if bytes.len() > IFNAMSIZ || bytes.contains(&0) {
            return None;
        }
        cname[..bytes.len()].copy_from_slice(bytes);
        // SAFETY: `cname` is NUL-terminated.
        let ifp = NonNull::new(unsafe { ffi::zbpf_kpi_ifunit_ref(cname.as_ptr().cast()) })?;
        KIface::from_ref(ifp)
    }

    fn native_code(
        &self,
        compiled: &crate::filter::jit::Compiled,
    ) -> Option<alloc::sync::Arc<dyn crate::filter::NativeCode>> {
        let code = &compiled.code;
        if compiled.entry >= code.len() {
            return None;
        }
        // SAFETY: the shim copies `code.len()` bytes into fresh executable
        // memory (M_WAITOK: never null).
        let p = unsafe { ffi::zbpf_kpi_exec_alloc(code.as_ptr(), code.len()) };
        let base = NonNull::new(p)?;
        // SAFETY: `entry < code.len()`, inside the allocation just made.
        let entry = unsafe { NonNull::new_unchecked(p.cast::<u8>().add(compiled.entry).cast()) };
        Some(alloc::sync::Arc::new(KNative { base, entry }))
    }

    fn iface_key(iface: &KIface) -> usize {
        iface.ifp.as_ptr() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::dlt_of;

    #[test]
    fn lagg_and_bridge_are_refused_their_ports_and_vlans_are_not() {
        const IFT_ETHER: i32 = 0x06;
        const IFT_IEEE8023ADLAG: i32 = 0xa1;
        const IFT_L2VLAN: i32 = 0x87;
        const IFT_BRIDGE: i32 = 0xd1;
        const IFT_LOOP: i32 = 0x18;
        let en10mb = Some((crate::abi::dlt::DLT_EN10MB, 14));
        assert_eq!(dlt_of(IFT_IEEE8023ADLAG, b"lagg"), None, "lagg0");
        assert_eq!(dlt_of(IFT_BRIDGE, b"bridge"), None, "bridge0");
        assert_eq!(dlt_of(IFT_IEEE8023ADLAG, b"em"), en10mb, "a lagg port");
        assert_eq!(dlt_of(IFT_ETHER, b"em"), en10mb);
        assert_eq!(dlt_of(IFT_L2VLAN, b"vlan"), en10mb);
        assert_eq!(dlt_of(IFT_LOOP, b"lo"), None);
    }
}
