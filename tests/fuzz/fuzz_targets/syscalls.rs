//! Fuzz target: the whole user-facing surface of the simulated device. The
//! input is decoded (with `arbitrary`'s `Unstructured`) into up to
//! `MAX_STEPS` steps over two descriptor slots and two interfaces: open,
//! ioctl (known commands, mutated and random command numbers, any argument
//! bytes, pointers into mapped, read-only, inaccessible and unmapped user
//! memory), read and write of any size, poll, a kevent probe, BIOCSETZBUF
//! with aligned, misaligned, overlapping and inaccessible buffers,
//! scribbles on the shared ZBUF headers, interface departure and
//! re-creation, frames on the interfaces, page protection changes, sysctl
//! changes and close.
//!
//! After every step:
//! * no panic (the engine's own debug assertions included);
//! * counters: dropped <= matched <= received; each counter only grows,
//!   except when an ioctl zeroed them all (reset_d); received grows by
//!   by all or none of the frames offered on the descriptor's interface in
//!   its direction (none: another DLT, or a writer), by nothing on steps
//!   that offer no frame; write
//!   counts follow write(2)'s result; in ZBUF mode matched = stored +
//!   dropped exactly (stored = zero-copy appends / 2); in BUFFER mode the
//!   records read(2) returned never exceed matched - dropped, and after a
//!   final drain equal it (unless a read lost a held buffer to EFAULT;
//!   records a BIOCSBLEN discards, after a departure, count as read);
//!   BIOCGSTATS agrees with the counters;
//! * user memory: every byte of the simulated process's memory keeps what
//!   the user last wrote there (canary pattern at first), except the bytes
//!   lent to the engine in this step (ioctl out-arguments, the DLT list,
//!   the bytes read(2) says it returned) and live zero-copy buffers;
//! * no leak: a closed descriptor and a departed interface are freed at
//!   once, and at the end of the input every byte allocated since its
//!   start is free again (a counting global allocator).
//!
//! read(2) always runs non-blocking and poll(2) with a zero timeout: the
//! harness is one thread and must never sleep.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Once, Weak};
use std::time::{Duration, Instant};

use libfuzzer_sys::arbitrary::{Result as UResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use zbpf::abi::dlt::{DLT_EN10MB, DLT_NULL, DLT_RAW};
use zbpf::abi::ioccom::{ioc_len, IOCPARM_MASK, IOC_DIRMASK, IOC_OUT};
use zbpf::abi::ioctl::*;
use zbpf::abi::*;
use zbpf::engine::{Knob, KqFilter};
use zbpf::hosted::consumer::walk_records;
use zbpf::hosted::net::{Segmentation, SimIface};
use zbpf::hosted::process::{copy_from_user, copy_to_user, SharedRegion};
use zbpf::hosted::sim::{oflags, PollFd, Sim, SimDescriptor};
use zbpf::hosted::traffic;
use zbpf::platform::Counter;

/// Counts live heap bytes, for the leak check.
struct CountingAlloc;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter is only bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract, passed on.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: GlobalAlloc's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Steps per input at most.
const MAX_STEPS: usize = 96;
/// Pages of simulated user memory; one inaccessible guard page follows, so
/// that no access starting inside can reach memory that is not ours.
const PAGES: usize = 24;
const SPAN: usize = PAGES * PAGE_SIZE;
/// Buffer sizes are capped (net.bpf.maxbufsize) so that a read(2) buffer
/// starting in the region ends in it or in the guard page.
const MAX_BUF: u32 = 64 * 1024;
/// The interfaces: name, MTU (the kevent write probe tells them apart).
const IFACES: [(&str, u32); 2] = [("em0", 1500), ("tun0", 9000)];

fn canary_byte(off: usize) -> u8 {
    (off as u8).wrapping_mul(31) ^ 0xc5 ^ (off >> 8) as u8
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Prot {
    None,
    Read,
    ReadWrite,
}

/// The simulated process's memory: a shared mapping (so that zero-copy
/// buffers can be held) and the user's own idea of what it holds.
struct Memory {
    region: SharedRegion,
    base: u64,
    prot: [Prot; PAGES],
    shadow: Vec<u8>,
}

impl Memory {
    fn new() -> Memory {
        let region = SharedRegion::new(SPAN + PAGE_SIZE).expect("shared region");
        let base = region.addr().0;
        let shadow: Vec<u8> = (0..SPAN).map(canary_byte).collect();
        // SAFETY: the region maps SPAN + PAGE_SIZE bytes that only this
        // value uses.
        unsafe { std::ptr::copy_nonoverlapping(shadow.as_ptr(), region.as_ptr(), SPAN) };
        let mut m = Memory { region, base, prot: [Prot::ReadWrite; PAGES], shadow };
        m.mprotect(PAGES, Prot::None);
        m
    }

    fn mprotect(&mut self, page: usize, prot: Prot) {
        let flags = match prot {
            Prot::None => libc::PROT_NONE,
            Prot::Read => libc::PROT_READ,
            Prot::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        };
        // SAFETY: one page of our own region.
        let r = unsafe {
            libc::mprotect(self.region.as_ptr().add(page * PAGE_SIZE).cast(), PAGE_SIZE, flags)
        };
        assert_eq!(r, 0, "mprotect");
        if let Some(p) = self.prot.get_mut(page) {
            *p = prot;
        }
    }

    /// The user writes `bytes` at `addr` (a no-op where not writable).
    fn user_write(&mut self, addr: u64, bytes: &[u8]) {
        let _ = copy_to_user(bytes, UserAddr(addr));
        self.refresh(addr, bytes.len());
    }

    /// Takes what memory holds now in `[addr, addr + len)` as expected.
    fn refresh(&mut self, addr: u64, len: usize) {
        let Some(start) = addr.checked_sub(self.base) else { return };
        let start = start as usize;
        let end = start.saturating_add(len).min(SPAN);
        for page in start / PAGE_SIZE..end.div_ceil(PAGE_SIZE).min(PAGES) {
            if self.prot[page] == Prot::None {
                continue;
            }
            let a = start.max(page * PAGE_SIZE);
            let b = end.min((page + 1) * PAGE_SIZE);
            // SAFETY: a readable part of our region.
            let live = unsafe { std::slice::from_raw_parts(self.region.as_ptr().add(a), b - a) };
            self.shadow[a..b].copy_from_slice(live);
        }
    }

    /// Checks every readable byte outside `allowed` (user addresses) against
    /// the shadow, then takes the allowed ones as expected.
    fn check(&mut self, allowed: &[(u64, usize)]) {
        let ranges: Vec<(usize, usize)> = allowed
            .iter()
            .filter_map(|&(a, len)| {
                let s = a.checked_sub(self.base)? as usize;
                (s < SPAN).then(|| (s, s.saturating_add(len).min(SPAN)))
            })
            .collect();
        for page in 0..PAGES {
            if self.prot[page] == Prot::None {
                continue;
            }
            let (ps, pe) = (page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
            // SAFETY: a readable page of our region.
            let live =
                unsafe { std::slice::from_raw_parts(self.region.as_ptr().add(ps), PAGE_SIZE) };
            if live == &self.shadow[ps..pe] {
                continue;
            }
            for (i, (&got, &want)) in live.iter().zip(&self.shadow[ps..pe]).enumerate() {
                let off = ps + i;
                if got != want && !ranges.iter().any(|&(s, e)| (s..e).contains(&off)) {
                    panic!("user byte {off:#x} (page {page}) changed: {want:#04x} -> {got:#04x}");
                }
            }
        }
        for &(a, len) in allowed {
            self.refresh(a, len);
        }
    }
}

/// The counters of one descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Snap {
    recv: u64,
    matched: u64,
    dropped: u64,
    zcopy: u64,
    written: u64,
    wmatched: u64,
    wdropped: u64,
}

impl Snap {
    fn of(d: &SimDescriptor) -> Snap {
        let c = d.counters();
        Snap {
            recv: c.received.fetch(),
            matched: c.matched.fetch(),
            dropped: c.dropped.fetch(),
            zcopy: c.zcopy.fetch(),
            written: c.written.fetch(),
            wmatched: c.write_matched.fetch(),
            wdropped: c.write_dropped.fetch(),
        }
    }
    fn zeroed(&self) -> bool {
        *self == Snap::default()
    }
}

/// One open descriptor.
struct Slot {
    fd: i32,
    desc: Weak<SimDescriptor>,
    /// BIOCSETBUFMODE chose ZBUF.
    zbuf_mode: bool,
    /// The buffers of a BIOCSETZBUF that succeeded, and their length.
    zbufs: Option<([u64; 2], usize)>,
    /// Records read(2) returned since the counters were last zeroed.
    records_read: u64,
    /// A read lost a held buffer (EFAULT): the records in it are unknown.
    lost: bool,
    prev: Snap,
}

impl Slot {
    /// A descriptor just opened as `fd`.
    fn opened(sim: &Sim, fd: i32) -> Slot {
        let desc = Arc::downgrade(&sim.descriptor(fd).expect("just opened"));
        Slot {
            fd,
            desc,
            zbuf_mode: false,
            zbufs: None,
            records_read: 0,
            lost: false,
            prev: Snap::default(),
        }
    }
}

/// What a step offered to the descriptors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Offer {
    /// Nothing: no counter may move (but an ioctl may zero them).
    Nothing,
    /// `count` frames on interface `iface`, inbound or not.
    Frames { iface: usize, inbound: bool, count: u64 },
    /// A write(2) from `slot`: at most two deliveries (out, feedback in).
    Write { slot: usize, ok: bool },
}

struct World {
    sim: Sim,
    mem: Memory,
    ifaces: [Option<Arc<SimIface>>; 2],
    slots: [Option<Slot>; 2],
    /// User bytes the engine may write in this step.
    lent: Vec<(u64, usize)>,
    ioctl_step: bool,
}

fn new_iface(i: usize) -> Arc<SimIface> {
    let (name, mtu) = IFACES[i];
    let dlts = if i == 0 {
        vec![(DLT_EN10MB, 14)]
    } else {
        vec![(DLT_EN10MB, 14), (DLT_RAW, 0), (DLT_NULL, 4)]
    };
    SimIface::build(name, dlts, mtu, Some(traffic::HOST_MAC))
}

impl World {
    fn new() -> World {
        let sim = Sim::new();
        sim.bpf().config.set(Knob::MaxBufSize, MAX_BUF as i32).unwrap();
        let ifaces = [Some(sim.add_iface(new_iface(0))), Some(sim.add_iface(new_iface(1)))];
        World {
            sim,
            mem: Memory::new(),
            ifaces,
            slots: [None, None],
            lent: Vec::new(),
            ioctl_step: false,
        }
    }

    /// A user address: mostly in the region (guard page included), else
    /// addresses that are never mapped (null page, kernel half,
    /// non-canonical, the top of the address space).
    fn addr(&self, u: &mut Unstructured<'_>) -> UResult<u64> {
        let x: u32 = u.arbitrary()?;
        Ok(match u.int_in_range(0u8..=9)? {
            0..=5 => self.mem.base + u64::from(x) % (SPAN + PAGE_SIZE) as u64,
            6 | 7 => self.mem.base + (u64::from(x) % (PAGES as u64 + 1)) * PAGE_SIZE as u64,
            8 => [0, 1, 0x1000, 0xfff8][x as usize % 4],
            _ => {
                let off = u64::from(x & 0xffff);
                [0xffff_8000_0000_0000 + off, 0x0000_8000_0000_0000 + off, u64::MAX - off]
                    [(x >> 16) as usize % 3]
            }
        })
    }

    /// An address for a structure the user fills in: usually a good one.
    fn arg_addr(&self, u: &mut Unstructured<'_>) -> UResult<u64> {
        if u.ratio(3u8, 4)? {
            let slot: u16 = u.arbitrary()?;
            Ok(self.mem.base + u64::from(slot) % (SPAN as u64 - 64) / 8 * 8)
        } else {
            self.addr(u)
        }
    }

    fn fd_of(&self, u: &mut Unstructured<'_>) -> UResult<(Option<usize>, i32)> {
        let k = u.int_in_range(0u8..=8)?;
        Ok(match k {
            0..=3 => (Some(0), self.slots[0].as_ref().map_or(-1, |s| s.fd)),
            4..=7 => (Some(1), self.slots[1].as_ref().map_or(-1, |s| s.fd)),
            _ => (None, 12345),
        })
    }

    fn desc(&self, slot: usize) -> Option<Arc<SimDescriptor>> {
        self.slots[slot].as_ref().and_then(|s| s.desc.upgrade())
    }

    /// The interface a descriptor is attached to: the kevent write probe
    /// reports the MTU of the attached interface (no side effect).
    fn attached(&self, slot: usize) -> Option<usize> {
        let d = self.desc(slot)?;
        let bpf = self.sim.bpf();
        let mtu = bpf.with_state(&d, |st| bpf.kq_event(&d, st, KqFilter::Write))?;
        let i = IFACES.iter().position(|&(_, m)| i64::from(m) == mtu);
        assert!(i.is_some(), "kevent write probe: MTU {mtu} of no interface");
        i
    }

    fn open(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let slot = usize::from(u.arbitrary::<bool>()?);
        let mode = [oflags::O_RDONLY, oflags::O_WRONLY, oflags::O_RDWR, 3][u.choose_index(4)?];
        let flags = mode | if u.arbitrary()? { oflags::O_NONBLOCK } else { 0 };
        if self.slots[slot].is_some() {
            return Ok(Offer::Nothing);
        }
        let fd = self.sim.open(flags).expect("open never fails");
        self.slots[slot] = Some(Slot::opened(&self.sim, fd));
        Ok(Offer::Nothing)
    }

    fn close(&mut self, slot: usize) {
        let Some(s) = self.slots[slot].take() else { return };
        self.sim.close(s.fd).expect("close of an open fd");
        assert!(s.desc.upgrade().is_none(), "descriptor still alive after close(2)");
        let open = self.slots.iter().flatten().count();
        assert_eq!(self.sim.bpf().open_count(), open, "open descriptors after close");
        assert_eq!(self.sim.close(s.fd), Err(Errno::EBADF), "second close");
    }

    /// One ioctl with `arg` written at `addr` first (as far as the user can
    /// write there), and the checks of its result.
    fn ioctl(&mut self, slot: Option<usize>, fd: i32, cmd: u64, addr: u64, arg: &[u8]) {
        self.ioctl_step = true;
        if !arg.is_empty() {
            self.mem.user_write(addr, arg);
        }
        let len = ioc_len(cmd);
        if cmd & IOC_OUT != 0 {
            self.lent.push((addr, len));
        }
        let before = read_user(addr, len);
        match cmd {
            BIOCGDLTLIST => {
                if let Some(b) = &before {
                    let l = BpfDltList::decode(b).unwrap_or_default();
                    self.lent.push((l.bfl_list.0, 4 * l.bfl_len.min(1 << 20) as usize));
                }
            }
            BIOCSETZBUF => {
                // The headers are zeroed as soon as a buffer is held, even
                // when the call then fails (as FreeBSD's zbuf_setup does).
                if let Some(b) = &before {
                    let z = BpfZbuf::decode(b).unwrap_or_default();
                    self.lent.push((z.bz_bufa.0, ZBUF_HEADER));
                    self.lent.push((z.bz_bufb.0, ZBUF_HEADER));
                }
            }
            _ => {}
        }
        let r = self.sim.ioctl(fd, cmd, addr as usize as *mut c_void);
        let Some(slot) = slot.filter(|_| r.is_ok()) else { return };
        let Some(s) = self.slots[slot].as_mut() else { return };
        let after = || read_user(addr, len).expect("a successful ioctl's argument is readable");
        match cmd {
            BIOCSETBUFMODE => {
                let mode = u32::from_ne_bytes(before.unwrap()[..4].try_into().unwrap());
                s.zbuf_mode = mode == BPF_BUFMODE_ZBUF;
            }
            BIOCSBLEN => {
                // New buffers: what the old ones held is gone uncounted, as
                // in FreeBSD (possible once the interface departed).
                let d = s.desc.upgrade().unwrap();
                let c = d.counters();
                s.records_read = c.matched.fetch() - c.dropped.fetch();
            }
            BIOCSETZBUF => {
                let z = BpfZbuf::decode(&before.unwrap()).unwrap_or_default();
                s.zbufs = Some(([z.bz_bufa.0, z.bz_bufb.0], z.bz_buflen as usize));
                assert!(s.zbuf_mode, "BIOCSETZBUF succeeded in BUFFER mode");
            }
            BIOCGSTATS => {
                let st = BpfStat::decode(&after()).unwrap_or_default();
                let d = s.desc.upgrade().unwrap();
                let c = d.counters();
                assert_eq!(st.bs_recv, c.received.fetch() as u32, "BIOCGSTATS received");
                assert_eq!(st.bs_drop, c.dropped.fetch() as u32, "BIOCGSTATS dropped");
            }
            BIOCGETZNEXT | BIOCROTZBUF => {
                let z = BpfZbuf::decode(&after()).unwrap_or_default();
                if !z.bz_bufa.is_null() {
                    let (bufs, len) = s.zbufs.expect("a zero-copy buffer named without any set");
                    assert!(bufs.contains(&z.bz_bufa.0), "named {:#x}, not ours", z.bz_bufa.0);
                    assert!(z.bz_buflen as usize <= len - ZBUF_HEADER, "length {}", z.bz_buflen);
                }
            }
            FIONREAD => {
                let n = i32::from_ne_bytes(after()[..4].try_into().unwrap());
                assert!((0..=2 * SPAN as i32).contains(&n), "FIONREAD {n}");
            }
            _ => {}
        }
    }

    fn generic_ioctl(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let (slot, fd) = self.fd_of(u)?;
        let table: Vec<u64> = IOCTL_TABLE.iter().chain(ZBPF_IOCTL_TABLE).map(|&(_, c)| c).collect();
        let cmd = match u.int_in_range(0u8..=7)? {
            0..=4 => table[u.choose_index(table.len())?],
            5 => {
                // A known command with its direction or size changed.
                let c = table[u.choose_index(table.len())?];
                let flip: u32 = u.arbitrary()?;
                c ^ (u64::from(flip) & (IOC_DIRMASK | (IOCPARM_MASK << 16)))
            }
            6 => u64::from(u.arbitrary::<u32>()?),
            _ => u.arbitrary::<u64>()?,
        };
        let addr = self.arg_addr(u)?;
        let len = ioc_len(cmd).min(u.len());
        let mut arg = u.bytes(len)?.to_vec();
        // The kernel writes through or holds the pointers inside these two:
        // keep those pointers in memory the harness owns.
        if cmd == BIOCGDLTLIST && arg.len() >= BpfDltList::SIZE {
            let mut l = BpfDltList::decode(&arg).unwrap_or_default();
            l.bfl_list = UserAddr(self.addr(u)?);
            l.encode(&mut arg);
        }
        if cmd == BIOCSETZBUF && arg.len() >= BpfZbuf::SIZE {
            let mut z = BpfZbuf::decode(&arg).unwrap_or_default();
            z.bz_bufa = UserAddr(self.addr(u)?);
            z.bz_bufb = UserAddr(self.addr(u)?);
            z.encode(&mut arg);
        }
        if (cmd == BIOCGDLTLIST || cmd == BIOCSETZBUF) && arg.len() < ioc_len(cmd) {
            return Ok(Offer::Nothing);
        }
        self.ioctl(slot, fd, cmd, addr, &arg);
        Ok(Offer::Nothing)
    }

    fn set_if(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let (slot, fd) = self.fd_of(u)?;
        let mut ifr = IfReq::default();
        match u.int_in_range(0u8..=5)? {
            0..=3 => {
                let name = IFACES[u.choose_index(2)?].0;
                ifr.ifr_name[..name.len()].copy_from_slice(name.as_bytes());
            }
            4 => ifr.ifr_name[..4].copy_from_slice(b"nope"),
            _ => ifr.ifr_name = u.arbitrary()?,
        }
        let addr = self.arg_addr(u)?;
        self.ioctl(slot, fd, BIOCSETIF, addr, &ifr.to_bytes());
        Ok(Offer::Nothing)
    }

    fn set_u32(&mut self, u: &mut Unstructured<'_>, cmd: u64, values: &[u32]) -> UResult<Offer> {
        let (slot, fd) = self.fd_of(u)?;
        let v =
            if u.ratio(3u8, 4)? { values[u.choose_index(values.len())?] } else { u.arbitrary()? };
        let addr = self.arg_addr(u)?;
        self.ioctl(slot, fd, cmd, addr, &v.to_ne_bytes());
        Ok(Offer::Nothing)
    }

    fn set_filter(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let (slot, fd) = self.fd_of(u)?;
        let cmd = [BIOCSETF, BIOCSETFNR, BIOCSETWF][u.choose_index(3)?];
        let insns: Vec<BpfInsn> = match u.int_in_range(0u8..=4)? {
            0 => vec![BpfInsn::stmt(op::BPF_RET | op::BPF_K, u.arbitrary()?)],
            1 => vec![
                BpfInsn::stmt(op::BPF_LD | op::BPF_H | op::BPF_ABS, 12),
                BpfInsn::jump(op::BPF_JMP | op::BPF_JEQ | op::BPF_K, 0x0800, 0, 1),
                BpfInsn::stmt(op::BPF_RET | op::BPF_K, u.arbitrary()?),
                BpfInsn::stmt(op::BPF_RET | op::BPF_K, 0),
            ],
            2 => vec![
                BpfInsn::stmt(op::BPF_LD | op::BPF_B | op::BPF_ABS, u.int_in_range(0..=64)?),
                BpfInsn::jump(op::BPF_JMP | op::BPF_JGT | op::BPF_K, u.arbitrary()?, 0, 1),
                BpfInsn::stmt(op::BPF_RET | op::BPF_K, u.arbitrary()?),
                BpfInsn::stmt(op::BPF_RET | op::BPF_K, 0),
            ],
            3 => Vec::new(),
            _ => {
                let n = u.int_in_range(1..=12)?;
                (0..n)
                    .map(|_| Ok(BpfInsn::decode(&u.arbitrary::<[u8; 8]>()?).unwrap_or_default()))
                    .collect::<UResult<_>>()?
            }
        };
        let code: Vec<u8> = insns.iter().flat_map(|i| i.to_bytes()).collect();
        let code_addr = if insns.is_empty() && u.arbitrary()? { 0 } else { self.arg_addr(u)? };
        self.mem.user_write(code_addr, &code);
        let bf_len = if u.ratio(7u8, 8)? { insns.len() as u32 } else { u.arbitrary()? };
        let prog = BpfProgram { bf_len, bf_insns: UserAddr(code_addr) };
        let addr = self.arg_addr(u)?;
        self.ioctl(slot, fd, cmd, addr, &prog.to_bytes());
        Ok(Offer::Nothing)
    }

    fn set_zbuf(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let (slot, fd) = self.fd_of(u)?;
        let page = |u: &mut Unstructured<'_>| -> UResult<u64> {
            Ok(self.mem.base + u64::from(u.int_in_range(0..=PAGES as u32)?) * PAGE_SIZE as u64)
        };
        let a = match u.int_in_range(0u8..=5)? {
            0..=3 => page(u)?,
            4 => page(u)? + u64::from(u.int_in_range(1u16..=4095)?),
            _ => self.addr(u)?,
        };
        let b = match u.int_in_range(0u8..=6)? {
            0..=2 => page(u)?,
            // Overlapping a, or a itself.
            // (`a` may be any address: wrap as the kernel's arithmetic would.)
            3 | 4 => a.wrapping_add(u64::from(u.int_in_range(0u8..=3)?) * PAGE_SIZE as u64),
            5 => page(u)? + u64::from(u.int_in_range(1u16..=4095)?),
            _ => self.addr(u)?,
        };
        let len = match u.int_in_range(0u8..=5)? {
            0..=3 => u64::from(u.int_in_range(1u8..=4)?) * PAGE_SIZE as u64,
            4 => u64::from(u.int_in_range(0u16..=4 * PAGE_SIZE as u16)?),
            _ => u.arbitrary()?,
        };
        let bz = BpfZbuf { bz_bufa: UserAddr(a), bz_bufb: UserAddr(b), bz_buflen: len };
        let addr = self.arg_addr(u)?;
        self.ioctl(slot, fd, BIOCSETZBUF, addr, &bz.to_bytes());
        Ok(Offer::Nothing)
    }

    fn consume_zbuf(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let (slot, fd) = self.fd_of(u)?;
        let addr = self.arg_addr(u)?;
        let cmd = if u.arbitrary()? { BIOCGETZNEXT } else { BIOCROTZBUF };
        self.ioctl(slot, fd, cmd, addr, &[]);
        let named = read_user(addr, BpfZbuf::SIZE).and_then(|b| BpfZbuf::decode(&b));
        if let Some(z) = named.filter(|z| !z.bz_bufa.is_null()) {
            // Read the records the way a careful consumer does.
            let len = (z.bz_buflen as usize).min(SPAN);
            if let Some(bytes) = read_user(z.bz_bufa.0.wrapping_add(ZBUF_HEADER as u64), len) {
                let _ = walk_records(&bytes, |_| {});
            }
        }
        if u.arbitrary()? {
            let ack = match (named, u.int_in_range(0u8..=3)?) {
                (Some(z), 0 | 1) => z.bz_bufa.0,
                _ => self.addr(u)?,
            };
            let bz = BpfZbuf { bz_bufa: UserAddr(ack), ..Default::default() };
            let addr = self.arg_addr(u)?;
            self.ioctl(slot, fd, BIOCACKZBUF, addr, &bz.to_bytes());
        }
        Ok(Offer::Nothing)
    }

    fn read(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let (slot, fd) = self.fd_of(u)?;
        let addr = self.addr(u)?;
        // BIOCGBLEN: what a well-behaved reader asks for.
        let mut blen = 0u32;
        let bufsize = self
            .sim
            .ioctl(fd, BIOCGBLEN, (&mut blen as *mut u32).cast())
            .ok()
            .map(|()| blen as usize);
        let len = match (bufsize, u.int_in_range(0u8..=3)?) {
            (Some(b), 0..=2) => b,
            _ => usize::from(u.arbitrary::<u16>()?) * [1, 16][u.choose_index(2)?],
        };
        let _ = self.sim.set_nonblock(fd, true);
        let r = self.sim.read(fd, addr as usize as *mut u8, len);
        match r {
            Ok(n) => {
                assert!(n <= len, "read {n} of {len}");
                self.lent.push((addr, n));
                let bytes = read_user(addr, n).expect("bytes read(2) wrote are readable");
                let mut records = 0u64;
                walk_records(&bytes, |r| {
                    assert!(r.caplen <= r.datalen, "caplen {} > datalen {}", r.caplen, r.datalen);
                    records += 1;
                })
                .expect("read(2) returned malformed records");
                if let Some(s) = slot.and_then(|s| self.slots[s].as_mut()) {
                    s.records_read += records;
                }
            }
            Err(e) => {
                // A copy that faulted part way wrote what it could.
                self.lent.push((addr, len));
                if e == Errno::EFAULT {
                    if let Some(s) = slot.and_then(|s| self.slots[s].as_mut()) {
                        s.lost = true;
                    }
                }
            }
        }
        Ok(Offer::Nothing)
    }

    fn write(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let (slot, fd) = self.fd_of(u)?;
        let addr = self.addr(u)?;
        let len = match u.int_in_range(0u8..=3)? {
            0 | 1 => u.int_in_range(0usize..=1600)?,
            2 => u.int_in_range(0usize..=20_000)?,
            _ => usize::from(u.arbitrary::<u16>()?),
        };
        let frame = frame(u, len)?;
        self.mem.user_write(addr, &frame[..frame.len().min(len)]);
        let r = self.sim.write(fd, addr as usize as *const u8, len);
        if let Ok(n) = r {
            assert_eq!(n, len, "a write is all or nothing");
        }
        Ok(match slot {
            Some(slot) => Offer::Write { slot, ok: matches!(r, Ok(n) if n > 0) },
            None => Offer::Nothing,
        })
    }

    fn poll(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let mut fds = [PollFd::default(), PollFd::default()];
        for p in fds.iter_mut() {
            p.fd = self.fd_of(u)?.1;
            p.events = PollEvents::from_bits_retain(i32::from(u.arbitrary::<u16>()?));
        }
        let n = self.sim.poll(&mut fds, 0).expect("poll");
        assert_eq!(n, fds.iter().filter(|p| !p.revents.is_empty()).count());
        for p in &fds {
            let extra = PollEvents::POLLNVAL | PollEvents::POLLHUP | PollEvents::POLLERR;
            assert!(
                (p.revents & !extra & !p.events).is_empty(),
                "poll: {:?} not asked for in {:?}",
                p.revents,
                p.events
            );
        }
        Ok(Offer::Nothing)
    }

    fn kevent(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let slot = usize::from(u.arbitrary::<bool>()?);
        let filter = match u.int_in_range(0u8..=4)? {
            0 | 1 => EVFILT_READ,
            2 | 3 => EVFILT_WRITE,
            _ => u.arbitrary()?,
        };
        let bpf = self.sim.bpf();
        let Ok(f) = bpf.kq_attach(filter) else { return Ok(Offer::Nothing) };
        let Some(d) = self.desc(slot) else { return Ok(Offer::Nothing) };
        let data = bpf.with_state(&d, |st| bpf.kq_event(&d, st, f));
        if let (KqFilter::Read, Some(n)) = (f, data) {
            let max = 2 * SPAN.max(MAX_BUF as usize) as i64;
            assert!((0..=max).contains(&n), "kevent read data {n}");
        }
        Ok(Offer::Nothing)
    }

    fn scribble(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let slot = usize::from(u.arbitrary::<bool>()?);
        let zbufs = self.slots[slot].as_ref().and_then(|s| s.zbufs);
        match zbufs {
            Some((bufs, len)) if u.ratio(7u8, 8)? => {
                let buf = bufs[u.choose_index(2)?];
                let word = |w: u64| buf + 4 * w;
                let kgen = read_user(word(0), 4)
                    .map_or(0, |b| u32::from_ne_bytes(b[..4].try_into().unwrap()));
                let (w, v) = match u.int_in_range(0u8..=7)? {
                    // An honest acknowledgement.
                    0..=2 => (2, kgen),
                    3 => (
                        2,
                        [kgen.wrapping_add(1), kgen.wrapping_sub(1), 0, u32::MAX]
                            [u.choose_index(4)?],
                    ),
                    4 => (0, u.arbitrary()?),
                    5 => (1, [u32::MAX, len as u32 * 4, 31, u.arbitrary()?][u.choose_index(4)?]),
                    _ => (u.int_in_range(0..=7)?, u.arbitrary()?),
                };
                self.mem.user_write(word(w), &u32::to_ne_bytes(v));
            }
            _ => {
                let addr = self.addr(u)?;
                let n = u.int_in_range(1usize..=32)?.min(u.len());
                let bytes = u.bytes(n)?.to_vec();
                self.mem.user_write(addr, &bytes);
            }
        }
        Ok(Offer::Nothing)
    }

    fn inject(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let i = u.choose_index(2)?;
        let inbound = u.ratio(3u8, 4)?;
        let count = u.int_in_range(1u64..=4)?;
        let len = match u.int_in_range(0u8..=3)? {
            0..=2 => u.int_in_range(0usize..=1514)?,
            _ => u.int_in_range(0usize..=16_384)?,
        };
        let frame = frame(u, len)?;
        let Some(iface) = self.ifaces[i].clone() else { return Ok(Offer::Nothing) };
        if inbound {
            self.sim.receive_burst(&iface, (0..count).map(|_| frame.as_slice()));
        } else {
            for _ in 0..count {
                self.sim.transmit(&iface, &frame);
            }
        }
        Ok(Offer::Frames { iface: i, inbound, count })
    }

    fn iface_change(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let i = u.choose_index(2)?;
        match (self.ifaces[i].take(), u.int_in_range(0u8..=2)?) {
            (Some(iface), 0) => {
                let seg = match u.int_in_range(0usize..=8)? {
                    0 => Segmentation::Contiguous,
                    n => Segmentation::Random(n),
                };
                iface.set_segmentation(seg);
                self.ifaces[i] = Some(iface);
            }
            (Some(iface), _) => {
                let weak = Arc::downgrade(&iface);
                drop(iface);
                self.sim.remove_iface(IFACES[i].0);
                assert!(weak.upgrade().is_none(), "departed interface still referenced");
                for s in 0..2 {
                    assert_ne!(self.attached(s), Some(i), "attached to a departed interface");
                }
            }
            (None, _) => self.ifaces[i] = Some(self.sim.add_iface(new_iface(i))),
        }
        Ok(Offer::Nothing)
    }

    fn protect(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let page = u.choose_index(PAGES)?;
        let prot = [Prot::None, Prot::Read, Prot::ReadWrite][u.choose_index(3)?];
        self.mem.mprotect(page, prot);
        Ok(Offer::Nothing)
    }

    fn sysctl(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        let cfg = &self.sim.bpf().config;
        let v = i32::from(u.arbitrary::<u16>()?);
        let _ = match u.int_in_range(0u8..=4)? {
            0 => cfg.set(Knob::JitEnable, v & 1),
            1 => cfg.set(Knob::ZerocopyEnable, i32::from(v % 4 != 0)),
            2 => cfg.set(Knob::OptimizeWriters, v & 1),
            3 => cfg.set(Knob::BufSize, v),
            _ => cfg.set(Knob::MaxBufSize, v.max(1).min(MAX_BUF as i32)),
        };
        Ok(Offer::Nothing)
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> UResult<Offer> {
        self.lent.clear();
        self.ioctl_step = false;
        Ok(match u.int_in_range(0u8..=22)? {
            0 | 1 => self.open(u)?,
            2 => {
                self.close(usize::from(u.arbitrary::<bool>()?));
                Offer::Nothing
            }
            3..=5 => self.generic_ioctl(u)?,
            6 => self.set_if(u)?,
            7 => self.set_u32(u, BIOCSETBUFMODE, &[BPF_BUFMODE_BUFFER, BPF_BUFMODE_ZBUF])?,
            8 => self.set_u32(u, BIOCSBLEN, &[0, 32, 100, 4096, 8192, MAX_BUF, u32::MAX])?,
            9 => self.set_u32(u, BIOCIMMEDIATE, &[0, 1])?,
            10 => self.set_u32(u, BIOCSDIRECTION, &[0, 1, 2, 3])?,
            11 => self.set_u32(u, BIOCFEEDBACK, &[0, 1])?,
            12 => self.set_filter(u)?,
            13 => self.set_zbuf(u)?,
            14 => self.consume_zbuf(u)?,
            15 => self.read(u)?,
            16 => self.write(u)?,
            17 => self.poll(u)?,
            18 => self.kevent(u)?,
            19 => self.scribble(u)?,
            20 => self.inject(u)?,
            21 => self.iface_change(u)?,
            _ => {
                if u.arbitrary()? {
                    self.protect(u)?
                } else {
                    self.sysctl(u)?
                }
            }
        })
    }

    /// A usual start, chosen by the first byte, so that the steps begin in
    /// the states a capture runs in: each slot nothing, or open on an
    /// interface in BUFFER mode, or in ZBUF mode with two good buffers.
    fn prologue(&mut self, u: &mut Unstructured<'_>) {
        let Ok(plan) = u.arbitrary::<u8>() else { return };
        for slot in 0..2 {
            let how = (plan >> (3 * slot)) & 7;
            if how == 0 || how > 4 {
                continue;
            }
            self.lent.clear();
            self.ioctl_step = true;
            let fd = self.sim.open(oflags::O_RDWR).expect("open");
            self.slots[slot] = Some(Slot::opened(&self.sim, fd));
            let arg = self.mem.base + (SPAN - 64) as u64;
            if how >= 3 {
                self.ioctl(Some(slot), fd, BIOCSETBUFMODE, arg, &BPF_BUFMODE_ZBUF.to_ne_bytes());
                let page = |p: usize| UserAddr(self.mem.base + (p * PAGE_SIZE) as u64);
                let (a, b) = (page(8 * slot), page(8 * slot + 4));
                let bz = BpfZbuf { bz_bufa: a, bz_bufb: b, bz_buflen: 2 * PAGE_SIZE as u64 };
                self.ioctl(Some(slot), fd, BIOCSETZBUF, arg, &bz.to_bytes());
            }
            let mut ifr = IfReq::default();
            let name = IFACES[usize::from(how % 2 == 0)].0;
            ifr.ifr_name[..name.len()].copy_from_slice(name.as_bytes());
            self.ioctl(Some(slot), fd, BIOCSETIF, arg, &ifr.to_bytes());
            self.check(Offer::Nothing);
        }
    }

    /// The checks after every step.
    fn check(&mut self, offer: Offer) {
        let mut allowed = std::mem::take(&mut self.lent);
        for s in self.slots.iter().flatten() {
            if let Some((bufs, len)) = s.zbufs {
                allowed.extend(bufs.iter().map(|&b| (b, len)));
            }
        }
        self.mem.check(&allowed);
        for slot in 0..2 {
            let attached = self.attached(slot);
            let Some(d) = self.desc(slot) else {
                assert!(self.slots[slot].is_none(), "an open descriptor was freed");
                continue;
            };
            let now = Snap::of(&d);
            let s = self.slots[slot].as_mut().unwrap();
            let was = s.prev;
            s.prev = now;
            assert!(now.dropped <= now.matched, "dropped > matched: {now:?}");
            assert!(now.matched <= now.recv, "matched > received: {now:?}");
            assert!(now.wmatched <= now.written, "write matched > written: {now:?}");
            if self.ioctl_step && now.zeroed() {
                s.records_read = 0;
                s.lost = false;
                continue;
            }
            let grew = |a: u64, b: u64, what: &str| {
                assert!(b >= a, "{what} went backwards: {was:?} -> {now:?}");
                b - a
            };
            let recv = grew(was.recv, now.recv, "received");
            let matched = grew(was.matched, now.matched, "matched");
            let dropped = grew(was.dropped, now.dropped, "dropped");
            let zcopy = grew(was.zcopy, now.zcopy, "zcopy");
            let written = grew(was.written, now.written, "written");
            let wdropped = grew(was.wdropped, now.wdropped, "write dropped");
            grew(was.wmatched, now.wmatched, "write matched");
            assert!(matched <= recv && dropped <= matched, "{was:?} -> {now:?}");
            match offer {
                Offer::Frames { iface, inbound, count } => {
                    // A reader on the interface gets every frame, or none
                    // when BIOCSDLT moved it off the type the driver taps.
                    let admits = d.direction().admits(inbound);
                    if attached != Some(iface) || !admits {
                        assert_eq!(recv, 0, "received a frame of another interface or direction");
                    } else {
                        assert!(recv == 0 || recv == count, "received {recv} of {count} frames");
                    }
                }
                Offer::Write { slot: w, ok } => {
                    assert!(recv <= 2, "one write, {recv} received");
                    if w == slot {
                        assert_eq!((written, wdropped), (1, u64::from(!ok)), "write counts");
                    } else {
                        assert_eq!((written, wdropped), (0, 0), "another's write counted");
                    }
                }
                Offer::Nothing => {
                    assert_eq!(now, was, "counters moved with no frame offered");
                }
            }
            if s.zbuf_mode {
                assert_eq!(now.zcopy % 2, 0, "odd zero-copy appends");
                assert_eq!(
                    now.matched,
                    now.zcopy / 2 + now.dropped,
                    "ZBUF: matched = stored + dropped"
                );
                assert_eq!(zcopy, 2 * (matched - dropped), "ZBUF: this step's appends");
            } else {
                assert_eq!(now.zcopy, 0, "zero-copy appends in BUFFER mode");
                if !s.lost {
                    assert!(
                        s.records_read <= now.matched - now.dropped,
                        "read {} records, only {} stored",
                        s.records_read,
                        now.matched - now.dropped
                    );
                }
            }
        }
        for x in self.sim.bpf().stats() {
            assert!(x.bd_slen >= 0 && x.bd_slen <= x.bd_bufsize, "bd_slen {}", x.bd_slen);
            assert!(x.bd_hlen >= 0 && x.bd_hlen <= x.bd_bufsize, "bd_hlen {}", x.bd_hlen);
        }
    }

    /// BUFFER mode: read whatever is left; then the records read are all
    /// that was stored (unless a read lost a buffer).
    fn drain(&mut self) {
        for slot in 0..2 {
            let Some(d) = self.desc(slot) else { continue };
            let s = self.slots[slot].as_ref().unwrap();
            if s.zbuf_mode {
                continue;
            }
            let mut blen = 0u32;
            let fd = s.fd;
            if self.sim.ioctl(fd, BIOCGBLEN, (&mut blen as *mut u32).cast()).is_err() {
                continue;
            }
            self.sim.set_nonblock(fd, true).unwrap();
            let mut extra = 0u64;
            let mut buf = vec![0u8; blen as usize];
            while let Ok(n) = self.sim.read(fd, buf.as_mut_ptr(), buf.len()) {
                if n == 0 {
                    break;
                }
                extra += walk_records(&buf[..n], |_| {}).expect("drained records") as u64;
            }
            let s = self.slots[slot].as_mut().unwrap();
            s.records_read += extra;
            let now = Snap::of(&d);
            if !s.lost {
                assert_eq!(
                    s.records_read,
                    now.matched - now.dropped,
                    "BUFFER: records read = matched - dropped ({now:?})"
                );
            }
        }
    }
}

const ZBUF_HEADER: usize = zbpf::engine::ZBUF_HEADER_LEN;

/// `len` bytes at user address `addr`, if all are readable.
fn read_user(addr: u64, len: usize) -> Option<Vec<u8>> {
    let mut b = vec![0u8; len];
    copy_from_user(UserAddr(addr), &mut b).ok()?;
    Some(b)
}

/// A frame of `len` bytes: an IPv4 one or input bytes.
fn frame(u: &mut Unstructured<'_>, len: usize) -> UResult<Vec<u8>> {
    let mut f = if u.arbitrary()? {
        let proto = [6, 17, 1, u.arbitrary()?][u.choose_index(4)?];
        traffic::ipv4_frame([198, 51, 100, 9], [192, 0, 2, 1], proto, 40000, 53, len, 7)
    } else {
        let n = len.min(u.len()).min(64);
        u.bytes(n)?.to_vec()
    };
    f.resize(len, 0x5a);
    Ok(f)
}

/// Waits until the heap is back at `baseline` (the simulator's clock
/// thread frees its share of the machine a tick after the machine goes).
fn wait_for_heap(baseline: isize) {
    let start = Instant::now();
    loop {
        let live = LIVE_BYTES.load(Ordering::SeqCst);
        if live == baseline {
            return;
        }
        if start.elapsed() > Duration::from_secs(5) {
            panic!("leak: {} bytes still allocated after the machine was dropped", live - baseline);
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut w = World::new();
    w.prologue(&mut u);
    for _ in 0..MAX_STEPS {
        if u.is_empty() {
            break;
        }
        let Ok(offer) = w.step(&mut u) else { break };
        w.check(offer);
    }
    w.lent.clear();
    w.ioctl_step = true;
    w.drain();
    for slot in 0..2 {
        w.close(slot);
    }
    w.check(Offer::Nothing);
}

static WARM: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    // Process-wide lazy state (thread machinery, first-use caches) is
    // allocated once, before any baseline; the warm-up machine's clock
    // thread is given time to go.
    WARM.call_once(|| {
        run(&[]);
        std::thread::sleep(Duration::from_millis(100));
    });
    let baseline = LIVE_BYTES.load(Ordering::SeqCst);
    run(data);
    wait_for_heap(baseline);
});
