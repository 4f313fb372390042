//! zbpf's filter machine against libpcap's C `bpf_filter()` and, when it
//! was built (`crate::jitter`), FreeBSD's own amd64 JIT: the same compiled
//! programs over the same packets, in the same process, rounds
//! interleaved, the best round kept.

use std::hint::black_box;
use std::time::Instant;

use zbpf_bench::workload::{self, Filter, Mix};

use crate::jitter::{self, Jitter};

/// One program's result.
#[derive(Clone, Debug)]
pub struct FilterRow {
    /// Short label.
    pub label: &'static str,
    /// The expression.
    pub expr: String,
    /// Instructions libpcap emitted.
    pub insns: usize,
    /// Packets accepted (both machines agree on every verdict).
    pub accepted: usize,
    /// zbpf's interpreter, best ns per packet.
    pub zbpf_ns: f64,
    /// zbpf's native code (the engine's default), best ns per packet.
    pub jit_ns: Option<f64>,
    /// libpcap, best ns per packet.
    pub pcap_ns: f64,
    /// FreeBSD's bpf_jitter, best ns per packet (`None`: not built).
    pub jitter_ns: Option<f64>,
    /// Packets where bpf_jitter's verdict differed from zbpf's interpreter.
    pub jitter_mismatches: Option<usize>,
    /// Packets the native code left to the interpreter (`None`: no native
    /// code).
    pub fallbacks: Option<usize>,
}

impl FilterRow {
    /// The interpreter's time over libpcap's.
    pub fn interp_ratio(&self) -> f64 {
        self.zbpf_ns / self.pcap_ns
    }

    /// The native code's time over libpcap's.
    pub fn jit_ratio(&self) -> Option<f64> {
        self.jit_ns.map(|j| j / self.pcap_ns)
    }

    /// zbpf's native code's time over bpf_jitter's.
    pub fn jit_over_jitter(&self) -> Option<f64> {
        Some(self.jit_ns? / self.jitter_ns?)
    }

    /// What the engine runs by default (native code when there is some)
    /// over libpcap's time.
    pub fn ratio(&self) -> f64 {
        self.jit_ratio().unwrap_or_else(|| self.interp_ratio())
    }
}

/// The whole filter section.
pub struct FilterResult {
    /// Packets in the mix.
    pub packets: usize,
    /// Their captured bytes.
    pub bytes: usize,
    /// Trace files they came from.
    pub files: usize,
    /// Per program.
    pub rows: Vec<FilterRow>,
    /// The floor: best ns per packet of the same loop reading only each
    /// packet's EtherType, the least any real filter reads.
    pub floor_ns: f64,
    /// The FreeBSD source tree bpf_jitter was built from, or why it was
    /// not measured.
    pub jitter_source: Result<&'static str, String>,
}

impl FilterResult {
    /// Geometric means against FreeBSD's bpf_jitter: zbpf's native code's
    /// time over bpf_jitter's, over the programs zbpf compiles (the goal's
    /// figure), and what the engine runs by default (native code, else the
    /// interpreter: accept-all is a lone `ret #k` it answers without running
    /// anything) over bpf_jitter's, over every program.
    pub fn jitter_geomeans(&self) -> Option<(f64, f64)> {
        let jit: Vec<_> = self.rows.iter().filter_map(FilterRow::jit_over_jitter).collect();
        let default: Vec<_> = self
            .rows
            .iter()
            .filter_map(|r| Some(r.jit_ns.unwrap_or(r.zbpf_ns) / r.jitter_ns?))
            .collect();
        (!jit.is_empty())
            .then(|| (workload::geomean(jit.into_iter()), workload::geomean(default.into_iter())))
    }

    /// Geometric mean, over the programs that read the packet, of the
    /// native code's time over libpcap's once the floor is taken from both:
    /// what each machine adds to reading the packet at all.
    pub fn net_geomean(&self) -> Option<f64> {
        let nets: Vec<f64> = self
            .rows
            .iter()
            .filter_map(|r| {
                let (ours, theirs) = (r.jit_ns? - self.floor_ns, r.pcap_ns - self.floor_ns);
                (ours > 0.0 && theirs > 0.0).then(|| ours / theirs)
            })
            .collect();
        (!nets.is_empty()).then(|| workload::geomean(nets.into_iter()))
    }
}

/// One pass of `reps` repetitions over the mix, each packet given to `run`
/// (a machine, or the floor); monomorphised per caller, as the engine's
/// delivery loop calls its filter.
#[inline(never)]
fn pass(mix: &Mix, reps: usize, run: impl Fn(&[u8], u32) -> u64) -> u64 {
    let mut acc = 0u64;
    for _ in 0..reps {
        for (pkt, wirelen) in mix.iter() {
            acc = acc.wrapping_add(run(black_box(pkt), wirelen));
        }
    }
    acc
}

fn pass_zbpf(f: &Filter, mix: &Mix, reps: usize) -> u64 {
    pass(mix, reps, |p, w| u64::from(f.zbpf.run(p, w)))
}

fn pass_native(j: &zbpf::filter::Program, mix: &Mix, reps: usize) -> u64 {
    pass(mix, reps, |p, w| u64::from(j.run(p, w)))
}

fn pass_pcap(f: &Filter, mix: &Mix, reps: usize) -> u64 {
    pass(mix, reps, |p, w| u64::from(f.pcap.run(p, w)))
}

fn pass_jitter(j: &Jitter, mix: &Mix, reps: usize) -> u64 {
    pass(mix, reps, |p, w| u64::from(j.run(p, w)))
}

/// Packets of the mix where bpf_jitter's verdict is not zbpf's
/// interpreter's.
fn jitter_mismatches(f: &Filter, j: &Jitter, mix: &Mix) -> usize {
    mix.iter().filter(|&(p, w)| j.run(p, w) != f.zbpf.run(p, w)).count()
}

/// The floor: only each packet's EtherType is read.
fn pass_floor(mix: &Mix, reps: usize) -> u64 {
    pass(mix, reps, |p, w| {
        u64::from(p.get(12..14).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))) + u64::from(w)
    })
}

/// Nanoseconds per packet of one pass of `reps` repetitions.
fn time(f: impl FnOnce() -> u64, packets: usize) -> f64 {
    let t0 = Instant::now();
    black_box(f());
    t0.elapsed().as_secs_f64() * 1e9 / packets as f64
}

/// Runs the filter benchmark: `rounds` interleaved rounds, each pass at
/// least about `pass_ms` milliseconds. Fails if zbpf and libpcap disagree
/// on any packet; bpf_jitter's disagreements are counted, not fatal.
pub fn run(max_packets: usize, rounds: usize, pass_ms: f64) -> Result<FilterResult, String> {
    let mix = workload::ethernet_mix(max_packets)?;
    let filters = workload::filters()?;
    let jitters =
        filters.iter().map(|f| jitter::compile(&f.insns)).collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::new();
    for (f, j) in filters.iter().zip(&jitters) {
        let accepted = workload::agree(f, &mix)?;
        rows.push(FilterRow {
            label: f.label,
            expr: f.expr.clone(),
            insns: f.insns.len(),
            accepted,
            zbpf_ns: f64::MAX,
            jit_ns: f.jit.as_ref().map(|_| f64::MAX),
            pcap_ns: f64::MAX,
            jitter_ns: j.as_ref().map(|_| f64::MAX),
            jitter_mismatches: j.as_ref().map(|j| jitter_mismatches(f, j, &mix)),
            fallbacks: f
                .jit
                .as_ref()
                .map(|j| mix.iter().filter(|&(p, w)| j.interprets(p, w)).count()),
        });
    }
    // Size the passes on libpcap (usually the slower), after a warm-up.
    let mut reps = Vec::new();
    for f in &filters {
        black_box(pass_zbpf(f, &mix, 1));
        let ns = time(|| pass_pcap(f, &mix, 1), mix.len());
        let per_pass_ms = ns * mix.len() as f64 / 1e6;
        reps.push(((pass_ms / per_pass_ms.max(1e-6)).ceil() as usize).clamp(1, 10_000));
    }
    let mut floor_ns = f64::MAX;
    for round in 0..rounds {
        let floor_reps = reps.iter().copied().max().unwrap_or(1);
        floor_ns = floor_ns.min(time(|| pass_floor(&mix, floor_reps), mix.len() * floor_reps));
        for (i, f) in filters.iter().enumerate() {
            let n = mix.len() * reps[i];
            // Rotate which machine goes first.
            for k in 0..4 {
                match (round + k) % 4 {
                    0 => {
                        let t = time(|| pass_zbpf(f, &mix, reps[i]), n);
                        rows[i].zbpf_ns = rows[i].zbpf_ns.min(t);
                    }
                    1 => {
                        if let Some(j) = &f.jit {
                            let t = time(|| pass_native(j, &mix, reps[i]), n);
                            rows[i].jit_ns = rows[i].jit_ns.map(|b| b.min(t));
                        }
                    }
                    2 => {
                        let t = time(|| pass_pcap(f, &mix, reps[i]), n);
                        rows[i].pcap_ns = rows[i].pcap_ns.min(t);
                    }
                    _ => {
                        if let Some(j) = &jitters[i] {
                            let t = time(|| pass_jitter(j, &mix, reps[i]), n);
                            rows[i].jitter_ns = rows[i].jitter_ns.map(|b| b.min(t));
                        }
                    }
                }
            }
        }
    }
    Ok(FilterResult {
        packets: mix.len(),
        bytes: mix.bytes(),
        files: mix.files,
        rows,
        floor_ns,
        jitter_source: jitter::source().map_err(str::to_string),
    })
}
