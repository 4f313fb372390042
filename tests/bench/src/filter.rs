//! zbpf's filter machine against libpcap's C `bpf_filter()` and, when it
//! was built (`crate::jitter`), FreeBSD's own amd64 JIT: the same compiled
//! programs over the same packets, in the same process, rounds
//! interleaved, the best round kept.
//!
//! Code layout is a variable of such timings (where a loop or a function
//! falls against the 16- and 64-byte boundaries the processor fetches and
//! caches by). The two JITs are compared in layouts of their own: both
//! JITs' code copied to start [`LAYOUT_OFFSETS`] bytes into a page, each
//! called from the same measuring loop of machine code
//! ([`crate::driver`]) copied to [`LOOP_OFFSETS`], and each ratio is
//! reported per layout.

use std::hint::black_box;
use std::time::Instant;

use zbpf::filter::jit as zjit;
use zbpf_bench::workload::{self, Filter, Mix};

use crate::driver::{Callee, Driver, Slot};
use crate::jitter::{self, Code, Jitter};

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
    /// Per layout of [`layouts`]: best ns per packet of zbpf's native code
    /// and of bpf_jitter's, both copied there and called by the same loop
    /// (empty: no native code, or bpf_jitter not built).
    pub placed: Vec<(f64, f64)>,
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

    /// The same, both codes in layout `i` of [`layouts`].
    pub fn placed_ratio(&self, i: usize) -> Option<f64> {
        self.placed.get(i).map(|&(ours, theirs)| ours / theirs)
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

    /// zbpf's JIT / bpf_jitter per layout of [`layouts`] (geometric mean
    /// over the programs zbpf compiles). Empty without bpf_jitter.
    pub fn layout_geomeans(&self) -> Vec<(String, f64)> {
        let mut v = Vec::new();
        for (i, (code, lp)) in layouts().enumerate() {
            let ratios: Vec<f64> = self.rows.iter().filter_map(|r| r.placed_ratio(i)).collect();
            if !ratios.is_empty() {
                v.push((format!("code +{code}/loop +{lp}"), workload::geomean(ratios.into_iter())));
            }
        }
        v
    }

    /// The least and the greatest of [`layout_geomeans`](Self::layout_geomeans).
    pub fn layout_spread(&self) -> Option<(f64, f64)> {
        let g = self.layout_geomeans();
        let min = g.iter().map(|l| l.1).reduce(f64::min)?;
        let max = g.iter().map(|l| l.1).reduce(f64::max)?;
        Some((min, max))
    }

    /// Geometric mean, over the programs that read the packet, of the
    /// native code's time over libpcap's once the floor is taken from both:
    /// what each machine adds to reading the packet at all.
    pub fn net_geomean(&self) -> Option<f64> {
        self.net_over(|r| Some(r.pcap_ns))
    }

    /// The same, over another machine's time (`theirs`, per program).
    pub fn net_over(&self, theirs: impl Fn(&FilterRow) -> Option<f64>) -> Option<f64> {
        let nets: Vec<f64> = self
            .rows
            .iter()
            .filter_map(|r| {
                let (ours, theirs) = (r.jit_ns? - self.floor_ns, theirs(r)? - self.floor_ns);
                (ours > 0.0 && theirs > 0.0).then(|| ours / theirs)
            })
            .collect();
        (!nets.is_empty()).then(|| workload::geomean(nets.into_iter()))
    }
}

/// Where both JITs' code starts in the layouts: this many bytes into a
/// fresh page, which puts it at each 16-byte position of a 64-byte cache
/// line, and so in each half of the 32-byte windows the decoder and the
/// micro-op cache work in. Offset 0 is where each JIT puts its own code
/// (zbpf at a cache line's start, bpf_jitter at a page's).
pub const LAYOUT_OFFSETS: [usize; 4] = [0, 16, 32, 48];

/// Where the measuring loop ([`crate::driver`]) starts in its page, for
/// every code offset: its per-packet loop in either half of a cache line.
pub const LOOP_OFFSETS: [usize; 2] = [0, 32];

/// The layouts: (code offset, loop offset).
pub fn layouts() -> impl Iterator<Item = (usize, usize)> {
    LAYOUT_OFFSETS.iter().flat_map(|&code| LOOP_OFFSETS.iter().map(move |&lp| (code, lp)))
}

/// One program's two JITs in one layout, each with its loop.
struct Placed {
    ours: Code,
    our_loop: Driver,
    theirs: Jitter,
    their_loop: Driver,
}

impl Placed {
    /// The sum of zbpf's answers over `reps` passes of `slots`.
    fn ours(&self, slots: &[Slot], reps: usize) -> u64 {
        // SAFETY: `ours` is zbpf's code for a validated program, of the
        // loop's callee kind; the slots are the mix's live packets.
        unsafe { self.our_loop.drive(slots, reps, self.ours.start()) }
    }

    /// The same for bpf_jitter's.
    fn theirs(&self, slots: &[Slot], reps: usize) -> u64 {
        // SAFETY: as above, for bpf_jitter's code of the same program.
        unsafe { self.their_loop.drive(slots, reps, self.theirs.entry()) }
    }
}

/// Both JITs' code for `f` in every layout of [`layouts`], each copy
/// checked, through its loop, to give the interpreter's verdict (zbpf) or
/// its original's (bpf_jitter) on every packet of the mix (empty: no
/// native code, or bpf_jitter not built).
fn placed(f: &Filter, j: Option<&Jitter>, mix: &Mix) -> Result<Vec<Placed>, String> {
    let (Some(native), Some(j)) = (&f.jit, j) else {
        return Ok(Vec::new());
    };
    // Scratch memory: the loop gives it as the engine does.
    let mem = native.dispatchable().is_none();
    let compiled = zjit::compile(&f.insns);
    let body = &compiled.code[compiled.entry..];
    let mut all = Vec::new();
    for (code, lp) in layouts() {
        let p = Placed {
            ours: Code::place(body, code)?,
            our_loop: Driver::new(Callee::Zbpf { mem }, lp)?,
            theirs: j.placed(code)?,
            their_loop: Driver::new(Callee::Jitter, lp)?,
        };
        for (i, (pkt, w)) in mix.iter().enumerate() {
            let slot = [Slot::new(pkt, w)];
            // bpf_jitter's own code agreed with the interpreter here or
            // was counted; its copy must give what its own code gives.
            let (want, want_theirs) = (f.zbpf.run(pkt, w), j.run(pkt, w));
            if p.ours(&slot, 1) != u64::from(want) || p.theirs(&slot, 1) != u64::from(want_theirs) {
                return Err(format!(
                    "{:?}: packet {i}: a JIT's code at +{code} B, called from the loop at \
                     +{lp} B, answers otherwise",
                    f.expr
                ));
            }
        }
        all.push(p);
    }
    Ok(all)
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
    let placed = filters
        .iter()
        .zip(&jitters)
        .map(|(f, j)| placed(f, j.as_ref(), &mix))
        .collect::<Result<Vec<_>, _>>()?;
    let slots: Vec<Slot> = mix.iter().map(|(p, w)| Slot::new(p, w)).collect();
    let mut rows = Vec::new();
    for ((f, j), placed) in filters.iter().zip(&jitters).zip(&placed) {
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
            placed: vec![(f64::MAX, f64::MAX); placed.len()],
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
            // Rotate which machine goes first; the layouts follow.
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
            for (l, p) in placed[i].iter().enumerate() {
                let (mut a, mut b) = (f64::MAX, f64::MAX);
                // Alternate which of the two goes first.
                for k in 0..2 {
                    if (round + k) % 2 == 0 {
                        a = time(|| p.ours(&slots, reps[i]), n);
                    } else {
                        b = time(|| p.theirs(&slots, reps[i]), n);
                    }
                }
                let best = &mut rows[i].placed[l];
                *best = (best.0.min(a), best.1.min(b));
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
