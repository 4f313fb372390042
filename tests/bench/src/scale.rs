//! Many descriptors on one interface, each with its own filter: one
//! (`udp port 9`) accepts every frame and is drained in ZBUF mode, every
//! other one (`udp port N`, N from 2000 up) rejects every frame. The cost
//! per packet is reported per descriptor and per added descriptor.

use std::time::{Duration, Instant};

use zbpf::abi::Errno;
use zbpf::hosted::consumer::{Capture, Mode, ZbufStyle};
use zbpf::hosted::traffic;
use zbpf::platform::Counter;

use crate::capture::{capture_config, machine, Effort, BUFSIZE};

/// Frame size of the scale runs.
pub const SIZE: usize = 64;

/// One descriptor count's result.
#[derive(Clone, Copy, Debug)]
pub struct ScaleRow {
    /// Descriptors on the interface.
    pub descriptors: usize,
    /// Best nanoseconds per packet, for all descriptors together.
    pub ns_per_packet: f64,
    /// Packets delivered in all.
    pub delivered: u64,
}

impl ScaleRow {
    /// Nanoseconds per packet per descriptor.
    pub fn per_descriptor(&self) -> f64 {
        self.ns_per_packet / self.descriptors as f64
    }
}

/// One interface with `n` listening descriptors: the first accepts and is
/// drained, the others reject.
pub struct Listeners<'s> {
    n: usize,
    sim: &'s zbpf::hosted::sim::Sim,
    iface: &'s std::sync::Arc<zbpf::hosted::net::SimIface>,
    caps: Vec<Capture<'s>>,
    frames: Vec<Vec<u8>>,
    burst: usize,
    next: usize,
}

impl<'s> Listeners<'s> {
    /// Opens and attaches `n` descriptors on the machine's interface, their
    /// filters compiled to native code (`jit`) or interpreted.
    pub fn open(
        (sim, iface): &'s (zbpf::hosted::sim::Sim, std::sync::Arc<zbpf::hosted::net::SimIface>),
        n: usize,
        jit: bool,
    ) -> Result<Listeners<'s>, String> {
        let rec = zbpf::abi::bpf_wordalign(crate::capture::record_hdrlen() + SIZE);
        sim.bpf().config.jit_enable.store(jit, std::sync::atomic::Ordering::Relaxed);
        let mut caps = Vec::new();
        for i in 0..n {
            let (filter, size) = if i == 0 {
                ("udp port 9".to_string(), BUFSIZE)
            } else {
                (format!("udp port {}", 2000 + i), 16 * 1024)
            };
            let cfg = capture_config(Mode::Zbuf(ZbufStyle::Header), size, &filter, 65535);
            caps.push(Capture::open(sim, &cfg).map_err(|e| format!("opening #{i}: {e}"))?);
        }
        Ok(Listeners {
            n,
            sim,
            iface,
            caps,
            frames: traffic::fixed(1024, SIZE),
            burst: (BUFSIZE - 32) / rec * 3 / 2,
            next: 0,
        })
    }

    /// Runs `rounds` bursts, each drained by the first descriptor; the time
    /// taken and the packets seen.
    pub fn round(&mut self, rounds: usize) -> Result<(Duration, u64), String> {
        let t0 = Instant::now();
        let mut seen = 0u64;
        for _ in 0..rounds {
            let first = self.next;
            let frames = &self.frames;
            self.next = (self.next + self.burst) % frames.len();
            self.sim.receive_burst(
                self.iface,
                (0..self.burst).map(|k| frames[(first + k) % frames.len()].as_slice()),
            );
            loop {
                match self.caps[0].next_batch(|r| {
                    seen += u64::from(r.caplen != 0);
                }) {
                    Ok(0) | Err(Errno::EWOULDBLOCK) => break,
                    Ok(_) => {}
                    Err(e) => return Err(format!("draining: {e}")),
                }
            }
        }
        let elapsed = t0.elapsed();
        if seen != (rounds * self.burst) as u64 {
            return Err(format!("{} descriptors: saw {seen} of {}", self.n, rounds * self.burst));
        }
        Ok((elapsed, seen))
    }
}

/// The small run callgrind measures: `n` descriptors, a warm-up, then
/// `rounds` bursts in [`scale_measured`]. Returns the packets measured.
pub fn small(n: usize, jit: bool, rounds: usize) -> Result<u64, String> {
    let m = machine();
    let mut l = Listeners::open(&m, n, jit)?;
    l.round(2)?;
    scale_measured(&mut l, rounds)
}

/// The part of [`small`] callgrind collects (`--toggle-collect`).
#[inline(never)]
pub fn scale_measured(l: &mut Listeners<'_>, rounds: usize) -> Result<u64, String> {
    l.round(rounds).map(|(_, seen)| seen)
}

/// Measures 1, 8 and 64 descriptors (or `counts`), their filters compiled
/// to native code (`jit`, the engine's default) or interpreted.
pub fn measure(counts: &[usize], jit: bool, effort: Effort) -> Result<Vec<ScaleRow>, String> {
    let machines: Vec<_> = counts.iter().map(|_| machine()).collect();
    struct Setup<'s> {
        l: Listeners<'s>,
        rounds: usize,
        best: f64,
        delivered: u64,
    }
    let mut runs = Vec::new();
    for (&n, m) in counts.iter().zip(&machines) {
        let l = Listeners::open(m, n, jit)?;
        runs.push(Setup { l, rounds: 1, best: f64::MAX, delivered: 0 });
    }
    let round = |s: &mut Setup<'_>, rounds: usize| -> Result<Duration, String> {
        let (t, seen) = s.l.round(rounds)?;
        s.delivered += seen;
        Ok(t)
    };
    for s in runs.iter_mut() {
        let warm = round(s, 2)?;
        let per = warm.as_secs_f64() / 2.0;
        s.rounds =
            ((effort.sample.as_secs_f64() / per.max(1e-9)).ceil() as usize).clamp(1, 100_000);
    }
    for pass in 0..effort.samples {
        for k in 0..runs.len() {
            let i = if pass % 2 == 0 { k } else { runs.len() - 1 - k };
            let s = &mut runs[i];
            let rounds = s.rounds;
            let t = round(s, rounds)?;
            let ns = t.as_secs_f64() * 1e9 / (rounds * s.l.burst) as f64;
            s.best = s.best.min(ns);
        }
    }
    // Every descriptor saw every packet; only the first matched any.
    for s in &runs {
        for (i, cap) in s.l.caps.iter().enumerate() {
            let st = cap.stats().map_err(|e| format!("BIOCGSTATS: {e}"))?;
            if u64::from(st.bs_recv) != s.delivered & 0xffff_ffff || st.bs_drop != 0 {
                return Err(format!(
                    "{} descriptors, #{i}: received {} of {}, dropped {}",
                    s.l.n, st.bs_recv, s.delivered, st.bs_drop
                ));
            }
            let d = s.l.sim.descriptor(cap.fd()).ok_or("descriptor gone")?;
            let matched = d.counters().matched.fetch();
            let want = if i == 0 { s.delivered } else { 0 };
            if matched != want {
                return Err(format!("{} descriptors, #{i}: matched {matched}, not {want}", s.l.n));
            }
        }
    }
    Ok(runs
        .iter()
        .map(|s| ScaleRow { descriptors: s.l.n, ns_per_packet: s.best, delivered: s.delivered })
        .collect())
}

/// The native filter calls alone, for one count of programs.
#[derive(Clone, Copy, Debug)]
pub struct DispatchRow {
    /// Programs called in turn.
    pub programs: usize,
    /// Best ns per call when each program has its own native code
    /// (`udp port 2000`, `udp port 2001`, …).
    pub distinct_ns: f64,
    /// Best ns per call when they are copies of one program sharing one
    /// native code.
    pub shared_ns: f64,
    /// Best ns per call for the distinct programs called by dispatchers
    /// (`jit::compile_dispatch`), each program from its own call site, as
    /// the engine calls them.
    pub dispatched_ns: f64,
    /// The same, the programs' code packed together in one mapping (a few
    /// pages) instead of one mapping each.
    pub packed_ns: f64,
    /// Bytes of native code per distinct program, on average.
    pub code_bytes: f64,
}

/// Calls `counts` native filters in turn on one 64-byte frame, the way the
/// delivery loop calls one per descriptor: distinct programs from one call
/// site, copies sharing one native code from one call site, and distinct
/// programs through dispatchers. Same filter instructions every way; what
/// differs is how many code addresses each call site jumps to.
pub fn dispatch(counts: &[usize], effort: Effort) -> Result<Vec<DispatchRow>, String> {
    use zbpf::filter::jit::{compile, compile_dispatch, DISPATCH_SLOTS};
    use zbpf::hosted::native::HostedNative;
    let frame = traffic::fixed(1, SIZE).remove(0);
    let insns = |i: usize| {
        zbpf::hosted::libpcap::compile(
            &format!("udp port {}", 2000 + i),
            zbpf::abi::dlt::DLT_EN10MB,
            65535,
        )
    };
    let program = |i: usize| -> Result<zbpf::filter::Program, String> {
        let p = zbpf::hosted::native::native_program(&insns(i)?).map_err(|e| format!("{e:?}"))?;
        p.is_native().then_some(p).ok_or_else(|| "no native code on this platform".to_string())
    };
    let one = program(0)?;
    let time = |calls_per_rep: usize, f: &mut dyn FnMut() -> u64| -> f64 {
        let reps = ((effort.sample.as_secs_f64() * 2e8) as usize / calls_per_rep).max(1);
        let mut best = f64::MAX;
        for _ in 0..effort.samples {
            let t0 = Instant::now();
            let mut acc = 0u64;
            for _ in 0..reps {
                acc = acc.wrapping_add(f());
            }
            std::hint::black_box(acc);
            best = best.min(t0.elapsed().as_secs_f64() * 1e9 / (reps * calls_per_rep) as f64);
        }
        best
    };
    let each = |progs: &[zbpf::filter::Program]| {
        progs.iter().map(|p| u64::from(p.run(std::hint::black_box(&frame), 64))).sum::<u64>()
    };
    let mut rows = Vec::new();
    for &n in counts {
        let distinct: Vec<_> = (0..n).map(program).collect::<Result<_, _>>()?;
        let shared: Vec<_> = (0..n).map(|_| one.clone()).collect();
        // The same programs' code again, called by dispatchers of up to
        // DISPATCH_SLOTS programs each: each program in its own mapping, as
        // the engine maps them, then all packed in one mapping.
        let compiled: Vec<_> =
            (0..n).map(|i| insns(i).map(|p| compile(&p))).collect::<Result<_, _>>()?;
        let codes: Vec<_> = compiled
            .iter()
            .map(|c| HostedNative::map(c).ok_or_else(|| "mapping".to_string()))
            .collect::<Result<_, _>>()?;
        let apart: Vec<u64> = codes.iter().map(|c| c.entry() as usize as u64).collect();
        // One mapping: the programs end to end, each at a cache line. It
        // starts with the first program, so it maps like one.
        let mut blob = Vec::new();
        let mut offsets = Vec::new();
        for c in &compiled {
            offsets.push(blob.len() as u64);
            blob.extend_from_slice(&c.code[c.entry..]);
            blob.resize(blob.len().next_multiple_of(64), 0xcc);
        }
        let hot_end = blob.len();
        let packed =
            HostedNative::map(&zbpf::filter::jit::Compiled { code: blob, entry: 0, hot_end })
                .ok_or("packing the programs")?;
        let packed_entries: Vec<u64> =
            offsets.iter().map(|o| packed.entry() as usize as u64 + o).collect();
        let dispatched = |entries: &[u64]| -> Result<f64, String> {
            let dispatchers: Vec<_> = entries
                .chunks(DISPATCH_SLOTS)
                .map(|group| {
                    let targets: Vec<_> = group.iter().map(|&e| Some(e)).collect();
                    compile_dispatch(&targets)
                        .and_then(|d| HostedNative::map(&d))
                        .ok_or_else(|| "dispatcher".to_string())
                })
                .collect::<Result<_, _>>()?;
            let mut out = [0u64; DISPATCH_SLOTS];
            Ok(time(n, &mut || {
                let mut sum = 0u64;
                for (d, group) in dispatchers.iter().zip(entries.chunks(DISPATCH_SLOTS)) {
                    let head = std::hint::black_box(&frame);
                    // The programs at `entries` read only `head`; the
                    // dispatcher writes out[..group.len()].
                    // SAFETY: `d` and those programs stay mapped (`codes`, `packed`).
                    unsafe { d.entry()(head.as_ptr(), 64, 64, out.as_mut_ptr().cast()) };
                    sum += out[..group.len()].iter().map(|&r| r as u32 as u64).sum::<u64>();
                }
                sum
            }))
        };
        rows.push(DispatchRow {
            programs: n,
            distinct_ns: time(n, &mut || each(&distinct)),
            shared_ns: time(n, &mut || each(&shared)),
            dispatched_ns: dispatched(&apart)?,
            packed_ns: dispatched(&packed_entries)?,
            code_bytes: compiled.iter().map(|c| c.code.len() - c.entry).sum::<usize>() as f64
                / n.max(1) as f64,
        });
    }
    Ok(rows)
}
