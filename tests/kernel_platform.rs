//! The kernel platform and the hosted platform drive the same engine.
//!
//! This test runs the real `src/kernel` code (the `zbpf_rs_*` entry points
//! and `KernelPlatform`) on Linux, linked against a userspace model of the
//! C side of zbpf.ko (`kernel_fake`: every `zbpf_kpi_*` function), and runs
//! the same sequence of ioctls, reads, writes, polls and frames through the
//! hosted simulator (`Sim`, contiguous frames). Frames reach the kernel
//! platform as mbuf chains of many shapes, through the fake driver's
//! `if_input`/`if_transmit` and zbpf's tap wrappers, some with a hardware
//! VLAN tag the tap must reinsert.
//!
//! The two runs must produce the same transcript: the same results of every
//! call, byte-identical record streams (the 16 timestamp bytes of each
//! record header aside), the same BIOCGSTATS counters, `net.bpf.stats`
//! records, frames on the wire and signals. Kernel-only checks follow:
//! taps installed and removed, driver timestamps, kqueue notes, the read
//! timeout callout, module quiesce and unload, nothing leaked, and no
//! kernel rule broken (no sleeping with a mutex held or in the epoch, no
//! recursion on a mutex).
//!
//! The kernel module's state is a global, so everything runs in one test.
#![deny(clippy::undocumented_unsafe_blocks)]

mod kernel_fake;

use std::collections::BTreeMap;
use std::ffi::{c_int, c_ulong, c_void};
use std::fmt::Debug;
use std::sync::atomic::Ordering::{Acquire, Release, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kernel_fake::{FakeIfnet, FakeKnote, FakeUio, Packet, M_PKTHDR};
use zbpf::abi::ioccom::{ioc_copies_in, ioc_copies_out, ioc_len, IOC_DIRMASK, IOC_OUT, IOC_VOID};
use zbpf::abi::ioctl::*;
use zbpf::abi::*;
use zbpf::engine::Knob;
use zbpf::hosted::libpcap;
use zbpf::hosted::net::{Segmentation, SimIface};
use zbpf::hosted::process::{copy_from_user, copy_to_user, SharedRegion};
use zbpf::hosted::sim::{PollFd, Sim};
use zbpf::kernel as kmod;
use zbpf::platform::Bintime;

/// Every allocation of this binary goes through `zbpf_kpi_malloc(M_WAITOK)`,
/// as the kernel build's global allocator does.
#[global_allocator]
static ALLOC: kernel_fake::KernelMalloc = kernel_fake::KernelMalloc;

const EM0_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
const EM1_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x11];
const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02];
const O_RDONLY: i32 = 0;
const O_WRONLY: i32 = 1;
const O_RDWR: i32 = 2;
const RD: PollEvents = PollEvents::POLLIN.union(PollEvents::POLLRDNORM);

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

/// A frame as bpf must see it, and how the kernel's driver carries it.
#[derive(Clone, Debug)]
struct Frame {
    /// The bytes the records must show (an 802.1Q header included).
    bytes: Vec<u8>,
    /// Kernel: mbuf lengths (the rest in a last mbuf, 0 = empty mbuf).
    cuts: Vec<usize>,
    /// Kernel: the hardware stripped the 802.1Q header (M_VLANTAG).
    hw_vlan: bool,
    /// Kernel: leading space in each mbuf.
    lead: usize,
}

fn ether(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4_udp(sport: u16, dport: u16, payload: usize, seed: u8) -> Vec<u8> {
    let total = (20 + 8 + payload) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, seed, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend((0..payload).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    p
}

/// A UDP datagram to the host's MAC.
fn udp(dport: u16, payload: usize, seed: u8) -> Vec<u8> {
    ether(EM0_MAC, PEER_MAC, 0x0800, &ipv4_udp(40000 + u16::from(seed), dport, payload, seed))
}

/// An ARP request (broadcast).
fn arp(seed: u8) -> Vec<u8> {
    let body: Vec<u8> = (0..28u8).map(|i| i.wrapping_add(seed)).collect();
    ether([0xff; 6], PEER_MAC, 0x0806, &body)
}

/// `frame` with an 802.1Q header after the MACs.
fn tagged(frame: &[u8], tci: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// mbuf chain shapes (lengths of the leading mbufs).
const SHAPES: &[&[usize]] = &[
    &[],
    &[14],
    &[0, 5, 0, 7, 3],
    &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    &[6],
    &[12],
    &[13],
    &[100, 0, 100, 0],
    &[11, 2, 40],
];

fn plain(bytes: Vec<u8>, shape: usize) -> Frame {
    Frame {
        bytes,
        cuts: SHAPES[shape % SHAPES.len()].to_vec(),
        hw_vlan: false,
        lead: 8 * (shape % 4),
    }
}

/// A frame whose tag the hardware stripped; `bytes` carry the tag.
fn hw_tagged(inner: &[u8], tci: u16, shape: usize) -> Frame {
    Frame { hw_vlan: true, ..plain(tagged(inner, tci), shape) }
}

/// The mbufs the fake driver builds for a frame.
fn packet_of(f: &Frame, rcvif: *mut zbpf::kpi::ifnet) -> Packet {
    if f.hw_vlan {
        assert_eq!(&f.bytes[12..14], &[0x81, 0x00], "hw_vlan frames carry their tag");
        let tci = u16::from_be_bytes([f.bytes[14], f.bytes[15]]);
        let mut stripped = f.bytes[..12].to_vec();
        stripped.extend_from_slice(&f.bytes[16..]);
        Packet::build(&stripped, &f.cuts, f.lead, M_PKTHDR, rcvif).with_vlan(tci)
    } else {
        Packet::build(&f.bytes, &f.cuts, f.lead, M_PKTHDR, rcvif)
    }
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

fn wordalign(x: usize) -> usize {
    (x + 7) & !7
}

/// One record of a buffer.
#[derive(Clone, Debug)]
struct Rec {
    ts: (i64, u64),
    caplen: usize,
    datalen: usize,
    data: Vec<u8>,
}

/// Walks a buffer's records (bpf(4): BPF_WORDALIGN(hdrlen + caplen)).
fn records(buf: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        assert!(off + SIZEOF_BPF_HDR <= buf.len(), "truncated record header at {off}");
        let r = &buf[off..];
        let sec = i64::from_le_bytes(r[0..8].try_into().unwrap());
        let frac = u64::from_le_bytes(r[8..16].try_into().unwrap());
        let caplen = u32::from_le_bytes(r[16..20].try_into().unwrap()) as usize;
        let datalen = u32::from_le_bytes(r[20..24].try_into().unwrap()) as usize;
        let hdrlen = usize::from(u16::from_le_bytes(r[24..26].try_into().unwrap()));
        assert!(hdrlen >= SIZEOF_BPF_HDR && hdrlen + caplen <= r.len(), "bad record at {off}");
        out.push(Rec {
            ts: (sec, frac),
            caplen,
            datalen,
            data: r[hdrlen..hdrlen + caplen].to_vec(),
        });
        off += wordalign(hdrlen + caplen);
    }
    out
}

/// The buffer with each record's 16 timestamp bytes zeroed.
fn masked(buf: &[u8]) -> Vec<u8> {
    let mut out = buf.to_vec();
    let mut off = 0;
    while off + SIZEOF_BPF_HDR <= out.len() {
        let caplen = u32::from_le_bytes(out[off + 16..off + 20].try_into().unwrap()) as usize;
        let hdrlen = usize::from(u16::from_le_bytes(out[off + 24..off + 26].try_into().unwrap()));
        out[off..off + 16].fill(0);
        off += wordalign(hdrlen + caplen);
    }
    out
}

/// Frames carrying a VLAN tag must show it right after the two MACs.
fn check_vlan_records(recs: &[Rec], expected: &[Frame]) {
    for f in expected.iter().filter(|f| f.hw_vlan) {
        let want = &f.bytes[..f.bytes.len().min(64)];
        let rec = recs
            .iter()
            .find(|r| {
                r.data.len() >= 16 && r.data[..r.data.len().min(64)] == want[..r.data.len().min(64)]
            })
            .unwrap_or_else(|| panic!("no record shows the tagged frame {:02x?}", &want[..16]));
        assert_eq!(&rec.data[12..14], &[0x81, 0x00], "802.1Q TPID after the MACs");
        assert_eq!(&rec.data[14..16], &f.bytes[14..16], "the TCI");
        assert_eq!(rec.datalen, f.bytes.len(), "datalen counts the reinserted tag");
    }
}

// ---------------------------------------------------------------------------
// The two machines
// ---------------------------------------------------------------------------

/// What the scenarios need from a machine running the engine.
trait Machine: Sync {
    fn name(&self) -> &'static str;
    fn open(&self, oflags: i32) -> Result<i32>;
    fn ioctl(&self, fd: i32, cmd: u64, arg: *mut c_void) -> Result<()>;
    fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize>;
    fn write(&self, fd: i32, buf: &[u8]) -> Result<usize>;
    /// poll(2) with a zero timeout.
    fn poll(&self, fd: i32, events: PollEvents) -> PollEvents;
    /// Waits for the read-timeout timer a poll armed to fire.
    fn wait_timer(&self, fd: i32) -> bool;
    /// Posts a signal to the thread sleeping in read(2) on `fd`.
    fn interrupt(&self, fd: i32);
    fn close(&self, fd: i32) -> Result<()>;
    fn receive(&self, ifname: &str, f: &Frame);
    fn receive_burst(&self, ifname: &str, fs: &[Frame]);
    fn transmit(&self, ifname: &str, f: &Frame);
    fn depart(&self, ifname: &str);
    /// Frames written: bytes, header complete, VLAN priority.
    fn wire(&self, ifname: &str) -> Vec<(Vec<u8>, bool, u8)>;
    fn tapped(&self, ifname: &str) -> bool;
    fn promisc(&self, ifname: &str) -> i32;
    fn signals(&self) -> Vec<(i32, u32)>;
    fn xstats(&self) -> Vec<XbpfD>;
    fn stats_write(&self, data: &[u8]) -> Result<()>;
    fn sysctl_get(&self, knob: Knob) -> i32;
    fn sysctl_set(&self, knob: Knob, value: i32) -> Result<()>;
    fn kernel(&self) -> Option<&KernelMachine> {
        None
    }
}

/// The hosted simulator.
struct SimMachine {
    sim: Sim,
    ifaces: BTreeMap<&'static str, Arc<SimIface>>,
}

impl SimMachine {
    fn new() -> Self {
        let sim = Sim::new();
        let mut ifaces = BTreeMap::new();
        for (name, mac) in [("em0", EM0_MAC), ("em1", EM1_MAC)] {
            let i = sim.add_iface(SimIface::ethernet(name, mac));
            i.set_segmentation(Segmentation::Contiguous);
            ifaces.insert(name, i);
        }
        SimMachine { sim, ifaces }
    }

    fn iface(&self, name: &str) -> &Arc<SimIface> {
        &self.ifaces[name]
    }
}

impl Machine for SimMachine {
    fn name(&self) -> &'static str {
        "hosted"
    }
    fn open(&self, oflags: i32) -> Result<i32> {
        self.sim.open(oflags)
    }
    fn ioctl(&self, fd: i32, cmd: u64, arg: *mut c_void) -> Result<()> {
        self.sim.ioctl(fd, cmd, arg)
    }
    fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize> {
        self.sim.read(fd, buf.as_mut_ptr(), buf.len())
    }
    fn write(&self, fd: i32, buf: &[u8]) -> Result<usize> {
        self.sim.write(fd, buf.as_ptr(), buf.len())
    }
    fn poll(&self, fd: i32, events: PollEvents) -> PollEvents {
        let mut p = [PollFd { fd, events, ..Default::default() }];
        self.sim.poll(&mut p, 0).expect("poll");
        p[0].revents
    }
    fn wait_timer(&self, fd: i32) -> bool {
        let mut p = [PollFd { fd, events: RD, ..Default::default() }];
        self.sim.poll(&mut p, 5000).expect("poll") == 1
    }
    fn interrupt(&self, fd: i32) {
        self.sim.interrupt(fd).expect("interrupt");
    }
    fn close(&self, fd: i32) -> Result<()> {
        self.sim.close(fd)
    }
    fn receive(&self, ifname: &str, f: &Frame) {
        self.sim.receive(self.iface(ifname), &f.bytes);
    }
    fn receive_burst(&self, ifname: &str, fs: &[Frame]) {
        self.sim.receive_burst(self.iface(ifname), fs.iter().map(|f| f.bytes.as_slice()));
    }
    fn transmit(&self, ifname: &str, f: &Frame) {
        self.sim.transmit(self.iface(ifname), &f.bytes);
    }
    fn depart(&self, ifname: &str) {
        self.sim.remove_iface(ifname);
    }
    fn wire(&self, ifname: &str) -> Vec<(Vec<u8>, bool, u8)> {
        self.iface(ifname).wire().into_iter().map(|s| (s.bytes, s.hdrcmplt, s.pcp)).collect()
    }
    fn tapped(&self, ifname: &str) -> bool {
        self.iface(ifname).is_tapped()
    }
    fn promisc(&self, ifname: &str) -> i32 {
        self.iface(ifname).promisc_count()
    }
    fn signals(&self) -> Vec<(i32, u32)> {
        self.sim.signals()
    }
    fn xstats(&self) -> Vec<XbpfD> {
        self.sim.bpf().stats()
    }
    fn stats_write(&self, data: &[u8]) -> Result<()> {
        self.sim.bpf().stats_write(data)
    }
    fn sysctl_get(&self, knob: Knob) -> i32 {
        self.sim.bpf().config.get(knob)
    }
    fn sysctl_set(&self, knob: Knob, value: i32) -> Result<()> {
        self.sim.bpf().config.set(knob, value)
    }
}

/// An open file of the kernel machine: the cdevpriv cookie and FNONBLOCK.
struct KFile {
    cookie: usize,
    nonblock: AtomicBool,
}

/// The kernel platform behind the fake C side: plays devfs, the generic
/// ioctl layer, read/write's uio, the drivers of em0 and em1 and softclock.
struct KernelMachine {
    files: Mutex<BTreeMap<i32, Arc<KFile>>>,
    next_fd: AtomicI32,
    ifaces: BTreeMap<&'static str, &'static FakeIfnet>,
}

/// The `struct thread *` handed to d_poll.
static FAKE_TD: AtomicU32 = AtomicU32::new(0);

fn td() -> *mut zbpf::kpi::thread {
    FAKE_TD.as_ptr().cast()
}

fn rc(err: c_int) -> Result<()> {
    if err == 0 {
        Ok(())
    } else {
        Err(Errno(err))
    }
}

impl KernelMachine {
    fn new(ifaces: BTreeMap<&'static str, &'static FakeIfnet>) -> Self {
        KernelMachine { files: Mutex::new(BTreeMap::new()), next_fd: AtomicI32::new(3), ifaces }
    }

    fn file(&self, fd: i32) -> Result<Arc<KFile>> {
        self.files.lock().unwrap().get(&fd).cloned().ok_or(Errno::EBADF)
    }

    fn cookie(&self, fd: i32) -> *mut c_void {
        self.file(fd).expect("open fd").cookie as *mut c_void
    }

    fn ifnet(&self, name: &str) -> &'static FakeIfnet {
        self.ifaces[name]
    }

    /// dofileread/dofilewrite over a one-iovec uio.
    fn rw(&self, fd: i32, base: u64, len: usize, write: bool) -> Result<usize> {
        let f = self.file(fd)?;
        let mut uio = FakeUio { base, resid: len as isize, offset: 0, write };
        let uiop: *mut zbpf::kpi::uio = (&mut uio as *mut FakeUio).cast();
        let cookie = f.cookie as *mut c_void;
        let ioflag = if f.nonblock.load(SeqCst) && !write { O_NONBLOCK } else { 0 };
        // SAFETY: as devfs calls d_read/d_write: the cookie of an open
        // descriptor and a uio (the model's layout) valid for the call.
        let err = unsafe {
            if write {
                kmod::zbpf_rs_write(cookie, uiop, ioflag)
            } else {
                kmod::zbpf_rs_read(cookie, uiop, ioflag)
            }
        };
        let done = len - uio.resid as usize;
        // dofileread: an interrupted transfer that moved data succeeds.
        let partial = done != 0 && [Errno::EINTR.0, Errno::EWOULDBLOCK.0].contains(&err);
        if err != 0 && !partial {
            return Err(Errno(err));
        }
        Ok(done)
    }
}

impl Machine for KernelMachine {
    fn name(&self) -> &'static str {
        "kernel"
    }

    fn open(&self, oflags: i32) -> Result<i32> {
        // FFLAGS(): O_RDONLY/O_WRONLY/O_RDWR become FREAD/FWRITE bits.
        let fflags = ((oflags & 3) + 1) | (oflags & O_NONBLOCK);
        let mut cookie: *mut c_void = std::ptr::null_mut();
        // SAFETY: `cookie` is a valid out-pointer, as in zbpf_open.
        rc(unsafe { kmod::zbpf_rs_open(fflags, &mut cookie) })?;
        let fd = self.next_fd.fetch_add(1, SeqCst);
        let file =
            KFile { cookie: cookie as usize, nonblock: AtomicBool::new(oflags & O_NONBLOCK != 0) };
        self.files.lock().unwrap().insert(fd, Arc::new(file));
        Ok(fd)
    }

    /// sys_ioctl + kern_ioctl: the argument is copied in (IOC_IN) or zeroed,
    /// the driver gets a kernel buffer of IOCPARM_LEN(cmd), and the result
    /// is copied out on success (IOC_OUT).
    fn ioctl(&self, fd: i32, cmd: u64, arg: *mut c_void) -> Result<()> {
        let f = self.file(fd)?;
        let len = ioc_len(cmd);
        if cmd & IOC_DIRMASK == 0
            || (cmd & IOC_OUT != 0 && len == 0)
            || (cmd & IOC_VOID != 0 && len != 0 && len != 4)
        {
            return Err(Errno::ENOTTY);
        }
        let mut data = vec![0u8; len.max(8)];
        let uaddr = UserAddr(arg as u64);
        if ioc_copies_in(cmd) && len > 0 {
            copy_from_user(uaddr, &mut data[..len])?;
        }
        if cmd == FIONBIO {
            let on = i32::from_ne_bytes(data[..4].try_into().unwrap()) != 0;
            f.nonblock.store(on, SeqCst);
        }
        // SAFETY: as zbpf_ioctl: an open descriptor's cookie and a kernel
        // buffer of IOCPARM_LEN(cmd) bytes, valid for the call.
        rc(unsafe {
            kmod::zbpf_rs_ioctl(f.cookie as *mut c_void, cmd as c_ulong, data.as_mut_ptr(), len)
        })?;
        if ioc_copies_out(cmd) && len > 0 {
            copy_to_user(&data[..len], uaddr)?;
        }
        Ok(())
    }

    fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize> {
        self.rw(fd, buf.as_mut_ptr() as u64, buf.len(), false)
    }

    fn write(&self, fd: i32, buf: &[u8]) -> Result<usize> {
        self.rw(fd, buf.as_ptr() as u64, buf.len(), true)
    }

    fn poll(&self, fd: i32, events: PollEvents) -> PollEvents {
        // SAFETY: an open descriptor's cookie and a thread pointer that
        // the model's selrecord only records.
        let r = unsafe { kmod::zbpf_rs_poll(self.cookie(fd), events.bits(), td()) };
        PollEvents::from_bits_truncate(r)
    }

    fn wait_timer(&self, fd: i32) -> bool {
        let cookie = self.cookie(fd);
        let before = kernel_fake::sel_state(cookie).wakeups;
        let fired = kernel_fake::fire_timer(cookie).is_some();
        fired && kernel_fake::sel_state(cookie).wakeups > before
    }

    fn interrupt(&self, _fd: i32) {
        kernel_fake::post_signal();
    }

    fn close(&self, fd: i32) -> Result<()> {
        let f = self.files.lock().unwrap().remove(&fd).ok_or(Errno::EBADF)?;
        // The cdevpriv destructor.
        // SAFETY: the cookie from zbpf_rs_open, removed from the table so
        // it is passed once.
        unsafe { kmod::zbpf_rs_close(f.cookie as *mut c_void) };
        Ok(())
    }

    fn receive(&self, ifname: &str, f: &Frame) {
        let ifp = self.ifnet(ifname);
        ifp.if_input(packet_of(f, ifp.ifp()).head());
    }

    fn receive_burst(&self, ifname: &str, fs: &[Frame]) {
        let ifp = self.ifnet(ifname);
        let mut list: Option<Packet> = None;
        for f in fs {
            let p = packet_of(f, ifp.ifp());
            list = Some(match list {
                None => p,
                Some(l) => l.chain(p),
            });
        }
        if let Some(l) = list {
            ifp.if_input(l.head());
        }
    }

    fn transmit(&self, ifname: &str, f: &Frame) {
        let ifp = self.ifnet(ifname);
        ifp.if_transmit(packet_of(f, std::ptr::null_mut()).head());
    }

    fn depart(&self, ifname: &str) {
        let ifp = self.ifnet(ifname);
        ifp.unlink();
        // SAFETY: the departing ifnet is a live (leaked) fake.
        unsafe { kmod::zbpf_rs_ifnet_departure(ifp.ifp()) };
    }

    fn wire(&self, ifname: &str) -> Vec<(Vec<u8>, bool, u8)> {
        let hdrcmplt = zbpf::kpi::ZBPF_OUT_HDRCMPLT as c_int;
        self.ifnet(ifname)
            .sent()
            .into_iter()
            .map(|o| (o.bytes, o.flags & hdrcmplt != 0, o.pcp as u8))
            .collect()
    }

    fn tapped(&self, ifname: &str) -> bool {
        self.ifnet(ifname).hooked()
    }

    fn promisc(&self, ifname: &str) -> i32 {
        self.ifnet(ifname).promisc()
    }

    fn signals(&self) -> Vec<(i32, u32)> {
        kernel_fake::signals()
    }

    fn xstats(&self) -> Vec<XbpfD> {
        let mut needed = 0usize;
        // SAFETY: a NULL buffer asks for the size; `needed` is valid.
        rc(unsafe { kmod::zbpf_rs_stats(std::ptr::null_mut(), 0, &mut needed) })
            .expect("stats size");
        let mut buf = vec![0u8; needed.max(1)];
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        rc(unsafe { kmod::zbpf_rs_stats(buf.as_mut_ptr(), buf.len(), &mut needed) })
            .expect("stats");
        buf[..needed].chunks_exact(XbpfD::SIZE).map(XbpfD::decode).collect()
    }

    fn stats_write(&self, data: &[u8]) -> Result<()> {
        // SAFETY: `data` is valid for its length.
        rc(unsafe { kmod::zbpf_rs_stats_write(data.as_ptr(), data.len()) })
    }

    fn sysctl_get(&self, knob: Knob) -> i32 {
        kmod::zbpf_rs_sysctl_get(knob_id(knob))
    }

    fn sysctl_set(&self, knob: Knob, value: i32) -> Result<()> {
        rc(kmod::zbpf_rs_sysctl_set(knob_id(knob), value))
    }

    fn kernel(&self) -> Option<&KernelMachine> {
        Some(self)
    }
}

fn knob_id(knob: Knob) -> c_int {
    (match knob {
        Knob::BufSize => zbpf::kpi::ZBPF_SYSCTL_BUFSIZE,
        Knob::MaxBufSize => zbpf::kpi::ZBPF_SYSCTL_MAXBUFSIZE,
        Knob::MaxInsns => zbpf::kpi::ZBPF_SYSCTL_MAXINSNS,
        Knob::ZerocopyEnable => zbpf::kpi::ZBPF_SYSCTL_ZEROCOPY_ENABLE,
        Knob::OptimizeWriters => zbpf::kpi::ZBPF_SYSCTL_OPTIMIZE_WRITERS,
        Knob::JitEnable => zbpf::kpi::ZBPF_SYSCTL_JIT_ENABLE,
        // A knob the kernel module does not export.
        #[allow(unreachable_patterns)]
        _ => return -1,
    }) as c_int
}

// ---------------------------------------------------------------------------
// The transcript
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Ev {
    Val(String, String),
    Data(String, Vec<u8>),
}

/// Everything a run observed, in order.
#[derive(Default)]
struct Transcript {
    evs: Vec<Ev>,
    buffers: usize,
    records: usize,
    record_bytes: usize,
}

impl Transcript {
    fn val(&mut self, label: &str, v: impl Debug) {
        self.evs.push(Ev::Val(label.to_owned(), format!("{v:?}")));
    }

    /// Like `val`, handing the value back.
    fn keep<T: Debug>(&mut self, label: &str, v: T) -> T {
        self.val(label, &v);
        v
    }

    /// Raw bytes (frames on the wire).
    fn raw(&mut self, label: &str, bytes: &[u8]) {
        self.evs.push(Ev::Data(label.to_owned(), bytes.to_vec()));
    }

    /// Frames written on an interface.
    fn wire(&mut self, label: &str, wire: &[(Vec<u8>, bool, u8)]) {
        for (i, (bytes, hdrcmplt, pcp)) in wire.iter().enumerate() {
            self.val(&format!("{label} #{i} hdrcmplt, pcp"), (hdrcmplt, pcp));
            self.raw(&format!("{label} #{i}"), bytes);
        }
    }

    /// A buffer of records: kept with timestamps masked.
    fn buffer(&mut self, label: &str, buf: &[u8]) -> Vec<Rec> {
        let recs = records(buf);
        self.buffers += 1;
        self.records += recs.len();
        self.record_bytes += buf.len();
        self.evs.push(Ev::Val(format!("{label}: records"), recs.len().to_string()));
        self.evs.push(Ev::Data(label.to_owned(), masked(buf)));
        recs
    }
}

fn compare(kernel: &Transcript, hosted: &Transcript) {
    for (i, (k, h)) in kernel.evs.iter().zip(hosted.evs.iter()).enumerate() {
        if k == h {
            continue;
        }
        match (k, h) {
            (Ev::Data(lk, bk), Ev::Data(lh, bh)) if lk == lh => {
                let at = bk
                    .iter()
                    .zip(bh.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(bk.len().min(bh.len()));
                let lo = at.saturating_sub(16);
                panic!(
                    "event {i} `{lk}`: record streams differ at byte {at} (kernel {} bytes, hosted {} bytes)\n kernel {:02x?}\n hosted {:02x?}",
                    bk.len(),
                    bh.len(),
                    &bk[lo..(at + 16).min(bk.len())],
                    &bh[lo..(at + 16).min(bh.len())]
                );
            }
            _ => panic!("event {i} differs:\n kernel {k:?}\n hosted {h:?}"),
        }
    }
    assert_eq!(kernel.evs.len(), hosted.evs.len(), "transcripts have different lengths");
}

// ---------------------------------------------------------------------------
// Typed ioctls
// ---------------------------------------------------------------------------

fn ioc<T>(m: &dyn Machine, fd: i32, cmd: u64, arg: &mut T) -> Result<()> {
    m.ioctl(fd, cmd, (arg as *mut T).cast())
}

fn ioc0(m: &dyn Machine, fd: i32, cmd: u64) -> Result<()> {
    m.ioctl(fd, cmd, std::ptr::null_mut())
}

fn get_u32(m: &dyn Machine, fd: i32, cmd: u64) -> Result<u32> {
    let mut v = 0xdead_beefu32;
    ioc(m, fd, cmd, &mut v).map(|()| v)
}

fn set_u32(m: &dyn Machine, fd: i32, cmd: u64, v: u32) -> Result<u32> {
    let mut v = v;
    ioc(m, fd, cmd, &mut v).map(|()| v)
}

fn set_i32(m: &dyn Machine, fd: i32, cmd: u64, v: i32) -> Result<()> {
    let mut v = v;
    ioc(m, fd, cmd, &mut v)
}

fn attach(m: &dyn Machine, fd: i32, name: &str) -> Result<()> {
    let mut ifr = IfReq::default();
    ifr.ifr_name[..name.len()].copy_from_slice(name.as_bytes());
    ioc(m, fd, BIOCSETIF, &mut ifr)
}

fn get_ifname(m: &dyn Machine, fd: i32) -> Result<String> {
    let mut ifr = IfReq::default();
    ioc(m, fd, BIOCGETIF, &mut ifr)?;
    let n = ifr.ifr_name.iter().position(|&b| b == 0).unwrap_or(16);
    Ok(String::from_utf8_lossy(&ifr.ifr_name[..n]).into_owned())
}

fn set_prog(m: &dyn Machine, fd: i32, cmd: u64, insns: &[BpfInsn]) -> Result<()> {
    let mut insns = insns.to_vec();
    let mut prog =
        BpfProgram { bf_len: insns.len() as u32, bf_insns: UserAddr(insns.as_mut_ptr() as u64) };
    ioc(m, fd, cmd, &mut prog)
}

fn stats(m: &dyn Machine, fd: i32) -> Result<(u32, u32)> {
    let mut st = BpfStat::default();
    ioc(m, fd, BIOCGSTATS, &mut st).map(|()| (st.bs_recv, st.bs_drop))
}

fn set_timeout(m: &dyn Machine, fd: i32, ms: i64) -> Result<()> {
    let mut tv = Timeval { tv_sec: ms / 1000, tv_usec: (ms % 1000) * 1000 };
    ioc(m, fd, BIOCSRTIMEOUT, &mut tv)
}

fn pcap(expr: &str, snaplen: u32) -> Vec<BpfInsn> {
    libpcap::compile(expr, dlt::DLT_EN10MB, snaplen)
        .unwrap_or_else(|e| panic!("pcap_compile {expr}: {e}"))
}

fn accept_all() -> Vec<BpfInsn> {
    vec![BpfInsn::stmt(op::BPF_RET | op::BPF_K, u32::MAX)]
}

/// read(2) of a whole buffer into the transcript.
fn read_buffer(
    m: &dyn Machine,
    t: &mut Transcript,
    label: &str,
    fd: i32,
    bufsize: usize,
) -> Vec<Rec> {
    let mut buf = vec![0u8; bufsize];
    match m.read(fd, &mut buf) {
        Ok(n) => t.buffer(label, &buf[..n]),
        Err(e) => {
            t.val(label, Err::<(), _>(e));
            Vec::new()
        }
    }
}

fn nonblock_read(
    m: &dyn Machine,
    t: &mut Transcript,
    label: &str,
    fd: i32,
    bufsize: usize,
) -> Vec<Rec> {
    set_i32(m, fd, FIONBIO, 1).expect("FIONBIO");
    let recs = read_buffer(m, t, label, fd, bufsize);
    set_i32(m, fd, FIONBIO, 0).expect("FIONBIO");
    recs
}

// ---------------------------------------------------------------------------
// BUFFER mode
// ---------------------------------------------------------------------------

fn buffer_scenario(m: &dyn Machine, t: &mut Transcript) {
    // Sysctls.
    t.val("sysctl bufsize", m.sysctl_get(Knob::BufSize));
    t.val("sysctl maxbufsize", m.sysctl_get(Knob::MaxBufSize));
    t.val("sysctl maxinsns", m.sysctl_get(Knob::MaxInsns));
    t.val("sysctl zerocopy_enable", m.sysctl_get(Knob::ZerocopyEnable));
    t.val("sysctl optimize_writers", m.sysctl_get(Knob::OptimizeWriters));
    t.val("sysctl jit_enable", m.sysctl_get(Knob::JitEnable));
    t.val("set bufsize 8192", m.sysctl_set(Knob::BufSize, 8192));
    t.val("set bufsize -1", m.sysctl_set(Knob::BufSize, -1));
    t.val("sysctl bufsize after", m.sysctl_get(Knob::BufSize));

    // Open, size, attach.
    let fd = t.keep("open", m.open(O_RDWR)).expect("open");
    t.val("BIOCGBLEN default", get_u32(m, fd, BIOCGBLEN));
    let mut v = BpfVersion::default();
    t.val("BIOCVERSION", ioc(m, fd, BIOCVERSION, &mut v).map(|()| v));
    t.val("BIOCGDLT unattached", get_u32(m, fd, BIOCGDLT));
    t.val("read unattached", m.read(fd, &mut vec![0u8; 8192]));
    t.val("BIOCSBLEN 4096", set_u32(m, fd, BIOCSBLEN, 4096));
    t.val("BIOCSETIF em9", attach(m, fd, "em9"));
    t.val("tapped em0 before", m.tapped("em0"));
    t.keep("BIOCSETIF em0", attach(m, fd, "em0")).expect("attach");
    assert!(t.keep("tapped em0", m.tapped("em0")), "{}: em0 is tapped after BIOCSETIF", m.name());
    t.val("BIOCSBLEN attached", set_u32(m, fd, BIOCSBLEN, 8192));
    t.val("BIOCGDLT", get_u32(m, fd, BIOCGDLT));
    t.val("BIOCGETIF", get_ifname(m, fd));
    t.val("BIOCPROMISC", ioc0(m, fd, BIOCPROMISC));
    t.val("BIOCPROMISC again", ioc0(m, fd, BIOCPROMISC));
    assert_eq!(t.keep("promisc em0", m.promisc("em0")), 1);
    t.val("BIOCGSTATS fresh", stats(m, fd));
    t.val("poll nothing", m.poll(fd, RD | PollEvents::POLLOUT));

    // Frames of many shapes, in and out, and a driver batch.
    let mut phase1 = Vec::new();
    for i in 0..9 {
        phase1.push(plain(udp(53 + i as u16, 10 + 37 * i, i as u8), i));
    }
    for i in 0..SHAPES.len() {
        phase1.push(hw_tagged(&udp(53, 20 + 5 * i, 100 + i as u8), 0x2064 + i as u16, i));
    }
    phase1.push(plain(arp(7), 3));
    for (i, f) in phase1.iter().enumerate() {
        if i % 5 == 4 {
            m.transmit("em0", f);
        } else {
            m.receive("em0", f);
        }
    }
    let burst: Vec<Frame> = (0..3).map(|i| plain(udp(9, 60 + i, 200 + i as u8), 2 + i)).collect();
    m.receive_burst("em0", &burst);
    let mut n = -1i32;
    t.val("FIONREAD", ioc(m, fd, FIONREAD, &mut n).map(|()| n));
    t.val("BIOCGSTATS phase 1", stats(m, fd));
    let recs = nonblock_read(m, t, "read phase 1", fd, 4096);
    assert_eq!(recs.len(), phase1.len() + burst.len(), "{}: every frame captured", m.name());
    for (r, f) in recs.iter().zip(phase1.iter().chain(burst.iter())) {
        assert_eq!(r.data, f.bytes, "{}: a record is the frame as sent", m.name());
    }
    check_vlan_records(&recs, &phase1);
    set_i32(m, fd, FIONBIO, 1).unwrap();
    t.val("nonblocking read, empty", m.read(fd, &mut vec![0u8; 4096]));
    set_i32(m, fd, FIONBIO, 0).unwrap();

    // A libpcap filter with a snap length, over chains.
    t.val("BIOCSETF udp dst port 53", set_prog(m, fd, BIOCSETF, &pcap("udp dst port 53", 64)));
    t.val("BIOCGSTATS after BIOCSETF", stats(m, fd));
    // A second reader with its own native filter: two native filters on
    // em0, which the tap runs through a dispatcher in executable memory.
    let fd2 = t.keep("open second reader", m.open(O_RDWR)).expect("open");
    t.val("second BIOCSBLEN 4096", set_u32(m, fd2, BIOCSBLEN, 4096));
    t.val("second BIOCSETF udp port 80", set_prog(m, fd2, BIOCSETF, &pcap("udp port 80", 96)));
    t.val("second BIOCSETIF em0", attach(m, fd2, "em0"));
    let phase2: Vec<Frame> = (0..12)
        .map(|i| match i % 4 {
            0 => plain(udp(53, 100 + i, i as u8), i),
            1 => plain(udp(80, 100 + i, i as u8), i),
            2 => hw_tagged(&udp(53, 90, i as u8), 100, i),
            _ => plain(arp(i as u8), i),
        })
        .collect();
    for f in &phase2 {
        m.receive("em0", f);
    }
    let recs = nonblock_read(m, t, "read phase 2", fd, 4096);
    assert_eq!(recs.len(), 3, "{}: three UDP/53 frames pass", m.name());
    assert!(recs.iter().all(|r| r.caplen == 64), "{}: the snap length truncates", m.name());
    t.val("BIOCGSTATS phase 2", stats(m, fd));
    let recs = nonblock_read(m, t, "second reader phase 2", fd2, 4096);
    assert_eq!(recs.len(), 3, "{}: three UDP/80 frames pass the second filter", m.name());
    t.val("second reader BIOCGSTATS", stats(m, fd2));
    t.val("close second reader", m.close(fd2));

    // A VLAN filter: the reinserted tag is what the filter sees. This one
    // runs in the interpreter, the others through the JIT.
    t.val("set jit_enable 0", m.sysctl_set(Knob::JitEnable, 0));
    t.val(
        "BIOCSETFNR vlan 100 and udp",
        set_prog(m, fd, BIOCSETFNR, &pcap("vlan 100 and udp", 256)),
    );
    for f in &phase2 {
        m.receive("em0", f);
    }
    let recs = nonblock_read(m, t, "read phase 3", fd, 4096);
    assert_eq!(recs.len(), 3, "{}: the tagged frames pass a vlan filter", m.name());
    check_vlan_records(&recs, &phase2);
    t.val("BIOCGSTATS phase 3", stats(m, fd));
    t.val("set jit_enable 1", m.sysctl_set(Knob::JitEnable, 1));

    // Overflow: drops.
    t.val("BIOCSETF accept all", set_prog(m, fd, BIOCSETF, &accept_all()));
    for i in 0..12 {
        m.receive("em0", &plain(udp(7, 1000, i as u8), i));
    }
    t.val("BIOCGSTATS overflow", stats(m, fd));
    t.val("FIONREAD overflow", {
        let mut n = 0i32;
        ioc(m, fd, FIONREAD, &mut n).map(|()| n)
    });
    nonblock_read(m, t, "read overflow hold", fd, 4096);
    nonblock_read(m, t, "read overflow store", fd, 4096);
    nonblock_read(m, t, "read overflow empty", fd, 4096);

    // Writes: the source MAC, header complete, VLAN priority, feedback,
    // direction, the write filter, sizes.
    let mut out = udp(5353, 64, 1);
    out[6..12].copy_from_slice(&[0x0a; 6]);
    t.val("BIOCGHDRCMPLT", get_u32(m, fd, BIOCGHDRCMPLT));
    t.val("write", m.write(fd, &out));
    t.val("BIOCSHDRCMPLT 1", set_u32(m, fd, BIOCSHDRCMPLT, 1));
    t.val("write hdrcmplt", m.write(fd, &out));
    t.val("BIOCSHDRCMPLT 0", set_u32(m, fd, BIOCSHDRCMPLT, 0));
    t.val("write broadcast", m.write(fd, &arp(9)));
    t.val("write short", m.write(fd, &out[..13]));
    t.val("write empty", m.write(fd, &[]));
    t.val("write oversize", m.write(fd, &udp(5353, 1500 - 28 + 1, 2)));
    t.val("write max", m.write(fd, &udp(5353, 1500 - 28, 3)));
    t.val("BIOCSETVLANPCP 5", set_u32(m, fd, BIOCSETVLANPCP, 5));
    t.val("write pcp", m.write(fd, &out));
    t.val("BIOCSETVLANPCP 0", set_u32(m, fd, BIOCSETVLANPCP, 0));
    t.val("BIOCFEEDBACK 1", set_u32(m, fd, BIOCFEEDBACK, 1));
    t.val("write feedback", m.write(fd, &udp(4000, 30, 4)));
    t.val("BIOCFEEDBACK 0", set_u32(m, fd, BIOCFEEDBACK, 0));
    t.val("BIOCSDIRECTION in", set_u32(m, fd, BIOCSDIRECTION, BPF_D_IN));
    t.val("write unseen", m.write(fd, &udp(4001, 30, 5)));
    m.transmit("em0", &plain(udp(4002, 30, 6), 2));
    m.receive("em0", &plain(udp(4003, 30, 7), 3));
    t.val("BIOCGDIRECTION", get_u32(m, fd, BIOCGDIRECTION));
    t.val("BIOCSDIRECTION inout", set_u32(m, fd, BIOCSDIRECTION, BPF_D_INOUT));
    t.val("BIOCSETWF ip only", set_prog(m, fd, BIOCSETWF, &pcap("ip", 65535)));
    t.val("write filtered", m.write(fd, &arp(10)));
    t.val("write passes", m.write(fd, &udp(4004, 30, 8)));
    let recs = nonblock_read(m, t, "read writes", fd, 4096);
    assert!(
        recs.iter().any(|r| r.data[6..12] == EM0_MAC && r.data[12..] == out[12..]),
        "{}: the outbound tap sees the written frame with the interface's MAC",
        m.name()
    );
    let wire = m.wire("em0");
    t.wire("wire em0", &wire);
    assert_eq!(wire[0].0[6..12], EM0_MAC, "{}: the source MAC is the interface's", m.name());
    assert_eq!(wire[1].0[6..12], [0x0a; 6], "{}: BIOCSHDRCMPLT keeps the source MAC", m.name());
    t.val("BIOCGSTATS writes", stats(m, fd));
    if let Some(k) = m.kernel() {
        // What reached if_output: the link header as a route prepend, the
        // broadcast mark, and the feedback original hidden from the taps.
        let sent = k.ifnet("em0").sent();
        assert!(sent.iter().all(|o| o.hlen == 14));
        let flags: Vec<u32> = sent.iter().map(|o| o.flags as u32).collect();
        assert_eq!(flags[1], zbpf::kpi::ZBPF_OUT_HDRCMPLT);
        assert_eq!(flags[2], zbpf::kpi::ZBPF_OUT_BCAST);
        assert_eq!(flags[5], zbpf::kpi::ZBPF_OUT_HIDE, "feedback hides the outgoing copy");
        assert!(k.ifnet("em0").stack_input.load(SeqCst) > 0, "feedback reached if_input");
    }

    // A write-only descriptor is listed as a writer.
    let wfd = t.keep("open write-only", m.open(O_WRONLY)).expect("open");
    t.val("BIOCSETIF write-only", attach(m, wfd, "em0"));
    t.val("write from write-only", m.write(wfd, &udp(4005, 30, 9)));
    t.val("xstats with a writer", m.xstats());
    t.val("close write-only", m.close(wfd));

    // The read timeout: a blocking read that times out empty.
    t.val("BIOCSRTIMEOUT 20ms", set_timeout(m, fd, 20));
    let mut tv = Timeval::default();
    t.val("BIOCGRTIMEOUT", ioc(m, fd, BIOCGRTIMEOUT, &mut tv).map(|()| tv));
    let start = Instant::now();
    read_buffer(m, t, "read times out with data", fd, 4096);
    assert!(start.elapsed() >= Duration::from_millis(15), "{}: the read slept", m.name());
    let start = Instant::now();
    t.val("read times out empty", m.read(fd, &mut vec![0u8; 4096]));
    assert!(start.elapsed() >= Duration::from_millis(15), "{}: the read slept", m.name());

    // Poll arms the read-timeout timer; its expiry makes the data readable.
    m.receive("em0", &plain(udp(6000, 40, 11), 4));
    t.val("poll before timeout", m.poll(fd, RD));
    if let Some(k) = m.kernel() {
        let armed = kernel_fake::armed_timer(k.cookie(fd));
        assert_eq!(armed.map(|a| a.0), Some(20), "poll armed the callout for 20 ticks");
        let sel = kernel_fake::sel_state(k.cookie(fd));
        assert!(sel.pending, "poll recorded the thread (selrecord)");
    }
    assert!(
        t.keep("timer fired", m.wait_timer(fd)),
        "{}: the read timeout woke the poller",
        m.name()
    );
    t.val("poll after timeout", m.poll(fd, RD));
    read_buffer(m, t, "read after timeout", fd, 4096);
    t.val("BIOCSRTIMEOUT 0", set_timeout(m, fd, 0));

    // SIGIO.
    let pid = std::process::id() as i32;
    t.val("FIOSETOWN", set_i32(m, fd, FIOSETOWN, pid));
    t.val("FIOGETOWN", {
        let mut o = 0i32;
        ioc(m, fd, FIOGETOWN, &mut o).map(|()| o == pid)
    });
    t.val("FIOASYNC 1", set_i32(m, fd, FIOASYNC, 1));
    t.val("BIOCGRSIG", get_u32(m, fd, BIOCGRSIG));
    t.val("BIOCIMMEDIATE 1", set_u32(m, fd, BIOCIMMEDIATE, 1));
    m.receive("em0", &plain(udp(6001, 40, 12), 5));
    t.val("signals", m.signals());
    read_buffer(m, t, "read signalled", fd, 4096);
    t.val("FIOASYNC 0", set_i32(m, fd, FIOASYNC, 0));

    // A blocking read woken by a frame from another thread, and one
    // interrupted by a signal.
    let late = plain(udp(6002, 80, 13), 6);
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(30));
            m.receive("em0", &late);
        });
        let mut buf = vec![0u8; 4096];
        m.read(fd, &mut buf).map(|n| buf[..n].to_vec())
    });
    match got {
        Ok(b) => {
            let recs = t.buffer("read woken", &b);
            assert_eq!(recs.len(), 1);
            assert_eq!(recs[0].data, late.bytes);
        }
        Err(e) => panic!("{}: blocking read failed: {e:?}", m.name()),
    }
    let interrupted = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(30));
            m.interrupt(fd);
        });
        m.read(fd, &mut vec![0u8; 4096])
    });
    t.val("read interrupted", interrupted);

    // Counters: FIONREAD, BIOCFLUSH, zeroing through net.bpf.stats.
    m.receive("em0", &plain(udp(6003, 40, 14), 7));
    t.val("BIOCGSTATS before zero", stats(m, fd));
    t.val("stats write non-zero", m.stats_write(&[1u8; XbpfD::SIZE]));
    t.val("stats write zero", m.stats_write(&[0u8; XbpfD::SIZE]));
    t.val("BIOCGSTATS after zero", stats(m, fd));
    t.val("BIOCFLUSH", ioc0(m, fd, BIOCFLUSH));
    t.val("FIONREAD after flush", {
        let mut n = -1i32;
        ioc(m, fd, FIONREAD, &mut n).map(|()| n)
    });

    // An interface departs under a reader.
    let dfd = t.keep("open em1 reader", m.open(O_RDONLY)).expect("open");
    t.val("BIOCSETIF em1", attach(m, dfd, "em1"));
    t.val("tapped em1", m.tapped("em1"));
    m.receive("em1", &plain(ether(EM1_MAC, PEER_MAC, 0x0800, &ipv4_udp(1, 2, 20, 15)), 8));
    t.val("xstats two interfaces", m.xstats());
    m.depart("em1");
    t.val("tapped em1 after departure", m.tapped("em1"));
    t.val("poll departed", m.poll(dfd, RD | PollEvents::POLLOUT));
    t.val("read departed", m.read(dfd, &mut vec![0u8; 8192]));
    t.val("BIOCSETIF departed", attach(m, dfd, "em1"));
    t.val("close em1 reader", m.close(dfd));

    t.val("xstats", m.xstats());
    t.val("close", m.close(fd));
    assert!(
        !t.keep("tapped em0 after close", m.tapped("em0")),
        "{}: untapped after close",
        m.name()
    );
    assert_eq!(t.keep("promisc em0 after close", m.promisc("em0")), 0);
    t.val("sysctl bufsize 4096 back", m.sysctl_set(Knob::BufSize, 4096));
}

// ---------------------------------------------------------------------------
// ZBUF mode
// ---------------------------------------------------------------------------

/// Two shared buffers, as libpcap sets them up.
struct Zbufs {
    r: [SharedRegion; 2],
}

impl Zbufs {
    fn word(&self, i: usize, w: usize) -> &AtomicU32 {
        self.r[i].word(w)
    }

    fn index(&self, addr: UserAddr) -> Option<usize> {
        self.r.iter().position(|r| r.addr() == addr)
    }

    /// The records of buffer `i`, which the user owns.
    fn contents(&self, i: usize, len: usize) -> Vec<u8> {
        let len = len.min(self.r[i].len() - BpfZbufHeader::SIZE);
        // SAFETY: buffer `i` is ours until acknowledged (its generation
        // moved); the slice stays inside the mapping, which outlives it.
        unsafe { std::slice::from_raw_parts(self.r[i].as_ptr().add(BpfZbufHeader::SIZE), len) }
            .to_vec()
    }
}

fn set_zbuf(m: &dyn Machine, fd: i32, a: UserAddr, b: UserAddr, len: usize) -> Result<()> {
    let mut bz = BpfZbuf { bz_bufa: a, bz_bufb: b, bz_buflen: len as u64 };
    ioc(m, fd, BIOCSETZBUF, &mut bz)
}

/// Takes every buffer the kernel hands over (BIOCGETZNEXT names the
/// oldest; BIOCROTZBUF forces a partial one), reads it through the shared
/// header and gives it back, alternating the header store and BIOCACKZBUF.
fn zbuf_drain(m: &dyn Machine, t: &mut Transcript, label: &str, fd: i32, z: &Zbufs) -> Vec<Rec> {
    let mut all = Vec::new();
    let mut n = 0;
    loop {
        let mut bz = BpfZbuf::default();
        ioc(m, fd, BIOCGETZNEXT, &mut bz).expect("BIOCGETZNEXT");
        if bz.bz_bufa.is_null() {
            let mut rot = BpfZbuf::default();
            ioc(m, fd, BIOCROTZBUF, &mut rot).expect("BIOCROTZBUF");
            t.val(&format!("{label} BIOCROTZBUF"), (z.index(rot.bz_bufa), rot.bz_buflen));
            if rot.bz_bufa.is_null() {
                break;
            }
            continue;
        }
        let i = z.index(bz.bz_bufa).expect("BIOCGETZNEXT names one of our buffers");
        let kgen = z.word(i, 0).load(Acquire);
        let klen = z.word(i, 1).load(Acquire) as usize;
        assert_ne!(
            kgen,
            z.word(i, 2).load(Acquire),
            "{}: the header says the user owns it",
            m.name()
        );
        assert_eq!(klen as u64, bz.bz_buflen, "{}: header and BIOCGETZNEXT agree", m.name());
        t.val(&format!("{label} #{n} header"), (i, kgen, klen));
        all.extend(t.buffer(&format!("{label} #{n}"), &z.contents(i, klen)));
        if n % 2 == 0 {
            z.word(i, 2).store(kgen, Release);
        } else {
            let mut ack = BpfZbuf { bz_bufa: bz.bz_bufa, ..Default::default() };
            t.val(&format!("{label} #{n} BIOCACKZBUF"), ioc(m, fd, BIOCACKZBUF, &mut ack));
        }
        n += 1;
    }
    all
}

fn zbuf_scenario(m: &dyn Machine, t: &mut Transcript) {
    let fd = t.keep("zbuf open", m.open(O_RDWR)).expect("open");
    t.val("BIOCGETBUFMODE", get_u32(m, fd, BIOCGETBUFMODE));
    t.val("BIOCSETBUFMODE zbuf", set_u32(m, fd, BIOCSETBUFMODE, BPF_BUFMODE_ZBUF));
    let mut zmax = 0u64;
    t.val("BIOCGETZMAX", ioc(m, fd, BIOCGETZMAX, &mut zmax).map(|()| zmax));
    let len = 3 * PAGE_SIZE;
    let z = Zbufs { r: [SharedRegion::new(len).unwrap(), SharedRegion::new(len).unwrap()] };
    let ro = SharedRegion::new(len).unwrap();
    // SAFETY: `ro` is a mapping of `len` bytes we own; making it read-only
    // affects nothing else.
    let err = unsafe { libc::mprotect(ro.as_ptr().cast(), len, libc::PROT_READ) };
    assert_eq!(err, 0);
    t.val("BIOCSETZBUF read-only b", set_zbuf(m, fd, z.r[0].addr(), ro.addr(), len));
    if m.kernel().is_some() {
        assert_eq!(kernel_fake::pages_held(), 0, "a failed BIOCSETZBUF releases what it held");
    }
    t.val(
        "BIOCSETZBUF unaligned",
        set_zbuf(m, fd, UserAddr(z.r[0].addr().0 + 8), z.r[1].addr(), len),
    );
    t.val(
        "BIOCSETZBUF too big",
        set_zbuf(m, fd, z.r[0].addr(), z.r[1].addr(), zmax as usize + PAGE_SIZE),
    );
    t.val("BIOCSETIF before buffers", attach(m, fd, "em0"));
    t.keep("BIOCSETZBUF", set_zbuf(m, fd, z.r[0].addr(), z.r[1].addr(), len)).expect("BIOCSETZBUF");
    if m.kernel().is_some() {
        assert_eq!(kernel_fake::pages_held(), 6, "both buffers' pages are held");
        assert!(kernel_fake::shared_on_fork(), "the pages are shared with children");
    }
    t.val("BIOCSETZBUF twice", set_zbuf(m, fd, z.r[0].addr(), z.r[1].addr(), len));
    t.keep("BIOCSETIF em0", attach(m, fd, "em0")).expect("attach");
    t.val("tapped em0", m.tapped("em0"));
    let blen = t.keep("BIOCGBLEN", get_u32(m, fd, BIOCGBLEN)).expect("BIOCGBLEN") as usize;
    t.val("read in zbuf mode", m.read(fd, &mut vec![0u8; blen]));
    t.val("poll empty", m.poll(fd, RD));

    // Shapes, tags, a batch: one partial buffer.
    let mut phase1: Vec<Frame> =
        (0..SHAPES.len()).map(|i| plain(udp(53, 30 + 50 * i, i as u8), i)).collect();
    phase1.extend((0..SHAPES.len()).map(|i| hw_tagged(&udp(53, 40 + i, 50 + i as u8), 0x0064, i)));
    for f in &phase1 {
        m.receive("em0", f);
    }
    m.transmit("em0", &plain(udp(99, 70, 77), 2));
    let burst: Vec<Frame> = (0..4).map(|i| plain(arp(i as u8), i)).collect();
    m.receive_burst("em0", &burst);
    let recs = zbuf_drain(m, t, "zbuf phase 1", fd, &z);
    assert_eq!(recs.len(), phase1.len() + 1 + burst.len(), "{}: every frame captured", m.name());
    check_vlan_records(&recs, &phase1);

    // Fill both buffers and drop the rest.
    for i in 0..40 {
        m.receive("em0", &plain(udp(7, 700, i as u8), i));
    }
    t.val("zbuf BIOCGSTATS full", stats(m, fd));
    t.val("zbuf poll full", m.poll(fd, RD));
    zbuf_drain(m, t, "zbuf overflow", fd, &z);

    // A filter in ZBUF mode.
    t.val("zbuf BIOCSETF", set_prog(m, fd, BIOCSETF, &pcap("vlan and udp", 96)));
    for i in 0..10 {
        let f = if i % 2 == 0 {
            hw_tagged(&udp(53, 200, i as u8), 0x0fff & (i as u16 * 300), i)
        } else {
            plain(udp(53, 200, i as u8), i)
        };
        m.receive("em0", &f);
    }
    let recs = zbuf_drain(m, t, "zbuf filtered", fd, &z);
    assert_eq!(recs.len(), 5, "{}: the tagged half passes", m.name());
    assert!(recs.iter().all(|r| r.caplen == 96 && r.data[12..14] == [0x81, 0x00]));

    // Writes are captured on the way out.
    t.val("zbuf BIOCSETF all", set_prog(m, fd, BIOCSETF, &accept_all()));
    let mut out = udp(123, 48, 3);
    out[6..12].fill(0);
    t.val("zbuf write", m.write(fd, &out));
    t.val("zbuf BIOCIMMEDIATE", set_u32(m, fd, BIOCIMMEDIATE, 1));
    t.val("zbuf poll immediate", m.poll(fd, RD));
    zbuf_drain(m, t, "zbuf writes", fd, &z);
    t.wire("zbuf wire", &m.wire("em0"));
    t.val("zbuf BIOCGSTATS", stats(m, fd));
    t.val("zbuf xstats", m.xstats());
    t.val("zbuf close", m.close(fd));
    t.val("zbuf tapped after close", m.tapped("em0"));
    if m.kernel().is_some() {
        assert_eq!(kernel_fake::pages_held(), 0, "close releases the held pages");
    }
    drop(z);
}

// ---------------------------------------------------------------------------
// Kernel-only checks
// ---------------------------------------------------------------------------

fn kernel_only(k: &KernelMachine) {
    let m: &dyn Machine = k;
    let em0 = k.ifnet("em0");

    assert_eq!(kmod::zbpf_rs_load(), Errno::EBUSY.0, "one device per module");
    assert_eq!(kmod::zbpf_rs_choose_replace(0, 0, -1), 1, "free names: replace bpf");
    assert_eq!(kmod::zbpf_rs_choose_replace(1, 0, -1), 0, "bpf present: side by side");
    assert_eq!(kmod::zbpf_rs_choose_replace(1, 1, 1), 1, "the tunable forces");
    assert_eq!(kmod::zbpf_rs_choose_replace(0, 0, 0), 0, "the tunable forces");
    // SAFETY: no cdevpriv (NULL cookie), as zbpf_poll passes it.
    let detached = unsafe {
        kmod::zbpf_rs_poll(std::ptr::null_mut(), (RD | PollEvents::POLLPRI).bits(), td())
    };
    assert_eq!(PollEvents::from_bits_truncate(detached), RD, "no cdevpriv: a detached descriptor");
    assert_eq!(kmod::zbpf_rs_sysctl_get(99), 0);
    assert_eq!(kmod::zbpf_rs_sysctl_set(99, 1), Errno::EINVAL.0);

    // Driver timestamps: an uptime tag and a wall-clock M_TSTMP stamp.
    let fd = m.open(O_RDWR).unwrap();
    let installs = em0.hook_installs();
    attach(m, fd, "em0").unwrap();
    assert_eq!(em0.hook_installs(), installs + 1, "the first listener installs the hooks");
    set_u32(m, fd, BIOCIMMEDIATE, 1).unwrap();
    set_u32(m, fd, BIOCSTSTAMP, BPF_T_BINTIME | BPF_T_MONOTONIC).unwrap();
    let up = Bintime { sec: 1234, frac: 0x4000_0000_0000_0001 };
    let f = plain(udp(1, 20, 1), 2);
    em0.if_input(packet_of(&f, em0.ifp()).with_stamp(up, false).head());
    let mut buf = vec![0u8; 4096];
    let n = m.read(fd, &mut buf).unwrap();
    let recs = records(&buf[..n]);
    assert_eq!(recs[0].ts, (up.sec, up.frac), "an MTAG_BPF_TIMESTAMP tag is the record's time");
    set_u32(m, fd, BIOCSTSTAMP, BPF_T_BINTIME).unwrap();
    let wall = Bintime { sec: 1_700_000_000, frac: 0x1234_5678_9abc_def0 };
    em0.if_input(packet_of(&f, em0.ifp()).with_stamp(wall, true).head());
    let n = m.read(fd, &mut buf).unwrap();
    let recs = records(&buf[..n]);
    assert_eq!(recs[0].ts, (wall.sec, wall.frac), "an M_TSTMP stamp is wall-clock time");
    assert_eq!(recs[0].data, f.bytes);
    // The clock itself when there is no stamp: uptime plus the boot time.
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    m.receive("em0", &f);
    let n = m.read(fd, &mut buf).unwrap();
    let ts = records(&buf[..n])[0].ts;
    assert!(
        (ts.0 - before.as_secs() as i64).abs() <= 2,
        "an unstamped packet gets the clock: {ts:?}"
    );

    // kqueue notes: EVFILT_READ and EVFILT_WRITE attach, others do not.
    let cookie = k.cookie(fd);
    let mut kr = FakeKnote { filter: c_int::from(EVFILT_READ) };
    let mut kw = FakeKnote { filter: c_int::from(EVFILT_WRITE) };
    let mut kbad = FakeKnote { filter: -6 };
    let kqfilter = |kn: &mut FakeKnote| {
        // SAFETY: an open descriptor's cookie and a knote that outlives
        // the descriptor (the notes are drained at close).
        unsafe { kmod::zbpf_rs_kqfilter(cookie, (kn as *mut FakeKnote).cast()) }
    };
    assert_eq!(kqfilter(&mut kr), 0);
    assert_eq!(kqfilter(&mut kw), 0);
    assert_eq!(kqfilter(&mut kbad), Errno::EINVAL.0);
    assert_eq!(kernel_fake::knote_count(cookie), 2);
    let mut data = -1i64;
    // SAFETY: an open descriptor's cookie and a valid out-pointer.
    let ready =
        unsafe { kmod::zbpf_rs_kq_event(cookie, zbpf::kpi::ZBPF_KQ_READ as c_int, &mut data) };
    assert_eq!(ready, 0, "nothing to read");
    m.receive("em0", &f);
    let fired = kernel_fake::knote_events(cookie);
    let rec_len = (bpf_hdrlen(14) + f.bytes.len()) as i64;
    assert!(
        fired.contains(&(zbpf::kpi::ZBPF_KQ_READ as c_int, rec_len)),
        "the read note fired: {fired:?}"
    );
    assert!(
        fired.contains(&(zbpf::kpi::ZBPF_KQ_WRITE as c_int, 1500)),
        "the write note reports the MTU: {fired:?}"
    );
    m.read(fd, &mut buf).unwrap();

    // A rename is not a departure.
    em0.renaming.store(true, SeqCst);
    // SAFETY: a live fake ifnet.
    unsafe { kmod::zbpf_rs_ifnet_departure(em0.ifp()) };
    em0.renaming.store(false, SeqCst);
    assert!(em0.hooked(), "a rename leaves the tap in place");
    assert_eq!(get_ifname(m, fd).unwrap(), "em0");

    // net.bpf.stats sizes.
    let mut needed = 0usize;
    // SAFETY: a NULL buffer asks for the size; `needed` is valid.
    assert_eq!(unsafe { kmod::zbpf_rs_stats(std::ptr::null_mut(), 0, &mut needed) }, 0);
    assert_eq!(needed, XbpfD::SIZE);
    let mut small = [0u8; 8];
    // SAFETY: `small` is valid for its length.
    let err = unsafe { kmod::zbpf_rs_stats(small.as_mut_ptr(), small.len(), &mut needed) };
    assert_eq!(err, Errno::ENOMEM.0);
    // SAFETY: a NULL buffer of length 0 is refused before any access.
    assert_eq!(unsafe { kmod::zbpf_rs_stats_write(std::ptr::null(), 0) }, Errno::EINVAL.0);

    // The module refuses to unload while a descriptor is open.
    assert_eq!(kmod::zbpf_rs_quiesce(), Errno::EBUSY.0);
    m.close(fd).unwrap();
    assert_eq!(kernel_fake::knote_count(cookie), 0, "close drains the knotes");
    assert!(!em0.hooked());
    assert_eq!(kmod::zbpf_rs_quiesce(), 0);
}

/// zbpf_unload(): quiesce, remove every hook, wait for the epoch, unload.
fn unload() {
    assert_eq!(kmod::zbpf_rs_quiesce(), 0);
    for ifp in kernel_fake::hooked_ifnets() {
        // SAFETY: `ifp` is a live fake ifnet; the model's tap_remove only
        // flips its hook and waits for the epoch.
        unsafe { kernel_fake::zbpf_kpi_tap_remove(ifp.ifp()) };
    }
    kernel_fake::zbpf_kpi_net_epoch_wait();
    kmod::zbpf_rs_unload();
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

#[test]
fn kernel_platform_matches_hosted_engine() {
    // The kernel run: load the module, the scenarios, the kernel-only
    // checks, unload.
    let mut ifaces = BTreeMap::new();
    ifaces.insert("em0", FakeIfnet::attach("em0", kernel_fake::IFT_ETHER, 1500, Some(EM0_MAC)));
    ifaces.insert("em1", FakeIfnet::attach("em1", kernel_fake::IFT_ETHER, 1500, Some(EM1_MAC)));
    let lo0 = FakeIfnet::attach("lo0", kernel_fake::IFT_LOOP, 16384, None);
    assert_eq!(kmod::zbpf_rs_load(), 0, "module load");
    let k = KernelMachine::new(ifaces.clone());
    let mut kt = Transcript::default();
    buffer_scenario(&k, &mut kt);
    zbuf_scenario(&k, &mut kt);

    // bpf cannot tap a loopback ifnet here (its taps wrap if_input and
    // if_transmit, which carry Ethernet frames): ENXIO, reference dropped.
    let fd = k.open(O_RDWR).unwrap();
    assert_eq!(attach(&k, fd, "lo0"), Err(Errno::ENXIO));
    assert_eq!(lo0.refs(), 0);
    k.close(fd).unwrap();

    kernel_fake::check_rule_checker();
    kernel_only(&k);
    let sleeps = kernel_fake::sleeps();
    let jitted = kernel_fake::exec_allocs();
    let dispatchers = kernel_fake::exec_dispatchers();
    assert!(dispatchers > 0, "two native filters on em0 run through a dispatcher");
    let epoch_waits = kernel_fake::epoch_waits();
    unload();
    assert_eq!(kmod::zbpf_rs_quiesce(), 0);
    let mut cookie = std::ptr::null_mut();
    // SAFETY: `cookie` is a valid out-pointer.
    let err = unsafe { kmod::zbpf_rs_open(3, &mut cookie) };
    assert_eq!(err, Errno::ENXIO.0, "no device after unload");

    // The hosted run of the same scenarios.
    let s = SimMachine::new();
    let mut st = Transcript::default();
    buffer_scenario(&s, &mut st);
    zbuf_scenario(&s, &mut st);
    drop(s);

    if std::env::var_os("ZBPF_TRANSCRIPT").is_some() {
        for e in &kt.evs {
            match e {
                Ev::Val(l, v) => println!("{l}: {v}"),
                Ev::Data(l, b) => println!("{l}: {} bytes", b.len()),
            }
        }
    }
    compare(&kt, &st);

    // Nothing leaked, nothing broke the kernel's rules.
    for (what, live) in kernel_fake::live_objects() {
        assert_eq!(live, 0, "{what} left after unload");
    }
    for (name, ifp) in &ifaces {
        assert_eq!(ifp.refs(), 0, "{name}: ifnet references left");
        assert_eq!(ifp.promisc(), 0, "{name}: promiscuous mode left on");
        assert!(!ifp.hooked(), "{name}: still hooked");
    }
    let v = kernel_fake::violations();
    assert!(v.is_empty(), "kernel rules broken:\n{}", v.join("\n"));
    let logged = kernel_fake::log_lines();

    println!(
        "kernel_platform: {} KPI functions modelled; {} events compared ({} record buffers, {} records, {} bytes) between \
         the kernel platform and the hosted simulator: identical; kernel run: {} mbuf-chain \
         shapes, {} mtx_sleep calls, {} NET_EPOCH_WAITs, {} filters and {} dispatchers in executable memory, {} log \
         lines, {} frames written on em0, no leaks, no lock-rule violations",
        kernel_fake::KPI_FUNCTIONS.len(),
        kt.evs.len(),
        kt.buffers,
        kt.records,
        kt.record_bytes,
        SHAPES.len(),
        sleeps,
        epoch_waits,
        jitted - dispatchers,
        dispatchers,
        logged.len(),
        ifaces["em0"].sent().len(),
    );
    assert_eq!(kt.records, st.records);
}
