//! A userspace model of the C side of zbpf.ko: every `zbpf_kpi_*` function
//! of `ffi/zbpf_kpi.h`, defined here with `#[no_mangle]` so that the real
//! `src/kernel` code (which declares them through bindgen's `zbpf::kpi`)
//! links against this model instead of FreeBSD.
//!
//! Each model does what `kmod/zbpf_kpi.c` and `kmod/zbpf_dev.c` do, over
//! userspace stand-ins: mtx(9) and sx(9) are owner-tracking locks,
//! mtx_sleep/wakeup use wait channels, the network epoch is a `RwLock`,
//! callouts are stored for the test to fire, compiled filters live in W^X
//! executable mappings, user memory is reached with
//! `process_vm_readv/writev` (EFAULT on a bad address), held pages are
//! second mappings of shared memory, ifnets and mbufs are fake structures.
//!
//! The model also checks the kernel's rules, which Linux would not enforce:
//! nothing may sleep (M_WAITOK malloc, copyin/copyout, uiomove, sx_xlock,
//! NET_EPOCH_WAIT, callout_drain, page holding, if_output) while a mutex is
//! held or inside the network epoch; mutexes are not recursive and are
//! released by their owner. Breaches are collected in [`violations`].
//!
//! The test binary's global allocator forwards to `zbpf_kpi_malloc` with
//! M_WAITOK, exactly as `src/kernel/alloc.rs` does in the kernel build, so
//! every allocation the engine makes is checked too.
#![allow(dead_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU32, AtomicU64};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zbpf::abi::{UserAddr, PAGE_SIZE};
use zbpf::hosted::process::{copy_from_user, copy_to_user};
use zbpf::kpi;
use zbpf::platform::Bintime;

/// FreeBSD errno values the shims return.
pub const EFAULT: c_int = 14;
pub const EINVAL: c_int = 22;
pub const EIO: c_int = 5;
pub const EINTR: c_int = 4;
pub const EWOULDBLOCK: c_int = 35;

/// `hz` of the modelled kernel.
pub const HZ: c_int = 1000;

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// The kernel's rules: sleeping contexts
// ---------------------------------------------------------------------------

thread_local! {
    /// Mutexes (mtx(9), including the knlist's) this thread holds.
    static HELD_MTX: Cell<u32> = const { Cell::new(0) };
    /// Nesting depth of this thread's network-epoch sections.
    static EPOCH_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Non-zero while the model itself runs (its own bookkeeping
    /// allocations are not the engine's).
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

static VIOLATIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn tls_get(k: &'static std::thread::LocalKey<Cell<u32>>) -> u32 {
    k.try_with(Cell::get).unwrap_or(0)
}

fn tls_add(k: &'static std::thread::LocalKey<Cell<u32>>, delta: i32) {
    let _ = k.try_with(|c| c.set(c.get().wrapping_add_signed(delta)));
}

/// Runs `f` as the model's own code: allocations inside are not checked.
fn quiet<R>(f: impl FnOnce() -> R) -> R {
    tls_add(&QUIET, 1);
    let r = f();
    tls_add(&QUIET, -1);
    r
}

/// Records a breach of the kernel's rules with the Rust frames that led
/// to it.
fn violation(what: impl FnOnce() -> String) {
    if tls_get(&QUIET) != 0 {
        return;
    }
    quiet(|| {
        let what = what();
        let trace = std::backtrace::Backtrace::force_capture().to_string();
        let frames: Vec<&str> = trace
            .lines()
            .map(str::trim)
            .filter(|l| l.contains("zbpf::") && !l.contains("kernel_fake"))
            .take(8)
            .collect();
        let msg = format!("{what}\n      {}", frames.join("\n      "));
        let mut v = relock(&VIOLATIONS);
        if !v.contains(&msg) {
            v.push(msg);
        }
    });
}

/// `what` may sleep: no mutex but `interlocks` held, not in the epoch.
fn may_sleep_with(what: &str, interlocks: u32) {
    let held = tls_get(&HELD_MTX);
    let epoch = tls_get(&EPOCH_DEPTH);
    if held > interlocks || epoch > 0 {
        violation(|| {
            format!(
                "{what} may sleep, called with {} mutex(es) held and epoch depth {epoch}",
                held - interlocks.min(held)
            )
        });
    }
}

fn may_sleep(what: &str) {
    may_sleep_with(what, 0);
}

/// Shows that the rule checks work: an allocation (through the global
/// allocator) with a descriptor mutex held, and one inside the epoch, are
/// both reported. The reports are then discarded.
pub fn check_rule_checker() {
    let before = relock(&VIOLATIONS).len();
    let m = zbpf_kpi_mtx_alloc();
    mtx_lock(mtx(m));
    let v: Vec<u64> = std::hint::black_box(Vec::with_capacity(7));
    mtx_unlock(mtx(m));
    drop(v);
    // SAFETY: allocated above, unlocked, freed once.
    unsafe { zbpf_kpi_mtx_free(m) };
    let b = net_epoch(|| std::hint::black_box(Box::new(7u64)));
    drop(b);
    let mut all = relock(&VIOLATIONS);
    let new: Vec<String> = all.drain(before..).collect();
    assert_eq!(new.len(), 2, "the checker reports sleeping allocations: {new:?}");
    assert!(new[0].contains("1 mutex(es) held") && new[1].contains("epoch depth 1"), "{new:?}");
}

/// Breaches of the kernel's rules seen so far.
pub fn violations() -> Vec<String> {
    relock(&VIOLATIONS).clone()
}

// ---------------------------------------------------------------------------
// Memory, panic, log
// ---------------------------------------------------------------------------

/// Bytes in front of each allocation: the size and alignment, so that free
/// can rebuild the layout (malloc(9) remembers sizes itself).
const MALLOC_HDR: usize = 16;

static MALLOCS_LIVE: AtomicI64 = AtomicI64::new(0);

/// malloc(9) with M_ZBPF; `align` is honoured as malloc_aligned does.
///
/// # Safety
/// Plain allocation; the pointer must be released with `zbpf_kpi_free`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_malloc(
    size: usize,
    align: usize,
    may_sleep: c_int,
) -> *mut c_void {
    if may_sleep != 0 && tls_get(&QUIET) == 0 {
        let held = tls_get(&HELD_MTX);
        let epoch = tls_get(&EPOCH_DEPTH);
        if held > 0 || epoch > 0 {
            violation(|| {
                format!(
                    "malloc(M_WAITOK) of {size} bytes with {held} mutex(es) held, epoch depth {epoch}"
                )
            });
        }
    }
    let align = align.max(MALLOC_HDR);
    let Some(total) = size.checked_add(align) else { return std::ptr::null_mut() };
    let Ok(layout) = Layout::from_size_align(total, align) else { return std::ptr::null_mut() };
    // SAFETY: `layout` has a non-zero size (at least `align` bytes).
    let base = unsafe { System.alloc(layout) };
    if base.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `align` <= `total`, so `p` is inside the block, aligned to
    // `align`, with `align` >= 16 bytes of header space before it.
    let p = unsafe { base.add(align) };
    // SAFETY: the 16 header bytes before `p` belong to the block and are
    // 8-byte aligned (align >= 16).
    unsafe {
        p.cast::<usize>().sub(2).write(size);
        p.cast::<usize>().sub(1).write(align);
    }
    MALLOCS_LIVE.fetch_add(1, SeqCst);
    p.cast()
}

/// free(9).
///
/// # Safety
/// `ptr` is null or came from `zbpf_kpi_malloc` and is freed once.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_free(ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    let p = ptr.cast::<u8>();
    // SAFETY: `zbpf_kpi_malloc` wrote size and alignment just before `p`.
    let (size, align) =
        unsafe { (p.cast::<usize>().sub(2).read(), p.cast::<usize>().sub(1).read()) };
    // SAFETY: the block starts `align` bytes before `p` and was allocated
    // with exactly this layout.
    unsafe { System.dealloc(p.sub(align), Layout::from_size_align_unchecked(size + align, align)) };
    MALLOCS_LIVE.fetch_sub(1, SeqCst);
}

/// The test binary's allocator: malloc(9) with M_WAITOK, as
/// `src/kernel/alloc.rs` is in the kernel build.
pub struct KernelMalloc;

// SAFETY: zbpf_kpi_malloc returns blocks of at least `size` bytes aligned to
// `align`, never shared, and zbpf_kpi_free releases exactly such a block.
unsafe impl GlobalAlloc for KernelMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain call into the model.
        unsafe { zbpf_kpi_malloc(layout.size(), layout.align(), 1).cast() }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc` (GlobalAlloc's contract).
        unsafe { zbpf_kpi_free(ptr.cast()) }
    }
}

static EXEC_LIVE: AtomicI64 = AtomicI64::new(0);
static EXEC_ALLOCS: AtomicU64 = AtomicU64::new(0);
static EXEC_DISPATCHERS: AtomicU64 = AtomicU64::new(0);
/// Executable mappings: address -> length.
static EXEC_MAPS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

/// malloc_exec(9) + memcpy: fresh memory holding `code`, executable (and,
/// unlike the kernel's, no longer writable: W^X catches a JIT that writes
/// its code after handing it over).
///
/// # Safety
/// `code` is valid for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_exec_alloc(code: *const u8, size: usize) -> *mut c_void {
    may_sleep("malloc_exec(M_WAITOK)");
    let len = size.max(1).div_ceil(PAGE_SIZE) * PAGE_SIZE;
    // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert!(p != libc::MAP_FAILED, "malloc_exec: out of memory");
    // SAFETY: the mapping has `len` >= `size` writable bytes; the caller
    // passes `size` readable bytes of code.
    unsafe { std::ptr::copy_nonoverlapping(code, p.cast::<u8>(), size) };
    // SAFETY: changes the protection of the mapping created above only.
    let err = unsafe { libc::mprotect(p, len, libc::PROT_READ | libc::PROT_EXEC) };
    assert_eq!(err, 0, "malloc_exec: mprotect");
    quiet(|| relock(&EXEC_MAPS).insert(p as usize, len));
    EXEC_LIVE.fetch_add(1, SeqCst);
    EXEC_ALLOCS.fetch_add(1, SeqCst);
    // SAFETY: the caller passes `size` readable bytes of code.
    let bytes = unsafe { std::slice::from_raw_parts(code, size) };
    // A dispatcher (filter::jit::compile_dispatch) starts, after its int3
    // padding, by saving rbx and r12; a filter never touches them.
    if bytes.iter().skip_while(|&&b| b == 0xcc).take(3).eq([0x53, 0x41, 0x54].iter()) {
        EXEC_DISPATCHERS.fetch_add(1, SeqCst);
    }
    p
}

/// Dispatchers among the executable allocations made so far.
pub fn exec_dispatchers() -> u64 {
    EXEC_DISPATCHERS.load(SeqCst)
}

/// free(9) of executable memory.
///
/// # Safety
/// `ptr` came from `zbpf_kpi_exec_alloc` and is freed once.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_exec_free(ptr: *mut c_void) {
    let Some(len) = relock(&EXEC_MAPS).remove(&(ptr as usize)) else {
        violation(|| "exec_free of memory exec_alloc did not return".to_owned());
        return;
    };
    // SAFETY: the mapping of `len` bytes created by zbpf_kpi_exec_alloc,
    // unmapped once.
    unsafe { libc::munmap(ptr, len) };
    EXEC_LIVE.fetch_sub(1, SeqCst);
}

/// Executable allocations made so far.
pub fn exec_allocs() -> u64 {
    EXEC_ALLOCS.load(SeqCst)
}

fn bytes_of<'a>(msg: *const c_char, len: usize) -> &'a [u8] {
    if msg.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the caller passes `len` readable bytes (the shim's contract).
    unsafe { std::slice::from_raw_parts(msg.cast::<u8>(), len) }
}

/// panic(9).
///
/// # Safety
/// `msg` is valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_panic(msg: *const c_char, len: usize) {
    let text = String::from_utf8_lossy(bytes_of(msg, len)).into_owned();
    panic!("zbpf: kernel panic: {text}");
}

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// printf(9) with the "zbpf: " prefix.
///
/// # Safety
/// `msg` is valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_log(msg: *const c_char, len: usize) {
    quiet(|| {
        let text = String::from_utf8_lossy(bytes_of(msg, len)).into_owned();
        eprintln!("zbpf: {text}");
        relock(&LOG).push(text);
    });
}

/// Lines logged through `zbpf_kpi_log`.
pub fn log_lines() -> Vec<String> {
    relock(&LOG).clone()
}

// ---------------------------------------------------------------------------
// mtx(9), mtx_sleep, wakeup
// ---------------------------------------------------------------------------

/// An MTX_DEF mutex that knows its owner.
pub struct FakeMtx {
    owner: Mutex<Option<ThreadId>>,
    cv: Condvar,
}

static MTX_LIVE: AtomicI64 = AtomicI64::new(0);

fn mtx<'a>(m: *mut kpi::zbpf_mtx) -> &'a FakeMtx {
    assert!(!m.is_null(), "mtx: NULL mutex");
    // SAFETY: every zbpf_mtx handed to Rust is a FakeMtx from
    // zbpf_kpi_mtx_alloc, alive until zbpf_kpi_mtx_free.
    unsafe { &*m.cast::<FakeMtx>() }
}

#[no_mangle]
pub extern "C" fn zbpf_kpi_mtx_alloc() -> *mut kpi::zbpf_mtx {
    may_sleep("mtx alloc (malloc M_WAITOK)");
    MTX_LIVE.fetch_add(1, SeqCst);
    Box::into_raw(Box::new(FakeMtx { owner: Mutex::new(None), cv: Condvar::new() })).cast()
}

/// # Safety
/// `m` came from `zbpf_kpi_mtx_alloc`, is unlocked and freed once.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_mtx_free(m: *mut kpi::zbpf_mtx) {
    assert!(relock(&mtx(m).owner).is_none(), "mtx_destroy of a held mutex");
    MTX_LIVE.fetch_sub(1, SeqCst);
    // SAFETY: allocated by zbpf_kpi_mtx_alloc as a Box<FakeMtx>.
    drop(unsafe { Box::from_raw(m.cast::<FakeMtx>()) });
}

fn mtx_lock(m: &FakeMtx) {
    let me = std::thread::current().id();
    let mut g = relock(&m.owner);
    assert!(*g != Some(me), "_mtx_lock_sleep: recursed on non-recursive mutex zbpf descriptor");
    while g.is_some() {
        g = m.cv.wait(g).unwrap_or_else(PoisonError::into_inner);
    }
    *g = Some(me);
    tls_add(&HELD_MTX, 1);
}

fn mtx_unlock(m: &FakeMtx) {
    let me = std::thread::current().id();
    let mut g = relock(&m.owner);
    assert!(*g == Some(me), "mtx_unlock of a mutex not owned by this thread");
    *g = None;
    m.cv.notify_one();
    tls_add(&HELD_MTX, -1);
}

/// # Safety
/// `m` came from `zbpf_kpi_mtx_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_mtx_lock(m: *mut kpi::zbpf_mtx) {
    mtx_lock(mtx(m));
}

/// # Safety
/// `m` came from `zbpf_kpi_mtx_alloc` and is held by the caller.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_mtx_unlock(m: *mut kpi::zbpf_mtx) {
    mtx_unlock(mtx(m));
}

/// Sleep queues: a generation per wait channel, and a pending signal.
struct Waits {
    gens: BTreeMap<usize, u64>,
    signal: bool,
}

static WAITS: Mutex<Waits> = Mutex::new(Waits { gens: BTreeMap::new(), signal: false });
static WAITS_CV: Condvar = Condvar::new();
static SLEEPS: AtomicU64 = AtomicU64::new(0);

/// mtx_sleep(chan, m, PRINET | PCATCH?, "zbpf", ticks).
///
/// # Safety
/// `m` came from `zbpf_kpi_mtx_alloc` and is held by the caller.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_mtx_sleep(
    m: *mut kpi::zbpf_mtx,
    chan: *const c_void,
    catch_signals: c_int,
    ticks: c_int,
) -> c_int {
    may_sleep_with("mtx_sleep", 1);
    let m = mtx(m);
    assert!(
        *relock(&m.owner) == Some(std::thread::current().id()),
        "mtx_sleep without its interlock held"
    );
    SLEEPS.fetch_add(1, SeqCst);
    let deadline = (ticks > 0)
        .then(|| Instant::now() + Duration::from_micros(ticks as u64 * 1_000_000 / HZ as u64));
    let chan = chan as usize;
    // Take the sleep queue before dropping the interlock: a wakeup between
    // the caller's check and the sleep is not lost.
    let mut w = relock(&WAITS);
    let start = w.gens.get(&chan).copied().unwrap_or(0);
    mtx_unlock(m);
    let err = loop {
        if catch_signals != 0 && w.signal {
            w.signal = false;
            break EINTR;
        }
        if w.gens.get(&chan).copied().unwrap_or(0) != start {
            break 0;
        }
        w = match deadline {
            None => WAITS_CV.wait(w).unwrap_or_else(PoisonError::into_inner),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    break EWOULDBLOCK;
                }
                WAITS_CV.wait_timeout(w, d - now).unwrap_or_else(PoisonError::into_inner).0
            }
        };
    };
    drop(w);
    mtx_lock(m);
    err
}

/// wakeup(9).
///
/// # Safety
/// Only compares the channel address.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_wakeup(chan: *const c_void) {
    quiet(|| {
        let mut w = relock(&WAITS);
        *w.gens.entry(chan as usize).or_insert(0) += 1;
    });
    WAITS_CV.notify_all();
}

/// Posts a signal to the thread sleeping interruptibly (PCATCH): its
/// mtx_sleep returns EINTR.
pub fn post_signal() {
    relock(&WAITS).signal = true;
    WAITS_CV.notify_all();
}

/// mtx_sleep calls so far.
pub fn sleeps() -> u64 {
    SLEEPS.load(SeqCst)
}

// ---------------------------------------------------------------------------
// sx(9)
// ---------------------------------------------------------------------------

/// An exclusive sx lock that knows its owner.
pub struct FakeSx {
    owner: Mutex<Option<ThreadId>>,
    cv: Condvar,
}

static SX_LIVE: AtomicI64 = AtomicI64::new(0);

fn sx<'a>(s: *mut kpi::zbpf_sx) -> &'a FakeSx {
    assert!(!s.is_null(), "sx: NULL lock");
    // SAFETY: every zbpf_sx handed to Rust is a FakeSx from
    // zbpf_kpi_sx_alloc, alive until zbpf_kpi_sx_free.
    unsafe { &*s.cast::<FakeSx>() }
}

#[no_mangle]
pub extern "C" fn zbpf_kpi_sx_alloc() -> *mut kpi::zbpf_sx {
    may_sleep("sx alloc (malloc M_WAITOK)");
    SX_LIVE.fetch_add(1, SeqCst);
    Box::into_raw(Box::new(FakeSx { owner: Mutex::new(None), cv: Condvar::new() })).cast()
}

/// # Safety
/// `s` came from `zbpf_kpi_sx_alloc`, is unlocked and freed once.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_sx_free(s: *mut kpi::zbpf_sx) {
    assert!(relock(&sx(s).owner).is_none(), "sx_destroy of a held lock");
    SX_LIVE.fetch_sub(1, SeqCst);
    // SAFETY: allocated by zbpf_kpi_sx_alloc as a Box<FakeSx>.
    drop(unsafe { Box::from_raw(s.cast::<FakeSx>()) });
}

/// # Safety
/// `s` came from `zbpf_kpi_sx_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_sx_xlock(s: *mut kpi::zbpf_sx) {
    may_sleep("sx_xlock");
    let s = sx(s);
    let me = std::thread::current().id();
    let mut g = relock(&s.owner);
    assert!(*g != Some(me), "_sx_xlock_hard: recursed on non-recursive sx zbpf global");
    while g.is_some() {
        g = s.cv.wait(g).unwrap_or_else(PoisonError::into_inner);
    }
    *g = Some(me);
}

/// # Safety
/// `s` came from `zbpf_kpi_sx_alloc` and is held by the caller.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_sx_xunlock(s: *mut kpi::zbpf_sx) {
    let s = sx(s);
    let mut g = relock(&s.owner);
    assert!(*g == Some(std::thread::current().id()), "sx_xunlock of a lock not owned");
    *g = None;
    s.cv.notify_one();
}

// ---------------------------------------------------------------------------
// counter(9)
// ---------------------------------------------------------------------------

static COUNTERS_LIVE: AtomicI64 = AtomicI64::new(0);

fn counter<'a>(c: *mut u64) -> &'a AtomicU64 {
    assert!(!c.is_null(), "counter: NULL");
    // SAFETY: every counter is a Box<AtomicU64> from zbpf_kpi_counter_alloc,
    // alive until zbpf_kpi_counter_free; AtomicU64 has u64's layout.
    unsafe { AtomicU64::from_ptr(c) }
}

#[no_mangle]
pub extern "C" fn zbpf_kpi_counter_alloc() -> *mut u64 {
    may_sleep("counter_u64_alloc(M_WAITOK)");
    COUNTERS_LIVE.fetch_add(1, SeqCst);
    Box::into_raw(Box::new(AtomicU64::new(0))).cast()
}

/// # Safety
/// `c` came from `zbpf_kpi_counter_alloc` and is freed once.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_counter_free(c: *mut u64) {
    COUNTERS_LIVE.fetch_sub(1, SeqCst);
    // SAFETY: allocated by zbpf_kpi_counter_alloc as a Box<AtomicU64>.
    drop(unsafe { Box::from_raw(c.cast::<AtomicU64>()) });
}

/// # Safety
/// `c` came from `zbpf_kpi_counter_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_counter_add(c: *mut u64, n: u64) {
    counter(c).fetch_add(n, SeqCst);
}

/// # Safety
/// `c` came from `zbpf_kpi_counter_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_counter_fetch(c: *mut u64) -> u64 {
    counter(c).load(SeqCst)
}

/// # Safety
/// `c` came from `zbpf_kpi_counter_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_counter_zero(c: *mut u64) {
    counter(c).store(0, SeqCst);
}

// ---------------------------------------------------------------------------
// The network epoch
// ---------------------------------------------------------------------------

static NET_EPOCH: RwLock<()> = RwLock::new(());
static EPOCH_WAITS: AtomicU64 = AtomicU64::new(0);

/// Runs `f` inside a network-epoch section (NET_EPOCH_ENTER/EXIT).
pub fn net_epoch<R>(f: impl FnOnce() -> R) -> R {
    let outer = tls_get(&EPOCH_DEPTH) == 0;
    let guard = outer.then(|| NET_EPOCH.read().unwrap_or_else(PoisonError::into_inner));
    tls_add(&EPOCH_DEPTH, 1);
    let r = f();
    tls_add(&EPOCH_DEPTH, -1);
    drop(guard);
    r
}

/// NET_EPOCH_WAIT(): waits for every section in progress.
#[no_mangle]
pub extern "C" fn zbpf_kpi_net_epoch_wait() {
    assert!(tls_get(&EPOCH_DEPTH) == 0, "NET_EPOCH_WAIT inside the network epoch: deadlock");
    may_sleep("NET_EPOCH_WAIT");
    drop(NET_EPOCH.write().unwrap_or_else(PoisonError::into_inner));
    EPOCH_WAITS.fetch_add(1, SeqCst);
}

/// NET_EPOCH_WAIT calls so far.
pub fn epoch_waits() -> u64 {
    EPOCH_WAITS.load(SeqCst)
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

static START: OnceLock<(Instant, Bintime)> = OnceLock::new();

fn clock() -> (Instant, Bintime) {
    *START.get_or_init(|| {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        (Instant::now(), Bintime::from_nanos(wall.as_secs() as i64, wall.subsec_nanos()))
    })
}

fn put_bintime(out: *mut kpi::zbpf_bintime, bt: Bintime) {
    assert!(!out.is_null());
    // SAFETY: the caller passes a valid out-pointer (the shim's contract).
    unsafe { out.write(kpi::zbpf_bintime { sec: bt.sec, frac: bt.frac }) }
}

/// # Safety
/// `bt` is a valid out-pointer.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_binuptime(bt: *mut kpi::zbpf_bintime) {
    let e = clock().0.elapsed();
    put_bintime(bt, Bintime::from_nanos(e.as_secs() as i64, e.subsec_nanos()));
}

/// # Safety
/// `bt` is a valid out-pointer.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_getbinuptime(bt: *mut kpi::zbpf_bintime) {
    let e = clock().0.elapsed();
    let tick = 1_000_000_000 / HZ as u32;
    put_bintime(bt, Bintime::from_nanos(e.as_secs() as i64, e.subsec_nanos() / tick * tick));
}

/// # Safety
/// `bt` is a valid out-pointer.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_getboottimebin(bt: *mut kpi::zbpf_bintime) {
    put_bintime(bt, boottime());
}

/// The modelled boot time (wall clock when the model started).
pub fn boottime() -> Bintime {
    clock().1
}

#[no_mangle]
pub extern "C" fn zbpf_kpi_hz() -> c_int {
    HZ
}

// ---------------------------------------------------------------------------
// Notification resources: selinfo, knlist, sigio, callout
// ---------------------------------------------------------------------------

/// A `struct knote` as far as bpf looks at it.
#[repr(C)]
pub struct FakeKnote {
    /// kn_filter (EVFILT_*).
    pub filter: c_int,
}

/// What select/poll recorded and what wakeups happened.
#[derive(Default, Clone, Debug)]
pub struct SelState {
    /// selrecord calls.
    pub records: u64,
    /// A thread is recorded and not yet woken.
    pub pending: bool,
    /// selwakeuppri calls.
    pub wakeups: u64,
}

/// One descriptor's notes.
pub struct FakeNotes {
    cookie: AtomicPtr<c_void>,
    owner: AtomicI32,
    sel: Mutex<SelState>,
    /// The knlist and its own mtx (held across f_event, as KNOTE does).
    knlist: FakeMtx,
    knotes: Mutex<Vec<(usize, c_int)>>,
    /// f_event results that reported the knote ready: (filter, data).
    kn_fired: Mutex<Vec<(c_int, i64)>>,
    /// The callout: (ticks, token) while armed.
    callout: Mutex<Option<(c_int, u64)>>,
    drained: AtomicBool,
}

static NOTES_LIVE: AtomicI64 = AtomicI64::new(0);
/// cookie -> notes, as bound by zbpf_kpi_notes_bind.
static NOTES: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());
/// pgsigio calls: (owner, signal).
static SIGNALS: Mutex<Vec<(i32, u32)>> = Mutex::new(Vec::new());

fn notes<'a>(n: *mut kpi::zbpf_notes) -> &'a FakeNotes {
    assert!(!n.is_null(), "notes: NULL");
    // SAFETY: every zbpf_notes is a FakeNotes from zbpf_kpi_notes_alloc,
    // alive until zbpf_kpi_notes_free.
    unsafe { &*n.cast::<FakeNotes>() }
}

#[no_mangle]
pub extern "C" fn zbpf_kpi_notes_alloc() -> *mut kpi::zbpf_notes {
    may_sleep("notes alloc (malloc M_WAITOK)");
    NOTES_LIVE.fetch_add(1, SeqCst);
    Box::into_raw(Box::new(FakeNotes {
        cookie: AtomicPtr::new(std::ptr::null_mut()),
        owner: AtomicI32::new(0),
        sel: Mutex::new(SelState::default()),
        knlist: FakeMtx { owner: Mutex::new(None), cv: Condvar::new() },
        knotes: Mutex::new(Vec::new()),
        kn_fired: Mutex::new(Vec::new()),
        callout: Mutex::new(None),
        drained: AtomicBool::new(false),
    }))
    .cast()
}

/// # Safety
/// `n` came from `zbpf_kpi_notes_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_notes_bind(n: *mut kpi::zbpf_notes, cookie: *mut c_void) {
    notes(n).cookie.store(cookie, SeqCst);
    relock(&NOTES).insert(cookie as usize, n as usize);
}

/// # Safety
/// `n` came from `zbpf_kpi_notes_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_notes_drain(n: *mut kpi::zbpf_notes) {
    may_sleep("callout_drain/seldrain");
    let no = notes(n);
    *relock(&no.callout) = None;
    no.owner.store(0, SeqCst);
    {
        let mut s = relock(&no.sel);
        s.wakeups += 1;
        s.pending = false;
    }
    relock(&no.knotes).clear();
    no.drained.store(true, SeqCst);
}

/// # Safety
/// `n` came from `zbpf_kpi_notes_alloc` and is freed once.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_notes_free(n: *mut kpi::zbpf_notes) {
    let no = notes(n);
    if !no.drained.load(SeqCst) {
        violation(|| "notes freed without zbpf_kpi_notes_drain".to_owned());
    }
    relock(&NOTES).retain(|_, v| *v != n as usize);
    NOTES_LIVE.fetch_sub(1, SeqCst);
    // SAFETY: allocated by zbpf_kpi_notes_alloc as a Box<FakeNotes>.
    drop(unsafe { Box::from_raw(n.cast::<FakeNotes>()) });
}

/// selwakeuppri(PRINET) and KNOTE_UNLOCKED: each knote's f_event runs with
/// the knlist's mutex held.
///
/// # Safety
/// `n` came from `zbpf_kpi_notes_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_select_wakeup(n: *mut kpi::zbpf_notes) {
    let no = notes(n);
    {
        let mut s = relock(&no.sel);
        s.wakeups += 1;
        s.pending = false;
    }
    mtx_lock(&no.knlist);
    let knotes = quiet(|| relock(&no.knotes).clone());
    let cookie = no.cookie.load(SeqCst);
    for (_, filter) in knotes {
        let mut data = 0i64;
        // SAFETY: f_event: the bound cookie is a live descriptor (notes are
        // drained before it goes away) and `data` a valid out-pointer.
        if unsafe { zbpf::kernel::zbpf_rs_kq_event(cookie, filter, &mut data) } != 0 {
            quiet(|| relock(&no.kn_fired).push((filter, data)));
        }
    }
    mtx_unlock(&no.knlist);
}

/// # Safety
/// `n` came from `zbpf_kpi_notes_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_select_record(n: *mut kpi::zbpf_notes, td: *mut kpi::thread) {
    assert!(!td.is_null(), "selrecord with a NULL thread");
    let mut s = relock(&notes(n).sel);
    s.records += 1;
    s.pending = true;
}

/// # Safety
/// `n` came from `zbpf_kpi_notes_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_signal(n: *mut kpi::zbpf_notes, sig: c_int) {
    let owner = notes(n).owner.load(SeqCst);
    if owner != 0 {
        quiet(|| relock(&SIGNALS).push((owner, sig as u32)));
    }
}

/// # Safety
/// `n` came from `zbpf_kpi_notes_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_set_owner(n: *mut kpi::zbpf_notes, owner: c_int) -> c_int {
    notes(n).owner.store(owner, SeqCst);
    0
}

/// # Safety
/// `n` came from `zbpf_kpi_notes_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_get_owner(n: *mut kpi::zbpf_notes) -> c_int {
    notes(n).owner.load(SeqCst)
}

/// # Safety
/// `n` came from `zbpf_kpi_notes_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_timer_arm(n: *mut kpi::zbpf_notes, ticks: c_int, token: u64) {
    *relock(&notes(n).callout) = Some((ticks, token));
}

/// # Safety
/// `n` came from `zbpf_kpi_notes_alloc`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_timer_stop(n: *mut kpi::zbpf_notes) {
    *relock(&notes(n).callout) = None;
}

/// # Safety
/// `n` came from `zbpf_kpi_notes_alloc`; `kn` is a live FakeKnote.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_knote_attach(
    n: *mut kpi::zbpf_notes,
    kn: *mut kpi::knote,
    filter: c_int,
) {
    let no = notes(n);
    mtx_lock(&no.knlist);
    quiet(|| relock(&no.knotes).push((kn as usize, filter)));
    mtx_unlock(&no.knlist);
}

/// # Safety
/// `kn` is a live FakeKnote.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_knote_filter(kn: *mut kpi::knote) -> c_int {
    assert!(!kn.is_null());
    // SAFETY: the test hands the engine FakeKnotes only.
    unsafe { (*kn.cast::<FakeKnote>()).filter }
}

fn notes_of(cookie: *mut c_void) -> Option<&'static FakeNotes> {
    let n = *relock(&NOTES).get(&(cookie as usize))?;
    // SAFETY: bound notes stay alive until zbpf_kpi_notes_free removes them
    // from the map; the test only asks for open descriptors'.
    Some(unsafe { &*(n as *const FakeNotes) })
}

/// The armed callout of a descriptor: (ticks, token).
pub fn armed_timer(cookie: *mut c_void) -> Option<(c_int, u64)> {
    *relock(&notes_of(cookie)?.callout)
}

/// Fires a descriptor's armed callout as softclock would. Returns the
/// ticks it was armed with, or `None` if nothing was armed.
pub fn fire_timer(cookie: *mut c_void) -> Option<c_int> {
    let (ticks, token) = relock(&notes_of(cookie)?.callout).take()?;
    // SAFETY: softclock: the bound cookie is a live descriptor (the callout
    // is drained before it goes away).
    unsafe { zbpf::kernel::zbpf_rs_timer(cookie, token) };
    Some(ticks)
}

/// A descriptor's select state.
pub fn sel_state(cookie: *mut c_void) -> SelState {
    notes_of(cookie).map(|n| relock(&n.sel).clone()).unwrap_or_default()
}

/// Knote events that reported ready on a descriptor.
pub fn knote_events(cookie: *mut c_void) -> Vec<(c_int, i64)> {
    notes_of(cookie).map(|n| relock(&n.kn_fired).clone()).unwrap_or_default()
}

/// Attached knotes of a descriptor.
pub fn knote_count(cookie: *mut c_void) -> usize {
    notes_of(cookie).map_or(0, |n| relock(&n.knotes).len())
}

/// Signals sent with pgsigio.
pub fn signals() -> Vec<(i32, u32)> {
    relock(&SIGNALS).clone()
}

// ---------------------------------------------------------------------------
// User memory
// ---------------------------------------------------------------------------

fn errno_of(r: zbpf::abi::Result<()>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.0,
    }
}

/// copyin(9).
///
/// # Safety
/// `kaddr` is valid for `len` bytes of writing.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_copyin(uaddr: u64, kaddr: *mut c_void, len: usize) -> c_int {
    may_sleep("copyin");
    if len == 0 {
        return 0;
    }
    // SAFETY: the caller lends `len` writable kernel bytes.
    let dst = unsafe { std::slice::from_raw_parts_mut(kaddr.cast::<u8>(), len) };
    errno_of(copy_from_user(UserAddr(uaddr), dst))
}

/// copyout(9).
///
/// # Safety
/// `kaddr` is valid for `len` bytes of reading.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_copyout(kaddr: *const c_void, uaddr: u64, len: usize) -> c_int {
    may_sleep("copyout");
    if len == 0 {
        return 0;
    }
    // SAFETY: the caller lends `len` readable kernel bytes.
    let src = unsafe { std::slice::from_raw_parts(kaddr.cast::<u8>(), len) };
    errno_of(copy_to_user(src, UserAddr(uaddr)))
}

/// The test's `struct uio`: one user iovec. The C type is opaque to Rust,
/// so the layout is the test's own.
#[repr(C)]
#[derive(Debug)]
pub struct FakeUio {
    /// User address of the next byte (iov_base).
    pub base: u64,
    /// Bytes left (uio_resid).
    pub resid: isize,
    /// uio_offset.
    pub offset: i64,
    /// UIO_WRITE (user to kernel) when true, UIO_READ otherwise.
    pub write: bool,
}

fn uio<'a>(u: *mut kpi::uio) -> &'a mut FakeUio {
    assert!(!u.is_null());
    // SAFETY: the test hands the engine FakeUios only, exclusively for the
    // duration of the read or write call.
    unsafe { &mut *u.cast::<FakeUio>() }
}

/// uiomove(9).
///
/// # Safety
/// `kaddr` is valid for `len` bytes; `u` is a FakeUio.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_uiomove(
    kaddr: *mut c_void,
    len: usize,
    u: *mut kpi::uio,
) -> c_int {
    if len > i32::MAX as usize {
        return EINVAL;
    }
    may_sleep("uiomove");
    let u = uio(u);
    let n = len.min(u.resid.max(0) as usize);
    if n == 0 {
        return 0;
    }
    let r = if u.write {
        // SAFETY: the caller lends `len` >= `n` writable kernel bytes.
        let dst = unsafe { std::slice::from_raw_parts_mut(kaddr.cast::<u8>(), n) };
        copy_from_user(UserAddr(u.base), dst)
    } else {
        // SAFETY: the caller lends `len` >= `n` readable kernel bytes.
        let src = unsafe { std::slice::from_raw_parts(kaddr.cast::<u8>(), n) };
        copy_to_user(src, UserAddr(u.base))
    };
    if r.is_err() {
        return EFAULT;
    }
    u.base += n as u64;
    u.resid -= n as isize;
    u.offset += n as i64;
    0
}

/// # Safety
/// `u` is a FakeUio.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_uio_resid(u: *mut kpi::uio) -> usize {
    uio(u).resid.max(0) as usize
}

#[no_mangle]
pub extern "C" fn zbpf_kpi_curpid() -> c_int {
    std::process::id() as c_int
}

static PAGES_HELD: AtomicI64 = AtomicI64::new(0);
static SHARED_ON_FORK: AtomicBool = AtomicBool::new(false);

/// Holds one user page for writing: faults it in for write (EFAULT if
/// unmapped or read-only), then maps the same shared page a second time,
/// so that the engine writes through a mapping of its own, page by page.
fn hold_one(addr: u64) -> Option<*mut c_void> {
    let mut byte = [0u8; 1];
    copy_from_user(UserAddr(addr), &mut byte).ok()?;
    copy_to_user(&byte, UserAddr(addr)).ok()?;
    let old = addr as usize as *mut c_void;
    // SAFETY: an old size of 0 makes a second mapping of the same shared
    // page and touches nothing else; failure is MAP_FAILED.
    let p = unsafe { libc::mremap(old, 0, PAGE_SIZE, libc::MREMAP_MAYMOVE) };
    (p != libc::MAP_FAILED && !p.is_null()).then_some(p)
}

fn unhold(p: *mut c_void) {
    // SAFETY: `p` is a PAGE_SIZE mapping created by `hold_one`, unmapped
    // once.
    unsafe { libc::munmap(p, PAGE_SIZE) };
    PAGES_HELD.fetch_sub(1, SeqCst);
}

/// vm_fault_quick_hold_pages, page by page.
///
/// # Safety
/// `pages` and `kva` have room for `npages` entries.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_hold_pages(
    uaddr: u64,
    npages: c_int,
    share_on_fork: c_int,
    pages: *mut *mut c_void,
    kva: *mut *mut c_void,
) -> c_int {
    may_sleep("vm_fault_quick_hold_pages");
    if uaddr % PAGE_SIZE as u64 != 0 {
        violation(|| "vm_fault_quick_hold_pages of an unaligned user address".to_owned());
        return EFAULT;
    }
    let n = usize::try_from(npages).unwrap_or(0);
    // SAFETY: the caller passes arrays of `npages` entries.
    let (pages, kva) = unsafe {
        (std::slice::from_raw_parts_mut(pages, n), std::slice::from_raw_parts_mut(kva, n))
    };
    for i in 0..n {
        let Some(p) = hold_one(uaddr + (i * PAGE_SIZE) as u64) else {
            for held in pages.iter().take(i) {
                unhold(*held);
            }
            return EFAULT;
        };
        PAGES_HELD.fetch_add(1, SeqCst);
        pages[i] = p;
        kva[i] = p;
    }
    if share_on_fork != 0 {
        SHARED_ON_FORK.store(true, SeqCst);
    }
    0
}

/// # Safety
/// `pages` holds `npages` entries from `zbpf_kpi_hold_pages`.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_release_pages(pages: *mut *mut c_void, npages: c_int) {
    let n = usize::try_from(npages).unwrap_or(0);
    if n == 0 {
        return;
    }
    // SAFETY: the caller passes the array it filled, of `npages` entries.
    let pages = unsafe { std::slice::from_raw_parts(pages, n) };
    for p in pages {
        unhold(*p);
    }
}

/// Whether a hold asked for VM_INHERIT_SHARE.
pub fn shared_on_fork() -> bool {
    SHARED_ON_FORK.load(SeqCst)
}

// ---------------------------------------------------------------------------
// ifnets
// ---------------------------------------------------------------------------

/// IFT_ETHER.
pub const IFT_ETHER: c_int = 0x06;
/// IFT_LOOP.
pub const IFT_LOOP: c_int = 0x18;

/// A frame handed to if_output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutFrame {
    /// The frame, link header included.
    pub bytes: Vec<u8>,
    /// ZBPF_OUT_* flags.
    pub flags: c_int,
    /// VLAN priority.
    pub pcp: c_int,
    /// Bytes of link header (route prepend).
    pub hlen: usize,
}

/// A fake `struct ifnet`.
pub struct FakeIfnet {
    xname: [u8; 16],
    if_type: c_int,
    /// IFF_UP.
    pub up: AtomicBool,
    /// IFF_RENAMING.
    pub renaming: AtomicBool,
    mtu: u32,
    mac: Mutex<Option<[u8; 6]>>,
    refs: AtomicI32,
    promisc: AtomicI32,
    hook_active: AtomicBool,
    hook_cookie: AtomicPtr<c_void>,
    hook_installs: AtomicU32,
    linked: AtomicBool,
    sent: Mutex<Vec<OutFrame>>,
    /// Frames passed on to the original if_input (the stack).
    pub stack_input: AtomicU64,
    /// Frames passed on to the original if_transmit (the driver).
    pub driver_output: AtomicU64,
}

static IFNETS: Mutex<Vec<&'static FakeIfnet>> = Mutex::new(Vec::new());

impl FakeIfnet {
    /// Creates and links an interface (if_attach).
    pub fn attach(name: &str, if_type: c_int, mtu: u32, mac: Option<[u8; 6]>) -> &'static Self {
        let mut xname = [0u8; 16];
        xname[..name.len()].copy_from_slice(name.as_bytes());
        let ifp: &'static FakeIfnet = Box::leak(Box::new(FakeIfnet {
            xname,
            if_type,
            up: AtomicBool::new(true),
            renaming: AtomicBool::new(false),
            mtu,
            mac: Mutex::new(mac),
            refs: AtomicI32::new(0),
            promisc: AtomicI32::new(0),
            hook_active: AtomicBool::new(false),
            hook_cookie: AtomicPtr::new(std::ptr::null_mut()),
            hook_installs: AtomicU32::new(0),
            linked: AtomicBool::new(true),
            sent: Mutex::new(Vec::new()),
            stack_input: AtomicU64::new(0),
            driver_output: AtomicU64::new(0),
        }));
        relock(&IFNETS).push(ifp);
        ifp
    }

    /// The handle C would pass.
    pub fn ifp(&'static self) -> *mut kpi::ifnet {
        (self as *const FakeIfnet).cast_mut().cast()
    }

    /// if_detach: ifunit no longer finds it.
    pub fn unlink(&self) {
        self.linked.store(false, SeqCst);
    }

    /// References held through if_ref/ifunit_ref and not released.
    pub fn refs(&self) -> i32 {
        self.refs.load(SeqCst)
    }

    /// The promiscuous count.
    pub fn promisc(&self) -> i32 {
        self.promisc.load(SeqCst)
    }

    /// Whether zbpf's wrappers are installed and active.
    pub fn hooked(&self) -> bool {
        self.hook_active.load(SeqCst)
    }

    /// How many times the wrappers were installed.
    pub fn hook_installs(&self) -> u32 {
        self.hook_installs.load(SeqCst)
    }

    /// Frames if_output received.
    pub fn sent(&self) -> Vec<OutFrame> {
        relock(&self.sent).clone()
    }

    /// Changes the link-level address (to break the model on purpose).
    pub fn set_mac(&self, mac: Option<[u8; 6]>) {
        *relock(&self.mac) = mac;
    }

    /// `ifp->if_input(ifp, m)` as the driver calls it: zbpf's wrapper (if
    /// installed) taps each packet of the m_nextpkt list inside the
    /// network epoch, then the original input gets the list.
    pub fn if_input(&'static self, m: &FakeMbuf) {
        net_epoch(|| {
            if self.hook_active.load(SeqCst) {
                let cookie = self.hook_cookie.load(SeqCst);
                let mut n: *const FakeMbuf = m;
                while !n.is_null() {
                    // SAFETY: zbpf_input: in the epoch, a live ifnet and
                    // packet, neither freed nor changed during the call.
                    unsafe {
                        zbpf::kernel::zbpf_rs_tap(cookie, self.ifp(), n.cast_mut().cast(), 1)
                    };
                    // SAFETY: the packet list is alive for the whole call.
                    n = unsafe { (*n).nextpkt };
                }
            }
        });
        let mut count = 0;
        let mut n: *const FakeMbuf = m;
        while !n.is_null() {
            count += 1;
            // SAFETY: as above.
            n = unsafe { (*n).nextpkt };
        }
        self.stack_input.fetch_add(count, SeqCst);
    }

    /// `ifp->if_transmit(ifp, m)` as the stack calls it.
    pub fn if_transmit(&'static self, m: &FakeMbuf) {
        net_epoch(|| {
            if self.hook_active.load(SeqCst) {
                let cookie = self.hook_cookie.load(SeqCst);
                let p: *const FakeMbuf = m;
                // SAFETY: zbpf_transmit: as in if_input.
                unsafe { zbpf::kernel::zbpf_rs_tap(cookie, self.ifp(), p.cast_mut().cast(), 0) };
            }
        });
        self.driver_output.fetch_add(1, SeqCst);
    }
}

fn ifnet(ifp: *mut kpi::ifnet) -> &'static FakeIfnet {
    assert!(!ifp.is_null(), "ifnet: NULL");
    // SAFETY: every ifnet handed to Rust is a FakeIfnet, and FakeIfnets are
    // leaked, so they live forever.
    unsafe { &*ifp.cast::<FakeIfnet>() }
}

/// ifunit_ref(9) in the caller's vnet.
///
/// # Safety
/// `name` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_ifunit_ref(name: *const c_char) -> *mut kpi::ifnet {
    // SAFETY: the caller passes a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes();
    let list = relock(&IFNETS);
    for ifp in list.iter() {
        let len = ifp.xname.iter().position(|&b| b == 0).unwrap_or(16);
        if ifp.linked.load(SeqCst) && &ifp.xname[..len] == name {
            ifp.refs.fetch_add(1, SeqCst);
            return ifp.ifp();
        }
    }
    std::ptr::null_mut()
}

/// # Safety
/// `ifp` is a referenced FakeIfnet.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_if_ref(ifp: *mut kpi::ifnet) {
    let i = ifnet(ifp);
    assert!(i.refs.load(SeqCst) > 0, "if_ref of an unreferenced ifnet");
    i.refs.fetch_add(1, SeqCst);
}

/// # Safety
/// `ifp` is a referenced FakeIfnet.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_if_rele(ifp: *mut kpi::ifnet) {
    if ifnet(ifp).refs.fetch_sub(1, SeqCst) <= 0 {
        violation(|| "if_rele below zero".to_owned());
    }
}

/// # Safety
/// `ifp` is a FakeIfnet.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_if_name(ifp: *mut kpi::ifnet) -> *const c_char {
    ifnet(ifp).xname.as_ptr().cast()
}

/// # Safety
/// `ifp` is a FakeIfnet.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_if_type(ifp: *mut kpi::ifnet) -> c_int {
    ifnet(ifp).if_type
}

/// # Safety
/// `ifp` is a FakeIfnet.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_if_is_up(ifp: *mut kpi::ifnet) -> c_int {
    c_int::from(ifnet(ifp).up.load(SeqCst))
}

/// # Safety
/// `ifp` is a FakeIfnet.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_if_is_renaming(ifp: *mut kpi::ifnet) -> c_int {
    c_int::from(ifnet(ifp).renaming.load(SeqCst))
}

/// # Safety
/// `ifp` is a FakeIfnet.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_if_mtu(ifp: *mut kpi::ifnet) -> u32 {
    ifnet(ifp).mtu
}

/// # Safety
/// `ifp` is a FakeIfnet; `mac` has room for 6 bytes.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_if_lladdr(ifp: *mut kpi::ifnet, mac: *mut u8) -> c_int {
    match *relock(&ifnet(ifp).mac) {
        Some(m) => {
            // SAFETY: the caller passes 6 writable bytes.
            unsafe { std::ptr::copy_nonoverlapping(m.as_ptr(), mac, 6) };
            1
        }
        None => 0,
    }
}

/// ifpromisc(9): may call the driver, which may sleep.
///
/// # Safety
/// `ifp` is a FakeIfnet.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_ifpromisc(ifp: *mut kpi::ifnet, on: c_int) -> c_int {
    may_sleep("ifpromisc");
    let i = ifnet(ifp);
    let before = i.promisc.fetch_add(if on != 0 { 1 } else { -1 }, SeqCst);
    if on == 0 && before <= 0 {
        violation(|| "ifpromisc(off) below zero".to_owned());
    }
    0
}

/// Builds an mbuf as m_get3 + memcpy, marks it, hands it to if_output
/// (which ends in the interface's if_transmit, zbpf's wrapper included)
/// inside the network epoch, and records the frame.
///
/// # Safety
/// `ifp` is a FakeIfnet; `frame` is valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_if_output(
    ifp: *mut kpi::ifnet,
    frame: *const u8,
    len: usize,
    hlen: usize,
    flags: c_int,
    pcp: c_int,
) -> c_int {
    may_sleep("if_output (m_get3 M_WAITOK)");
    const MJUM16BYTES: usize = 16 * 1024;
    const SA_DATA: usize = 14;
    if len > MJUM16BYTES || hlen > SA_DATA || hlen > len {
        return EIO;
    }
    let i = ifnet(ifp);
    // SAFETY: the caller passes `len` readable bytes.
    let bytes = quiet(|| unsafe { std::slice::from_raw_parts(frame, len) }.to_vec());
    let flags_u = flags as u32;
    let mut mflags = M_PKTHDR;
    if flags_u & kpi::ZBPF_OUT_BCAST != 0 {
        mflags |= M_BCAST;
    }
    if flags_u & kpi::ZBPF_OUT_MCAST != 0 {
        mflags |= M_MCAST;
    }
    if flags_u & kpi::ZBPF_OUT_HIDE != 0 {
        mflags |= M_PROMISC;
    }
    let pkt = quiet(|| Packet::build(&bytes, &[], 16, mflags, std::ptr::null_mut()));
    quiet(|| relock(&i.sent).push(OutFrame { bytes, flags, pcp, hlen }));
    // ether_output prepends the header again and ends in if_transmit.
    net_epoch(|| i.if_transmit(pkt.head()));
    0
}

/// Copies a frame into an mbuf with rcvif = ifp and hands it to if_input.
///
/// # Safety
/// `ifp` is a FakeIfnet; `frame` is valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_if_input(
    ifp: *mut kpi::ifnet,
    frame: *const u8,
    len: usize,
) -> c_int {
    if len > 16 * 1024 {
        return EIO;
    }
    let i = ifnet(ifp);
    // SAFETY: the caller passes `len` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(frame, len) };
    // M_NOWAIT: allocating here is allowed in any context.
    let pkt = quiet(|| Packet::build(bytes, &[], 16, M_PKTHDR, ifp));
    net_epoch(|| i.if_input(pkt.head()));
    0
}

/// Installs zbpf's if_input/if_transmit wrappers.
///
/// # Safety
/// `ifp` is a FakeIfnet.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_tap_install(ifp: *mut kpi::ifnet, cookie: *mut c_void) -> c_int {
    let i = ifnet(ifp);
    if !i.hook_active.load(SeqCst) {
        i.hook_cookie.store(cookie, SeqCst);
        i.hook_active.store(true, SeqCst);
        i.hook_installs.fetch_add(1, SeqCst);
    }
    0
}

/// Restores the original functions and waits for running wrappers.
///
/// # Safety
/// `ifp` is a FakeIfnet.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_tap_remove(ifp: *mut kpi::ifnet) {
    ifnet(ifp).hook_active.store(false, SeqCst);
    zbpf_kpi_net_epoch_wait();
}

/// Every interface that is hooked now (zbpf_unload's loop over the hooks).
pub fn hooked_ifnets() -> Vec<&'static FakeIfnet> {
    relock(&IFNETS).iter().copied().filter(|i| i.hooked()).collect()
}

// ---------------------------------------------------------------------------
// mbufs
// ---------------------------------------------------------------------------

/// m_flags bits the model uses (FreeBSD's values).
pub const M_PKTHDR: u32 = 0x0000_0002;
pub const M_BCAST: u32 = 0x0000_0010;
pub const M_MCAST: u32 = 0x0000_0020;
pub const M_PROMISC: u32 = 0x0000_0040;
pub const M_VLANTAG: u32 = 0x0000_0080;
pub const M_TSTMP: u32 = 0x0000_0800;

/// Filler after each mbuf's data: a tap that reads past m_len shows it.
pub const GUARD_BYTE: u8 = 0xee;

/// A fake `struct mbuf`.
pub struct FakeMbuf {
    storage: Box<[u8]>,
    off: usize,
    len: usize,
    next: *const FakeMbuf,
    nextpkt: *const FakeMbuf,
    flags: AtomicU32,
    vtag: u16,
    rcvif: *mut kpi::ifnet,
    /// MTAG_BPF_TIMESTAMP (uptime) or, with M_TSTMP, rcv_tstmp (wall).
    stamp: Option<Bintime>,
}

impl FakeMbuf {
    /// m_flags now.
    pub fn flags(&self) -> u32 {
        self.flags.load(SeqCst)
    }
}

/// One packet (or an m_nextpkt list of packets) the test owns.
pub struct Packet {
    /// The mbufs; boxed, so their addresses (m_next, m_nextpkt) stay put
    /// as the list grows.
    #[allow(clippy::vec_box)]
    mbufs: Vec<Box<FakeMbuf>>,
    /// Indices of the packet heads, in m_nextpkt order.
    heads: Vec<usize>,
}

impl Packet {
    /// A packet of `bytes` cut into mbufs of the lengths in `cuts` (the
    /// rest in a last mbuf; zero lengths make empty mbufs), each with
    /// `lead` bytes of leading space and guard bytes after its data.
    pub fn build(
        bytes: &[u8],
        cuts: &[usize],
        lead: usize,
        flags: u32,
        rcvif: *mut kpi::ifnet,
    ) -> Packet {
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut rest = bytes;
        for &c in cuts {
            let c = c.min(rest.len());
            pieces.push(&rest[..c]);
            rest = &rest[c..];
        }
        if !rest.is_empty() || pieces.is_empty() {
            pieces.push(rest);
        }
        let mut mbufs: Vec<Box<FakeMbuf>> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut storage = vec![GUARD_BYTE; lead + p.len() + 16].into_boxed_slice();
                storage[lead..lead + p.len()].copy_from_slice(p);
                Box::new(FakeMbuf {
                    storage,
                    off: lead,
                    len: p.len(),
                    next: std::ptr::null(),
                    nextpkt: std::ptr::null(),
                    flags: AtomicU32::new(if i == 0 { flags } else { 0 }),
                    vtag: 0,
                    rcvif: if i == 0 { rcvif } else { std::ptr::null_mut() },
                    stamp: None,
                })
            })
            .collect();
        for i in (1..mbufs.len()).rev() {
            let next: *const FakeMbuf = &*mbufs[i];
            mbufs[i - 1].next = next;
        }
        Packet { mbufs, heads: vec![0] }
    }

    /// Sets M_VLANTAG with `tci` (the hardware stripped the tag).
    pub fn with_vlan(mut self, tci: u16) -> Packet {
        let h = &mut self.mbufs[0];
        h.vtag = tci;
        h.flags.fetch_or(M_VLANTAG, SeqCst);
        self
    }

    /// Attaches a driver timestamp: wall-clock (M_TSTMP) or an uptime tag.
    pub fn with_stamp(mut self, stamp: Bintime, wall: bool) -> Packet {
        let h = &mut self.mbufs[0];
        h.stamp = Some(stamp);
        if wall {
            h.flags.fetch_or(M_TSTMP, SeqCst);
        }
        self
    }

    /// Links `next` after this packet by m_nextpkt (a driver's batch).
    pub fn chain(mut self, next: Packet) -> Packet {
        let last = *self.heads.last().expect("a packet has a head");
        let next_head: *const FakeMbuf = &*next.mbufs[0];
        self.mbufs[last].nextpkt = next_head;
        let base = self.mbufs.len();
        self.heads.extend(next.heads.iter().map(|h| h + base));
        self.mbufs.extend(next.mbufs);
        self
    }

    /// The first mbuf.
    pub fn head(&self) -> &FakeMbuf {
        &self.mbufs[0]
    }

    /// Number of mbufs.
    pub fn mbuf_count(&self) -> usize {
        self.mbufs.len()
    }
}

fn mbuf<'a>(m: *const kpi::mbuf) -> &'a FakeMbuf {
    assert!(!m.is_null(), "mbuf: NULL");
    // SAFETY: every mbuf handed to Rust is a FakeMbuf owned by a Packet
    // that outlives the tap call.
    unsafe { &*m.cast::<FakeMbuf>() }
}

/// mtod().
///
/// # Safety
/// `m` is a FakeMbuf.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_mbuf_data(m: *const kpi::mbuf) -> *const u8 {
    let m = mbuf(m);
    m.storage[m.off..].as_ptr()
}

/// # Safety
/// `m` is a FakeMbuf.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_mbuf_len(m: *const kpi::mbuf) -> u32 {
    mbuf(m).len as u32
}

/// # Safety
/// `m` is a FakeMbuf.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_mbuf_next(m: *const kpi::mbuf) -> *const kpi::mbuf {
    mbuf(m).next.cast()
}

/// # Safety
/// `m` is a FakeMbuf; `tag` is a valid out-pointer.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_mbuf_vlantag(m: *const kpi::mbuf, tag: *mut u16) -> c_int {
    let m = mbuf(m);
    if m.flags() & (M_PKTHDR | M_VLANTAG) != (M_PKTHDR | M_VLANTAG) {
        return 0;
    }
    // SAFETY: the caller passes a valid out-pointer.
    unsafe { tag.write(m.vtag) };
    1
}

/// # Safety
/// `m` is a FakeMbuf; `bt` is a valid out-pointer.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_mbuf_tstamp(
    m: *const kpi::mbuf,
    bt: *mut kpi::zbpf_bintime,
) -> c_int {
    let m = mbuf(m);
    if m.flags() & M_PKTHDR == 0 {
        return 0;
    }
    let Some(stamp) = m.stamp else { return 0 };
    put_bintime(bt, stamp);
    if m.flags() & M_TSTMP != 0 {
        kpi::ZBPF_TSTAMP_WALL as c_int
    } else {
        kpi::ZBPF_TSTAMP_UPTIME as c_int
    }
}

/// # Safety
/// `m` is a FakeMbuf.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_mbuf_marks(m: *const kpi::mbuf) -> c_int {
    let m = mbuf(m);
    let mut marks = 0;
    if m.flags() & M_PROMISC != 0 {
        marks |= kpi::ZBPF_MARK_PROMISC;
    }
    if m.flags() & M_PKTHDR != 0 && !m.rcvif.is_null() {
        marks |= kpi::ZBPF_MARK_RCVIF;
    }
    marks as c_int
}

/// # Safety
/// `m` is a FakeMbuf.
#[no_mangle]
pub unsafe extern "C" fn zbpf_kpi_mbuf_clear_promisc(m: *mut kpi::mbuf) {
    mbuf(m).flags.fetch_and(!M_PROMISC, SeqCst);
}

// ---------------------------------------------------------------------------
// Leak accounting
// ---------------------------------------------------------------------------

/// Live kernel objects: mtx, sx, counters, notes, held pages, code.
pub fn live_objects() -> [(&'static str, i64); 6] {
    [
        ("executable code", EXEC_LIVE.load(SeqCst)),
        ("mtx", MTX_LIVE.load(SeqCst)),
        ("sx", SX_LIVE.load(SeqCst)),
        ("counters", COUNTERS_LIVE.load(SeqCst)),
        ("notes", NOTES_LIVE.load(SeqCst)),
        ("held pages", PAGES_HELD.load(SeqCst)),
    ]
}

/// Held user pages now.
pub fn pages_held() -> i64 {
    PAGES_HELD.load(SeqCst)
}

// ---------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------

/// Proves at compile time that each model function has exactly the type
/// bindgen gave its declaration in `zbpf::kpi`, through which the library
/// calls it: a function item and a declaration only coerce to one common
/// function-pointer type if their signatures agree.
macro_rules! same_signatures {
    ($($f:ident,)*) => {
        /// The `zbpf_kpi_*` functions of `ffi/zbpf_kpi.h`, all modelled.
        pub const KPI_FUNCTIONS: &[&str] = &[$(stringify!($f)),*];

        /// Never called: type-checking it is the proof.
        pub fn signatures_match() {
            $( let _ = [kpi::$f, $f]; )*
        }
    };
}

same_signatures! {
        zbpf_kpi_malloc,
        zbpf_kpi_free,
        zbpf_kpi_exec_alloc,
        zbpf_kpi_exec_free,
        zbpf_kpi_panic,
        zbpf_kpi_log,
        zbpf_kpi_mtx_alloc,
        zbpf_kpi_mtx_free,
        zbpf_kpi_mtx_lock,
        zbpf_kpi_mtx_unlock,
        zbpf_kpi_mtx_sleep,
        zbpf_kpi_wakeup,
        zbpf_kpi_sx_alloc,
        zbpf_kpi_sx_free,
        zbpf_kpi_sx_xlock,
        zbpf_kpi_sx_xunlock,
        zbpf_kpi_counter_alloc,
        zbpf_kpi_counter_free,
        zbpf_kpi_counter_add,
        zbpf_kpi_counter_fetch,
        zbpf_kpi_counter_zero,
        zbpf_kpi_net_epoch_wait,
        zbpf_kpi_binuptime,
        zbpf_kpi_getbinuptime,
        zbpf_kpi_getboottimebin,
        zbpf_kpi_hz,
        zbpf_kpi_notes_alloc,
        zbpf_kpi_notes_bind,
        zbpf_kpi_notes_drain,
        zbpf_kpi_notes_free,
        zbpf_kpi_select_wakeup,
        zbpf_kpi_select_record,
        zbpf_kpi_signal,
        zbpf_kpi_set_owner,
        zbpf_kpi_get_owner,
        zbpf_kpi_timer_arm,
        zbpf_kpi_timer_stop,
        zbpf_kpi_knote_attach,
        zbpf_kpi_knote_filter,
        zbpf_kpi_copyin,
        zbpf_kpi_copyout,
        zbpf_kpi_uiomove,
        zbpf_kpi_uio_resid,
        zbpf_kpi_curpid,
        zbpf_kpi_hold_pages,
        zbpf_kpi_release_pages,
        zbpf_kpi_ifunit_ref,
        zbpf_kpi_if_ref,
        zbpf_kpi_if_rele,
        zbpf_kpi_if_name,
        zbpf_kpi_if_type,
        zbpf_kpi_if_is_up,
        zbpf_kpi_if_is_renaming,
        zbpf_kpi_if_mtu,
        zbpf_kpi_if_lladdr,
        zbpf_kpi_ifpromisc,
        zbpf_kpi_if_output,
        zbpf_kpi_if_input,
        zbpf_kpi_tap_install,
        zbpf_kpi_tap_remove,
        zbpf_kpi_mbuf_data,
        zbpf_kpi_mbuf_len,
        zbpf_kpi_mbuf_next,
        zbpf_kpi_mbuf_vlantag,
        zbpf_kpi_mbuf_tstamp,
        zbpf_kpi_mbuf_marks,
        zbpf_kpi_mbuf_clear_promisc,
}
