//! The capture path, single thread: generated frames through the
//! simulator's tap, the filter, the capture into the store buffer, the
//! rotation, and a consumer that drains the buffers (BUFFER: read(2) copies
//! them out; ZBUF: the records are read in place in the shared buffers,
//! then acknowledged), against a baseline that only copies the same bytes
//! once into a buffer behind a minimal record header.

use std::sync::Arc;
use std::time::{Duration, Instant};

use zbpf::abi::{bpf_hdrlen, bpf_wordalign, dlt, Errno, BPF_T_FAST, BPF_T_MICROTIME};
use zbpf::hosted::consumer::{walk_records, Capture, CaptureConfig, Mode, Record, ZbufStyle};
use zbpf::hosted::net::{Segmentation, SimIface};
use zbpf::hosted::sim::Sim;
use zbpf::hosted::{libpcap, traffic};

use crate::alloc::Snapshot;

/// Bytes of each of the two capture buffers (FreeBSD's `maxbufsize`).
pub const BUFSIZE: usize = 512 * 1024;
/// Bytes of ZBUF's shared header in front of the records.
const ZBUF_HEADER: usize = 32;
/// Distinct frames the interface cycles through (a power of two).
const POOL: usize = 1024;
/// The record header length on Ethernet (`bpf_hdr` plus alignment).
pub fn record_hdrlen() -> usize {
    bpf_hdrlen(14)
}

/// Who carries the packets to the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipe {
    /// zbpf, BUFFER mode: read(2) copies each held buffer out.
    Buffer,
    /// zbpf, ZBUF mode: records read in place, buffers acknowledged through
    /// the shared header.
    Zbuf,
    /// The baseline: one copy of the bytes behind a minimal header, into
    /// two plain buffers, no filter, no timestamp, no lock.
    Memcpy,
}

impl Pipe {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Pipe::Buffer => "BUFFER",
            Pipe::Zbuf => "ZBUF",
            Pipe::Memcpy => "memcpy",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Pipe> {
        match s {
            "buffer" | "BUFFER" => Some(Pipe::Buffer),
            "zbuf" | "ZBUF" => Some(Pipe::Zbuf),
            "memcpy" => Some(Pipe::Memcpy),
            _ => None,
        }
    }
}

/// What the consumer does with each record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumer {
    /// Walk the record headers (the slides' buffer-traversal benchmark).
    Walk,
    /// A 16-bit ones'-complement checksum over every captured byte (the
    /// slides' memory-scanning benchmark).
    Checksum,
}

impl Consumer {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Consumer::Walk => "walk headers",
            Consumer::Checksum => "checksum every byte",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Consumer> {
        match s {
            "walk" => Some(Consumer::Walk),
            "checksum" => Some(Consumer::Checksum),
            _ => None,
        }
    }
}

/// One configuration of the capture path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Frame size on the wire.
    pub size: usize,
    /// Snap length (the accept-all filter's `ret #snaplen`).
    pub snaplen: u32,
    /// Who carries the packets.
    pub pipe: Pipe,
    /// BPF_T_FAST instead of the default timestamps.
    pub fast_ts: bool,
    /// What the consumer does.
    pub consumer: Consumer,
}

impl Spec {
    /// Bytes captured per packet.
    pub fn caplen(&self) -> usize {
        self.size.min(self.snaplen as usize)
    }

    /// The timestamp column.
    pub fn ts_name(&self) -> &'static str {
        match (self.pipe, self.fast_ts) {
            (Pipe::Memcpy, _) => "none",
            (_, true) => "BPF_T_FAST",
            (_, false) => "default",
        }
    }

    /// Packets per round: one and a half buffers' worth, so that every
    /// round rotates once while capturing and once more when drained, and
    /// never drops.
    pub fn burst(&self) -> usize {
        let rec = bpf_wordalign(record_hdrlen() + self.caplen());
        (BUFSIZE - ZBUF_HEADER) / rec * 3 / 2
    }
}

/// Consumer state: what it computed, so that nothing is optimised away.
#[derive(Default)]
struct Sink {
    records: u64,
    bytes: u64,
    check: u64,
}

/// RFC 1071's 16-bit ones'-complement sum of `data`.
#[inline]
pub fn ones_complement(data: &[u8]) -> u16 {
    let mut sum = 0u64;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Sink {
    #[inline]
    fn take(&mut self, consumer: Consumer, r: &Record<'_>) {
        self.records += 1;
        self.bytes += u64::from(r.caplen);
        match consumer {
            Consumer::Walk => {
                self.check = self.check.wrapping_add(r.ts_frac ^ u64::from(r.datalen))
            }
            Consumer::Checksum => {
                self.check = self.check.wrapping_add(u64::from(ones_complement(r.data)))
            }
        }
    }
}

/// The measured outcome of some rounds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// Packets the consumer saw.
    pub packets: u64,
    /// Captured bytes the consumer saw.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Allocations made while delivering packets (tap, filter, capture).
    pub deliver_allocs: u64,
    /// Allocations made in the whole loop (delivery and consumer).
    pub loop_allocs: u64,
}

impl Sample {
    /// Nanoseconds per packet.
    pub fn ns_per_packet(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e9 / self.packets.max(1) as f64
    }
}

enum Engine<'s> {
    Sim { sim: &'s Sim, iface: Arc<SimIface>, cap: Capture<'s> },
    Memcpy(Plain),
}

/// One configuration, set up and ready to run rounds.
pub struct Rig<'s> {
    /// What it runs.
    pub spec: Spec,
    engine: Engine<'s>,
    pool: Vec<Vec<u8>>,
    next: usize,
    burst: usize,
}

/// The frames a configuration sends.
pub fn pool(size: usize) -> Vec<Vec<u8>> {
    traffic::fixed(POOL, size)
}

/// A machine with one Ethernet interface whose frames reach the taps in
/// one piece (as a NIC's receive buffers do for these sizes).
pub fn machine() -> (Sim, Arc<SimIface>) {
    let sim = Sim::new();
    let iface = sim.add_iface(SimIface::ethernet("em0", traffic::HOST_MAC));
    iface.set_segmentation(Segmentation::Contiguous);
    (sim, iface)
}

/// Capture configuration: non-blocking, no timeout, so a drain stops when
/// the buffers are empty.
pub fn capture_config(mode: Mode, bufsize: usize, filter: &str, snaplen: u32) -> CaptureConfig {
    let mut cfg = CaptureConfig::new("em0", mode);
    cfg.bufsize = bufsize;
    cfg.filter =
        Some(libpcap::compile(filter, dlt::DLT_EN10MB, snaplen).expect("libpcap compiles"));
    cfg.timeout = Some(Duration::ZERO);
    cfg.nonblock = true;
    cfg
}

impl<'s> Rig<'s> {
    /// Sets a configuration up. `sim` and `iface` are unused by the
    /// baseline.
    pub fn new(spec: Spec, sim: &'s Sim, iface: &Arc<SimIface>) -> Result<Rig<'s>, String> {
        let engine = match spec.pipe {
            Pipe::Memcpy => Engine::Memcpy(Plain::new()),
            Pipe::Buffer | Pipe::Zbuf => {
                let mode = if spec.pipe == Pipe::Buffer {
                    Mode::Buffer
                } else {
                    Mode::Zbuf(ZbufStyle::Header)
                };
                let mut cfg = capture_config(mode, BUFSIZE, "", spec.snaplen);
                cfg.tstamp = if spec.fast_ts { BPF_T_FAST } else { BPF_T_MICROTIME };
                let cap = Capture::open(sim, &cfg).map_err(|e| format!("opening: {e}"))?;
                Engine::Sim { sim, iface: iface.clone(), cap }
            }
        };
        Ok(Rig { spec, engine, pool: pool(spec.size), next: 0, burst: spec.burst() })
    }

    /// Runs `rounds` rounds: deliver a burst, then drain it with the
    /// consumer. Fails if the consumer did not see every packet.
    #[inline(never)]
    pub fn run(&mut self, rounds: usize) -> Result<Sample, String> {
        let mut sink = Sink::default();
        let mut deliver_allocs = 0;
        let spec = self.spec;
        let start_allocs = Snapshot::now();
        let t0 = Instant::now();
        for _ in 0..rounds {
            let first = self.next;
            self.next = (self.next + self.burst) % POOL;
            let pool = &self.pool;
            let frames = (0..self.burst).map(|k| pool[(first + k) % POOL].as_slice());
            match &mut self.engine {
                Engine::Sim { sim, iface, cap } => {
                    let a0 = Snapshot::now();
                    sim.receive_burst(iface, frames);
                    deliver_allocs += Snapshot::now().allocs_since(&a0);
                    drain(cap, spec.consumer, &mut sink)?;
                }
                Engine::Memcpy(plain) => {
                    for f in frames {
                        plain.catch(f, spec.snaplen, minimal_header);
                    }
                    plain.drain(|r| sink.take(spec.consumer, r))?;
                }
            }
        }
        let elapsed = t0.elapsed();
        let loop_allocs = Snapshot::now().allocs_since(&start_allocs);
        std::hint::black_box(sink.check);
        let expected = (rounds * self.burst) as u64;
        if sink.records != expected {
            return Err(format!(
                "{:?}: the consumer saw {} packets of {expected}",
                self.spec, sink.records
            ));
        }
        if sink.bytes != expected * spec.caplen() as u64 {
            return Err(format!("{:?}: captured {} bytes, expected more", self.spec, sink.bytes));
        }
        Ok(Sample {
            packets: sink.records,
            bytes: sink.bytes,
            elapsed,
            deliver_allocs,
            loop_allocs,
        })
    }

    /// The engine's counters agree: every packet received and matched,
    /// none dropped.
    pub fn check_counters(&self, delivered: u64) -> Result<(), String> {
        if let Engine::Sim { cap, .. } = &self.engine {
            let st = cap.stats().map_err(|e| format!("BIOCGSTATS: {e}"))?;
            if u64::from(st.bs_recv) != delivered & 0xffff_ffff || st.bs_drop != 0 {
                return Err(format!(
                    "{:?}: received {} (expected {delivered}), dropped {}",
                    self.spec, st.bs_recv, st.bs_drop
                ));
            }
        }
        Ok(())
    }
}

/// Two plain buffers that records are appended to, switching to the other
/// when one is full: the baseline's, and the parts ladder's lower rungs'.
pub struct Plain {
    bufs: [Vec<u8>; 2],
    /// The buffer being filled.
    store: usize,
    /// Bytes of records in each.
    lens: [usize; 2],
}

impl Plain {
    /// Two empty buffers of the capture's size.
    pub fn new() -> Plain {
        Plain { bufs: [vec![0u8; BUFSIZE], vec![0u8; BUFSIZE]], store: 0, lens: [0, 0] }
    }

    /// Appends one record: `header(out, caplen, datalen, hdrlen)` writes its
    /// header into the zeroed `out`, then the captured bytes follow.
    #[inline]
    pub fn catch(
        &mut self,
        frame: &[u8],
        snaplen: u32,
        header: impl FnOnce(&mut [u8], u32, u32, usize),
    ) {
        let hdrlen = record_hdrlen();
        let caplen = frame.len().min(snaplen as usize);
        let mut at = bpf_wordalign(self.lens[self.store]);
        if at + hdrlen + caplen > BUFSIZE - ZBUF_HEADER {
            self.store = 1 - self.store;
            at = 0;
        }
        let buf = &mut self.bufs[self.store];
        let out = &mut buf[at..at + hdrlen];
        out.fill(0);
        header(out, caplen as u32, frame.len() as u32, hdrlen);
        buf[at + hdrlen..at + hdrlen + caplen].copy_from_slice(&frame[..caplen]);
        self.lens[self.store] = at + hdrlen + caplen;
    }

    /// Walks the records, the full buffer's first, and empties both.
    pub fn drain(&mut self, mut take: impl FnMut(&Record<'_>)) -> Result<(), String> {
        for i in [1 - self.store, self.store] {
            walk_records(&self.bufs[i][..self.lens[i]], &mut take).map_err(|e| e.to_string())?;
            self.lens[i] = 0;
        }
        Ok(())
    }
}

/// The baseline's record header: the lengths only (no timestamp).
fn minimal_header(out: &mut [u8], caplen: u32, datalen: u32, hdrlen: usize) {
    out[16..20].copy_from_slice(&caplen.to_ne_bytes());
    out[20..24].copy_from_slice(&datalen.to_ne_bytes());
    out[24..26].copy_from_slice(&(hdrlen as u16).to_ne_bytes());
}

/// Reads every buffer the descriptor has until it has nothing more.
fn drain(cap: &mut Capture<'_>, consumer: Consumer, sink: &mut Sink) -> Result<(), String> {
    loop {
        match cap.next_batch(|r| sink.take(consumer, r)) {
            Ok(0) | Err(Errno::EWOULDBLOCK) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("draining: {e}")),
        }
    }
}

/// One row of results.
#[derive(Clone, Debug)]
pub struct Row {
    /// The configuration.
    pub spec: Spec,
    /// The best sample.
    pub best: Sample,
    /// Every packet delivered over all samples (for the counter check).
    pub delivered: u64,
    /// Allocations during delivery, over all samples.
    pub deliver_allocs: u64,
    /// Allocations in the loop, over all samples.
    pub loop_allocs: u64,
}

impl Row {
    /// Million packets per second.
    pub fn mpps(&self) -> f64 {
        1e3 / self.best.ns_per_packet()
    }

    /// Captured gigabytes per second.
    pub fn gbps(&self) -> f64 {
        self.best.bytes as f64 / self.best.elapsed.as_secs_f64() / 1e9
    }

    /// Allocations per packet while delivering.
    pub fn deliver_allocs_per_packet(&self) -> f64 {
        self.deliver_allocs as f64 / self.delivered.max(1) as f64
    }

    /// Allocations per packet in the whole loop.
    pub fn loop_allocs_per_packet(&self) -> f64 {
        self.loop_allocs as f64 / self.delivered.max(1) as f64
    }
}

/// How long each measurement aims to run, and how many rounds of
/// measurement (the best is kept).
#[derive(Clone, Copy, Debug)]
pub struct Effort {
    /// Target length of one sample.
    pub sample: Duration,
    /// Samples per configuration, interleaved across configurations.
    pub samples: usize,
}

/// Measures every configuration: each is set up once, warmed up, then
/// sampled `effort.samples` times, the configurations interleaved so that
/// noise from other work on the machine spreads over all of them.
pub fn measure(specs: &[Spec], effort: Effort) -> Result<Vec<Row>, String> {
    let machines: Vec<(Sim, Arc<SimIface>)> = specs.iter().map(|_| machine()).collect();
    let mut rigs = Vec::new();
    for (spec, (sim, iface)) in specs.iter().zip(&machines) {
        rigs.push(Rig::new(*spec, sim, iface)?);
    }
    let mut rounds = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    for rig in rigs.iter_mut() {
        // Warm up (page faults, caches), then size a sample.
        let warm = rig.run(2)?;
        let per_round = warm.elapsed.as_secs_f64() / 2.0;
        let n = (effort.sample.as_secs_f64() / per_round.max(1e-9)).ceil() as usize;
        rounds.push(n.clamp(1, 100_000));
        rows.push(Row {
            spec: rig.spec,
            best: Sample { elapsed: Duration::MAX, ..Sample::default() },
            delivered: warm.packets,
            deliver_allocs: 0,
            loop_allocs: 0,
        });
    }
    for pass in 0..effort.samples {
        for k in 0..rigs.len() {
            // Alternate the order each pass.
            let i = if pass % 2 == 0 { k } else { rigs.len() - 1 - k };
            let s = rigs[i].run(rounds[i])?;
            let row = &mut rows[i];
            row.delivered += s.packets;
            row.deliver_allocs += s.deliver_allocs;
            row.loop_allocs += s.loop_allocs;
            if s.ns_per_packet() < row.best.ns_per_packet() || row.best.packets == 0 {
                row.best = s;
            }
        }
    }
    for (rig, row) in rigs.iter().zip(&rows) {
        rig.check_counters(row.delivered)?;
    }
    Ok(rows)
}

/// The capture-path matrix: 64 and 1500 bytes, snap lengths 96 and 65535,
/// BUFFER and ZBUF with either timestamp, and the baseline; consumers walk
/// the headers.
pub fn matrix() -> Vec<Spec> {
    let mut v = Vec::new();
    for size in [64, 1500] {
        for snaplen in [96, 65535] {
            for (pipe, fast_ts) in [
                (Pipe::Buffer, false),
                (Pipe::Zbuf, false),
                (Pipe::Buffer, true),
                (Pipe::Zbuf, true),
                (Pipe::Memcpy, false),
            ] {
                v.push(Spec { size, snaplen, pipe, fast_ts, consumer: Consumer::Walk });
            }
        }
    }
    v
}

/// The two consumers of the slides, in both modes and the baseline, on
/// full 1500-byte packets.
pub fn consumers() -> Vec<Spec> {
    let mut v = Vec::new();
    for consumer in [Consumer::Walk, Consumer::Checksum] {
        for pipe in [Pipe::Buffer, Pipe::Zbuf, Pipe::Memcpy] {
            v.push(Spec { size: 1500, snaplen: 65535, pipe, fast_ts: false, consumer });
        }
    }
    v
}

/// The small run callgrind measures: `rounds` rounds of one consumer
/// configuration after a warm-up. Only the call of this function is
/// collected (`--toggle-collect`), so set-up and warm-up are not counted.
#[inline(never)]
pub fn cachesim_measured(rig: &mut Rig<'_>, rounds: usize) -> Result<Sample, String> {
    rig.run(rounds)
}

/// Best ns per call of the platform's full-precision clock (`uptime`, what
/// the default timestamps read once per packet; binuptime in the kernel).
pub fn clock_ns(effort: Effort) -> f64 {
    use zbpf::platform::Platform;
    let (sim, _) = machine();
    let platform = &sim.bpf().platform;
    let calls = 1_000_000;
    let mut best = f64::MAX;
    for _ in 0..effort.samples.max(1) {
        let t0 = Instant::now();
        for _ in 0..calls {
            std::hint::black_box(platform.uptime());
        }
        best = best.min(t0.elapsed().as_secs_f64() * 1e9 / calls as f64);
    }
    best
}
