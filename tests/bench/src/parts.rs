//! Where a ZBUF capture's time goes: a ladder from the memcpy baseline to
//! zbpf's whole ZBUF capture, one part added per rung. Every rung runs the
//! capture benchmark's loop (the same frames, two 512 KiB buffers, bursts
//! of one and a half buffers, a consumer that walks the records in place),
//! so the difference between two rungs is what the added part costs per
//! packet. The middle rungs call the engine's own pieces directly (its
//! record header, its ZBUF store, the platform's lock and clock) without
//! the tap and the descriptor around them.

use std::time::Instant;

use zbpf::abi::{Tstamp, BPF_T_FAST, PAGE_SIZE};
use zbpf::engine::buffers::{Buffer, Caught, Slots};
use zbpf::engine::record::{self, BootTime, PacketTime, Quality, Stamp};
use zbpf::engine::zbuf::{ZeroBuf, HEADER_LEN};
use zbpf::engine::BATCH;
use zbpf::hosted::consumer::walk_records;
use zbpf::hosted::platform::HostedLock;
use zbpf::hosted::process::{HostedPages, SharedRegion, SimProc};
use zbpf::hosted::sim::Sim;
use zbpf::platform::{DescLock, Platform, UserCtx};

use crate::capture::{
    self, machine, record_hdrlen, Consumer, Effort, Pipe, Plain, Rig, Spec, BUFSIZE,
};

/// One rung: everything below it plus one part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rung {
    /// The baseline: a minimal header and one copy, plain buffers.
    Memcpy,
    /// bpf(4)'s record header, as the engine writes it (timestamp fields,
    /// lengths, padding), still into plain buffers.
    Header,
    /// The ZBUF store: the shared buffers reached page by page, the
    /// generation protocol, the rotation bookkeeping (`Slots::catch`).
    Store,
    /// The descriptor lock, taken and released once per batch of
    /// [`BATCH`] packets, as the engine's batch path holds it.
    Lock,
    /// The tick-precision clock read (BPF_T_FAST) and the boot time.
    FastClock,
    /// The rest of the delivery path: the tap and its readers, the filter's
    /// answer, the counters, the descriptor's checks, the consumer's
    /// ioctls. zbpf's whole ZBUF capture with BPF_T_FAST.
    Delivery,
    /// The full-precision clock instead of the tick one: zbpf's ZBUF
    /// capture with the default timestamps.
    PreciseClock,
    /// Beside the ladder: the Store rung with the lock taken and released
    /// around every packet, as FreeBSD's bpf does, and as zbpf does for a
    /// driver that hands packets up one at a time.
    LockEach,
}

impl Rung {
    /// Bottom to top, then the side measurement.
    pub const ALL: [Rung; 8] = [
        Rung::Memcpy,
        Rung::Header,
        Rung::Store,
        Rung::Lock,
        Rung::FastClock,
        Rung::Delivery,
        Rung::PreciseClock,
        Rung::LockEach,
    ];

    /// What the rung adds, for the report.
    pub fn part(self) -> &'static str {
        match self {
            Rung::Memcpy => "the copy, behind a 26-byte header (the memcpy baseline)",
            Rung::Header => "bpf(4)'s record header (`record::write_header`: timestamp, lengths, alignment)",
            Rung::Store => "the ZBUF store (`Slots::catch` on `ZeroBuf`: page-by-page copies, the generation word, rotation bookkeeping)",
            Rung::Lock => "the descriptor lock, taken and released once per batch of 8 packets",
            Rung::FastClock => "the BPF_T_FAST clock (tick precision) and the boot time",
            Rung::Delivery => "the rest of delivery (tap, readers, the filter's answer, counters, checks; the consumer's ioctls): ZBUF with BPF_T_FAST",
            Rung::PreciseClock => "the full-precision clock instead of the tick one: ZBUF with default timestamps",
            Rung::LockEach => "the ZBUF store with the lock taken and released around every packet",
        }
    }
}

/// One measured rung.
#[derive(Clone, Copy, Debug)]
pub struct PartRow {
    /// Frame size.
    pub size: usize,
    /// The rung.
    pub rung: Rung,
    /// Best ns per packet.
    pub ns: f64,
}

/// The middle rungs' machinery: the engine's store over two shared regions,
/// optionally behind the platform's lock, optionally reading the clock.
struct Ladder<'s> {
    rung: Rung,
    sim: &'s Sim,
    regions: [SharedRegion; 2],
    slots: Slots<ZeroBuf<HostedPages>>,
    /// The platform's descriptor lock (what `Descriptor::deliver` takes).
    lock: HostedLock<()>,
    plain: Plain,
}

enum Stage<'s> {
    Capture(Rig<'s>),
    Ladder(Box<Ladder<'s>>),
}

const POOL: usize = 1024;

/// The timestamp the middle rungs write: BPF_T_FAST's format.
fn fast_tstamp() -> Tstamp {
    Tstamp::new(BPF_T_FAST).expect("BPF_T_FAST is valid")
}

impl<'s> Ladder<'s> {
    fn new(rung: Rung, sim: &'s Sim) -> Result<Ladder<'s>, String> {
        let npages = BUFSIZE / PAGE_SIZE;
        let region = || SharedRegion::new(BUFSIZE).map_err(|e| format!("shared region: {e}"));
        let regions = [region()?, region()?];
        let mut proc = SimProc { pid: std::process::id() as i32 };
        let mut zbuf = |r: &SharedRegion| -> Result<ZeroBuf<HostedPages>, String> {
            let pages = proc.hold_pages(r.addr(), npages).map_err(|e| format!("holding: {e}"))?;
            Ok(ZeroBuf::new(pages, r.addr(), BUFSIZE))
        };
        let (a, b) = (zbuf(&regions[0])?, zbuf(&regions[1])?);
        Ok(Ladder {
            rung,
            sim,
            regions,
            slots: Slots::new(a, b, BUFSIZE - HEADER_LEN),
            lock: HostedLock::new(()),
            plain: Plain::new(),
        })
    }

    /// Reads every buffer the store handed over, in place, and gives each
    /// back; the partly filled one is handed over first (BIOCROTZBUF).
    fn drain_zbuf(&mut self, seen: &mut (u64, u64)) -> Result<(), String> {
        let slots = &mut self.slots;
        loop {
            let held = slots.hold.as_ref().filter(|h| h.user_owned());
            let Some(zb) = held else {
                if slots.force_rotate() {
                    continue;
                }
                return Ok(());
            };
            let region = self
                .regions
                .iter()
                .find(|r| r.addr() == zb.uaddr())
                .ok_or("a buffer of no region")?;
            let len = zb.handed_len().min(region.len() - HEADER_LEN);
            // The store wrote these bytes before handing the buffer over and
            // writes nothing more until it is given back below.
            let start = region.as_ptr().wrapping_add(HEADER_LEN);
            // SAFETY: `len` bytes from `start` lie inside the live region.
            let records = unsafe { std::slice::from_raw_parts(start, len) };
            walk_records(records, |r| {
                seen.0 += 1;
                seen.1 += u64::from(r.caplen);
            })
            .map_err(|e| e.to_string())?;
            zb.ack();
            slots.reclaim_if_acked();
        }
    }

    fn run(&mut self, frames: &[&[u8]], seen: &mut (u64, u64)) -> Result<(), String> {
        let platform = &self.sim.bpf().platform;
        let fixed = Stamp {
            tstamp: fast_tstamp(),
            uptime: platform.uptime_fast(),
            boottime: platform.boottime(),
        };
        if self.rung == Rung::Header {
            // The baseline's buffers, with the engine's record header.
            for f in frames {
                self.plain.catch(f, u32::MAX, |out, caplen, datalen, hdrlen| {
                    record::write_header(out, &fixed, caplen, datalen, hdrlen)
                });
            }
            return self.plain.drain(|r| {
                seen.0 += 1;
                seen.1 += u64::from(r.caplen);
            });
        }
        if self.rung == Rung::Store {
            for f in frames {
                catch(&mut self.slots, f, &fixed)?;
            }
        } else if self.rung == Rung::LockEach {
            for f in frames {
                let _held = self.lock.lock();
                catch(&mut self.slots, f, &fixed)?;
            }
        } else {
            for batch in frames.chunks(BATCH) {
                let _held = self.lock.lock();
                let boot = BootTime::default();
                for f in batch {
                    if self.rung == Rung::Lock {
                        catch(&mut self.slots, f, &fixed)?;
                    } else {
                        let mut time = PacketTime::new(None, &boot);
                        let stamp = Stamp {
                            tstamp: fixed.tstamp,
                            uptime: time.get(platform, Quality::of(fixed.tstamp)),
                            boottime: time.boottime(platform),
                        };
                        catch(&mut self.slots, f, &stamp)?;
                    }
                }
            }
        }
        self.drain_zbuf(seen)
    }
}

/// The engine's catchpacket into the ZBUF store, the whole frame.
#[inline]
fn catch(
    slots: &mut Slots<ZeroBuf<HostedPages>>,
    frame: &[u8],
    stamp: &Stamp,
) -> Result<(), String> {
    match slots.catch(frame, frame.len() as u32, record_hdrlen(), stamp, false) {
        Caught::Dropped => Err("the ZBUF store dropped a packet".into()),
        Caught::Stored { .. } => Ok(()),
    }
}

impl Stage<'_> {
    /// Runs `rounds` bursts and their drains; the time per packet.
    fn run(&mut self, rounds: usize, pool: &[Vec<u8>], burst: usize) -> Result<f64, String> {
        match self {
            Stage::Capture(rig) => Ok(rig.run(rounds)?.ns_per_packet()),
            Stage::Ladder(l) => {
                let mut seen = (0u64, 0u64);
                let mut next = 0;
                let t0 = Instant::now();
                for _ in 0..rounds {
                    let frames: Vec<&[u8]> =
                        (0..burst).map(|k| pool[(next + k) % POOL].as_slice()).collect();
                    next = (next + burst) % POOL;
                    l.run(&frames, &mut seen)?;
                }
                let elapsed = t0.elapsed();
                let expected = (rounds * burst) as u64;
                let bytes = expected * pool[0].len() as u64;
                if seen != (expected, bytes) {
                    return Err(format!(
                        "{:?}: the consumer saw {seen:?} (packets, bytes) of {expected}",
                        l.rung
                    ));
                }
                Ok(elapsed.as_secs_f64() * 1e9 / expected as f64)
            }
        }
    }
}

/// Measures every rung at 64 and 1500 bytes (snap length 65535): set up
/// once, warmed up, then sampled `effort.samples` times interleaved; the
/// best sample is kept.
pub fn measure(effort: Effort) -> Result<Vec<PartRow>, String> {
    let mut rows = Vec::new();
    for size in [64, 1500] {
        let machines: Vec<_> = Rung::ALL.iter().map(|_| machine()).collect();
        let pool = capture::pool(size);
        let spec =
            |pipe, fast_ts| Spec { size, snaplen: 65535, pipe, fast_ts, consumer: Consumer::Walk };
        let burst = spec(Pipe::Zbuf, true).burst();
        let mut stages = Vec::new();
        for (rung, (sim, iface)) in Rung::ALL.iter().zip(&machines) {
            stages.push(match rung {
                Rung::Memcpy => Stage::Capture(Rig::new(spec(Pipe::Memcpy, false), sim, iface)?),
                Rung::Delivery => Stage::Capture(Rig::new(spec(Pipe::Zbuf, true), sim, iface)?),
                Rung::PreciseClock => {
                    Stage::Capture(Rig::new(spec(Pipe::Zbuf, false), sim, iface)?)
                }
                _ => Stage::Ladder(Box::new(Ladder::new(*rung, sim)?)),
            });
        }
        let mut rounds = Vec::new();
        for stage in stages.iter_mut() {
            let warm_ns = stage.run(2, &pool, burst)?;
            let per_round = warm_ns * burst as f64 / 1e9;
            let n = (effort.sample.as_secs_f64() / per_round.max(1e-9)).ceil() as usize;
            rounds.push(n.clamp(1, 100_000));
        }
        let mut best = vec![f64::MAX; stages.len()];
        for pass in 0..effort.samples {
            for k in 0..stages.len() {
                let i = if pass % 2 == 0 { k } else { stages.len() - 1 - k };
                best[i] = best[i].min(stages[i].run(rounds[i], &pool, burst)?);
            }
        }
        rows.extend(Rung::ALL.iter().zip(best).map(|(&rung, ns)| PartRow { size, rung, ns }));
    }
    Ok(rows)
}

/// The report's subsection: the ladder at both sizes, each rung's share,
/// and what that says about the goal and the default timestamps.
pub fn markdown(rows: &[PartRow]) -> String {
    use std::fmt::Write;
    let ns = |size: usize, rung: Rung| {
        rows.iter().find(|r| r.size == size && r.rung == rung).map_or(f64::NAN, |r| r.ns)
    };
    let ladder = &Rung::ALL[..Rung::ALL.len() - 1];
    let mut s = String::new();
    s.push_str("### Where a ZBUF capture's time goes\n\n");
    s.push_str(
        "A ladder from the memcpy baseline to zbpf's whole ZBUF capture (snap length 65535, the same frames, buffers, bursts and consumer as the table above), one part added per rung (`tests/bench/src/parts.rs`). The middle rungs call the engine's own pieces directly: its record header (`record::write_header`), its ZBUF store (`Slots::catch` on `ZeroBuf` over held pages), the hosted platform's descriptor lock and its clock. Each rung is the best of the samples; a part's cost is its rung minus the one below. Between nearby rungs the difference can be within the noise (a few ns), and it measures memory as well as work: the baseline and the Header rung write into two plain heap buffers, the rungs from Store up into the shared pages through the engine's own mapping of them, so a part can come out negative (at 1500 bytes the shared pages are the faster memory here).\n\n",
    );
    s.push_str("| rung | what it adds | 64 B ns/packet | part | 1500 B ns/packet | part |\n");
    s.push_str("| --- | --- | ---: | ---: | ---: | ---: |\n");
    for (i, &rung) in ladder.iter().enumerate() {
        let part = |size| match i {
            0 => String::new(),
            _ => format!("{:+.1}", ns(size, rung) - ns(size, ladder[i - 1])),
        };
        let _ = writeln!(
            s,
            "| {:?} | {} | {:.1} | {} | {:.1} | {} |",
            rung,
            rung.part(),
            ns(64, rung),
            part(64),
            ns(1500, rung),
            part(1500)
        );
    }
    let each = |size| ns(size, Rung::LockEach) - ns(size, Rung::Store);
    let batched = |size| ns(size, Rung::Lock) - ns(size, Rung::Store);
    let _ = writeln!(
        s,
        "\nWhat the lock costs depends on how often it is taken: its two atomic instructions wait for the stores before them, here the packets' copies, to drain: {:.1} ns per packet at 64 bytes and {:.1} at 1500 when it is taken around every packet (rung `LockEach`: {:.1} and {:.1} ns/packet, as FreeBSD's bpf takes it), {:.1} and {:.1} when the engine's batch path takes it once per {BATCH} packets of a driver's m_nextpkt list (`Bpf::deliver_batch`).",
        each(64),
        each(1500),
        ns(64, Rung::LockEach),
        ns(1500, Rung::LockEach),
        batched(64),
        batched(1500)
    );
    let (fast, copy) = (ns(1500, Rung::Delivery), ns(1500, Rung::Memcpy));
    let _ = writeln!(
        s,
        "\nAt 1500 bytes ZBUF with BPF_T_FAST takes {fast:.1} ns per packet and the memcpy baseline {copy:.1}: {:.2}× the baseline's rate (goal ≥ 0.7×). With the default timestamps it takes {:.1} ns: the baseline's {copy:.1}, then {:+.1} for bpf(4)'s header, {:+.1} for the ZBUF store, {:+.1} for the lock, {:+.1} for the tick clock, {:+.1} for the rest of delivery, and {:+.1} for reading the full-precision clock instead of the tick one (the hosted platform's `uptime()`, `clock_gettime` here; binuptime in the kernel).",
        copy / fast,
        ns(1500, Rung::PreciseClock),
        ns(1500, Rung::Header) - copy,
        ns(1500, Rung::Store) - ns(1500, Rung::Header),
        ns(1500, Rung::Lock) - ns(1500, Rung::Store),
        ns(1500, Rung::FastClock) - ns(1500, Rung::Lock),
        fast - ns(1500, Rung::FastClock),
        ns(1500, Rung::PreciseClock) - fast
    );
    s
}
