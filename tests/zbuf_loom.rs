//! A loom model of the zero-copy generation protocol, run through the real
//! slot machine (`zbpf::engine::buffers::Slots`).
//!
//! The model buffer stands in for `ZeroBuf`: its three header words are
//! loom atomics, accessed with exactly the orderings `src/engine/zbuf.rs`
//! uses (the kernel stores `bzh_kernel_len` Relaxed then `bzh_kernel_gen`
//! Release when it hands a buffer over, and loads `bzh_user_gen` Acquire,
//! comparing it only with its private generation), and its record bytes
//! live in a `loom::cell::UnsafeCell`, so loom fails the run if the kernel
//! ever writes a buffer while the user may be reading it (no happens-before
//! from the user's last read to the kernel's write).
//!
//! A kernel thread offers packets to `Slots::catch` under a
//! `loom::sync::Mutex` (the descriptor lock). The model's main thread is
//! the user, consuming in one of three ways:
//!
//! * `User::Header`: libpcap's algorithm with the shared header only
//!   (acquire-load `bzh_kernel_gen`, compare with `bzh_user_gen`, walk the
//!   records, release-store `bzh_user_gen`); when nothing is owned, poll(2),
//!   which takes the descriptor lock to test readiness, and check again;
//! * `User::Ioctl`: BIOCROTZBUF (`Slots::force_rotate`) when nothing is
//!   owned, BIOCGETZNEXT (`Slots::oldest_user_owned`), the records read
//!   outside the lock, then BIOCACKZBUF (the kernel stores `bzh_user_gen`);
//! * `User::Mixed`: header acks, and BIOCROTZBUF when nothing is owned.
//!
//! Two buffers, small enough that rotation, buffull (both buffers the
//! user's) and drops happen; packet sizes vary so that a small packet still
//! fits in a store buffer handed over because a big one did not. In every
//! interleaving, at the end: every packet `catch` stored is seen exactly
//! once — by the user, or in a buffer the user still owns, or in the store
//! buffer the kernel still owns — every packet not stored was counted as a
//! drop, the user saw records in order, and the header's view of ownership
//! agrees with the kernel's private one. Each model also asserts that some
//! interleaving reached buffull, reused a buffer and let the user consume,
//! so a model too small to matter fails instead of passing vacuously.
//!
//! `LOOM_MAX_PREEMPTIONS` (default 3) bounds the preemptions explored.
//! The slot machine is the engine's own; the buffer is a model of
//! `ZeroBuf` (whose header access goes through raw pages loom cannot see),
//! so a change to the orderings in `zbuf.rs` must be mirrored here.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::{Arc, Mutex};

use zbpf::abi::Tstamp;
use zbpf::engine::buffers::{Buffer, Caught, Slots};
use zbpf::engine::record::Stamp;
use zbpf::hosted::consumer::walk_records;
use zbpf::packet::PacketBytes;
use zbpf::platform::Bintime;

/// Bytes of record area each model buffer has room for.
const CAP: usize = 64;
/// Record header length for a 14-byte link header.
const HDRLEN: usize = 26;
/// Payload bytes of most packets: a 32-byte record.
const BIG: usize = 6;
/// Payload bytes of every fourth packet: a 30-byte record, which fits after
/// one big record in a 62-byte buffer where a second big one does not (so
/// a store buffer handed over by buffull still has room for it).
const SMALL: usize = 4;

fn payload_len(seq: u32) -> usize {
    if seq % 4 == 3 {
        SMALL
    } else {
        BIG
    }
}

/// The part of one buffer the user process sees: the shared header and the
/// records.
struct Shared {
    id: usize,
    kernel_gen: AtomicU32,
    kernel_len: AtomicU32,
    user_gen: AtomicU32,
    bytes: UnsafeCell<[u8; CAP]>,
}

// SAFETY: the header words are atomics; every access to `bytes` goes through
// loom's checked UnsafeCell, which fails the model on any access not ordered
// by happens-before, which is exactly the property under test.
unsafe impl Sync for Shared {}

impl Shared {
    fn new(id: usize) -> Arc<Shared> {
        // BIOCSETZBUF zeroes the header: both generations start at 0.
        Arc::new(Shared {
            id,
            kernel_gen: AtomicU32::new(0),
            kernel_len: AtomicU32::new(0),
            user_gen: AtomicU32::new(0),
            bytes: UnsafeCell::new([0; CAP]),
        })
    }

    /// Sequence numbers of the records in the first `len` bytes (the user
    /// reading the buffer in place).
    fn records(&self, len: usize) -> Vec<u32> {
        self.bytes.with(|p| {
            // SAFETY: `p` points to the live array inside the cell; loom
            // tracks this read for the duration of the closure.
            let bytes: &[u8; CAP] = unsafe { &*p };
            let area = &bytes[..len.min(CAP)];
            let mut seqs = Vec::new();
            walk_records(area, |r| {
                assert_eq!(usize::from(r.hdrlen), HDRLEN, "hdrlen");
                let seq = u32::from_le_bytes(r.data[..4].try_into().unwrap());
                assert_eq!(r.caplen as usize, payload_len(seq), "caplen of {seq}");
                assert_eq!(r.datalen as usize, payload_len(seq), "datalen of {seq}");
                assert_eq!(r.data, &packet(seq)[..], "payload of {seq}");
                seqs.push(seq);
            })
            .expect("records walk cleanly up to bzh_kernel_len");
            seqs
        })
    }
}

/// The kernel's side of one buffer: `ZeroBuf` with loom memory.
struct ModelBuf {
    sh: Arc<Shared>,
    /// ZBUF_FLAG_ASSIGNED.
    assigned: bool,
    /// The kernel's private generation.
    gen: u32,
    /// The record length last handed over.
    handed_len: usize,
}

impl ModelBuf {
    /// BIOCACKZBUF's effect, as `ZeroBuf::ack`.
    fn ack(&self) {
        self.sh.user_gen.store(self.gen, Ordering::Release);
    }
}

impl Buffer for ModelBuf {
    fn write(&mut self, off: usize, data: &[u8]) {
        if data.is_empty() {
            // No byte is written (ZeroBuf's page loop does nothing).
            return;
        }
        self.sh.bytes.with_mut(|p| {
            // SAFETY: `p` points to the live array; loom checks that no
            // read by the user thread is concurrent with this write.
            let bytes: &mut [u8; CAP] = unsafe { &mut *p };
            bytes[off..off + data.len()].copy_from_slice(data);
        });
    }

    fn write_packet<B: PacketBytes + ?Sized>(&mut self, off: usize, pkt: &B, len: usize) {
        let mut at = off;
        pkt.for_each_piece(len, |piece| {
            self.write(at, piece);
            at += piece.len();
        });
    }

    fn writable(&self) -> bool {
        !self.assigned
    }

    fn acked(&self) -> bool {
        // As ZeroBuf::acked: Acquire, compared only with the private copy.
        self.sh.user_gen.load(Ordering::Acquire) == self.gen
    }

    fn hand_over(&mut self, len: usize) {
        if self.assigned {
            return;
        }
        self.assigned = true;
        self.handed_len = len;
        self.gen = self.gen.wrapping_add(1);
        // As ZeroBuf::hand_over: kernel_len Relaxed, then kernel_gen Release.
        self.sh.kernel_len.store(len as u32, Ordering::Relaxed);
        self.sh.kernel_gen.store(self.gen, Ordering::Release);
    }

    fn reclaimed(&mut self) {
        self.assigned = false;
    }

    fn user_owned(&self) -> bool {
        self.assigned && !self.acked()
    }
}

fn packet(seq: u32) -> Vec<u8> {
    let mut p = vec![0xa5u8 ^ seq as u8; payload_len(seq)];
    p[..4].copy_from_slice(&seq.to_le_bytes());
    p
}

fn stamp() -> Stamp {
    Stamp { tstamp: Tstamp::DEFAULT, uptime: Bintime::default(), boottime: Bintime::default() }
}

type Desc = Arc<Mutex<Slots<ModelBuf>>>;

/// One model: `bufsize` bytes of records per buffer, `packets` offered by
/// the kernel thread.
#[derive(Clone, Copy, Debug)]
struct Setup {
    bufsize: usize,
    packets: u32,
}

fn new_desc(bufsize: usize) -> (Desc, [Arc<Shared>; 2]) {
    assert!(bufsize <= CAP);
    let (a, b) = (Shared::new(0), Shared::new(1));
    let buf =
        |sh: &Arc<Shared>| ModelBuf { sh: sh.clone(), assigned: false, gen: 0, handed_len: 0 };
    let slots = Slots::new(buf(&a), buf(&b), bufsize);
    (Arc::new(Mutex::new(slots)), [a, b])
}

/// The kernel thread: offers `packets` packets; returns the sequence
/// numbers `catch` stored, the number it dropped, and whether a drop found
/// both buffers handed to the user.
fn kernel(desc: &Desc, packets: u32) -> (Vec<u32>, u32, bool) {
    let (mut stored, mut dropped, mut both_owned) = (Vec::new(), 0, false);
    for seq in 0..packets {
        let pkt = packet(seq);
        let mut s = desc.lock().unwrap();
        match s.catch(&pkt[..], u32::MAX, HDRLEN, &stamp(), false) {
            Caught::Stored { .. } => stored.push(seq),
            Caught::Dropped => {
                dropped += 1;
                both_owned |= s.store.assigned && s.hold.as_ref().is_some_and(|h| h.assigned);
            }
        }
    }
    (stored, dropped, both_owned)
}

/// The user's shared-header check: the record length if it owns buffer `b`.
fn owned_by_header(b: &Shared) -> Option<(u32, usize)> {
    let kgen = b.kernel_gen.load(Ordering::Acquire);
    (kgen != b.user_gen.load(Ordering::Relaxed))
        .then(|| (kgen, b.kernel_len.load(Ordering::Relaxed) as usize))
}

/// Takes buffer `i` if the shared header says the user owns it: walks the
/// records, then acknowledges by storing the generation (Release).
fn take_by_header(bufs: &[Arc<Shared>; 2], i: usize, seen: &mut Vec<u32>) -> bool {
    let Some((kgen, len)) = owned_by_header(&bufs[i]) else { return false };
    seen.extend(bufs[i].records(len));
    bufs[i].user_gen.store(kgen, Ordering::Release);
    true
}

/// libpcap's `pcap_next_zbuf`: the candidate is the buffer other than the
/// last one processed (A first). If the user does not own it: poll(2),
/// which takes the descriptor lock to check readiness, and check again;
/// with `rotate`, then BIOCROTZBUF and check again.
fn consume_by_header(
    desc: &Desc,
    bufs: &[Arc<Shared>; 2],
    last: &mut Option<usize>,
    rotate: bool,
    seen: &mut Vec<u32>,
) {
    let i = if *last == Some(0) { 1 } else { 0 };
    let mut taken = take_by_header(bufs, i, seen);
    if !taken {
        let _readable = desc.lock().unwrap().ready(false);
        taken = take_by_header(bufs, i, seen);
    }
    if !taken && rotate {
        desc.lock().unwrap().force_rotate();
        taken = take_by_header(bufs, i, seen);
    }
    if taken {
        *last = Some(i);
    }
}

/// BIOCROTZBUF if nothing is owned, then BIOCGETZNEXT; reads the named
/// buffer outside the lock and acknowledges it with BIOCACKZBUF.
fn consume_by_ioctl(desc: &Desc, bufs: &[Arc<Shared>; 2], seen: &mut Vec<u32>) {
    let next = {
        let mut s = desc.lock().unwrap();
        if s.oldest_user_owned().is_none() {
            s.force_rotate();
        }
        s.oldest_user_owned().map(|b| (b.sh.id, b.handed_len))
    };
    let Some((id, len)) = next else { return };
    seen.extend(bufs[id].records(len));
    let s = desc.lock().unwrap();
    let named = s.oldest_user_owned().expect("a buffer the user owns stays the user's");
    assert_eq!(named.sh.id, id, "BIOCACKZBUF names the buffer BIOCGETZNEXT named");
    named.ack();
}

/// After both threads: what the user still owns and what the kernel still
/// holds, then the accounting.
fn check_end(
    desc: &Desc,
    bufs: &[Arc<Shared>; 2],
    setup: &Setup,
    stored: &[u32],
    dropped: u32,
    seen: &[u32],
) {
    // Buffers are handed over alternately and taken in that order.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "the user saw records in order: {seen:?}");
    let s = desc.lock().unwrap();
    let mut all: Vec<u32> = seen.to_vec();
    let mut kernel_bufs: Vec<&ModelBuf> = vec![&s.store];
    kernel_bufs.extend(s.hold.as_ref());
    kernel_bufs.extend(s.free.as_ref());
    assert_eq!(kernel_bufs.len(), 2, "two buffers in three slots");
    for kb in &kernel_bufs {
        let sh = &bufs[kb.sh.id];
        // The header is only ever written by the kernel (kernel_*) and a
        // well-behaved user (user_gen): both views of ownership agree.
        let header_owned = owned_by_header(sh);
        assert_eq!(header_owned.is_some(), kb.user_owned(), "ownership of buffer {}", kb.sh.id);
        assert_eq!(sh.kernel_gen.load(Ordering::Relaxed), kb.gen, "bzh_kernel_gen");
        if let Some((_, len)) = header_owned {
            assert_eq!(len, kb.handed_len, "bzh_kernel_len");
            all.extend(sh.records(len));
        }
    }
    if s.store.writable() {
        // Records the kernel has not handed over yet.
        all.extend(bufs[s.store.sh.id].records(s.slen));
    }
    let mut sorted = all.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, stored, "every stored packet exactly once (seen {seen:?}, all {all:?})");
    assert_eq!(stored.len() as u32 + dropped, setup.packets, "stored + dropped = offered");
}

#[derive(Clone, Copy, Debug)]
enum User {
    Header,
    Ioctl,
    Mixed,
}

/// What the interleavings of one model reached, so that a model too small
/// to reach the interesting states fails instead of passing vacuously.
#[derive(Default)]
struct Coverage {
    iterations: StdAtomic,
    /// A packet was dropped with both buffers the user's (buffull).
    buffull: StdAtomic,
    /// A buffer was handed over a second time (acknowledged, reclaimed,
    /// refilled).
    reused: StdAtomic,
    /// The user consumed records before the kernel finished.
    consumed: StdAtomic,
}

type StdAtomic = std::sync::atomic::AtomicUsize;

fn bump(c: &StdAtomic) {
    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn get(c: &StdAtomic) -> usize {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

fn run(setup: Setup, user: User, attempts: usize, bound: usize) -> usize {
    let cov = std::sync::Arc::new(Coverage::default());
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    let c = cov.clone();
    builder.check(move || {
        bump(&c.iterations);
        let (desc, bufs) = new_desc(setup.bufsize);
        let k = {
            let desc = desc.clone();
            let packets = setup.packets;
            loom::thread::spawn(move || kernel(&desc, packets))
        };
        let mut seen = Vec::new();
        let mut last = None;
        for _ in 0..attempts {
            match user {
                User::Header => consume_by_header(&desc, &bufs, &mut last, false, &mut seen),
                User::Ioctl => consume_by_ioctl(&desc, &bufs, &mut seen),
                User::Mixed => consume_by_header(&desc, &bufs, &mut last, true, &mut seen),
            }
        }
        if !seen.is_empty() {
            bump(&c.consumed);
        }
        let (stored, dropped, both_owned) = k.join().unwrap();
        if both_owned {
            bump(&c.buffull);
        }
        if bufs.iter().any(|b| b.kernel_gen.load(Ordering::Relaxed) >= 2) {
            bump(&c.reused);
        }
        check_end(&desc, &bufs, &setup, &stored, dropped, &seen);
    });
    let n = get(&cov.iterations);
    assert!(get(&cov.buffull) > 0, "no interleaving reached buffull");
    assert!(get(&cov.reused) > 0, "no interleaving reused a buffer");
    assert!(get(&cov.consumed) > 0, "no interleaving let the user consume");
    n
}

fn bound() -> usize {
    std::env::var("LOOM_MAX_PREEMPTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(3)
}

#[test]
fn header_protocol_two_records_per_buffer() {
    let n = run(Setup { bufsize: 62, packets: 9 }, User::Header, 4, bound());
    eprintln!("{n} interleavings");
}

#[test]
fn header_protocol_one_record_per_buffer() {
    let n = run(Setup { bufsize: 32, packets: 6 }, User::Header, 4, bound());
    eprintln!("{n} interleavings");
}

#[test]
fn ioctl_protocol_rotate_getznext_ack() {
    let n = run(Setup { bufsize: 62, packets: 9 }, User::Ioctl, 4, bound());
    eprintln!("{n} interleavings");
}

#[test]
fn ioctl_protocol_one_record_per_buffer() {
    let n = run(Setup { bufsize: 32, packets: 6 }, User::Ioctl, 4, bound());
    eprintln!("{n} interleavings");
}

#[test]
fn header_acks_with_rotation() {
    let n = run(Setup { bufsize: 62, packets: 9 }, User::Mixed, 4, bound());
    eprintln!("{n} interleavings");
}
