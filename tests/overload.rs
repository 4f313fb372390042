//! Overload: more packets than the consumer takes, in both buffer modes
//! (BUFFER with read(2); ZBUF with the shared header, with BIOCGETZNEXT and
//! BIOCACKZBUF, and alternating between the two), with a consumer that is
//! stopped until the traffic is over and with one that is slow.
//!
//! With no filter (matched = received), after draining (BUFFER: read until
//! EAGAIN; ZBUF: acknowledge and BIOCROTZBUF until nothing is left) the
//! accounting is exact: received = packets offered = records parsed +
//! dropped. Every frame carries a unique sequence number; every record must
//! equal its frame byte for byte (caplen = wire length here), and records
//! come in injection order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use zbpf::abi::Errno;
use zbpf::hosted::consumer::{Capture, CaptureConfig, Mode, Record, ZbufStyle};
use zbpf::hosted::net::SimIface;
use zbpf::hosted::sim::Sim;
use zbpf::hosted::traffic;

/// Each buffer: two pages (ZBUF: 8160 bytes of records).
const BUFSIZE: usize = 8192;

/// A UDP frame of a size that depends on `seq`, carrying `seq` in its
/// first four payload bytes.
fn frame(seq: u32) -> Vec<u8> {
    let size = 60 + (seq as usize * 131) % 1455;
    let mut f = traffic::ipv4_frame([198, 51, 100, 9], [192, 0, 2, 1], 17, 40000, 7, size, seq);
    f[42..46].copy_from_slice(&seq.to_be_bytes());
    f
}

/// What the consumer parsed: sequence numbers, in order, each checked
/// against its frame.
#[derive(Default)]
struct Parsed {
    seqs: Vec<u32>,
}

impl Parsed {
    fn record(&mut self, frames: &[Vec<u8>], r: &Record<'_>) {
        assert!(r.data.len() >= 46, "record of {} bytes", r.data.len());
        let seq = u32::from_be_bytes(r.data[42..46].try_into().unwrap());
        let f = frames.get(seq as usize).unwrap_or_else(|| panic!("unknown sequence {seq}"));
        assert_eq!(r.datalen as usize, f.len(), "datalen of {seq}");
        assert_eq!(r.caplen as usize, f.len(), "caplen of {seq} (no filter: whole packet)");
        assert_eq!(r.data, &f[..r.caplen as usize], "bytes of {seq}");
        if let Some(&prev) = self.seqs.last() {
            assert!(seq > prev, "record {seq} after {prev}: out of order or duplicated");
        }
        self.seqs.push(seq);
    }
}

fn config(mode: Mode) -> CaptureConfig {
    let mut cfg = CaptureConfig::new("em0", mode);
    cfg.bufsize = BUFSIZE;
    // BUFFER: read(2) never sleeps. ZBUF: poll(2) does not wait.
    cfg.nonblock = true;
    cfg.timeout = Some(Duration::ZERO);
    cfg
}

/// One batch: Ok(records) or None when nothing is pending (BUFFER: EAGAIN,
/// ZBUF: nothing owned after BIOCROTZBUF).
fn batch(cap: &mut Capture<'_>, frames: &[Vec<u8>], parsed: &mut Parsed) -> Option<usize> {
    match cap.next_batch(|r| parsed.record(frames, r)) {
        Ok(0) => None,
        Ok(n) => Some(n),
        Err(Errno::EAGAIN) => None,
        Err(e) => panic!("next_batch: {e:?}"),
    }
}

fn drain(cap: &mut Capture<'_>, frames: &[Vec<u8>], parsed: &mut Parsed) {
    while batch(cap, frames, parsed).is_some() {}
    // Nothing is left anywhere: a second round finds nothing either.
    assert_eq!(batch(cap, frames, parsed), None, "data appeared after the drain");
}

/// Checks the exact accounting after a drain.
fn check_accounting(sim: &Sim, cap: &Capture<'_>, offered: usize, parsed: &Parsed, label: &str) {
    let st = cap.stats().unwrap();
    let x = &sim.bpf().stats()[0];
    let captured = parsed.seqs.len() as u64;
    assert_eq!(x.bd_rcount, offered as u64, "{label}: received = offered");
    assert_eq!(x.bd_fcount, x.bd_rcount, "{label}: no filter, matched = received");
    assert_eq!(
        x.bd_rcount,
        captured + x.bd_dcount,
        "{label}: received {} = captured {captured} + dropped {}",
        x.bd_rcount,
        x.bd_dcount
    );
    assert_eq!((u64::from(st.bs_recv), u64::from(st.bs_drop)), (x.bd_rcount, x.bd_dcount));
    if label == "BUFFER" {
        // (ZBUF: a store buffer handed over when full keeps its length
        // until the next rotation, although the user has taken it.)
        assert_eq!(x.bd_slen, 0, "{label}: store buffer empty after the drain");
    }
}

const MODES: [(Mode, &str); 4] = [
    (Mode::Buffer, "BUFFER"),
    (Mode::Zbuf(ZbufStyle::Header), "ZBUF header"),
    (Mode::Zbuf(ZbufStyle::Ioctl), "ZBUF ioctl"),
    (Mode::Zbuf(ZbufStyle::Mixed), "ZBUF mixed"),
];

/// After the overload: a few packets, more than one buffer holds but fewer
/// than two, must all be captured (the last ones only by flushing a partly
/// filled store buffer after the user gave the other one back).
fn tail(
    sim: &Sim,
    iface: &std::sync::Arc<SimIface>,
    cap: &mut Capture<'_>,
    frames: &[Vec<u8>],
    parsed: &mut Parsed,
    label: &str,
) {
    let first = frames.len() - TAIL;
    let dropped_before = sim.bpf().stats()[0].bd_dcount;
    let taken_before = parsed.seqs.len();
    sim.receive_burst(iface, frames[first..].iter().map(Vec::as_slice));
    drain(cap, frames, parsed);
    assert_eq!(sim.bpf().stats()[0].bd_dcount, dropped_before, "{label}: drops in the tail");
    let want: Vec<u32> = (first as u32..frames.len() as u32).collect();
    assert_eq!(parsed.seqs[taken_before..], want, "{label}: the tail");
}

/// Packets of the tail: about 1.3 buffers.
const TAIL: usize = 14;

#[test]
fn stopped_consumer() {
    const PACKETS: usize = 3000;
    let frames: Vec<Vec<u8>> = (0..(PACKETS + TAIL) as u32).map(frame).collect();
    let tail_bytes: usize = frames[PACKETS..].iter().map(|f| f.len() + 26).sum();
    assert!((BUFSIZE..2 * BUFSIZE - 64).contains(&tail_bytes), "tail of {tail_bytes} bytes");
    for (mode, label) in MODES {
        let sim = Sim::new();
        let iface = sim.add_iface(SimIface::ethernet("em0", traffic::HOST_MAC));
        let mut cap = Capture::open(&sim, &config(mode)).unwrap();
        // The consumer does nothing while all the traffic arrives.
        for burst in frames[..PACKETS].chunks(32) {
            sim.receive_burst(&iface, burst.iter().map(Vec::as_slice));
        }
        let mut parsed = Parsed::default();
        drain(&mut cap, &frames, &mut parsed);
        check_accounting(&sim, &cap, PACKETS, &parsed, label);
        let (captured, dropped) = (parsed.seqs.len(), PACKETS - parsed.seqs.len());
        tail(&sim, &iface, &mut cap, &frames, &mut parsed, label);
        check_accounting(&sim, &cap, PACKETS + TAIL, &parsed, label);
        // Two buffers of 8 KiB cannot hold 3000 frames.
        assert!(dropped > PACKETS / 2, "{label}: only {dropped} dropped");
        // The first packets filled the buffers (later ones are captured
        // only where a small frame still fits after a drop).
        assert_eq!(parsed.seqs[..10], (0..10).collect::<Vec<u32>>(), "{label}: first packets");
        eprintln!("{label}: stopped consumer captured {captured}, dropped {dropped}");
    }
}

#[test]
fn slow_consumer() {
    const PACKETS: usize = 20_000;
    let frames: Vec<Vec<u8>> = (0..(PACKETS + TAIL) as u32).map(frame).collect();
    for (mode, label) in MODES {
        let sim = Sim::new();
        let iface = sim.add_iface(SimIface::ethernet("em0", traffic::HOST_MAC));
        let mut cap = Capture::open(&sim, &config(mode)).unwrap();
        let done = AtomicBool::new(false);
        let mut parsed = Parsed::default();
        std::thread::scope(|s| {
            s.spawn(|| {
                for burst in frames[..PACKETS].chunks(16) {
                    sim.receive_burst(&iface, burst.iter().map(Vec::as_slice));
                    // Traffic at a steady rate, faster than the consumer.
                    std::thread::sleep(Duration::from_micros(200));
                }
                done.store(true, Ordering::Release);
            });
            loop {
                let finished = done.load(Ordering::Acquire);
                if batch(&mut cap, &frames, &mut parsed).is_none() && finished {
                    break;
                }
                // A consumer much slower than the producer.
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        drain(&mut cap, &frames, &mut parsed);
        check_accounting(&sim, &cap, PACKETS, &parsed, label);
        eprintln!(
            "{label}: slow consumer captured {}, dropped {}",
            parsed.seqs.len(),
            PACKETS - parsed.seqs.len()
        );
        tail(&sim, &iface, &mut cap, &frames, &mut parsed, label);
        check_accounting(&sim, &cap, PACKETS + TAIL, &parsed, label);
    }
}

/// After an overload in ZBUF mode, both buffers were handed over (the store
/// one when it filled: "buffull"), and the user took both through the
/// shared header. BIOCROTZBUF with no new packet must not name a buffer
/// the user already gave back as if it were newly handed over (a consumer
/// trusting its answer would process those records twice).
#[test]
fn rotzbuf_after_buffull_names_no_taken_buffer() {
    use zbpf::abi::ioctl::*;
    use zbpf::abi::*;
    use zbpf::hosted::consumer::ioctl_with;
    use zbpf::hosted::process::SharedRegion;

    let sim = Sim::new();
    let iface = sim.add_iface(SimIface::ethernet("em0", traffic::HOST_MAC));
    let fd = sim.open(2).unwrap();
    let mut mode = BPF_BUFMODE_ZBUF;
    ioctl_with(&sim, fd, BIOCSETBUFMODE, &mut mode).unwrap();
    let regions: Vec<SharedRegion> = (0..2).map(|_| SharedRegion::new(BUFSIZE).unwrap()).collect();
    let mut bz = BpfZbuf {
        bz_bufa: regions[0].addr(),
        bz_bufb: regions[1].addr(),
        bz_buflen: BUFSIZE as u64,
    };
    ioctl_with(&sim, fd, BIOCSETZBUF, &mut bz).unwrap();
    let mut ifr = IfReq::default();
    ifr.ifr_name[..3].copy_from_slice(b"em0");
    ioctl_with(&sim, fd, BIOCSETIF, &mut ifr).unwrap();
    let word = |i: usize, w: usize| regions[i].word(w);
    let owned = |i: usize| word(i, 0).load(Ordering::Acquire) != word(i, 2).load(Ordering::Relaxed);

    // Overload: both buffers end up the user's.
    let frames: Vec<Vec<u8>> = (0..100).map(frame).collect();
    sim.receive_burst(&iface, frames.iter().map(Vec::as_slice));
    assert!(owned(0) && owned(1), "both buffers handed over");
    // The user takes both (header acks), and no packet arrives.
    for i in 0..2 {
        let kgen = word(i, 0).load(Ordering::Acquire);
        word(i, 2).store(kgen, Ordering::Release);
    }
    let mut rot = BpfZbuf::default();
    ioctl_with(&sim, fd, BIOCROTZBUF, &mut rot).unwrap();
    if !rot.bz_bufa.is_null() {
        let i = regions.iter().position(|r| r.addr() == rot.bz_bufa).expect("one of ours");
        assert!(
            owned(i),
            "BIOCROTZBUF named buffer {i} ({} bytes), which the user already gave back",
            rot.bz_buflen
        );
    }
    let mut next = BpfZbuf::default();
    ioctl_with(&sim, fd, BIOCGETZNEXT, &mut next).unwrap();
    assert!(next.bz_bufa.is_null(), "BIOCGETZNEXT names a buffer the user gave back");
    sim.close(fd).unwrap();
}
