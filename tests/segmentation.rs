//! The shape of a packet's storage must not show in what is captured: the
//! same frames, delivered as one contiguous segment each or cut into random
//! mbuf-like chains (different seeds — the seed comes from the interface
//! name — and different maximum segment counts, empty segments included),
//! give byte-identical record streams: every buffer the consumer gets, in
//! order, headers (but for the timestamps, which cannot be fixed) and data,
//! alignment padding included. In both buffer modes (which, with the same
//! record area size, must also agree with each other), with no filter, with
//! libpcap-compiled filters that truncate (loads and copies that cross
//! segment boundaries), and on a DLT_NULL interface.
//!
//! Each stream is also checked against the frames themselves: the records
//! are exactly the frames libpcap's interpreter accepts, in order, each cut
//! to the filter's answer.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use zbpf::abi::dlt::{DLT_EN10MB, DLT_NULL};
use zbpf::abi::ioctl::*;
use zbpf::abi::op::*;
use zbpf::abi::*;
use zbpf::hosted::consumer::{ioctl_with, walk_records};
use zbpf::hosted::libpcap;
use zbpf::hosted::net::{Segmentation, SimIface};
use zbpf::hosted::process::{copy_from_user, SharedRegion};
use zbpf::hosted::sim::{oflags, Sim};
use zbpf::hosted::traffic;

/// Each ZBUF buffer, header included; BUFFER mode gets the same record
/// area (ZBUF_LEN - 32), so both modes rotate at the same records.
const ZBUF_LEN: usize = 16 * PAGE_SIZE;
const RECORD_AREA: usize = ZBUF_LEN - 32;
/// Frames per burst: at most 20 full-size frames fit in one buffer, so no
/// drop can happen when the consumer drains after every burst.
const BURST: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Buffer,
    Zbuf,
}

/// A consumer that keeps whole buffers as they come.
struct Raw<'s> {
    sim: &'s Sim,
    fd: i32,
    mode: Mode,
    buf: Vec<u8>,
    zbufs: Vec<SharedRegion>,
    last: Option<usize>,
}

impl<'s> Raw<'s> {
    fn open(sim: &'s Sim, ifname: &str, mode: Mode, filter: Option<&[BpfInsn]>) -> Raw<'s> {
        let fd = sim.open(oflags::O_RDWR | oflags::O_NONBLOCK).unwrap();
        let mut raw = Raw { sim, fd, mode, buf: Vec::new(), zbufs: Vec::new(), last: None };
        match mode {
            Mode::Buffer => {
                let mut len = RECORD_AREA as u32;
                ioctl_with(sim, fd, BIOCSBLEN, &mut len).unwrap();
                assert_eq!(len as usize, RECORD_AREA);
                raw.buf = vec![0; RECORD_AREA];
            }
            Mode::Zbuf => {
                let mut m = BPF_BUFMODE_ZBUF;
                ioctl_with(sim, fd, BIOCSETBUFMODE, &mut m).unwrap();
                raw.zbufs = (0..2).map(|_| SharedRegion::new(ZBUF_LEN).unwrap()).collect();
                let mut bz = BpfZbuf {
                    bz_bufa: raw.zbufs[0].addr(),
                    bz_bufb: raw.zbufs[1].addr(),
                    bz_buflen: ZBUF_LEN as u64,
                };
                ioctl_with(sim, fd, BIOCSETZBUF, &mut bz).unwrap();
            }
        }
        if let Some(insns) = filter {
            let mut insns = insns.to_vec();
            let mut prog = BpfProgram {
                bf_len: insns.len() as u32,
                bf_insns: UserAddr(insns.as_mut_ptr() as u64),
            };
            ioctl_with(sim, fd, BIOCSETF, &mut prog).unwrap();
        }
        let mut ifr = IfReq::default();
        ifr.ifr_name[..ifname.len()].copy_from_slice(ifname.as_bytes());
        ioctl_with(sim, fd, BIOCSETIF, &mut ifr).unwrap();
        let mut blen = 0u32;
        ioctl_with(sim, fd, BIOCGBLEN, &mut blen).unwrap();
        assert_eq!(blen as usize, RECORD_AREA, "{mode:?}: BIOCGBLEN");
        raw
    }

    fn header(&self, i: usize, word: usize) -> &AtomicU32 {
        self.zbufs[i].word(word)
    }

    /// ZBUF: the next buffer the shared header says is ours (the other one
    /// than last first), copied out and acknowledged.
    fn take_zbuf(&mut self) -> Option<Vec<u8>> {
        let first = if self.last == Some(0) { 1 } else { 0 };
        let i = [first, 1 - first].into_iter().find(|&i| {
            self.header(i, 0).load(Ordering::Acquire) != self.header(i, 2).load(Ordering::Relaxed)
        })?;
        let kgen = self.header(i, 0).load(Ordering::Acquire);
        let len = self.header(i, 1).load(Ordering::Relaxed) as usize;
        assert!(len <= RECORD_AREA, "bzh_kernel_len {len}");
        let mut out = vec![0u8; len];
        copy_from_user(UserAddr(self.zbufs[i].addr().0 + 32), &mut out).unwrap();
        self.header(i, 2).store(kgen, Ordering::Release);
        self.last = Some(i);
        Some(out)
    }

    /// Every pending buffer, in the order the consumer gets them.
    fn drain(&mut self, out: &mut Vec<Vec<u8>>) {
        match self.mode {
            Mode::Buffer => loop {
                match self.sim.read(self.fd, self.buf.as_mut_ptr(), self.buf.len()) {
                    Ok(n) => {
                        assert!(n > 0, "read returned 0 with O_NONBLOCK");
                        out.push(self.buf[..n].to_vec());
                    }
                    Err(Errno::EAGAIN) => return,
                    Err(e) => panic!("read: {e:?}"),
                }
            },
            Mode::Zbuf => loop {
                if let Some(b) = self.take_zbuf() {
                    out.push(b);
                    continue;
                }
                let mut bz = BpfZbuf::default();
                ioctl_with(self.sim, self.fd, BIOCROTZBUF, &mut bz).unwrap();
                match self.take_zbuf() {
                    Some(b) => out.push(b),
                    None => return,
                }
            },
        }
    }

    fn dropped(&self) -> u32 {
        let mut st = BpfStat::default();
        ioctl_with(self.sim, self.fd, BIOCGSTATS, &mut st).unwrap();
        st.bs_drop
    }
}

/// Zeroes the timestamp of every record (the first 16 bytes of a
/// `bpf_hdr`), checking the walk agrees with `walk_records`.
fn without_timestamps(mut buf: Vec<u8>) -> Vec<u8> {
    let records = walk_records(&buf, |_| {}).expect("records parse");
    let (mut off, mut n) = (0, 0);
    while off < buf.len() {
        let caplen = u32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap()) as usize;
        let hdrlen = u16::from_ne_bytes(buf[off + 24..off + 26].try_into().unwrap()) as usize;
        buf[off..off + 16].fill(0);
        off += bpf_wordalign(hdrlen + caplen);
        n += 1;
    }
    assert_eq!(n, records);
    buf
}

/// Captures `frames` on a fresh machine with one interface `iface`.
fn capture(
    iface: Arc<SimIface>,
    seg: Segmentation,
    mode: Mode,
    filter: Option<&[BpfInsn]>,
    frames: &[Vec<u8>],
) -> Vec<Vec<u8>> {
    let sim = Sim::new();
    let iface = sim.add_iface(iface);
    iface.set_segmentation(seg);
    let name = zbpf::platform::NetIf::name(&iface).to_owned();
    let mut raw = Raw::open(&sim, &name, mode, filter);
    let mut out = Vec::new();
    for burst in frames.chunks(BURST) {
        sim.receive_burst(&iface, burst.iter().map(Vec::as_slice));
        raw.drain(&mut out);
    }
    raw.drain(&mut out);
    assert_eq!(raw.dropped(), 0, "{mode:?} {seg:?}: drops");
    out.into_iter().map(without_timestamps).collect()
}

/// The records must be exactly the accepted frames, cut to the filter's
/// answer, with the right header length.
fn check_against_frames(
    stream: &[Vec<u8>],
    frames: &[Vec<u8>],
    filter: Option<&[BpfInsn]>,
    hdrlen: u16,
) {
    let mut expected = frames.iter().filter_map(|f| {
        let ret = filter.map_or(u32::MAX, |p| libpcap::bpf_filter(p, f, f.len() as u32));
        (ret != 0).then(|| (f, (ret as usize).min(f.len())))
    });
    let mut n = 0;
    for buf in stream {
        walk_records(buf, |r| {
            let (f, caplen) = expected.next().expect("more records than accepted frames");
            assert_eq!(r.hdrlen, hdrlen, "hdrlen of record {n}");
            assert_eq!(r.datalen as usize, f.len(), "datalen of record {n}");
            assert_eq!(r.caplen as usize, caplen, "caplen of record {n}");
            assert_eq!(r.data, &f[..caplen], "data of record {n}");
            n += 1;
        })
        .unwrap();
    }
    assert!(expected.next().is_none(), "accepted frames missing after {n} records");
    assert!(n > 0);
}

/// Captures with every segmentation, in both modes: all streams equal.
fn same_everywhere(
    make_iface: &dyn Fn(&str) -> Arc<SimIface>,
    frames: &[Vec<u8>],
    filter: Option<&[BpfInsn]>,
    hdrlen: u16,
) {
    let reference =
        capture(make_iface("if0"), Segmentation::Contiguous, Mode::Buffer, filter, frames);
    check_against_frames(&reference, frames, filter, hdrlen);
    assert!(reference.len() > 3, "only {} buffers: no rotation to compare", reference.len());
    // Interface names give the segmenter its seed.
    let variants = [
        ("if0", Segmentation::Contiguous),
        ("if1", Segmentation::Random(2)),
        ("if2", Segmentation::Random(3)),
        ("seg-a", Segmentation::Random(8)),
        ("seg-b", Segmentation::Random(8)),
        ("x9", Segmentation::Random(5)),
    ];
    for mode in [Mode::Buffer, Mode::Zbuf] {
        for (name, seg) in variants {
            let stream = capture(make_iface(name), seg, mode, filter, frames);
            assert_eq!(stream.len(), reference.len(), "{mode:?} {name} {seg:?}: buffer count");
            for (i, (a, b)) in stream.iter().zip(&reference).enumerate() {
                if a != b {
                    let at =
                        a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
                    panic!(
                        "{mode:?} {name} {seg:?}: buffer {i} differs from the contiguous \
                         BUFFER capture at byte {at} (lengths {} and {})",
                        a.len(),
                        b.len()
                    );
                }
            }
        }
    }
}

/// The segmenter really cuts frames: some deliveries have several pieces,
/// some of them empty.
#[test]
fn segmenter_cuts_frames() {
    let iface = SimIface::ethernet("seg-a", traffic::HOST_MAC);
    iface.set_segmentation(Segmentation::Random(8));
    let frame = vec![0u8; 1000];
    let (mut multi, mut empty) = (0, 0);
    for _ in 0..200 {
        let mut segs: [&[u8]; 8] = [&[]; 8];
        let n = iface.segment(&frame, &mut segs);
        assert_eq!(segs[..n].iter().map(|s| s.len()).sum::<usize>(), frame.len());
        multi += usize::from(n > 1);
        empty += usize::from(segs[..n].iter().any(|s| s.is_empty()));
    }
    assert!(multi > 100 && empty > 0, "{multi} chains, {empty} with empty segments");
}

fn ethernet(name: &str) -> Arc<SimIface> {
    SimIface::ethernet(name, traffic::HOST_MAC)
}

#[test]
fn ethernet_no_filter() {
    let frames = traffic::mixed(2000, 11);
    same_everywhere(&ethernet, &frames, None, 26);
}

#[test]
fn ethernet_truncating_filter() {
    let frames = traffic::mixed(2000, 12);
    // Loads deep into the packet (ports, across segments), snap length 100.
    let prog =
        libpcap::compile("tcp or (udp and port 53) or arp or vlan", DLT_EN10MB, 100).unwrap();
    same_everywhere(&ethernet, &frames, Some(&prog), 26);
}

/// DLT_NULL: a 4-byte address family (host order) before the IP header.
fn dlt_null_frames() -> Vec<Vec<u8>> {
    traffic::mixed(2000, 13)
        .into_iter()
        .filter_map(|f| {
            let family: u32 = match f[12..14] {
                [0x08, 0x00] => 2,
                [0x86, 0xdd] => 28,
                _ => return None,
            };
            let mut p = family.to_ne_bytes().to_vec();
            p.extend_from_slice(&f[14..]);
            Some(p)
        })
        .collect()
}

fn loopback(name: &str) -> Arc<SimIface> {
    SimIface::build(name, vec![(DLT_NULL, 4)], 16384, None)
}

#[test]
fn dlt_null_no_filter() {
    let frames = dlt_null_frames();
    same_everywhere(&loopback, &frames, None, 28);
}

#[test]
fn dlt_null_filter() {
    let frames = dlt_null_frames();
    // IPv4 only; then by one bit of byte 30 (in the IP header, often in a
    // later segment): whole packet, or 60 bytes.
    let prog = [
        BpfInsn::stmt(BPF_LD | BPF_W | BPF_ABS, 0),
        BpfInsn::jump(BPF_JMP | BPF_JEQ | BPF_K, u32::from_be_bytes(2u32.to_ne_bytes()), 0, 4),
        BpfInsn::stmt(BPF_LD | BPF_B | BPF_ABS, 30),
        BpfInsn::jump(BPF_JMP | BPF_JSET | BPF_K, 1, 0, 1),
        BpfInsn::stmt(BPF_RET | BPF_K, u32::MAX),
        BpfInsn::stmt(BPF_RET | BPF_K, 60),
        BpfInsn::stmt(BPF_RET | BPF_K, 0),
    ];
    same_everywhere(&loopback, &frames, Some(&prog), 28);
}
