//! The narrow interface the engine needs from its host.
//!
//! Two implementations exist: the FreeBSD kernel (`kernel`, feature `kmod`),
//! over the C shims of `ffi/zbpf_kpi.h`, and the userspace simulator
//! (`hosted`, feature `hosted`). The engine is generic over [`Platform`]
//! and never sees anything else of its environment.
//!
//! What the platform provides:
//! - time: a precise and a fast uptime clock, the boot time, `hz`;
//! - locks: a per-descriptor lock that is also a sleep channel, and a
//!   sleepable global lock;
//! - an epoch: lock-free readers (the delivery path) and writers that wait
//!   for every reader in progress ([`epoch::EpochCell`]);
//! - counters that are cheap to bump on the delivery path;
//! - per-descriptor notification: select/poll, kqueue, SIGIO, the read
//!   timeout;
//! - network interfaces: promiscuous mode, output, input (feedback);
//! - per-call user access: copies, read/write transfers, held pages.

pub mod epoch;
pub mod pages;

use core::ops::DerefMut;

use crate::abi::{Errno, Result, UserAddr};
use crate::packet::PacketBytes;

/// A time value as FreeBSD's `struct bintime`: seconds and a 2^-64 fraction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bintime {
    /// Whole seconds.
    pub sec: i64,
    /// Fraction of a second in units of 2^-64.
    pub frac: u64,
}

impl core::ops::Add for Bintime {
    type Output = Bintime;

    /// `bintime_add`.
    fn add(self, other: Bintime) -> Bintime {
        let (frac, carry) = self.frac.overflowing_add(other.frac);
        Bintime { sec: self.sec.wrapping_add(other.sec).wrapping_add(i64::from(carry)), frac }
    }
}

impl core::ops::Sub for Bintime {
    type Output = Bintime;

    /// `bintime_sub`.
    fn sub(self, other: Bintime) -> Bintime {
        let (frac, borrow) = self.frac.overflowing_sub(other.frac);
        Bintime { sec: self.sec.wrapping_sub(other.sec).wrapping_sub(i64::from(borrow)), frac }
    }
}

impl Bintime {
    /// Microseconds of the fraction, as `bintime2timeval` computes them.
    pub fn usec(self) -> u64 {
        (1_000_000u64 * (self.frac >> 32)) >> 32
    }

    /// Nanoseconds of the fraction, as `bintime2timespec` computes them.
    pub fn nsec(self) -> u64 {
        (1_000_000_000u64 * (self.frac >> 32)) >> 32
    }

    /// Builds a value from seconds and nanoseconds (`timespec2bintime`).
    pub fn from_nanos(sec: i64, nsec: u32) -> Bintime {
        // 2^64 / 10^9, rounded down, as FreeBSD's conversion uses.
        Bintime { sec, frac: u64::from(nsec) * 18_446_744_073 }
    }
}

/// How a sleep on a descriptor ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sleep {
    /// Woken by [`DescLock::wakeup`] (or spuriously).
    Woken,
    /// The timeout elapsed (`EWOULDBLOCK` from msleep).
    TimedOut,
    /// A signal interrupted the sleep: EINTR or ERESTART.
    Interrupted(Errno),
}

/// The per-descriptor lock: an mtx(9) in the kernel. It doubles as the
/// descriptor's sleep channel, as `msleep(d, &d->bd_lock, ...)` does.
pub trait DescLock<T>: Send + Sync {
    /// The guard; the lock is released when it drops.
    type Guard<'a>: DerefMut<Target = T>
    where
        Self: 'a;

    /// A new, unlocked lock around `value`.
    fn new(value: T) -> Self;

    /// Takes the lock. Never sleeps (spins or blocks briefly).
    fn lock(&self) -> Self::Guard<'_>;

    /// Releases the lock, sleeps until [`wakeup`](Self::wakeup), the timeout
    /// (`ticks`, 0 = none) or a signal when `interruptible`, and retakes it.
    fn sleep<'a>(
        &'a self,
        guard: Self::Guard<'a>,
        ticks: u32,
        interruptible: bool,
    ) -> (Self::Guard<'a>, Sleep);

    /// Wakes every thread sleeping on this lock.
    fn wakeup(&self);
}

/// The global lock serialising attach, detach and configuration: an sx(9)
/// in the kernel, which may be held while sleeping.
pub trait GlobalLock<T>: Send + Sync {
    /// The guard.
    type Guard<'a>: DerefMut<Target = T>
    where
        Self: 'a;

    /// A new lock around `value`.
    fn new(value: T) -> Self;

    /// Takes the lock, sleeping if needed.
    fn lock(&self) -> Self::Guard<'_>;
}

/// A statistics counter that is cheap to bump from any CPU (counter(9) in
/// the kernel). Exact once traffic has stopped.
pub trait Counter: Send + Sync {
    /// A zeroed counter.
    fn new() -> Self;
    /// Adds `n`.
    fn add(&self, n: u64);
    /// The current sum.
    fn fetch(&self) -> u64;
    /// Resets to zero.
    fn zero(&self);
}

/// Per-descriptor notification resources: select/poll records, kqueue
/// notes, the SIGIO owner and the read-timeout timer.
pub trait Notifier: Send + Sync {
    /// Wakes select/poll waiters and kqueue notes. Called without the
    /// descriptor lock held.
    fn select_wakeup(&self);
    /// Sends `sig` to the owner set by FIOSETOWN, if any.
    fn signal(&self, sig: u32);
    /// Sets the SIGIO owner (pid, or -pgid). FIOSETOWN.
    fn set_owner(&self, owner: i32) -> Result<()>;
    /// The owner (0 if none). FIOGETOWN.
    fn owner(&self) -> i32;
    /// Arms the read-timeout timer to fire after `ticks`; it then calls
    /// [`Bpf::timer_fired`](crate::engine::Bpf::timer_fired)
    /// with `token`. Re-arming replaces a pending arming.
    fn arm_timer(&self, ticks: u32, token: u64);
    /// Cancels a pending timer, if any.
    fn stop_timer(&self);
    /// At close: stops the timer and waits for a running one, wakes and
    /// forgets select and kqueue waiters, drops the owner. Afterwards no
    /// callback refers to the descriptor. May sleep.
    fn drain(&self);
}

/// A frame a descriptor writes, as handed to the interface.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing<'a> {
    /// The whole frame, link header included.
    pub frame: &'a [u8],
    /// Bytes of link header at the front (the route prepend).
    pub link_hdrlen: usize,
    /// BIOCSHDRCMPLT: the source address is already filled in.
    pub hdrcmplt: bool,
    /// VLAN priority to tag (0 = none).
    pub pcp: u8,
    /// Feedback in both directions: the outgoing taps must not see this
    /// frame, so that readers do not see it twice. The platform marks the
    /// frame (M_PROMISC) and its taps consult
    /// [`StackMarks::verdict`](crate::engine::StackMarks::verdict).
    pub hide_from_taps: bool,
    /// Broadcast or multicast as the engine judged the destination (the
    /// kernel's M_BCAST/M_MCAST).
    pub cast: Cast,
}

/// Who a written frame is addressed to, as bpf_movein decides it from an
/// Ethernet destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cast {
    /// One station, or a link type without the distinction.
    #[default]
    Unicast,
    /// Every station (M_BCAST).
    Broadcast,
    /// A group (M_MCAST).
    Multicast,
}

/// Where a written frame goes, and what the write path needs to know about
/// an interface.
pub trait NetIf: Send + Sync {
    /// Interface name (at most 15 bytes), as it was when the handle was
    /// taken.
    fn name(&self) -> &str;
    /// The name now, NUL-padded: an interface can be renamed while
    /// descriptors are attached, and bpf reports its current name.
    fn name_now(&self) -> [u8; crate::abi::IFNAMSIZ] {
        let mut out = [0u8; crate::abi::IFNAMSIZ];
        for (d, s) in out.iter_mut().zip(self.name().bytes().take(crate::abi::IFNAMSIZ - 1)) {
            *d = s;
        }
        out
    }
    /// The data-link types it offers, primary first, with the link-header
    /// length of each.
    fn dlts(&self) -> &[(u32, u32)];
    /// Whether the interface is up (IFF_UP).
    fn is_up(&self) -> bool;
    /// The MTU.
    fn mtu(&self) -> u32;
    /// The link-level address (Ethernet MAC), if any.
    fn lladdr(&self) -> Option<[u8; 6]>;
    /// Turns promiscuous mode on or off (reference counted by the host).
    fn set_promisc(&self, on: bool) -> Result<()>;
    /// Sends a frame written by a descriptor.
    fn output(&self, out: &Outgoing<'_>) -> Result<()>;
    /// Injects `frame` as if received (feedback). Allocation failure is
    /// reported, and the caller counts it as a write drop.
    fn input(&self, frame: &[u8]) -> Result<()>;
    /// Called when the first reader arrives, with the tap the platform hands
    /// back with each of the interface's packets, and when the last one
    /// leaves (`None`): the kernel installs or removes its hook here. An
    /// error leaves the interface untapped.
    fn set_tapped(&self, tap: Option<TapCookie>) -> Result<()>;
}

/// A tap's address, as a platform hands it back with each packet (the
/// kernel's hooks keep it). Valid while the interface is tapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapCookie(pub core::ptr::NonNull<core::ffi::c_void>);

impl TapCookie {
    /// The cookie of `tap`.
    pub fn of<T>(tap: &alloc::sync::Arc<T>) -> Self {
        TapCookie(core::ptr::NonNull::from(&**tap).cast())
    }
}

/// A user buffer's pages, held (wired) and mapped for the kernel; released
/// when dropped. Pages are not contiguous in the kernel's address space,
/// unless the platform also maps them one after the other (`span`).
///
/// # Safety
/// The engine writes and reads through the pointers (`engine::zbuf`), so
/// implementors promise, for as long as the value lives:
/// - `page(i)` is `Some` exactly when `i < count()`, and always the same
///   pointer for the same `i`;
/// - each such pointer is PAGE_SIZE-aligned and valid for reads and writes
///   of PAGE_SIZE bytes, from any thread;
/// - no two pages overlap, and no page overlaps memory Rust code owns or
///   borrows: the only other party is the user process, which may read and
///   write the pages at any time (so the engine reads them only atomically);
/// - `span()`, when `Some`, is always the same pointer, valid for reads and
///   writes of `count() * PAGE_SIZE` bytes from any thread, whose page `i`
///   is the same memory as `page(i)` (a second mapping of it), and overlaps
///   nothing Rust owns or borrows either.
pub unsafe trait HeldPages: Send + Sync {
    /// Number of pages.
    fn count(&self) -> usize;
    /// The kernel mapping of page `index` (PAGE_SIZE bytes), or `None` past
    /// the end.
    fn page(&self, index: usize) -> Option<core::ptr::NonNull<u8>>;
    /// All the pages mapped one after the other, if the platform maps them
    /// so: a record that crosses a page boundary is then one copy.
    fn span(&self) -> Option<core::ptr::NonNull<u8>> {
        None
    }
}

/// The calling thread's view of its process: user-memory copies and page
/// holding (copyin/copyout, vm_fault_quick_hold_pages).
pub trait UserCtx {
    /// The pages type this context produces.
    type Pages: HeldPages;
    /// Copies `dst.len()` bytes from user address `src`. EFAULT if unmapped.
    fn copy_in(&mut self, src: UserAddr, dst: &mut [u8]) -> Result<()>;
    /// Copies `src` to user address `dst`. EFAULT if unmapped or read-only.
    fn copy_out(&mut self, src: &[u8], dst: UserAddr) -> Result<()>;
    /// Holds `npages` writable pages starting at page-aligned `addr`.
    /// EFAULT (having released what was held) if any cannot be held.
    fn hold_pages(&mut self, addr: UserAddr, npages: usize) -> Result<Self::Pages>;
    /// The caller's process id (for statistics).
    fn pid(&self) -> i32;
}

/// The destination of a read(2): a `struct uio` in the kernel.
pub trait ReadSink {
    /// Bytes the caller asked for (`uio_resid`).
    fn resid(&self) -> usize;
    /// Copies `data` out, advancing the transfer (uiomove).
    fn copy_out(&mut self, data: &[u8]) -> Result<()>;
}

/// The source of a write(2).
pub trait WriteSource {
    /// Bytes the caller wrote (`uio_resid`).
    fn resid(&self) -> usize;
    /// Copies the next `dst.len()` bytes in (uiomove).
    fn copy_in(&mut self, dst: &mut [u8]) -> Result<()>;
}

/// Everything the engine needs from its host, as one type.
pub trait Platform: Sized + Send + Sync + 'static {
    /// The per-descriptor lock.
    type Lock<T: Send>: DescLock<T>;
    /// The global configuration lock.
    type Global<T: Send>: GlobalLock<T>;
    /// Statistics counters.
    type Counter: Counter;
    /// Per-descriptor notification resources.
    type Notifier: Notifier;
    /// Network interfaces.
    type Iface: NetIf + Clone;
    /// Held user pages.
    type Pages: HeldPages;
    /// Proof that the caller is inside an epoch read section.
    type EpochGuard: epoch::EpochSection;

    /// Uptime, full precision (`binuptime`).
    fn uptime(&self) -> Bintime;
    /// Uptime, tick precision (`getbinuptime`).
    fn uptime_fast(&self) -> Bintime;
    /// The wall-clock time at boot (`getboottimebin`).
    fn boottime(&self) -> Bintime;
    /// Clock ticks per second.
    fn hz(&self) -> u32;

    /// Waits until every epoch read section in progress has ended. The
    /// sections themselves are opened by whoever delivers packets (in the
    /// kernel, the C wrappers enter the network epoch), which proves it by
    /// passing an [`EpochGuard`](Self::EpochGuard), whose
    /// [`wait_readers`](epoch::EpochSection::wait_readers) this is.
    fn epoch_wait(&self) {
        <Self::EpochGuard as epoch::EpochSection>::wait_readers()
    }

    /// New notification resources for a descriptor.
    fn new_notifier(&self) -> Result<Self::Notifier>;
    /// Looks up an interface by name in the caller's network stack.
    fn find_iface(&self, name: &str) -> Option<Self::Iface>;
    /// Makes machine code from [`jit::compile`](crate::filter::jit::compile)
    /// executable, or `None` where the platform cannot (the engine then
    /// interprets).
    fn native_code(
        &self,
        code: &crate::filter::jit::Compiled,
    ) -> Option<alloc::sync::Arc<dyn crate::filter::NativeCode>> {
        let _ = code;
        None
    }

    /// What identifies an interface on the delivery path (in the kernel,
    /// the ifnet pointer): two handles name the same interface when their
    /// keys are equal.
    fn iface_key(iface: &Self::Iface) -> usize;
}

/// A packet handed to the taps: its bytes and where it was going.
pub struct TapPacket<'a, B: PacketBytes + ?Sized> {
    /// The bytes.
    pub bytes: &'a B,
    /// Received by the interface (as opposed to sent).
    pub inbound: bool,
    /// A timestamp the hardware or driver attached, if any.
    pub hw_time: Option<Bintime>,
}

impl<B: PacketBytes + ?Sized> TapPacket<'_, B> {
    /// The length on the wire, as a filter sees it (saturated to 32 bits).
    #[inline]
    pub fn wirelen(&self) -> u32 {
        u32::try_from(self.bytes.len()).unwrap_or(u32::MAX)
    }
}
