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

/// Measures 1, 8 and 64 descriptors (or `counts`), their filters compiled
/// to native code (`jit`, the engine's default) or interpreted.
pub fn measure(counts: &[usize], jit: bool, effort: Effort) -> Result<Vec<ScaleRow>, String> {
    let frames = traffic::fixed(1024, SIZE);
    let rec = zbpf::abi::bpf_wordalign(crate::capture::record_hdrlen() + SIZE);
    let burst = (BUFSIZE - 32) / rec * 3 / 2;
    let mut setups = Vec::new();
    for &n in counts {
        setups.push((n, machine()));
    }
    struct Setup<'s> {
        n: usize,
        sim: &'s zbpf::hosted::sim::Sim,
        iface: &'s std::sync::Arc<zbpf::hosted::net::SimIface>,
        caps: Vec<Capture<'s>>,
        rounds: usize,
        best: f64,
        delivered: u64,
    }
    let mut runs = Vec::new();
    for (n, (sim, iface)) in &setups {
        sim.bpf().config.jit_enable.store(jit, std::sync::atomic::Ordering::Relaxed);
        let mut caps = Vec::new();
        for i in 0..*n {
            let (filter, size) = if i == 0 {
                ("udp port 9".to_string(), BUFSIZE)
            } else {
                (format!("udp port {}", 2000 + i), 16 * 1024)
            };
            let cfg = capture_config(Mode::Zbuf(ZbufStyle::Header), size, &filter, 65535);
            caps.push(Capture::open(sim, &cfg).map_err(|e| format!("opening #{i}: {e}"))?);
        }
        runs.push(Setup { n: *n, sim, iface, caps, rounds: 1, best: f64::MAX, delivered: 0 });
    }
    let mut next = 0usize;
    let mut round = |s: &mut Setup<'_>, rounds: usize| -> Result<Duration, String> {
        let t0 = Instant::now();
        let mut seen = 0u64;
        for _ in 0..rounds {
            let first = next;
            next = (next + burst) % frames.len();
            s.sim.receive_burst(
                s.iface,
                (0..burst).map(|k| frames[(first + k) % frames.len()].as_slice()),
            );
            loop {
                match s.caps[0].next_batch(|r| {
                    seen += u64::from(r.caplen != 0);
                }) {
                    Ok(0) | Err(Errno::EWOULDBLOCK) => break,
                    Ok(_) => {}
                    Err(e) => return Err(format!("draining: {e}")),
                }
            }
        }
        let elapsed = t0.elapsed();
        if seen != (rounds * burst) as u64 {
            return Err(format!("{} descriptors: saw {seen} of {}", s.n, rounds * burst));
        }
        s.delivered += seen;
        Ok(elapsed)
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
            let ns = t.as_secs_f64() * 1e9 / (rounds * burst) as f64;
            s.best = s.best.min(ns);
        }
    }
    // Every descriptor saw every packet; only the first matched any.
    for s in &runs {
        for (i, cap) in s.caps.iter().enumerate() {
            let st = cap.stats().map_err(|e| format!("BIOCGSTATS: {e}"))?;
            if u64::from(st.bs_recv) != s.delivered & 0xffff_ffff || st.bs_drop != 0 {
                return Err(format!(
                    "{} descriptors, #{i}: received {} of {}, dropped {}",
                    s.n, st.bs_recv, s.delivered, st.bs_drop
                ));
            }
            let d = s.sim.descriptor(cap.fd()).ok_or("descriptor gone")?;
            let matched = d.counters().matched.fetch();
            let want = if i == 0 { s.delivered } else { 0 };
            if matched != want {
                return Err(format!("{} descriptors, #{i}: matched {matched}, not {want}", s.n));
            }
        }
    }
    Ok(runs
        .iter()
        .map(|s| ScaleRow { descriptors: s.n, ns_per_packet: s.best, delivered: s.delivered })
        .collect())
}
