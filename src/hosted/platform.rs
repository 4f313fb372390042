//! The userspace implementation of [`Platform`]: std locks in place of
//! mtx(9) and sx(9), a two-counter epoch in place of the network epoch, a
//! timer thread in place of callout(9), and a poll hub in place of
//! selinfo/knlist.

use std::collections::HashMap;
use std::prelude::rust_2021::*;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::net::{SimIface, SimNet};
use super::process::HostedPages;
use crate::abi::{Errno, Result};
use crate::platform::epoch::EpochSection;
use crate::platform::{Bintime, Counter, DescLock, GlobalLock, Notifier, Platform, Sleep};

/// Simulated clock ticks per second (FreeBSD's default `kern.hz`).
pub const HZ: u32 = 1000;

fn relock<T>(r: std::result::Result<T, PoisonError<T>>) -> T {
    r.unwrap_or_else(PoisonError::into_inner)
}

/// The per-descriptor lock: a mutex, a condition variable for the sleep
/// channel, a wakeup generation so that only real wakeups end a sleep, and
/// a pending simulated signal.
pub struct HostedLock<T> {
    data: Mutex<T>,
    cv: Condvar,
    wakeups: AtomicU64,
    signal: AtomicI32,
}

impl<T> HostedLock<T> {
    /// Posts a simulated signal: an interruptible sleep ends with EINTR.
    pub fn interrupt(&self) {
        let _g = relock(self.data.lock());
        self.signal.store(Errno::EINTR.get(), Ordering::SeqCst);
        self.cv.notify_all();
    }
}

impl<T: Send> DescLock<T> for HostedLock<T> {
    type Guard<'a>
        = MutexGuard<'a, T>
    where
        Self: 'a;

    fn new(value: T) -> Self {
        HostedLock {
            data: Mutex::new(value),
            cv: Condvar::new(),
            wakeups: AtomicU64::new(0),
            signal: AtomicI32::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, T> {
        relock(self.data.lock())
    }

    fn sleep<'a>(
        &'a self,
        mut guard: MutexGuard<'a, T>,
        ticks: u32,
        interruptible: bool,
    ) -> (MutexGuard<'a, T>, Sleep) {
        let start = self.wakeups.load(Ordering::SeqCst);
        let deadline = (ticks > 0).then(|| Instant::now() + tick_duration(ticks));
        loop {
            if interruptible {
                let sig = self.signal.swap(0, Ordering::SeqCst);
                if sig != 0 {
                    return (guard, Sleep::Interrupted(Errno::new(sig).unwrap_or(Errno::EINTR)));
                }
            }
            if self.wakeups.load(Ordering::SeqCst) != start {
                return (guard, Sleep::Woken);
            }
            guard = match deadline {
                None => relock(self.cv.wait(guard)),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return (guard, Sleep::TimedOut);
                    }
                    relock(self.cv.wait_timeout(guard, d - now)).0
                }
            };
        }
    }

    fn wakeup(&self) {
        // Taking the mutex orders the increment with a sleeper's check.
        let _g = relock(self.data.lock());
        self.wakeups.fetch_add(1, Ordering::SeqCst);
        self.cv.notify_all();
    }
}

/// `ticks` simulated ticks as a duration.
pub fn tick_duration(ticks: u32) -> Duration {
    Duration::from_micros(u64::from(ticks) * 1_000_000 / u64::from(HZ))
}

/// The global lock.
pub struct HostedGlobal<T>(Mutex<T>);

impl<T: Send> GlobalLock<T> for HostedGlobal<T> {
    type Guard<'a>
        = MutexGuard<'a, T>
    where
        Self: 'a;

    fn new(value: T) -> Self {
        HostedGlobal(Mutex::new(value))
    }

    fn lock(&self) -> MutexGuard<'_, T> {
        relock(self.0.lock())
    }
}

/// Threads that add to counters through a slot of their own, at most this
/// many at once; more share one slot.
const OWN_SLOTS: usize = 7;

/// The slots leased to live threads, one bit each.
static LEASED: AtomicUsize = AtomicUsize::new(0);

/// No slot: the thread has not asked yet.
const SLOT_UNASKED: u8 = u8::MAX;
/// No slot: all were taken, or the thread is exiting.
const SLOT_NONE: u8 = u8::MAX - 1;

thread_local! {
    /// This thread's slot, read on every add (a constant-initialised cell:
    /// one load, no lazy-initialisation check).
    static SLOT: std::cell::Cell<u8> = const { std::cell::Cell::new(SLOT_UNASKED) };
    /// Holds the lease and returns it when the thread exits.
    static LEASE: Lease = Lease::take();
}

/// A thread's lease on one counter slot, returned when the thread exits.
struct Lease(Option<usize>);

impl Lease {
    fn take() -> Lease {
        let mut cur = LEASED.load(Ordering::Relaxed);
        loop {
            let free = (!cur).trailing_zeros() as usize;
            if free >= OWN_SLOTS {
                return Lease(None);
            }
            match LEASED.compare_exchange_weak(
                cur,
                cur | 1 << free,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Lease(Some(free)),
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            // The thread adds through the shared slot from now on.
            let _ = SLOT.try_with(|s| s.set(SLOT_NONE));
            // Release: the next holder sees this thread's last adds.
            LEASED.fetch_and(!(1 << i), Ordering::Release);
        }
    }
}

/// This thread's slot, leasing one on first use.
#[inline]
fn my_slot() -> Option<usize> {
    let slot = SLOT.try_with(|s| s.get()).unwrap_or(SLOT_NONE);
    match slot {
        SLOT_UNASKED => {
            let leased = LEASE.try_with(|l| l.0).ok().flatten();
            let _ = SLOT.try_with(|s| s.set(leased.map_or(SLOT_NONE, |i| i as u8)));
            leased
        }
        SLOT_NONE => None,
        i => Some(usize::from(i)),
    }
}

/// counter(9) for threads: FreeBSD keeps one copy per CPU, adds with one
/// unlocked instruction to the running CPU's copy, and sums the copies on
/// fetch. Here each thread leases a slot and is its only writer, so an add
/// is a plain load and store, no locked instruction; threads beyond
/// `OWN_SLOTS` share a slot with atomic adds. Zeroing records the sum as
/// the new origin: an add racing with it counts either before or after.
pub struct HostedCounter {
    own: [AtomicU64; OWN_SLOTS],
    shared: AtomicU64,
    origin: AtomicU64,
}

impl HostedCounter {
    fn raw_sum(&self) -> u64 {
        self.own.iter().fold(self.shared.load(Ordering::Relaxed), |sum, s| {
            sum.wrapping_add(s.load(Ordering::Relaxed))
        })
    }
}

impl Counter for HostedCounter {
    fn new() -> Self {
        HostedCounter {
            own: Default::default(),
            shared: AtomicU64::new(0),
            origin: AtomicU64::new(0),
        }
    }
    #[inline]
    fn add(&self, n: u64) {
        match my_slot().and_then(|i| self.own.get(i)) {
            Some(slot) => {
                slot.store(slot.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed)
            }
            None => {
                self.shared.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
    fn fetch(&self) -> u64 {
        self.raw_sum().wrapping_sub(self.origin.load(Ordering::Relaxed))
    }
    fn zero(&self) {
        self.origin.store(self.raw_sum(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod counter_tests {
    use super::*;

    #[test]
    fn concurrent_adds_from_more_threads_than_slots_all_count() {
        let c = Arc::new(HostedCounter::new());
        let threads: Vec<_> = (0..3 * OWN_SLOTS)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        c.add(t as u64 + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = 3 * OWN_SLOTS as u64;
        assert_eq!(c.fetch(), 10_000 * n * (n + 1) / 2);
        c.zero();
        assert_eq!(c.fetch(), 0);
        c.add(5);
        assert_eq!(c.fetch(), 5);
    }

    #[test]
    fn a_zero_racing_with_adds_never_runs_the_counter_below_zero() {
        let c = Arc::new(HostedCounter::new());
        let adder = {
            let c = c.clone();
            std::thread::spawn(move || {
                for _ in 0..200_000 {
                    c.add(1);
                }
            })
        };
        let mut last = 0;
        for _ in 0..1000 {
            let before = c.fetch();
            assert!(before <= 200_000);
            c.zero();
            last = c.fetch();
            assert!(last <= 200_000);
        }
        adder.join().unwrap();
        // A value below zero would read as a huge count (the checks in the
        // loop); after the last zero the count only grows.
        assert!(c.fetch() >= last);
        c.zero();
        assert_eq!(c.fetch(), 0);
    }
}

/// A two-counter epoch (as in sleepable RCU): readers count themselves in
/// the current phase; a writer flips the phase and waits for the old phase
/// to drain. Readers never wait.
///
/// There is one, [`NET_EPOCH`], as the kernel has one network epoch: every
/// [`Section`] is then a section of the epoch every platform waits for,
/// whichever simulated machine it came from (what [`EpochSection`] needs).
pub struct Epoch {
    phase: AtomicUsize,
    readers: [AtomicUsize; 2],
    writers: Mutex<()>,
}

/// The simulator's only epoch.
pub static NET_EPOCH: Epoch = Epoch {
    phase: AtomicUsize::new(0),
    readers: [AtomicUsize::new(0), AtomicUsize::new(0)],
    writers: Mutex::new(()),
};

/// An open epoch section (the phase it counted itself in).
pub struct Section(usize);

// SAFETY: a Section is made only by `enter` (the field is private), which
// counts a reader in NET_EPOCH, the only epoch; the count is dropped only by
// `exit`, which consumes the Section (one dropped otherwise stays counted).
// NET_EPOCH.wait flips the phase and returns once the old phase's count,
// which every section open at the call is in, has drained.
unsafe impl EpochSection for Section {
    fn wait_readers() {
        NET_EPOCH.wait()
    }
}

impl Epoch {
    /// Enters a read section.
    pub fn enter(&self) -> Section {
        loop {
            let p = self.phase.load(Ordering::SeqCst) & 1;
            self.readers[p].fetch_add(1, Ordering::SeqCst);
            // If the phase moved on meanwhile, a writer may already have
            // seen our old counter at zero: count ourselves again.
            if self.phase.load(Ordering::SeqCst) & 1 == p {
                return Section(p);
            }
            self.readers[p].fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Leaves it.
    pub fn exit(&self, s: Section) {
        self.readers[s.0 & 1].fetch_sub(1, Ordering::SeqCst);
    }

    /// Waits for every section entered before this call to end.
    pub fn wait(&self) {
        let _w = relock(self.writers.lock());
        let old = self.phase.fetch_add(1, Ordering::SeqCst) & 1;
        while self.readers[old].load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }
}

/// Wakes poll(2) callers: a generation bumped by every select wakeup.
#[derive(Default)]
pub struct PollHub {
    generation: Mutex<u64>,
    cv: Condvar,
}

impl PollHub {
    /// The current generation.
    pub fn generation(&self) -> u64 {
        *relock(self.generation.lock())
    }

    /// Bumps the generation.
    pub fn wakeup(&self) {
        *relock(self.generation.lock()) += 1;
        self.cv.notify_all();
    }

    /// Waits until the generation differs from `seen` or `deadline`.
    pub fn wait(&self, seen: u64, deadline: Option<Instant>) {
        let mut g = relock(self.generation.lock());
        while *g == seen {
            match deadline {
                None => g = relock(self.cv.wait(g)),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return;
                    }
                    g = relock(self.cv.wait_timeout(g, d - now)).0;
                }
            }
        }
    }
}

/// Signals "sent" to descriptor owners, for tests to inspect.
#[derive(Default)]
pub struct SignalLog {
    sent: Mutex<Vec<(i32, u32)>>,
}

impl SignalLog {
    /// Every (owner, signal) sent so far.
    pub fn sent(&self) -> Vec<(i32, u32)> {
        relock(self.sent.lock()).clone()
    }
}

/// Read timeouts waiting to fire: descriptor id → (deadline, token).
#[derive(Default)]
pub struct Timers {
    armed: Mutex<HashMap<u64, (Instant, u64)>>,
    cv: Condvar,
    stop: std::sync::atomic::AtomicBool,
}

impl Timers {
    fn arm(&self, id: u64, ticks: u32, token: u64) {
        relock(self.armed.lock()).insert(id, (Instant::now() + tick_duration(ticks), token));
        self.cv.notify_all();
    }

    fn cancel(&self, id: u64) {
        relock(self.armed.lock()).remove(&id);
    }

    /// Waits for the next expiry and returns the fired (id, token) pairs;
    /// empty when asked to stop.
    pub fn next_expired(&self) -> Vec<(u64, u64)> {
        let mut armed = relock(self.armed.lock());
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Vec::new();
            }
            let now = Instant::now();
            let fired: Vec<(u64, u64)> = armed
                .iter()
                .filter(|(_, (d, _))| *d <= now)
                .map(|(id, (_, t))| (*id, *t))
                .collect();
            if !fired.is_empty() {
                for (id, _) in &fired {
                    armed.remove(id);
                }
                return fired;
            }
            let next = armed.values().map(|(d, _)| *d).min();
            armed = match next {
                Some(d) => relock(self.cv.wait_timeout(armed, d - now)).0,
                None => relock(self.cv.wait_timeout(armed, Duration::from_millis(100))).0,
            };
        }
    }

    /// Asks the timer thread to stop.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _g = relock(self.armed.lock());
        self.cv.notify_all();
    }
}

/// The simulated machine's services shared by every descriptor.
pub struct Services {
    /// Interfaces.
    pub net: Arc<SimNet>,
    /// The epoch ([`NET_EPOCH`]).
    pub epoch: &'static Epoch,
    /// poll(2) wakeups.
    pub poll: PollHub,
    /// Signals sent.
    pub signals: SignalLog,
    /// Read timeouts.
    pub timers: Timers,
    next_id: AtomicU64,
    start: Instant,
    boot: Bintime,
    /// Uptime in nanoseconds as of the last clock tick: what getbinuptime
    /// reads, kept by the tick thread.
    ticked: AtomicU64,
}

/// The hosted platform: a handle on the shared services.
#[derive(Clone)]
pub struct HostedPlatform {
    /// The services.
    pub services: Arc<Services>,
}

impl HostedPlatform {
    /// A platform over `net`.
    pub fn new(net: Arc<SimNet>) -> Self {
        let start = Instant::now();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let services = Arc::new(Services {
            net,
            epoch: &NET_EPOCH,
            poll: PollHub::default(),
            signals: SignalLog::default(),
            timers: Timers::default(),
            next_id: AtomicU64::new(1),
            start,
            boot: Bintime::from_nanos(wall.as_secs() as i64, wall.subsec_nanos()),
            ticked: AtomicU64::new(0),
        });
        // The hardclock: advances the tick-precision clock every tick, for
        // as long as the machine exists.
        let weak = Arc::downgrade(&services);
        let _ = std::thread::Builder::new().name("zbpf-hardclock".into()).spawn(move || loop {
            std::thread::sleep(tick_duration(1));
            let Some(s) = weak.upgrade() else { return };
            s.ticked.store(s.start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        });
        HostedPlatform { services }
    }
}

/// Per-descriptor notification resources.
pub struct HostedNotifier {
    id: u64,
    owner: AtomicI32,
    services: Arc<Services>,
}

impl HostedNotifier {
    /// The descriptor id the timer thread reports.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Notifier for HostedNotifier {
    fn select_wakeup(&self) {
        self.services.poll.wakeup();
    }
    fn signal(&self, sig: u32) {
        let owner = self.owner.load(Ordering::SeqCst);
        if owner != 0 {
            relock(self.services.signals.sent.lock()).push((owner, sig));
        }
    }
    fn set_owner(&self, owner: i32) -> Result<()> {
        self.owner.store(owner, Ordering::SeqCst);
        Ok(())
    }
    fn owner(&self) -> i32 {
        self.owner.load(Ordering::SeqCst)
    }
    fn arm_timer(&self, ticks: u32, token: u64) {
        self.services.timers.arm(self.id, ticks, token);
    }
    fn stop_timer(&self) {
        self.services.timers.cancel(self.id);
    }
    fn drain(&self) {
        self.services.timers.cancel(self.id);
        self.owner.store(0, Ordering::SeqCst);
        self.services.poll.wakeup();
    }
}

fn to_bintime(d: Duration) -> Bintime {
    Bintime::from_nanos(d.as_secs() as i64, d.subsec_nanos())
}

impl Platform for HostedPlatform {
    type Lock<T: Send> = HostedLock<T>;
    type Global<T: Send> = HostedGlobal<T>;
    type Counter = HostedCounter;
    type Notifier = HostedNotifier;
    type Iface = Arc<SimIface>;
    type Pages = HostedPages;
    type EpochGuard = Section;

    fn uptime(&self) -> Bintime {
        to_bintime(self.services.start.elapsed())
    }

    fn uptime_fast(&self) -> Bintime {
        // Tick precision, without reading the clock, as getbinuptime does.
        let ns = self.services.ticked.load(Ordering::Relaxed);
        Bintime::from_nanos((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as u32)
    }

    fn boottime(&self) -> Bintime {
        self.services.boot
    }

    fn hz(&self) -> u32 {
        HZ
    }

    fn new_notifier(&self) -> Result<HostedNotifier> {
        Ok(HostedNotifier {
            id: self.services.next_id.fetch_add(1, Ordering::Relaxed),
            owner: AtomicI32::new(0),
            services: self.services.clone(),
        })
    }

    fn find_iface(&self, name: &str) -> Option<Arc<SimIface>> {
        self.services.net.find(name)
    }

    fn native_code(
        &self,
        code: &crate::filter::jit::Compiled,
    ) -> Option<Arc<dyn crate::filter::NativeCode>> {
        super::native::HostedNative::map(code)
    }

    fn iface_key(iface: &Arc<SimIface>) -> usize {
        Arc::as_ptr(iface) as usize
    }
}
