//! The simulated machine: the same engine as the kernel module, a table of
//! open files, interfaces that carry traffic, and a syscall-shaped API
//! (open, ioctl, read, write, poll, close) that takes FreeBSD's command
//! numbers and structures at real user addresses, as /dev/bpf does.
//!
//! The generic ioctl layer is reproduced: the argument size comes from the
//! command, IOC_IN arguments are copied in (EFAULT on a bad pointer),
//! IOC_OUT-only arguments start zeroed, and the result is copied out only on
//! success.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::ffi::c_void;
use std::prelude::rust_2021::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::net::{Event, SimIface, SimNet};
use super::platform::HostedPlatform;
use super::process::{copy_from_user, copy_to_user, SimProc, UserReadBuf, UserWriteBuf};
use crate::abi::ioccom::{ioc_copies_in, ioc_copies_out, ioc_len, IOC_DIRMASK, IOC_OUT, IOC_VOID};
use crate::abi::{ioctl, Errno, PollEvents, Result, UserAddr, O_NONBLOCK};
use crate::engine::{Bpf, Descriptor, StackMarks, TapVerdict, BATCH};
use crate::packet::Chain;
use crate::platform::{NetIf, Platform, TapPacket};

/// A descriptor of the simulated engine.
pub type SimDescriptor = Descriptor<HostedPlatform>;

/// Open flags, FreeBSD's values.
pub mod oflags {
    /// Read only.
    pub const O_RDONLY: i32 = 0;
    /// Write only.
    pub const O_WRONLY: i32 = 1;
    /// Read and write.
    pub const O_RDWR: i32 = 2;
    /// Access mode mask.
    pub const O_ACCMODE: i32 = 3;
    pub use crate::abi::O_NONBLOCK;
}

struct OpenFile {
    desc: Arc<SimDescriptor>,
    nonblock: AtomicBool,
    /// The machine, for the destructor.
    sim: Weak<SimInner>,
}

impl Drop for OpenFile {
    /// The cdevpriv destructor: runs at the last reference to the open
    /// file, which is close(2) or the end of a call still in progress on
    /// it in another thread.
    fn drop(&mut self) {
        if let Some(sim) = self.sim.upgrade() {
            sim.bpf.close(self.desc.clone());
        }
    }
}

/// One `struct pollfd` with FreeBSD's event bits.
#[derive(Clone, Copy, Debug, Default)]
pub struct PollFd {
    /// The descriptor.
    pub fd: i32,
    /// Requested events.
    pub events: PollEvents,
    /// Returned events.
    pub revents: PollEvents,
}

impl Default for PollEvents {
    fn default() -> Self {
        PollEvents::empty()
    }
}

/// The shared state of a simulated machine.
pub struct SimInner {
    /// The engine.
    pub bpf: Bpf<HostedPlatform>,
    files: Mutex<HashMap<i32, Arc<OpenFile>>>,
    by_id: Mutex<HashMap<u64, Weak<SimDescriptor>>>,
    next_fd: Mutex<i32>,
}

/// A simulated machine. Dropping it stops its timer thread.
pub struct Sim {
    inner: Arc<SimInner>,
    timer: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    /// A machine with no interfaces.
    pub fn new() -> Sim {
        let net = Arc::new(SimNet::default());
        let platform = HostedPlatform::new(net);
        let inner = Arc::new(SimInner {
            bpf: Bpf::new(platform),
            files: Mutex::new(HashMap::new()),
            by_id: Mutex::new(HashMap::new()),
            next_fd: Mutex::new(3),
        });
        let weak = Arc::downgrade(&inner);
        let services = inner.bpf.platform.services.clone();
        let timer = std::thread::Builder::new()
            .name("zbpf-callout".into())
            .spawn(move || loop {
                let fired = services.timers.next_expired();
                if fired.is_empty() {
                    return;
                }
                let Some(sim) = weak.upgrade() else { return };
                for (id, token) in fired {
                    let d = lock(&sim.by_id).get(&id).and_then(Weak::upgrade);
                    if let Some(d) = d {
                        sim.bpf.timer_fired(&d, token);
                    }
                }
            })
            .ok();
        Sim { inner, timer }
    }

    /// The engine (configuration, statistics).
    pub fn bpf(&self) -> &Bpf<HostedPlatform> {
        &self.inner.bpf
    }

    /// Signals sent to descriptor owners so far.
    pub fn signals(&self) -> Vec<(i32, u32)> {
        self.inner.bpf.platform.services.signals.sent()
    }

    /// Adds an interface to the machine.
    pub fn add_iface(&self, iface: Arc<SimIface>) -> Arc<SimIface> {
        let weak = Arc::downgrade(&self.inner);
        iface.set_hook(Arc::new(move |from: &Arc<SimIface>, ev: Event<'_>| {
            let Some(sim) = weak.upgrade() else { return };
            match ev {
                Event::Sent { frame, promisc } => {
                    sim.deliver(from, frame, StackMarks { promisc, ..SENT });
                    if let Some(peer) = from.peer() {
                        sim.deliver(&peer, frame, RECEIVED);
                    }
                }
                Event::Injected(frame) => sim.deliver(from, frame, RECEIVED),
            }
        }));
        self.inner.bpf.platform.services.net.add(iface.clone());
        iface
    }

    /// Removes an interface: descriptors on it are detached and woken.
    pub fn remove_iface(&self, name: &str) {
        if let Some(iface) = self.inner.bpf.platform.services.net.remove(name) {
            self.inner.bpf.iface_departed(HostedPlatform::iface_key(&iface));
        }
    }

    /// The interface receives a frame from the wire.
    pub fn receive(&self, iface: &Arc<SimIface>, frame: &[u8]) {
        self.inner.deliver(iface, frame, RECEIVED);
    }

    /// The host sends a frame out of the interface (the transmit tap).
    pub fn transmit(&self, iface: &Arc<SimIface>, frame: &[u8]) {
        self.inner.deliver(iface, frame, SENT);
        if let Some(peer) = iface.peer() {
            self.inner.deliver(&peer, frame, RECEIVED);
        }
    }

    /// The interface receives a burst, delivered in one epoch section as
    /// a driver hands an m_nextpkt list to if_input: on an interface whose
    /// frames come in one piece, [`BATCH`] at a time through the engine's
    /// batch path ([`Bpf::deliver_batch`]).
    pub fn receive_burst<'a>(
        &self,
        iface: &Arc<SimIface>,
        frames: impl IntoIterator<Item = &'a [u8]>,
    ) {
        let epoch = &self.inner.bpf.platform.services.epoch;
        let s = epoch.enter();
        if iface.is_contiguous() {
            let empty: &[u8] = &[];
            let mut batch =
                [(); BATCH].map(|()| TapPacket { bytes: empty, inbound: true, hw_time: None });
            let mut n = 0;
            for f in frames {
                if let Some(slot) = batch.get_mut(n) {
                    *slot = TapPacket { bytes: f, inbound: RECEIVED.inbound, hw_time: None };
                    n += 1;
                }
                if n == BATCH {
                    self.inner.deliver_batch_in(&s, iface, &batch);
                    n = 0;
                }
            }
            self.inner.deliver_batch_in(&s, iface, &batch[..n]);
        } else {
            for f in frames {
                self.inner.deliver_in(&s, iface, f, RECEIVED);
            }
        }
        epoch.exit(s);
    }

    /// The calling thread as a process of this machine.
    pub fn proc(&self) -> SimProc {
        SimProc { pid: std::process::id() as i32 }
    }

    /// open("/dev/bpf", flags) with FreeBSD's flag values.
    pub fn open(&self, flags: i32) -> Result<i32> {
        let readable = flags & oflags::O_ACCMODE != oflags::O_WRONLY;
        let desc = self.inner.bpf.open(readable, self.proc().pid)?;
        let id = desc.notifier().id();
        lock(&self.inner.by_id).insert(id, Arc::downgrade(&desc));
        let mut next = lock(&self.inner.next_fd);
        let fd = *next;
        *next += 1;
        let file = OpenFile {
            desc,
            nonblock: AtomicBool::new(flags & O_NONBLOCK != 0),
            sim: Arc::downgrade(&self.inner),
        };
        lock(&self.inner.files).insert(fd, Arc::new(file));
        Ok(fd)
    }

    fn file(&self, fd: i32) -> Result<Arc<OpenFile>> {
        lock(&self.inner.files).get(&fd).cloned().ok_or(Errno::EBADF)
    }

    /// The descriptor behind `fd`, for white-box checks.
    pub fn descriptor(&self, fd: i32) -> Option<Arc<SimDescriptor>> {
        self.file(fd).ok().map(|f| f.desc.clone())
    }

    /// ioctl(fd, cmd, arg): `arg` is a user address.
    pub fn ioctl(&self, fd: i32, cmd: u64, arg: *mut c_void) -> Result<()> {
        let file = self.file(fd)?;
        // sys_ioctl's sanity checks (a kernel built with COMPAT_FREEBSD*):
        // no direction, IOC_OUT without size, or IOC_VOID with a size other
        // than an int's is ENOTTY before any driver runs.
        let len = ioc_len(cmd);
        if cmd & IOC_DIRMASK == 0
            || (cmd & IOC_OUT != 0 && len == 0)
            || (cmd & IOC_VOID != 0 && len != 0 && len != 4)
        {
            return Err(Errno::ENOTTY);
        }
        let mut data = vec![0u8; len];
        let uaddr = UserAddr(arg as u64);
        if ioc_copies_in(cmd) && !data.is_empty() {
            copy_from_user(uaddr, &mut data)?;
        }
        if cmd == ioctl::FIONBIO {
            // The file layer keeps the flag; the driver sees the call too.
            file.nonblock.store(i32::from_ne_bytes(first4(&data)) != 0, Ordering::SeqCst);
        }
        let mut proc = self.proc();
        self.inner.bpf.ioctl(&file.desc, cmd, &mut data, &mut proc)?;
        if ioc_copies_out(cmd) && !data.is_empty() {
            copy_to_user(&data, uaddr)?;
        }
        Ok(())
    }

    /// fcntl(fd, F_SETFL, O_NONBLOCK or 0).
    pub fn set_nonblock(&self, fd: i32, on: bool) -> Result<()> {
        self.file(fd)?.nonblock.store(on, Ordering::SeqCst);
        Ok(())
    }

    /// read(fd, buf, len).
    pub fn read(&self, fd: i32, buf: *mut u8, len: usize) -> Result<usize> {
        let file = self.file(fd)?;
        let mut sink = UserReadBuf { addr: UserAddr(buf as u64), len, done: 0 };
        let nonblock = file.nonblock.load(Ordering::SeqCst);
        self.inner.bpf.read(&file.desc, &mut sink, nonblock, self.proc().pid)
    }

    /// write(fd, buf, len).
    pub fn write(&self, fd: i32, buf: *const u8, len: usize) -> Result<usize> {
        let file = self.file(fd)?;
        let mut src = UserWriteBuf { addr: UserAddr(buf as u64), len, done: 0 };
        self.inner.bpf.write(&file.desc, &mut src, self.proc().pid)
    }

    /// poll(fds, timeout); a negative timeout waits forever. Returns how
    /// many entries have events.
    pub fn poll(&self, fds: &mut [PollFd], timeout_ms: i32) -> Result<usize> {
        let hub = &self.inner.bpf.platform.services.poll;
        let deadline =
            (timeout_ms >= 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
        loop {
            let seen = hub.generation();
            let mut ready = 0;
            for p in fds.iter_mut() {
                p.revents = match self.file(p.fd) {
                    Ok(f) => self.inner.bpf.poll(&f.desc, p.events, self.proc().pid, || {}),
                    Err(_) => PollEvents::POLLNVAL,
                };
                if !p.revents.is_empty() {
                    ready += 1;
                }
            }
            if ready > 0 || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(ready);
            }
            hub.wait(seen, deadline);
        }
    }

    /// Posts a simulated signal to a thread sleeping in read(2) on `fd`.
    pub fn interrupt(&self, fd: i32) -> Result<()> {
        self.file(fd)?.desc.state.interrupt();
        Ok(())
    }

    /// close(fd).
    pub fn close(&self, fd: i32) -> Result<()> {
        let file = lock(&self.inner.files).remove(&fd).ok_or(Errno::EBADF)?;
        let id = file.desc.notifier().id();
        lock(&self.inner.by_id).remove(&id);
        // The destructor runs now, or when a call in progress returns.
        drop(file);
        Ok(())
    }
}

/// A frame the interface received: inbound, with a receiving interface.
const RECEIVED: StackMarks = StackMarks { inbound: true, promisc: false, rcvif: true };
/// A frame the host sends.
const SENT: StackMarks = StackMarks { inbound: false, promisc: false, rcvif: false };

fn first4(data: &[u8]) -> [u8; 4] {
    let mut b = [0u8; 4];
    for (d, s) in b.iter_mut().zip(data) {
        *d = *s;
    }
    b
}

impl SimInner {
    fn deliver(&self, iface: &Arc<SimIface>, frame: &[u8], marks: StackMarks) {
        let epoch = &self.bpf.platform.services.epoch;
        let s = epoch.enter();
        self.deliver_in(&s, iface, frame, marks);
        epoch.exit(s);
    }

    /// A received batch of whole frames, through the engine's batch path.
    fn deliver_batch_in(
        &self,
        section: &<HostedPlatform as Platform>::EpochGuard,
        iface: &Arc<SimIface>,
        pkts: &[TapPacket<'_, [u8]>],
    ) {
        if pkts.is_empty() || RECEIVED.verdict() == TapVerdict::HideAndClearMark {
            return;
        }
        let Some(&(dlt, _)) = iface.dlts().first() else { return };
        let key = HostedPlatform::iface_key(iface);
        if let Some(tap) = self.bpf.tap_with_readers(section, key, dlt) {
            self.bpf.deliver_batch(tap, section, pkts);
        }
    }

    fn deliver_in(
        &self,
        section: &<HostedPlatform as Platform>::EpochGuard,
        iface: &Arc<SimIface>,
        frame: &[u8],
        marks: StackMarks,
    ) {
        // The simulator's frames carry their marks only this far: a cleared
        // mark has no one left to read it.
        if marks.verdict() == TapVerdict::HideAndClearMark {
            return;
        }
        let inbound = marks.inbound;
        let Some(&(dlt, _)) = iface.dlts().first() else { return };
        let key = HostedPlatform::iface_key(iface);
        let mut segs: [&[u8]; 8] = [&[]; 8];
        let n = if iface.is_contiguous() { 1 } else { iface.segment(frame, &mut segs) };
        if n <= 1 {
            let pkt = TapPacket { bytes: frame, inbound, hw_time: None };
            self.bpf.tap(section, key, dlt, &pkt);
        } else {
            let chain = Chain::new(&segs[..n]);
            let pkt = TapPacket { bytes: &chain, inbound, hw_time: None };
            self.bpf.tap(section, key, dlt, &pkt);
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let fds: Vec<i32> = lock(&self.inner.files).keys().copied().collect();
        for fd in fds {
            let _ = self.close(fd);
        }
        self.inner.bpf.platform.services.timers.shutdown();
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
    }
}
