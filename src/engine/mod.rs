//! The descriptor engine: everything a bpf descriptor does, written once
//! against [`Platform`].
//!
//! | piece | file |
//! | --- | --- |
//! | the device root: configuration (sysctls), open/close, statistics | `mod.rs` |
//! | the interface registry: attach, detach, the offer of a packet | `attach.rs` |
//! | one descriptor's state and the capture of one packet | `descriptor.rs` |
//! | the store/hold/free machine shared by both buffer modes | `buffers.rs` |
//! | BUFFER mode buffers | `heap.rs` |
//! | ZBUF buffers and the generation protocol | `zbuf.rs` |
//! | record headers and timestamps | `record.rs` |
//! | ioctl dispatch | `ioctl.rs` |
//! | read, write, poll, kqueue, the read timeout | `io.rs` |
//!
//! Layering: the engine depends on [`tap`](crate::tap) (a [`Tap`] keeps
//! descriptors as its readers), never the other way round.
//!
//! # LOCKING
//!
//! - The global lock (`Bpf::registry`, a [`GlobalLock`]: the sx "zbpf
//!   global" in the kernel) protects the `Registry` (attach.rs): which descriptors
//!   are attached where, and the publication of taps and their readers.
//!   It may be held while sleeping (epoch waits, `NetIf` calls).
//! - The descriptor lock (`Descriptor::state`, a [`DescLock`]: the mtx
//!   "zbpf descriptor") protects one descriptor's [`DescState`]: buffers,
//!   the tap it is on, settings, the timer's state. It is also the sleep
//!   channel of read(2). Never held across a sleep other than its own, nor
//!   while taking the global lock; wakeups of select, kqueue and SIGIO
//!   happen after it is dropped.
//! - In the kernel, the knlist lock (the mtx "zbpf knlist" in
//!   kmod/zbpf_kpi.c) protects a descriptor's kqueue notes; kqueue calls
//!   `zbpf_rs_kq_event` with it held, which takes the descriptor lock.
//! - The epoch (the network epoch in the kernel) protects what the delivery
//!   path reads without locks: the active taps, each tap's published
//!   readers and dispatchers, each descriptor's read filter
//!   ([`EpochCell`]). Replacing one waits for the sections in progress.
//!
//! Order: global lock, then knlist lock, then descriptor lock; the delivery
//! path holds an epoch section and takes only descriptor locks, one at a
//! time. Epoch waits happen with no descriptor or knlist lock held.
//!
//! # DATAPATH
//!
//! Kernel, one packet: the driver's if_input (or the stack's if_transmit)
//! -> `zbpf_input` / `zbpf_transmit` (kmod/zbpf_dev.c, enter the network
//! epoch) -> `zbpf_rs_tap` (src/kernel/entry.rs: [`StackMarks::verdict`]
//! hides the original of a feedback write) -> [`Bpf::deliver_batch`] ->
//! [`Bpf::deliver`] -> [`Tap::deliver`](crate::tap::Tap::deliver) (each
//! group's dispatcher runs the native filters) -> `Descriptor::deliver`
//! (direction, the read filter unless the dispatcher answered, the
//! descriptor lock, `Slots::catch` into the BUFFER or ZBUF store) ->
//! `Descriptor::notify` (sleepers, SIGIO, select and kqueue).
//!
//! Kernel, a driver's batch (an m_nextpkt list handed to if_input, as
//! iflib does): `zbpf_input` describes it [`BATCH`] packets per
//! `zbpf_rs_tap` call -> [`Bpf::deliver_batch`] ->
//! [`Tap::for_each_reader`](crate::tap::Tap::for_each_reader) ->
//! `Descriptor::deliver_batch`: each reader filters the batch's packets in
//! turn, then stores the accepted ones under one hold of its lock. The
//! lock's atomics wait for the stores before them (the previous copies) to
//! drain; once per batch instead of once per packet.
//!
//! Simulator: `Sim::receive` / `Sim::transmit` (or a write's output and
//! feedback, through the interface's hook) -> `SimInner::deliver`, which
//! enters the simulated epoch -> [`StackMarks::verdict`] -> [`Bpf::tap`]
//! -> [`Bpf::tap_with_readers`] -> [`Bpf::deliver`] and on as in the kernel;
//! `Sim::receive_burst` on an interface whose frames come whole is a
//! driver's batch -> [`Bpf::deliver_batch`] and on as in the kernel.

#![forbid(unsafe_code)]

mod attach;
pub mod buffers;
mod descriptor;
mod heap;
mod io;
mod ioctl;
pub mod record;
pub mod zbuf;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

pub use buffers::Caught;
pub use descriptor::{BufMode, Counters, DescState, Descriptor};
pub use io::{write_cast, write_hdrlen, KqFilter, StackMarks, TapVerdict, POLL_DETACHED};
pub use zbuf::HEADER_LEN as ZBUF_HEADER_LEN;

use crate::abi::{Errno, Result, XbpfD, BPF_DEFAULTBUFSIZE, BPF_MAXBUFSIZE, BPF_MAXINSNS};
use crate::platform::epoch::EpochCell;
use crate::platform::{DescLock, GlobalLock, NetIf, Notifier, Platform};
use attach::{ActiveTaps, Registry};

/// A tap whose readers are descriptors.
pub type Tap<P> = crate::tap::Tap<P, Descriptor<P>>;

/// Packets of a driver's batch (an m_nextpkt list) a reader stores under
/// one hold of its lock; longer batches go in pieces of this size.
pub const BATCH: usize = 8;

/// The tunables FreeBSD exposes as `net.bpf.*` sysctls.
pub struct Config {
    /// Buffer size of new descriptors (`bufsize`).
    pub bufsize: AtomicU32,
    /// Upper clamp of BIOCSBLEN (`maxbufsize`).
    pub maxbufsize: AtomicU32,
    /// Longest program accepted (`maxinsns`).
    pub maxinsns: AtomicU32,
    /// Whether BIOCSETBUFMODE may choose ZBUF (`zerocopy_enable`). zbpf
    /// defaults it to on: its zero-copy buffers survive fork.
    pub zerocopy_enable: AtomicBool,
    /// Whether new descriptors start as writers only (`optimize_writers`).
    pub optimize_writers: AtomicBool,
    /// Whether filters are compiled to native code (`jit_enable`).
    pub jit_enable: AtomicBool,
}

/// A sysctl knob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Knob {
    /// `bufsize`.
    BufSize,
    /// `maxbufsize`.
    MaxBufSize,
    /// `maxinsns`.
    MaxInsns,
    /// `zerocopy_enable`.
    ZerocopyEnable,
    /// `optimize_writers`.
    OptimizeWriters,
    /// `jit_enable`.
    JitEnable,
}

impl Config {
    /// A knob's value, as the sysctl shows it.
    pub fn get(&self, knob: Knob) -> i32 {
        let r = Ordering::Relaxed;
        match knob {
            Knob::BufSize => self.bufsize.load(r) as i32,
            Knob::MaxBufSize => self.maxbufsize.load(r) as i32,
            Knob::MaxInsns => self.maxinsns.load(r) as i32,
            Knob::ZerocopyEnable => i32::from(self.zerocopy_enable.load(r)),
            Knob::OptimizeWriters => i32::from(self.optimize_writers.load(r)),
            Knob::JitEnable => i32::from(self.jit_enable.load(r)),
        }
    }

    /// Sets a knob. Sizes must be positive (EINVAL otherwise); the flags
    /// take any value, non-zero meaning on.
    pub fn set(&self, knob: Knob, value: i32) -> Result<()> {
        let r = Ordering::Relaxed;
        let size = || u32::try_from(value).ok().filter(|&v| v > 0).ok_or(Errno::EINVAL);
        match knob {
            Knob::BufSize => self.bufsize.store(size()?, r),
            Knob::MaxBufSize => self.maxbufsize.store(size()?, r),
            Knob::MaxInsns => self.maxinsns.store(size()?, r),
            Knob::ZerocopyEnable => self.zerocopy_enable.store(value != 0, r),
            Knob::OptimizeWriters => self.optimize_writers.store(value != 0, r),
            Knob::JitEnable => self.jit_enable.store(value != 0, r),
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bufsize: AtomicU32::new(BPF_DEFAULTBUFSIZE),
            maxbufsize: AtomicU32::new(BPF_MAXBUFSIZE),
            maxinsns: AtomicU32::new(BPF_MAXINSNS),
            zerocopy_enable: AtomicBool::new(true),
            optimize_writers: AtomicBool::new(false),
            jit_enable: AtomicBool::new(true),
        }
    }
}

/// The device: one per module (or simulator), owning the interface registry
/// and the configuration every descriptor shares.
pub struct Bpf<P: Platform> {
    /// The host.
    pub platform: P,
    /// The sysctls.
    pub config: Config,
    pub(crate) registry: P::Global<Registry<P>>,
    pub(crate) active: ActiveTaps<P>,
    open: AtomicUsize,
    next_token: AtomicU64,
}

impl<P: Platform> Bpf<P> {
    /// A device on `platform` with default configuration.
    pub fn new(platform: P) -> Self {
        Bpf {
            platform,
            config: Config::default(),
            registry: P::Global::new(Registry::new()),
            active: EpochCell::new(None),
            open: AtomicUsize::new(0),
            next_token: AtomicU64::new(1),
        }
    }

    /// Opens a descriptor. `readable` is false for a write-only open (FREAD
    /// not set): such a descriptor starts as a writer only.
    pub fn open(&self, readable: bool, pid: i32) -> Result<Arc<Descriptor<P>>> {
        let notifier = self.platform.new_notifier()?;
        let bufsize = self.config.bufsize.load(Ordering::Relaxed) as usize;
        let d = Arc::new(Descriptor::new(notifier, bufsize, !readable, pid));
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(d)
    }

    /// Closes a descriptor (the cdevpriv destructor): stops its timer,
    /// detaches it and lets it go. The memory is freed when the last
    /// reference (the caller's) is dropped, after the epoch.
    pub fn close(&self, d: Arc<Descriptor<P>>) {
        d.stop_timer();
        // bpf_dtor drops the owner (funsetown) first: closing an
        // asynchronous descriptor sends no signal.
        d.state.lock().async_io = false;
        self.detach(&d);
        d.wakeup_all();
        d.notifier().drain();
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Descriptors open now (unload refuses while this is not zero).
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub(crate) fn token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// A validated program, compiled to native code when `jit_enable` is on
    /// and the platform can run it.
    pub fn program(
        &self,
        insns: &[crate::abi::BpfInsn],
    ) -> core::result::Result<crate::filter::Program, crate::filter::ValidateError> {
        #[allow(unused_mut)]
        let mut prog = crate::filter::Program::new(insns)?;
        #[cfg(target_arch = "x86_64")]
        if self.config.jit_enable.load(Ordering::Relaxed) && !prog.is_constant() {
            if let Some(code) = self.platform.native_code(&crate::filter::jit::compile(insns)) {
                prog.attach_native(code);
            }
        }
        Ok(prog)
    }

    /// The `net.bpf.stats` records: per interface, writers-only first, then
    /// readers.
    pub fn stats(&self) -> Vec<XbpfD> {
        let reg = self.registry.lock();
        let mut out = Vec::new();
        for entry in reg.entries() {
            for d in entry.writers.iter().chain(entry.readers.iter()) {
                out.push(d.xbpf(entry.tap.iface().name_now()));
            }
        }
        out
    }

    /// A write to `net.bpf.stats`: exactly one all-zero record zeroes the
    /// counters of every attached reader; anything else is EINVAL.
    pub fn stats_write(&self, new: &[u8]) -> Result<()> {
        if new.len() != XbpfD::SIZE || new.iter().any(|&b| b != 0) {
            return Err(Errno::EINVAL);
        }
        let reg = self.registry.lock();
        for entry in reg.entries() {
            for d in entry.readers.iter() {
                d.counters().zero_for_stats();
            }
        }
        Ok(())
    }
}
