//! Helpers shared by the engine tests (`engine_ioctl`, `engine_buffer_mode`,
//! `engine_lifecycle`): typed ioctls on the simulator, a record walker
//! written from bpf(4) independently of zbpf's own consumer, frames with
//! recognisable contents, and user addresses that fault.
//!
//! Each test file uses a different subset.
#![allow(dead_code)]

use std::ffi::c_void;
use std::sync::OnceLock;

use zbpf::abi::ioctl::*;
use zbpf::abi::*;
use zbpf::hosted::net::SimIface;
use zbpf::hosted::sim::Sim;
use zbpf::platform::NetIf;

/// The MAC of the simulated host interfaces.
pub const HOST_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
/// The MAC frames come from.
pub const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02];

/// FreeBSD's `SIZEOF_BPF_HDR` on amd64.
pub const SIZEOF_HDR: usize = 26;

/// `BPF_WORDALIGN`.
pub fn wordalign(x: usize) -> usize {
    (x + 7) & !7
}

/// `bh_hdrlen` for a link header of `l` bytes: WORDALIGN(26 + L) - L.
pub fn hdrlen_for(l: usize) -> usize {
    wordalign(SIZEOF_HDR + l) - l
}

/// ioctl with a typed argument.
pub fn ioc<T>(sim: &Sim, fd: i32, cmd: u64, arg: &mut T) -> Result<()> {
    sim.ioctl(fd, cmd, (arg as *mut T).cast::<c_void>())
}

/// ioctl without an argument (`_IO` commands).
pub fn ioc0(sim: &Sim, fd: i32, cmd: u64) -> Result<()> {
    sim.ioctl(fd, cmd, std::ptr::null_mut())
}

/// A getter returning a `u_int`.
pub fn get_u32(sim: &Sim, fd: i32, cmd: u64) -> Result<u32> {
    let mut v = 0xdead_beefu32;
    ioc(sim, fd, cmd, &mut v)?;
    Ok(v)
}

/// A setter taking a `u_int`.
pub fn set_u32(sim: &Sim, fd: i32, cmd: u64, v: u32) -> Result<()> {
    let mut v = v;
    ioc(sim, fd, cmd, &mut v)
}

/// An `ifreq` naming `name`.
pub fn ifreq(name: &str) -> IfReq {
    let mut ifr = IfReq::default();
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes().take(IFNAMSIZ)) {
        *d = s;
    }
    ifr
}

/// BIOCSETIF.
pub fn attach(sim: &Sim, fd: i32, name: &str) -> Result<()> {
    let mut ifr = ifreq(name);
    ioc(sim, fd, BIOCSETIF, &mut ifr)
}

/// BIOCSETF, BIOCSETFNR or BIOCSETWF with `insns`.
pub fn set_prog(sim: &Sim, fd: i32, cmd: u64, insns: &[BpfInsn]) -> Result<()> {
    let mut insns = insns.to_vec();
    let mut prog = BpfProgram {
        bf_len: insns.len() as u32,
        bf_insns: if insns.is_empty() { UserAddr(0) } else { UserAddr(insns.as_mut_ptr() as u64) },
    };
    ioc(sim, fd, cmd, &mut prog)
}

/// `ret #k`.
pub fn ret(k: u32) -> Vec<BpfInsn> {
    vec![BpfInsn::stmt(op::BPF_RET | op::BPF_K, k)]
}

/// Accepts IPv4 frames whole, rejects the rest (not a single `ret`).
pub fn ipv4_only() -> Vec<BpfInsn> {
    vec![
        BpfInsn::stmt(op::BPF_LD | op::BPF_H | op::BPF_ABS, 12),
        BpfInsn::jump(op::BPF_JMP | op::BPF_JEQ | op::BPF_K, 0x0800, 0, 1),
        BpfInsn::stmt(op::BPF_RET | op::BPF_K, u32::MAX),
        BpfInsn::stmt(op::BPF_RET | op::BPF_K, 0),
    ]
}

/// BIOCGBLEN.
pub fn blen(sim: &Sim, fd: i32) -> usize {
    get_u32(sim, fd, BIOCGBLEN).expect("BIOCGBLEN") as usize
}

/// BIOCSBLEN, returning the size written back.
pub fn set_blen(sim: &Sim, fd: i32, size: u32) -> Result<u32> {
    let mut v = size;
    ioc(sim, fd, BIOCSBLEN, &mut v)?;
    Ok(v)
}

/// BIOCGSTATS as (received, dropped).
pub fn stats(sim: &Sim, fd: i32) -> (u32, u32) {
    let mut st = BpfStat::default();
    ioc(sim, fd, BIOCGSTATS, &mut st).expect("BIOCGSTATS");
    (st.bs_recv, st.bs_drop)
}

/// FIONREAD.
pub fn fionread(sim: &Sim, fd: i32) -> i32 {
    let mut n = -1i32;
    ioc(sim, fd, FIONREAD, &mut n).expect("FIONREAD");
    n
}

/// BIOCSRTIMEOUT.
pub fn set_timeout(sim: &Sim, fd: i32, sec: i64, usec: i64) -> Result<()> {
    let mut tv = Timeval { tv_sec: sec, tv_usec: usec };
    ioc(sim, fd, BIOCSRTIMEOUT, &mut tv)
}

/// One read(2) of exactly BIOCGBLEN bytes into a buffer pre-filled with
/// 0xEE; returns the bytes read. The rest of the buffer must be untouched
/// (FreeBSD copies exactly the held length).
pub fn read_once(sim: &Sim, fd: i32) -> Result<Vec<u8>> {
    read_len(sim, fd, blen(sim, fd))
}

/// `read_once` with a known buffer size: no ioctl first (every ioctl
/// resets a descriptor's timed-out state, as in FreeBSD).
pub fn read_len(sim: &Sim, fd: i32, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0xeeu8; len];
    let n = sim.read(fd, buf.as_mut_ptr(), len)?;
    assert!(n <= len, "read returned {n} bytes for a {len}-byte buffer");
    assert!(buf[n..].iter().all(|&b| b == 0xee), "read wrote past the bytes it returned");
    buf.truncate(n);
    Ok(buf)
}

/// One record of a BUFFER-mode read, decoded from the raw bytes.
#[derive(Clone, Debug)]
pub struct Rec {
    /// Offset of the record in the buffer.
    pub off: usize,
    /// `bh_tstamp` seconds.
    pub sec: i64,
    /// `bh_tstamp` second word (µs, ns or binary fraction).
    pub frac: u64,
    /// `bh_caplen`.
    pub caplen: u32,
    /// `bh_datalen`.
    pub datalen: u32,
    /// `bh_hdrlen`.
    pub hdrlen: u16,
    /// The whole header area `[off, off + hdrlen)`.
    pub header: Vec<u8>,
    /// The captured bytes.
    pub data: Vec<u8>,
}

fn le<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b[at..at + N].try_into().expect("slice of N bytes")
}

/// Walks a buffer as bpf(4) describes it: a 32-byte `bpf_hdr`/`bpf_xhdr`
/// image of which 26 bytes carry meaning, the data at `bh_hdrlen`, the next
/// record at `BPF_WORDALIGN(hdrlen + caplen)`. Panics on anything
/// malformed, including padding after the last record (FreeBSD does not
/// count it).
pub fn records(buf: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        assert_eq!(off % 8, 0, "record at unaligned offset {off}");
        assert!(buf.len() - off >= SIZEOF_HDR, "truncated header at {off}");
        let h = &buf[off..];
        let hdrlen = u16::from_le_bytes(le(h, 24));
        let caplen = u32::from_le_bytes(le(h, 16));
        let end = off + usize::from(hdrlen) + caplen as usize;
        assert!(usize::from(hdrlen) >= SIZEOF_HDR, "hdrlen {hdrlen} at {off}");
        assert!(end <= buf.len(), "record at {off} runs past the buffer ({end} > {})", buf.len());
        out.push(Rec {
            off,
            sec: i64::from_le_bytes(le(h, 0)),
            frac: u64::from_le_bytes(le(h, 8)),
            caplen,
            datalen: u32::from_le_bytes(le(h, 20)),
            hdrlen,
            header: buf[off..off + usize::from(hdrlen)].to_vec(),
            data: buf[off + usize::from(hdrlen)..end].to_vec(),
        });
        let next = wordalign(end);
        if next >= buf.len() {
            assert_eq!(end, buf.len(), "the buffer ends with padding after the last record");
        } else {
            assert!(buf[end..next].iter().all(|&b| b == 0), "padding after record at {off}");
        }
        off = next;
    }
    out
}

/// An Ethernet frame of `len` bytes (at least 14) from PEER_MAC to
/// HOST_MAC, IPv4 ethertype, whose payload encodes `tag`.
pub fn frame(len: usize, tag: u8) -> Vec<u8> {
    assert!(len >= 14);
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut i = 0u8;
    while f.len() < len {
        f.push(tag ^ i);
        i = i.wrapping_add(1);
    }
    f
}

/// An Ethernet interface `name` with HOST_MAC.
pub fn ether(sim: &Sim, name: &str) -> std::sync::Arc<SimIface> {
    sim.add_iface(SimIface::ethernet(name, HOST_MAC))
}

/// Opens a read/write descriptor attached to `name` with a buffer of
/// `bufsize` bytes.
pub fn open_on(sim: &Sim, name: &str, bufsize: u32) -> i32 {
    let fd = sim.open(2).expect("open");
    set_blen(sim, fd, bufsize).expect("BIOCSBLEN");
    attach(sim, fd, name).expect("BIOCSETIF");
    fd
}

/// The primary DLT of an interface.
pub fn primary_dlt(iface: &std::sync::Arc<SimIface>) -> u32 {
    iface.dlts()[0].0
}

fn anon_page(prot: i32) -> u64 {
    // Never unmapped, so no later mapping can take its place in the tests.
    // SAFETY: a fresh anonymous page at an address the kernel chooses.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE_SIZE,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap");
    p as u64
}

/// A page-aligned address where nothing can be read or written: a
/// PROT_NONE mapping kept for the life of the process. (A freshly
/// munmapped page would do too, but tests run in parallel threads and
/// another thread's mmap could reuse the hole.)
pub fn fault_page() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| anon_page(libc::PROT_NONE))
}

/// A page-aligned, readable but not writable address.
pub fn read_only_page() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| anon_page(libc::PROT_READ))
}

/// The classic bad pointer: inside the never-mapped first page.
pub const LOW_ADDR: u64 = 8;
