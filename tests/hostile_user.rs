//! A hostile process against the zero-copy buffers.
//!
//! Capture runs at full speed in ZBUF mode (a producer thread calling
//! `Sim::receive_burst`) while a user thread writes random values into both
//! buffers' shared headers (`bzh_kernel_gen`, `bzh_kernel_len`,
//! `bzh_user_gen` and the padding words) and records, and mixes in the
//! consuming ioctls with right and wrong arguments. The engine must:
//!
//! * not panic and not stall: the producer finishes (a generous watchdog
//!   turns a stall into a failure instead of a hung test);
//! * keep its counters consistent: every counter is monotone while running;
//!   at the end received = packets offered, matched = what libpcap's own
//!   interpreter accepts of them (so received = matched + rejected by the
//!   filter), dropped <= matched, and stored = matched - dropped is exactly
//!   what the descriptor counted as zero-copy appends (two per record);
//! * not write outside the buffers: both sit in one shared mapping with
//!   canary pages before, between and after them, checked afterwards.
//!
//! Then the scribbler stops, the user resynchronises through BIOCGETZNEXT
//! and BIOCACKZBUF (the kernel's generation is private, so only the kernel
//! can say which buffer is the user's after the header was trashed), and
//! capture must recover: new packets arrive in order, byte for byte, through
//! the plain shared-header protocol, with no drop.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use zbpf::abi::dlt::DLT_EN10MB;
use zbpf::abi::ioctl::*;
use zbpf::abi::*;
use zbpf::hosted::consumer::{ioctl_with, walk_records};
use zbpf::hosted::libpcap;
use zbpf::hosted::net::SimIface;
use zbpf::hosted::process::{copy_from_user, copy_to_user, SharedRegion};
use zbpf::hosted::sim::{oflags, PollFd, Sim};
use zbpf::hosted::traffic::{self, Rng};

/// Bytes of each zero-copy buffer (two pages: records cross a page).
const BUF: usize = 2 * PAGE_SIZE;
/// Usable record bytes per buffer.
const BUFSIZE: usize = BUF - 32;
/// Page offsets in the shared region: canary, A (2 pages), canary,
/// B (2 pages), canary (2 pages): four buffers' worth.
const A_PAGE: usize = 1;
const B_PAGE: usize = 4;
const REGION_PAGES: usize = 8;
/// Packets offered while the scribbler runs: at least this many, and more
/// until the scribbler has done `MIN_ACTIONS` things (bounded).
const MIN_PACKETS: usize = 200_000;
const MAX_PACKETS: usize = 20_000_000;
const MIN_ACTIONS: u64 = 300_000;
/// Generous bound on the hostile phase (it takes a few seconds).
const WATCHDOG: Duration = Duration::from_secs(120);

const FILTER: &str = "tcp or udp";

fn canary_byte(off: usize) -> u8 {
    (off as u8).wrapping_mul(31) ^ 0xc5
}

fn is_canary_page(page: usize) -> bool {
    !(A_PAGE..A_PAGE + 2).contains(&page) && !(B_PAGE..B_PAGE + 2).contains(&page)
}

/// A UDP frame carrying `seq` in the first four payload bytes.
fn seq_frame(seq: u32, size: usize) -> Vec<u8> {
    let mut f = traffic::ipv4_frame([198, 51, 100, 9], [192, 0, 2, 1], 17, 40000, 7, size, seq);
    f[42..46].copy_from_slice(&seq.to_be_bytes());
    f
}

fn frame_seq(data: &[u8]) -> u32 {
    u32::from_be_bytes(data[42..46].try_into().unwrap())
}

fn read_word(buf: UserAddr, word: usize) -> u32 {
    let mut b = [0u8; 4];
    copy_from_user(UserAddr(buf.0 + 4 * word as u64), &mut b).unwrap();
    u32::from_ne_bytes(b)
}

/// The scribbler writes through process_vm_writev, as another thread of
/// the process would: the bytes change under the engine's feet.
fn write_word(buf: UserAddr, word: usize, v: u32) {
    copy_to_user(&v.to_ne_bytes(), UserAddr(buf.0 + 4 * word as u64)).unwrap();
}

/// Sets its flag when dropped (also when the thread holding it panics).
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

struct Counters {
    recv: u64,
    drop: u64,
    matched: u64,
    zcopy: u64,
    bs_recv: u32,
    bs_drop: u32,
}

fn counters(sim: &Sim, fd: i32) -> Counters {
    // BIOCGSTATS first, then net.bpf.stats: each is monotone on its own.
    let mut st = BpfStat::default();
    ioctl_with(sim, fd, BIOCGSTATS, &mut st).unwrap();
    let stats = sim.bpf().stats();
    assert_eq!(stats.len(), 1, "one descriptor");
    let x = &stats[0];
    // The lengths are the kernel's own, whatever the header says.
    assert!((0..=BUFSIZE as i32).contains(&x.bd_slen), "bd_slen {}", x.bd_slen);
    assert!((0..=BUFSIZE as i32).contains(&x.bd_hlen), "bd_hlen {}", x.bd_hlen);
    assert_eq!(x.bd_bufsize as usize, BUFSIZE, "bd_bufsize");
    Counters {
        recv: x.bd_rcount,
        drop: x.bd_dcount,
        matched: x.bd_fcount,
        zcopy: x.bd_zcopy,
        bs_recv: st.bs_recv,
        bs_drop: st.bs_drop,
    }
}

fn assert_monotone(prev: &Counters, now: &Counters) {
    let pairs = [
        ("received", prev.recv, now.recv),
        ("dropped", prev.drop, now.drop),
        ("matched", prev.matched, now.matched),
        ("zcopy", prev.zcopy, now.zcopy),
        ("BIOCGSTATS received", prev.bs_recv.into(), now.bs_recv.into()),
        ("BIOCGSTATS dropped", prev.bs_drop.into(), now.bs_drop.into()),
    ];
    for (name, a, b) in pairs {
        assert!(b >= a, "{name} went backwards: {a} -> {b}");
    }
}

/// One random hostile action on buffer `buf` (or the descriptor).
fn scribble(sim: &Sim, fd: i32, bufs: [UserAddr; 2], rng: &mut Rng) {
    let buf = bufs[rng.below(2) as usize];
    match rng.below(20) {
        // Random values in any header word, padding included.
        0..=4 => write_word(buf, rng.below(8) as usize, rng.next_u64() as u32),
        // Plausible generations: the kernel's, one off, zero, all ones.
        5..=6 => {
            let k = read_word(buf, 0);
            let v = [k, k.wrapping_add(1), k.wrapping_sub(1), 0, u32::MAX][rng.below(5) as usize];
            write_word(buf, 2, v);
        }
        // A real acknowledgement, so that the kernel keeps rotating.
        7..=9 => write_word(buf, 2, read_word(buf, 0)),
        // Pretend the kernel still owns it, or lie about the length.
        10 => write_word(buf, 0, read_word(buf, 2)),
        11 => write_word(buf, 1, [u32::MAX, BUF as u32 * 4, 31][rng.below(3) as usize]),
        // Random bytes anywhere in the buffer, header included.
        12..=14 => {
            let len = 1 + rng.below(64) as usize;
            let off = rng.below((BUF - len) as u64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            copy_to_user(&bytes, UserAddr(buf.0 + off)).unwrap();
        }
        // The consuming ioctls, with the right buffer and wrong ones.
        15 => {
            let mut bz = BpfZbuf::default();
            ioctl_with(sim, fd, BIOCGETZNEXT, &mut bz).unwrap();
            if !bz.bz_bufa.is_null() {
                assert!(bufs.contains(&bz.bz_bufa), "BIOCGETZNEXT named {:?}", bz.bz_bufa);
                assert!(bz.bz_buflen as usize <= BUFSIZE, "BIOCGETZNEXT length");
                // Read it the way a careful consumer does: whatever the
                // header says, never past the buffer.
                let mut copy = vec![0u8; bz.bz_buflen as usize];
                copy_from_user(UserAddr(bz.bz_bufa.0 + 32), &mut copy).unwrap();
                let _ = walk_records(&copy, |_| {});
                let mut ack = BpfZbuf { bz_bufa: bz.bz_bufa, ..Default::default() };
                if rng.below(2) == 0 {
                    ioctl_with(sim, fd, BIOCACKZBUF, &mut ack).unwrap();
                }
            }
        }
        16 => {
            let wrong = [bufs[0], bufs[1], UserAddr(buf.0 + 32), UserAddr(0), UserAddr(u64::MAX)];
            let mut ack = BpfZbuf { bz_bufa: wrong[rng.below(5) as usize], ..Default::default() };
            let _ = ioctl_with(sim, fd, BIOCACKZBUF, &mut ack);
        }
        17 => {
            let mut bz = BpfZbuf::default();
            ioctl_with(sim, fd, BIOCROTZBUF, &mut bz).unwrap();
            if !bz.bz_bufa.is_null() {
                assert!(bufs.contains(&bz.bz_bufa), "BIOCROTZBUF named {:?}", bz.bz_bufa);
                assert!(bz.bz_buflen as usize <= BUFSIZE, "BIOCROTZBUF length");
            }
        }
        18 => {
            let mut n = 0i32;
            ioctl_with(sim, fd, FIONREAD, &mut n).unwrap();
            assert!((0..=2 * BUFSIZE as i32).contains(&n), "FIONREAD {n}");
        }
        _ => {
            let mut pfd = [PollFd { fd, events: PollEvents::POLLIN, ..Default::default() }];
            sim.poll(&mut pfd, 0).unwrap();
        }
    }
}

/// A careful shared-header consumer: takes every buffer the header says is
/// the user's (the other one than last first), checks each record against
/// the frames sent, acknowledges. Returns the sequence numbers seen.
struct HeaderConsumer<'r> {
    region: &'r SharedRegion,
    bufs: [UserAddr; 2],
    last: Option<usize>,
}

impl HeaderConsumer<'_> {
    fn word(&self, i: usize, w: usize) -> &AtomicU32 {
        self.region.word((self.bufs[i].0 - self.region.addr().0) as usize / 4 + w)
    }

    fn take(&mut self, sent: &dyn Fn(u32) -> Option<Vec<u8>>, seen: &mut Vec<u32>) -> usize {
        let mut taken = 0;
        loop {
            let first = if self.last == Some(0) { 1 } else { 0 };
            let owned = [first, 1 - first].into_iter().find(|&i| {
                self.word(i, 0).load(Ordering::Acquire) != self.word(i, 2).load(Ordering::Relaxed)
            });
            let Some(i) = owned else { return taken };
            let kgen = self.word(i, 0).load(Ordering::Acquire);
            let len = self.word(i, 1).load(Ordering::Relaxed) as usize;
            assert!(len <= BUFSIZE, "bzh_kernel_len {len} after recovery");
            let mut copy = vec![0u8; len];
            copy_from_user(UserAddr(self.bufs[i].0 + 32), &mut copy).unwrap();
            walk_records(&copy, |r| {
                let seq = frame_seq(r.data);
                if let Some(f) = sent(seq) {
                    assert_eq!(r.datalen as usize, f.len(), "datalen of {seq}");
                    assert_eq!(r.data, &f[..], "bytes of {seq}");
                    seen.push(seq);
                }
            })
            .expect("records after recovery parse");
            self.word(i, 2).store(kgen, Ordering::Release);
            self.last = Some(i);
            taken += 1;
        }
    }
}

#[test]
fn scribbling_user_cannot_hurt_the_engine() {
    let sim = Arc::new(Sim::new());
    let iface = sim.add_iface(SimIface::ethernet("em0", traffic::HOST_MAC));
    let region = SharedRegion::new(REGION_PAGES * PAGE_SIZE).unwrap();
    assert_eq!(region.len(), REGION_PAGES * PAGE_SIZE);
    let base = region.addr().0;
    // Canaries everywhere but the buffers.
    for page in (0..REGION_PAGES).filter(|&p| is_canary_page(p)) {
        let bytes: Vec<u8> = (page * PAGE_SIZE..(page + 1) * PAGE_SIZE).map(canary_byte).collect();
        copy_to_user(&bytes, UserAddr(base + (page * PAGE_SIZE) as u64)).unwrap();
    }
    let bufs = [
        UserAddr(base + (A_PAGE * PAGE_SIZE) as u64),
        UserAddr(base + (B_PAGE * PAGE_SIZE) as u64),
    ];

    let fd = sim.open(oflags::O_RDWR).unwrap();
    let mut mode = BPF_BUFMODE_ZBUF;
    ioctl_with(&sim, fd, BIOCSETBUFMODE, &mut mode).unwrap();
    let mut bz = BpfZbuf { bz_bufa: bufs[0], bz_bufb: bufs[1], bz_buflen: BUF as u64 };
    ioctl_with(&sim, fd, BIOCSETZBUF, &mut bz).unwrap();
    let mut insns = libpcap::compile(FILTER, DLT_EN10MB, 262_144).unwrap();
    let mut prog =
        BpfProgram { bf_len: insns.len() as u32, bf_insns: UserAddr(insns.as_mut_ptr() as u64) };
    ioctl_with(&sim, fd, BIOCSETF, &mut prog).unwrap();
    let mut ifr = IfReq::default();
    ifr.ifr_name[..3].copy_from_slice(b"em0");
    ioctl_with(&sim, fd, BIOCSETIF, &mut ifr).unwrap();

    // The traffic, and what the filter must accept of it, by libpcap's own
    // interpreter.
    let pool = traffic::mixed(4096, 99);
    let accepts: Vec<bool> =
        pool.iter().map(|f| libpcap::bpf_filter(&insns, f, f.len() as u32) != 0).collect();

    // Phase 1: full speed, hostile user.
    let stop = Arc::new(AtomicBool::new(false));
    let actions = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    let scribbler_gone = Arc::new(AtomicBool::new(false));
    let scribbler = {
        let (sim, stop, actions) = (sim.clone(), stop.clone(), actions.clone());
        let gone = SetOnDrop(scribbler_gone.clone());
        std::thread::spawn(move || {
            let _gone = gone;
            let mut rng = Rng::new(0x5c21b);
            let mut prev = counters(&sim, fd);
            while !stop.load(Ordering::Relaxed) {
                scribble(&sim, fd, bufs, &mut rng);
                let ops = actions.fetch_add(1, Ordering::Relaxed) + 1;
                if ops % 32 == 0 {
                    let now = counters(&sim, fd);
                    assert_monotone(&prev, &now);
                    prev = now;
                }
            }
        })
    };
    let producer = {
        let (sim, iface, pool) = (sim.clone(), iface.clone(), pool.clone());
        let (actions, gone) = (actions.clone(), scribbler_gone.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while i < MIN_PACKETS
                || (actions.load(Ordering::Relaxed) < MIN_ACTIONS
                    && !gone.load(Ordering::Relaxed)
                    && i < MAX_PACKETS)
            {
                sim.receive_burst(&iface, (i..i + 32).map(|k| pool[k % pool.len()].as_slice()));
                i += 32;
            }
            let _ = done_tx.send(i);
        })
    };
    let started = Instant::now();
    let finished = done_rx.recv_timeout(WATCHDOG);
    stop.store(true, Ordering::Relaxed);
    let Ok(hostile_packets) = finished else {
        panic!("the producer stalled: not done after {:?}", started.elapsed())
    };
    producer.join().expect("producer panicked");
    scribbler.join().expect("scribbler panicked (see above)");
    let ops = actions.load(Ordering::Relaxed);
    assert!(ops >= MIN_ACTIONS, "the scribbler barely ran ({ops} actions)");
    let expected_matched = (0..hostile_packets).filter(|&i| accepts[i % pool.len()]).count() as u64;
    assert!(expected_matched > 0 && expected_matched < hostile_packets as u64);

    let c = counters(&sim, fd);
    eprintln!(
        "hostile phase: {:?}, {ops} hostile actions, {} matched, {} stored, {} dropped",
        started.elapsed(),
        c.matched,
        c.zcopy / 2,
        c.drop
    );
    assert_eq!(c.recv, hostile_packets as u64, "received = offered");
    assert_eq!(c.matched, expected_matched, "matched = what the filter accepts");
    assert!(c.drop <= c.matched, "dropped {} > matched {}", c.drop, c.matched);
    assert_eq!(c.zcopy, 2 * (c.matched - c.drop), "stored = matched - dropped");
    assert_eq!((u64::from(c.bs_recv), u64::from(c.bs_drop)), (c.recv, c.drop), "BIOCGSTATS");
    assert!(c.matched > c.drop, "nothing was stored at all");
    check_canaries(&region);

    // Phase 2: the scribbler is gone. Resynchronise with the kernel's word:
    // give back every buffer it says is ours, and repair our own view of
    // the generation (bzh_kernel_gen := the bzh_user_gen the kernel just
    // wrote), until both buffers went through that.
    let mut resynced = [false; 2];
    let mut offered = hostile_packets as u64;
    for seq in 1_000_000..1_000_016 {
        sim.receive(&iface, &seq_frame(seq, 100));
        offered += 1;
        let mut rot = BpfZbuf::default();
        ioctl_with(&sim, fd, BIOCROTZBUF, &mut rot).unwrap();
        loop {
            let mut next = BpfZbuf::default();
            ioctl_with(&sim, fd, BIOCGETZNEXT, &mut next).unwrap();
            if next.bz_bufa.is_null() {
                break;
            }
            let i = bufs.iter().position(|&b| b == next.bz_bufa).expect("one of ours");
            let mut ack = BpfZbuf { bz_bufa: next.bz_bufa, ..Default::default() };
            ioctl_with(&sim, fd, BIOCACKZBUF, &mut ack).unwrap();
            write_word(bufs[i], 0, read_word(bufs[i], 2));
            resynced[i] = true;
        }
        if resynced == [true; 2] {
            break;
        }
    }
    assert_eq!(resynced, [true; 2], "BIOCGETZNEXT never named both buffers");

    // Phase 3: capture recovers, through the plain header protocol.
    let before = counters(&sim, fd);
    let fresh: Vec<Vec<u8>> =
        (0..400u32).map(|k| seq_frame(2_000_000 + k, 60 + (k as usize * 37) % 1400)).collect();
    let sent = |s: u32| s.checked_sub(2_000_000).and_then(|k| fresh.get(k as usize)).cloned();
    let mut consumer = HeaderConsumer { region: &region, bufs, last: None };
    let mut seen = Vec::new();
    for burst in fresh.chunks(5) {
        sim.receive_burst(&iface, burst.iter().map(Vec::as_slice));
        offered += burst.len() as u64;
        if consumer.take(&sent, &mut seen) == 0 {
            let mut rot = BpfZbuf::default();
            ioctl_with(&sim, fd, BIOCROTZBUF, &mut rot).unwrap();
            consumer.take(&sent, &mut seen);
        }
    }
    let mut rot = BpfZbuf::default();
    ioctl_with(&sim, fd, BIOCROTZBUF, &mut rot).unwrap();
    consumer.take(&sent, &mut seen);
    let want: Vec<u32> = (0..fresh.len() as u32).map(|k| 2_000_000 + k).collect();
    assert_eq!(seen, want, "every new packet once, in order");

    let after = counters(&sim, fd);
    assert_monotone(&before, &after);
    assert_eq!(after.drop, before.drop, "no drop once the user behaves");
    assert_eq!(after.recv, offered, "received = offered");
    assert_eq!(after.matched, offered - hostile_packets as u64 + expected_matched);
    assert_eq!(after.zcopy, 2 * (after.matched - after.drop), "stored = matched - dropped");
    check_canaries(&region);
    sim.close(fd).unwrap();
    check_canaries(&region);
}

fn check_canaries(region: &SharedRegion) {
    let mut all = vec![0u8; region.len()];
    copy_from_user(region.addr(), &mut all).unwrap();
    for page in (0..REGION_PAGES).filter(|&p| is_canary_page(p)) {
        let start = page * PAGE_SIZE;
        for (off, &byte) in all.iter().enumerate().skip(start).take(PAGE_SIZE) {
            assert_eq!(byte, canary_byte(off), "canary byte {off} (page {page}) overwritten");
        }
    }
}
