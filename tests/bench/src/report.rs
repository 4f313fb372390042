//! The Markdown report: the machine, the one command, every table, the
//! goals with PASS or MISS, the cache-simulation counters and what they
//! mean, and the key ratios again at the end.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::capture::{Consumer, Pipe, Row};
use crate::filter::FilterResult;
use crate::memory::MemoryRow;
use crate::scale::{DispatchRow, ScaleRow};
use zbpf_bench::workload::geomean;

/// The machine the figures come from.
#[derive(Clone, Debug)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Logical processors.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// libpcap's version string.
    pub libpcap: String,
    /// UTC date and time of the run.
    pub date: String,
    /// /proc/loadavg at the start and at the end.
    pub load: (String, String),
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

/// The one-minute load average now.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl Machine {
    /// Reads the machine's description.
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".to_string(), |s| s.trim().to_string());
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()
            .max(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |s| first_line(&s));
        let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or_else(|| "unknown".into(), |o| first_line(&String::from_utf8_lossy(&o.stdout)));
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let (y, m, d) = civil(secs.div_euclid(86_400));
        let t = secs.rem_euclid(86_400);
        let date =
            format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", t / 3600, t / 60 % 60, t % 60);
        Machine {
            cpu,
            cores,
            kernel,
            rustc,
            libpcap: zbpf::hosted::libpcap::version(),
            date,
            load: (loadavg(), String::new()),
        }
    }
}

/// One callgrind run (from scripts/bench-cachesim.sh): a consumer, or a
/// count of descriptors.
#[derive(Clone, Debug)]
pub struct CacheRow {
    /// "walk", "checksum", or "scale".
    pub consumer: String,
    /// "buffer", "zbuf" or "memcpy"; for "scale", the descriptors.
    pub mode: String,
    /// Packets in the collected part of the run.
    pub packets: f64,
    /// Instructions.
    pub ir: f64,
    /// Data reads.
    pub dr: f64,
    /// Data writes.
    pub dw: f64,
    /// First-level data cache read and write misses.
    pub d1: f64,
    /// Last-level data cache read and write misses.
    pub ll: f64,
    /// First-level instruction cache misses.
    pub i1: f64,
}

/// One counter of a [`CacheRow`].
type Field = fn(&CacheRow) -> f64;

impl CacheRow {
    fn per(&self, v: f64) -> f64 {
        v / self.packets.max(1.0)
    }
}

/// Reads the cache-simulation table: a header line, then tab-separated
/// `consumer mode packets Ir Dr Dw D1mr D1mw DLmr DLmw I1mr ILmr`.
pub fn read_cachesim(path: &Path) -> Result<Vec<CacheRow>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let num = |i: usize| -> Result<f64, String> {
            f.get(i)
                .and_then(|s| s.trim().parse::<f64>().ok())
                .ok_or_else(|| format!("{}: bad line {line:?}", path.display()))
        };
        rows.push(CacheRow {
            consumer: f[0].to_string(),
            mode: f.get(1).unwrap_or(&"").to_string(),
            packets: num(2)?,
            ir: num(3)?,
            dr: num(4)?,
            dw: num(5)?,
            d1: num(6)? + num(7)?,
            ll: num(8)? + num(9)?,
            i1: num(10)?,
        });
    }
    Ok(rows)
}

/// Everything measured.
pub struct Results {
    /// The machine.
    pub machine: Machine,
    /// The command that reproduces the report.
    pub command: String,
    /// A smoke run (figures meaningless).
    pub smoke: bool,
    /// Samples per configuration of the capture, consumer and scale runs.
    pub samples: usize,
    /// Section 1.
    pub filter: Option<FilterResult>,
    /// Section 2.
    pub capture: Option<Vec<Row>>,
    /// Section 2: ns per read of the full-precision clock.
    pub clock_ns: Option<f64>,
    /// Where a ZBUF capture's time goes, rung by rung.
    pub parts: Option<Vec<crate::parts::PartRow>>,
    /// Section 3.
    pub consumers: Option<Vec<Row>>,
    /// Section 3's counters.
    pub cachesim: Option<Result<Vec<CacheRow>, String>>,
    /// Section 4, filters as native code (the engine's default).
    pub scale: Option<Vec<ScaleRow>>,
    /// Section 4, filters interpreted (`jit_enable` off).
    pub scale_interp: Option<Vec<ScaleRow>>,
    /// Section 4, the native filter calls alone.
    pub scale_dispatch: Option<Vec<DispatchRow>>,
    /// Section 5.
    pub memory: Option<Vec<MemoryRow>>,
    /// The plot's file name, if it was drawn.
    pub plot: Option<String>,
    /// Why the plot was not drawn.
    pub plot_error: Option<String>,
}

/// A goal and whether it is met.
pub struct Goal {
    /// What it asks.
    pub what: String,
    /// What was measured.
    pub got: String,
    /// Met.
    pub pass: bool,
}

fn find(rows: &[Row], size: usize, snaplen: u32, pipe: Pipe, fast: bool) -> Option<&Row> {
    rows.iter().find(|r| {
        r.spec.size == size
            && r.spec.snaplen == snaplen
            && r.spec.pipe == pipe
            && (pipe == Pipe::Memcpy || r.spec.fast_ts == fast)
    })
}

fn consumer_row(rows: &[Row], c: Consumer, pipe: Pipe) -> Option<&Row> {
    rows.iter().find(|r| r.spec.consumer == c && r.spec.pipe == pipe)
}

fn pass(b: bool) -> &'static str {
    if b {
        "**PASS**"
    } else {
        "**MISS**"
    }
}

impl Results {
    /// The geometric mean of zbpf's time over libpcap's.
    pub fn filter_geomean(&self) -> Option<f64> {
        self.filter.as_ref().map(|f| geomean(f.rows.iter().map(|r| r.ratio())))
    }

    /// The marginal cost of each descriptor past the first, per count.
    pub fn scale_marginal(&self) -> Vec<(usize, f64)> {
        marginal(self.scale.as_deref())
    }
}

/// The marginal cost of each descriptor past the first, per count.
pub fn marginal(rows: Option<&[ScaleRow]>) -> Vec<(usize, f64)> {
    {
        let Some(rows) = rows else { return Vec::new() };
        let Some(base) = rows.first() else { return Vec::new() };
        rows.iter()
            .skip(1)
            .map(|r| {
                let d = (r.descriptors - base.descriptors).max(1) as f64;
                (r.descriptors, (r.ns_per_packet - base.ns_per_packet) / d)
            })
            .collect()
    }
}

impl Results {
    /// Every goal of the issue that the sections run can judge.
    pub fn goals(&self) -> Vec<Goal> {
        let mut g = Vec::new();
        if let Some(f) = &self.filter {
            let gm = geomean(f.rows.iter().map(|r| r.ratio()));
            let worst = f.rows.iter().map(|r| r.ratio()).fold(0.0, f64::max);
            g.push(Goal {
                what: "filter: zbpf ≤ 0.5× libpcap's time (engine default, native code; \
                       geometric mean over the programs)"
                    .into(),
                got: format!("{gm:.2}× (worst program {worst:.2}×)"),
                pass: gm <= 0.5,
            });
            let jit: Vec<f64> = f.rows.iter().filter_map(|r| r.jit_ratio()).collect();
            if !jit.is_empty() {
                let gj = geomean(jit.into_iter());
                g.push(Goal {
                    what: "filter: zbpf's JIT ≤ 0.25× libpcap's time (geometric mean over the \
                           programs zbpf compiles)"
                        .into(),
                    got: format!("{gj:.2}×"),
                    pass: gj <= 0.25,
                });
            }
            if let Some((lo, hi)) = f.layout_spread() {
                let layouts = f.layout_geomeans();
                g.push(Goal {
                    what: "filter: zbpf's JIT ≤ 0.7× FreeBSD bpf_jitter's time (geometric mean \
                           over the programs zbpf compiles) in every code layout measured"
                        .into(),
                    got: format!("{lo:.2}× to {hi:.2}× over {} layouts", layouts.len()),
                    pass: layouts.iter().all(|l| l.1 <= 0.7),
                });
            }
        }
        if let Some(rows) = &self.capture {
            let b = find(rows, 1500, 65535, Pipe::Buffer, false);
            let z = find(rows, 1500, 65535, Pipe::Zbuf, false);
            let m = find(rows, 1500, 65535, Pipe::Memcpy, false);
            if let (Some(b), Some(z)) = (b, z) {
                let r = z.mpps() / b.mpps();
                g.push(Goal {
                    what: "capture: ZBUF ≥ 1.5× BUFFER at 1500 B (snaplen 65535)".into(),
                    got: format!("{r:.2}×"),
                    pass: r >= 1.5,
                });
            }
            if let (Some(m), Some(z)) = (m, z) {
                let r = z.mpps() / m.mpps();
                g.push(Goal {
                    what: "capture: ZBUF ≥ 0.8× the memcpy baseline at 1500 B (snaplen 65535)"
                        .into(),
                    got: format!("{r:.2}×"),
                    pass: r >= 0.8,
                });
            }
            let zf = find(rows, 1500, 65535, Pipe::Zbuf, true);
            if let (Some(m), Some(z)) = (m, zf) {
                let r = z.mpps() / m.mpps();
                g.push(Goal {
                    what: "capture: ZBUF with BPF_T_FAST ≥ 0.7× the memcpy baseline at 1500 B \
                           (snaplen 65535)"
                        .into(),
                    got: format!("{r:.2}×"),
                    pass: r >= 0.7,
                });
            }
            if let Some(z) = find(rows, 64, 96, Pipe::Zbuf, false) {
                g.push(Goal {
                    what: "capture: ≥ 15 Mpps at 64 B, snaplen 96, default timestamps (ZBUF)"
                        .into(),
                    got: format!("{:.2} Mpps ({:.0} ns/packet)", z.mpps(), z.best.ns_per_packet()),
                    pass: z.mpps() >= 15.0,
                });
            }
            if let Some(z) = find(rows, 64, 96, Pipe::Zbuf, true) {
                g.push(Goal {
                    what: "capture: ≥ 25 Mpps at 64 B, snaplen 96, BPF_T_FAST (ZBUF)".into(),
                    got: format!("{:.2} Mpps ({:.0} ns/packet)", z.mpps(), z.best.ns_per_packet()),
                    pass: z.mpps() >= 25.0,
                });
            }
            let worst = rows.iter().map(Row::deliver_allocs_per_packet).fold(0.0, f64::max);
            g.push(Goal {
                what: "memory: zero allocations per packet on the capture path".into(),
                got: format!("{worst} per packet (worst configuration)"),
                pass: worst == 0.0,
            });
        }
        let marginal = self.scale_marginal();
        if let (Some(first), Some(last)) = (marginal.first(), marginal.last()) {
            if marginal.len() >= 2 {
                let r = last.1 / first.1;
                g.push(Goal {
                    what: format!(
                        "scale: flat cost per added descriptor ({} vs {} descriptors, within 1.25×)",
                        last.0, first.0
                    ),
                    got: format!("{:.1} vs {:.1} ns ({r:.2}×)", last.1, first.1),
                    pass: r <= 1.25,
                });
            }
        }
        g
    }

    /// The report.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(s, "# zbpf benchmarks\n");
        if self.smoke {
            let _ = writeln!(
                s,
                "> **Smoke run**: a few packets per configuration, to check that the suite \
                 runs. The figures below mean nothing.\n"
            );
        }
        let _ = writeln!(
            s,
            "Reproduce with one command from the top of the repository:\n\n```sh\n{}\n```\n",
            self.command
        );
        let _ = writeln!(
            s,
            "It builds the suite (package `zbpf-bench`, `tests/bench`) in release mode, \
             runs the callgrind cache simulation (`scripts/bench-cachesim.sh`), runs every \
             benchmark, and writes this file and `benchmarks.png`. Everything runs in the \
             userspace simulator (feature `hosted`): the same engine as the kernel module, on \
             simulated interfaces, one thread.\n"
        );
        let _ = writeln!(s, "| machine | |\n| --- | --- |");
        let _ = writeln!(s, "| CPU | {} |", m.cpu);
        let _ = writeln!(s, "| logical cores | {} |", m.cores);
        let _ = writeln!(s, "| kernel | Linux {} |", m.kernel);
        let _ = writeln!(s, "| compiler | {} |", m.rustc);
        let _ = writeln!(s, "| libpcap | {} |", m.libpcap);
        let _ = writeln!(s, "| date | {} |", m.date);
        let _ = writeln!(
            s,
            "| load average (1, 5, 15 min) at start / end | {} / {} |\n",
            m.load.0, m.load.1
        );
        let _ = writeln!(
            s,
            "Every time is the best of several samples (filter: 9 rounds; capture path, \
             consumers and scale: {} samples of about 150 ms per configuration), the \
             configurations interleaved, so that other work on the machine spreads over all \
             of them. A load average near or above the number of cores means the machine was \
             busy and the figures are noisy.\n",
            self.samples
        );

        // Goals.
        let goals = self.goals();
        if !goals.is_empty() {
            let _ = writeln!(s, "## Goals\n\n| goal | measured | |\n| --- | --- | --- |");
            for g in &goals {
                let _ = writeln!(s, "| {} | {} | {} |", g.what, g.got, pass(g.pass));
            }
            let _ = writeln!(s);
        }
        if let Some(plot) = &self.plot {
            let _ = writeln!(s, "![the four benchmarks]({plot})\n");
        } else if let Some(e) = &self.plot_error {
            let _ = writeln!(s, "(No plot: {e}.)\n");
        }

        if let Some(f) = &self.filter {
            self.filter_section(&mut s, f);
        }
        if let Some(rows) = &self.capture {
            Self::capture_section(&mut s, rows);
            if let Some(why) = self.memcpy_explanation(rows) {
                let _ = writeln!(s, "{why}\n");
            }
            if let Some(parts) = &self.parts {
                let _ = writeln!(s, "{}", crate::parts::markdown(parts));
            }
        }
        if let Some(rows) = &self.consumers {
            self.consumer_section(&mut s, rows);
        }
        if let Some(rows) = &self.scale {
            self.scale_section(&mut s, rows);
        }
        if let Some(rows) = &self.memory {
            self.memory_section(&mut s, rows);
        }
        let _ = writeln!(s, "## Closing note: the key ratios\n");
        for line in self.key_ratios() {
            let _ = writeln!(s, "- {line}");
        }
        s
    }

    fn filter_section(&self, s: &mut String, f: &FilterResult) {
        let _ = writeln!(s, "## 1. Filter: zbpf against libpcap's `bpf_filter()`\n");
        let _ = writeln!(
            s,
            "{} programs compiled by libpcap (`pcap_compile`, optimised, Ethernet, snap length \
             262144) run over {} Ethernet packets ({} bytes) from {} traces of \
             `tests/data/pcap/`, in the same process, each packet in turn: zbpf's interpreter \
             (`Program::new(..).run`), zbpf's native code (the program as the engine makes it \
             by default, `Bpf::program`: JIT-compiled when `jit_enable` is on), and libpcap's \
             C `bpf_filter()` through `PcapFilter::run` (validated once, no per-call \
             overhead). All three gave the same verdict on every packet. Beside them, when a \
             FreeBSD source tree was at hand at build time, FreeBSD's own amd64 BPF JIT \
             (`bpf_jitter()`, sys/net/bpf_jitter.c and sys/amd64/amd64/bpf_jit_machdep.c, \
             built for userland by `tests/bench/build.rs`), its compiled function called \
             directly as bpf(4) calls it. Time per packet, best of the rounds, the machines' \
             order rotated each round.\n",
            f.rows.len(),
            f.packets,
            f.bytes,
            f.files
        );
        let _ = writeln!(
            s,
            "| program | expression | insns | accepted | interpreter ns | JIT ns | FreeBSD \
             bpf_jitter ns | libpcap ns | interpreter / libpcap | JIT / libpcap | JIT / \
             bpf_jitter | interpreter fallbacks | bpf_jitter ≠ interpreter |\n| --- | --- | ---: \
             | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for r in &f.rows {
            let expr = if r.expr.is_empty() { "(empty)".to_string() } else { r.expr.clone() };
            let expr = if expr.len() > 60 { format!("{}…", &expr[..57]) } else { expr };
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {} | {:.2} | {} | {} | {:.2} | {:.2}× | {} | {} | {} | {} |",
                r.label,
                expr,
                r.insns,
                r.accepted,
                r.zbpf_ns,
                r.jit_ns.map_or("–".into(), |v| format!("{v:.2}")),
                r.jitter_ns.map_or("–".into(), |v| format!("{v:.2}")),
                r.pcap_ns,
                r.interp_ratio(),
                r.jit_ratio().map_or("–".into(), |v| format!("{v:.2}×")),
                r.jit_over_jitter().map_or("–".into(), |v| format!("{v:.2}×")),
                r.fallbacks.map_or("–".into(), |n| n.to_string()),
                r.jitter_mismatches.map_or("–".into(), |n| n.to_string())
            );
        }
        let _ = writeln!(
            s,
            "\nInterpreter fallbacks: packets of the mix the native code left to the \
             interpreter (`Program::interprets`). A head shorter than the program's furthest \
             constant-offset load runs a checked copy of the program in native code, which \
             rejects at the first load past the packet's end as FreeBSD's filter does; only a \
             segmented packet whose load passes its first segment still goes to the \
             interpreter. Before the checked copy (one bounds check, else the interpreter; \
             measured once at commit 466c700, `zbpf-bench --only filter`), the same mix gave 651 (`tcp`), 661 (`port 80`), 189, 253, 5, 3, 661, 97, 96, 661 \
             and 639 (`HTTP GET`) fallbacks."
        );
        let _ = writeln!(s, "\n{}", Self::jitter_summary(f));
        let gi = geomean(f.rows.iter().map(|r| r.interp_ratio()));
        let _ = writeln!(
            s,
            "\nGeometric mean over the programs: interpreter / libpcap **{gi:.2}×**, what the \
             engine runs by default / libpcap **{:.2}×** (goal ≤ 0.5×). Accept-all is one \
             `ret #k`, which zbpf answers before running anything.\n",
            self.filter_geomean().unwrap_or(f64::NAN)
        );
        let _ = writeln!(
            s,
            "{} the same loop reading only each packet's EtherType (two \
             bytes, the least any real filter reads) and running no filter takes **{:.2} ns** \
             per packet: walking {} packets and fetching the first bytes of each from memory. \
             Every program above pays it, on both sides. Taken from both times, the native \
             code's time over libpcap's is **{:.2}×** (geometric mean over the programs that \
             read the packet: accept-all reads nothing). So what zbpf adds to reading the \
             packet is that fraction of what libpcap adds; the ratio of whole times cannot go \
             much below (floor + zbpf's part) / (floor + libpcap's part).\n",
            if self.filter_geomean().is_some_and(|g| g <= 0.5) {
                "What every filter pays before its own work:"
            } else {
                "Why the goal is missed:"
            },
            f.floor_ns,
            f.packets,
            f.net_geomean().unwrap_or(f64::NAN)
        );
    }

    /// FreeBSD's bpf_jitter against zbpf: the ratios and the verdicts, or
    /// why it was not measured.
    fn jitter_summary(f: &FilterResult) -> String {
        let src = match &f.jitter_source {
            Ok(src) => src,
            Err(why) => {
                return format!(
                    "FreeBSD's bpf_jitter: **not measured** ({why}). Build with a FreeBSD \
                     source tree to measure it: `ZBPF_FREEBSD_SRC=DIR`, `/usr/src` on \
                     FreeBSD, or the four files fetched under `target/freebsd-jitter/src` \
                     (never committed)."
                );
            }
        };
        let Some((jit, default)) = f.jitter_geomeans() else {
            return format!("FreeBSD's bpf_jitter (from `{src}`): no program to compare.");
        };
        let mismatches: usize = f.rows.iter().filter_map(|r| r.jitter_mismatches).sum();
        let layouts = f.layout_geomeans();
        let (lo, hi) = f.layout_spread().unwrap_or((jit, jit));
        let per_layout: Vec<String> =
            layouts.iter().map(|(name, g)| format!("{name} {g:.2}×")).collect();
        let floor = f.floor_ns;
        let net = f.net_over(|r| r.jitter_ns).map_or("–".to_string(), |n| format!("{n:.2}×"));
        format!(
            "FreeBSD's bpf_jitter, built from `{src}`: in the table, zbpf's JIT / bpf_jitter \
             **{jit:.2}×** (geometric mean over the {} programs zbpf compiles), what the \
             engine runs by default / bpf_jitter **{default:.2}×** over all {} programs. The \
             table times every machine in the same Rust loop, but each machine in an \
             instance of its own, which the compiler places where it will: the two JITs' \
             ratio there moved from 0.75× to 0.88× between two builds of the benchmark that \
             differed in one unrelated function (2026-12-06), without a byte of either JIT \
             changing. So the goal is measured with the layout under control.\n\n\
             Code layout (where code falls against the 16-, 32- and 64-byte boundaries the \
             processor fetches, decodes and caches by): both JITs' code copied to start 0, \
             16, 32 and 48 bytes into a fresh page (`LAYOUT_OFFSETS` in \
             tests/bench/src/filter.rs; 0 is where each JIT puts its own code), each called \
             by the same measuring loop, machine code of the benchmark's own \
             (tests/bench/src/driver.rs: the same bytes for both but for the call's \
             arguments), itself copied to \
             start 0 and 32 bytes into its page (`LOOP_OFFSETS`): {} layouts, the two JITs \
             interleaved each round, every copy checked through its loop against the \
             verdict of its original on every packet. zbpf's JIT / bpf_jitter per layout \
             (code/loop offsets): {}; spread **{lo:.2}× to {hi:.2}×** (goal ≤ 0.7× in every \
             layout: {}).\n\n\
             What the two run per load: bpf_jitter zeroes A (byte and halfword), moves the \
             offset into a register, compares it with the captured length and then the \
             bytes left with the load's size, branching over an early `ret` (a taken branch \
             per load), copies the packet pointer, loads, and swaps the bytes (`xchg al,ah`, \
             `bswap`): six instructions for a byte, ten for a word, eleven for a halfword \
             (sys/amd64/amd64/bpf_jit_machdep.c). zbpf's JIT checks \
             every constant-offset load once on entry (a head too short runs a second copy \
             of the program that checks each load, one compare and branch), so a load is \
             one instruction, `movzx eax, word [rdi+k]`; a value that is only tested by \
             `jeq #k` or `jset #k`, or masked by `and #k` first, stays in the packet's byte \
             order and those take the constant swapped at compile time, so there is no \
             swap either (also where libpcap joins two loads of one size at one compare, \
             as the port tests' IPv4 and IPv6 paths); a jump to a `ret` is the `ret` \
             itself, and a test whose two ways both return a constant is a `cmov` with no \
             branch to mispredict (`ip6`, `tcp`: their last test); A and X are zeroed only \
             when a run may read them unset; and a run of \
             eight or more `jeq #k` to one place (`16-port chain`: four runs of 15 and 16) \
             is one lookup, a multiplicative hash of A indexing a table of the run's \
             constants, five instructions in place of a compare and branch per constant. \
             Fewer instructions and no \
             taken branch per load are what make zbpf faster, more so the more loads a \
             program runs. The rest of each packet's time in the table is the same for \
             both: the loop reading the packet (the floor below, {floor:.2} ns) and an \
             indirect call and \
             return. Net of the floor, zbpf's JIT / bpf_jitter is **{net}** (geometric \
             mean).\n\n\
             The two other classic-BPF JITs, per load (read in their sources, not \
             measured here). NetBSD's bpfjit (sys/net/bpfjit.c, through sljit) checks the \
             length once per straight stretch of loads, against the furthest byte the \
             stretch reads. Linux first rewrites the program as eBPF \
             (`bpf_convert_filter`, net/core/filter.c; its JIT, arch/x86/net/bpf_jit_comp.c, \
             then translates eBPF instruction by instruction): each constant-offset load \
             becomes a copy of the head length, a subtraction of the offset, a compare and \
             branch to a helper call (`bpf_skb_load_helper_8/16/32`) for a load past the \
             head, the load and a byte swap (`convert_bpf_ld_abs`), and every `ld [x + k]` \
             calls the helper; its prologue saves the callee-saved registers eBPF's are \
             mapped to. zbpf does what NetBSD does for the whole program at once: one check \
             on entry covers every constant-offset load, because a short head takes the \
             checked copy instead of a branch at each load.\n\n\
             bpf_jitter's verdict differed from zbpf's interpreter's on **{mismatches}** \
             (program, packet) pairs (column `bpf_jitter ≠ interpreter`). FreeBSD's known \
             difference, scratch memory the JIT does not zero (its regression test 0080), \
             cannot show here: libpcap's programs store a scratch word before loading it.",
            f.rows.iter().filter(|r| r.jit_over_jitter().is_some()).count(),
            f.rows.len(),
            layouts.len(),
            per_layout.join(", "),
            if layouts.iter().all(|l| l.1 <= 0.7) { "met" } else { "missed" },
        )
    }

    fn capture_section(s: &mut String, rows: &[Row]) {
        let _ = writeln!(s, "## 2. Capture path, one thread\n");
        let _ = writeln!(
            s,
            "Generated UDP frames (`traffic::fixed`) received by a simulated Ethernet \
             interface in bursts (`Sim::receive_burst`: a driver's m_nextpkt list, which the \
             engine takes 8 packets per hold of the reader's lock), through the tap, the \
             accept-all filter \
             (libpcap's `ret #snaplen`), the capture into the store buffer and the rotations, \
             then drained by the consumer, which walks the record headers; repeat. Two buffers \
             of 512 KiB; each burst is one and a half buffers' worth, so every round rotates \
             while capturing and again when drained, and nothing is dropped (checked against \
             BIOCGSTATS). BUFFER: non-blocking read(2), which copies the held buffer out. \
             ZBUF: records read in place in the shared buffers, acknowledged through the \
             shared header, BIOCROTZBUF for the partly filled buffer. memcpy: the baseline, \
             one copy of the same captured bytes behind a 26-byte header with the lengths \
             (no timestamp, no filter, no lock) into two plain buffers, walked the same way. \
             GB/s counts captured bytes.\n"
        );
        let _ = writeln!(
            s,
            "| frame | snaplen | mode | timestamps | Mpps | ns/packet | GB/s | vs BUFFER | vs \
             memcpy | allocs/packet (delivery) |\n| ---: | ---: | --- | --- | ---: | ---: | ---: \
             | ---: | ---: | ---: |"
        );
        for r in rows {
            let b = find(rows, r.spec.size, r.spec.snaplen, Pipe::Buffer, r.spec.fast_ts);
            let m = find(rows, r.spec.size, r.spec.snaplen, Pipe::Memcpy, false);
            let vs =
                |o: Option<&Row>| o.map_or("".into(), |o| format!("{:.2}×", r.mpps() / o.mpps()));
            let _ = writeln!(
                s,
                "| {} B | {} | {} | {} | {:.2} | {:.1} | {:.2} | {} | {} | {} |",
                r.spec.size,
                r.spec.snaplen,
                r.spec.pipe.name(),
                r.spec.ts_name(),
                r.mpps(),
                r.best.ns_per_packet(),
                r.gbps(),
                if r.spec.pipe == Pipe::Buffer { String::new() } else { vs(b) },
                if r.spec.pipe == Pipe::Memcpy { String::new() } else { vs(m) },
                if r.spec.pipe == Pipe::Memcpy {
                    String::new()
                } else {
                    format!("{}", r.deliver_allocs_per_packet())
                },
            );
        }
        let worst_loop = rows.iter().map(Row::loop_allocs_per_packet).fold(0.0, f64::max);
        let _ = writeln!(
            s,
            "\nAllocations are counted by the bench's global allocator on the measuring thread \
             over every sample: during delivery (tap, filter, capture, rotation) and over the \
             whole loop, consumer included. The whole loop's worst is {worst_loop:.5} per \
             packet: the consumer's calls into the simulator, whose ioctl layer allocates \
             each call's argument, a few calls per round of hundreds of packets.\n"
        );
    }

    /// Why ZBUF stays below 0.8× the memcpy baseline at 1500 B, from the
    /// figures of section 2; `None` when one is missing.
    fn memcpy_explanation(&self, rows: &[Row]) -> Option<String> {
        let clock = self.clock_ns?;
        let ns =
            |size, pipe, fast| find(rows, size, 65535, pipe, fast).map(|r| r.best.ns_per_packet());
        let m1500 = ns(1500, Pipe::Memcpy, false)?;
        let m64 = ns(64, Pipe::Memcpy, false)?;
        let z1500 = ns(1500, Pipe::Zbuf, false)?;
        let z64 = ns(64, Pipe::Zbuf, false)?;
        let z64_fast = ns(64, Pipe::Zbuf, true)?;
        let budget = m1500 / 0.8;
        let beside = budget - (m1500 - m64);
        let verdict = if clock >= beside {
            format!(
                "The budget beside the copy, {beside:.1} ns, is smaller than the default \
                 timestamp's clock read alone: out of reach for any capture that timestamps \
                 each packet this precisely, not only for zbpf."
            )
        } else if z64 >= beside {
            format!("The budget beside the copy, {beside:.1} ns, is smaller than that fixed cost.")
        } else {
            format!(
                "The budget beside the copy, {beside:.1} ns, exceeds that fixed cost here, so \
                 the miss lies in ZBUF's copy of the large packet."
            )
        };
        Some(format!(
            "**Why ZBUF stays below 0.8× the memcpy baseline at 1500 B.** The baseline takes \
             {m1500:.1} ns per 1500-byte packet, so 0.8× its rate leaves zbpf {budget:.1} ns. \
             The copy: the baseline's time grows by {:.1} ns from 64 to 1500 bytes, ZBUF's by \
             {:.1} ns. The rest of a capture, which the baseline does not do (the tap, the \
             filter, the lock, the record header, the timestamp, the rotation, the \
             generation protocol), shows at 64 bytes, where the copy is small: ZBUF takes \
             {z64:.1} ns per packet with the default timestamps and {z64_fast:.1} ns with \
             BPF_T_FAST, the baseline {m64:.1} ns. The default timestamp's clock read (the \
             platform's `uptime()`, binuptime in the kernel) takes {clock:.1} ns by itself \
             here. {verdict}",
            m1500 - m64,
            z1500 - z64,
        ))
    }

    fn consumer_section(&self, s: &mut String, rows: &[Row]) {
        let _ = writeln!(s, "## 3. The two consumers of the Zero-Copy BPF slides\n");
        let _ = writeln!(
            s,
            "In 2007, ZBUF won a buffer-traversal benchmark (walk the headers) and lost a \
             memory-scanning one (touch every byte); the authors suspected scatter-gather copy \
             overhead and displaced cache misses. Here both consumers run in both modes and \
             over the baseline, on full 1500-byte frames (snaplen 65535, default timestamps). \
             \"checksum every byte\" is RFC 1071's 16-bit ones'-complement sum over each \
             captured packet.\n"
        );
        let _ = writeln!(
            s,
            "| consumer | BUFFER Mpps | ZBUF Mpps | memcpy Mpps | ZBUF / BUFFER | ZBUF / memcpy \
             |\n| --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for c in [Consumer::Walk, Consumer::Checksum] {
            let get = |p| consumer_row(rows, c, p).map_or(f64::NAN, Row::mpps);
            let (b, z, m) = (get(Pipe::Buffer), get(Pipe::Zbuf), get(Pipe::Memcpy));
            let _ = writeln!(
                s,
                "| {} | {b:.3} | {z:.3} | {m:.3} | {:.2}× | {:.2}× |",
                c.name(),
                z / b,
                z / m
            );
        }
        let _ = writeln!(s);
        match &self.cachesim {
            None => {
                let _ = writeln!(
                    s,
                    "(No cache simulation: run through `make bench`, which runs \
                     `scripts/bench-cachesim.sh` first.)\n"
                );
            }
            Some(Err(e)) => {
                let _ = writeln!(s, "(No cache simulation: {e}.)\n");
            }
            Some(Ok(cache)) => Self::cachesim_section(s, rows, cache),
        }
    }

    fn cachesim_section(s: &mut String, rows: &[Row], cache: &[CacheRow]) {
        let _ = writeln!(
            s,
            "### Counters: callgrind's cache simulation\n\n`perf stat` has no hardware \
             counters on this machine, so `scripts/bench-cachesim.sh` runs a small run of each \
             consumer and mode (`zbpf-bench --only consumers --small`: 1500-byte frames, \
             snaplen 65535, 16 rounds after a warm-up) under `valgrind --tool=callgrind \
             --cache-sim=yes`, collecting only the measured rounds (`--toggle-collect` on \
             `cachesim_measured`: no set-up, no warm-up). The simulated caches are this CPU's \
             L1 data cache (D1) and its per-core L2 (as \"LL\"), read from sysfs. Per packet, \
             capture and consumer together:\n"
        );
        let _ = writeln!(
            s,
            "| consumer | mode | instructions | data reads | data writes | D1 misses | LL (L2) \
             misses |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for c in cache.iter().filter(|c| c.consumer != "scale") {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} |",
                c.consumer,
                c.mode,
                c.per(c.ir),
                c.per(c.dr),
                c.per(c.dw),
                c.per(c.d1),
                c.per(c.ll)
            );
        }
        let get = |c: &str, m: &str| cache.iter().find(|r| r.consumer == c && r.mode == m);
        let ns = |c, p| consumer_row(rows, c, p).map_or(f64::NAN, |r| r.best.ns_per_packet());
        let _ = writeln!(s, "\n**What the counters show, in plain words.**\n");
        let mut lines: Vec<String> = Vec::new();
        lines.push(
            "Two blind spots first. Callgrind counts user-space work only: BUFFER's read(2) \
             copy (done by the host kernel here, through `process_vm_writev`, as FreeBSD's \
             copyout would be) is in none of these counts, only in the wall times. And it \
             models caches by virtual address: the engine writes ZBUF records through its own \
             mapping of each shared page (as a kernel does through its direct map) and the \
             consumer reads them through the process's mapping, so where real, physically \
             tagged caches would find the line the engine just wrote, the simulation misses."
                .to_string(),
        );
        let all = [
            get("walk", "buffer"),
            get("walk", "zbuf"),
            get("walk", "memcpy"),
            get("checksum", "buffer"),
            get("checksum", "zbuf"),
            get("checksum", "memcpy"),
        ];
        if let [Some(bw), Some(zw), Some(mw), Some(bc), Some(zc), Some(mc)] = all {
            let per = |r: &CacheRow, f: Field| r.per(f(r));
            let (ir, d1, ll): (Field, Field, Field) = (|r| r.ir, |r| r.d1, |r| r.ll);
            lines.push(format!(
                "Walking the headers: the counts are the capture plus the walk. Both modes \
                 miss D1 about {:.0} times per packet ({:.1} BUFFER, {:.1} ZBUF): the \
                 capture's one copy of a 1.5 KB frame reads about 24 lines of the frame and \
                 writes about 24 lines of the buffer. ZBUF's capture runs {:.0} instructions \
                 per packet to BUFFER's {:.0} (it writes page by page through the held pages); \
                 the walk itself is a few instructions and one line per record. What \
                 separates the modes is not in these counts: BUFFER copies every record a \
                 second time in read(2). In wall time, that copy is BUFFER's extra {:.0} ns \
                 per packet.",
                (per(bw, d1) + per(zw, d1)) / 2.0,
                per(bw, d1),
                per(zw, d1),
                per(zw, ir),
                per(bw, ir),
                ns(Consumer::Walk, Pipe::Buffer) - ns(Consumer::Walk, Pipe::Zbuf)
            ));
            let d = |c: &CacheRow, w: &CacheRow, f: Field| per(c, f) - per(w, f);
            lines.push(format!(
                "Touching every byte: the checksum adds {:.0} instructions per packet in \
                 BUFFER, {:.0} in ZBUF and {:.0} in the baseline (the same loop over the same \
                 bytes), and {:.1}, {:.1} and {:.1} D1 misses, about one per 64-byte line: a \
                 round's records (768 KiB) were written long before the consumer reads them, \
                 and D1 holds 32 KiB. At L2 the scan adds {:.1} misses per packet in BUFFER, \
                 {:.1} in ZBUF and {:.1} in the baseline. The baseline writes and reads its \
                 records at the same addresses, which is what ZBUF's engine and consumer do \
                 in physical memory, so its figure is the closest stand-in for ZBUF's on real \
                 hardware; ZBUF's extra {:.1} are the blind spot above.",
                d(bc, bw, ir),
                d(zc, zw, ir),
                d(mc, mw, ir),
                d(bc, bw, d1),
                d(zc, zw, d1),
                d(mc, mw, d1),
                d(bc, bw, ll),
                d(zc, zw, ll),
                d(mc, mw, ll),
                d(zc, zw, ll) - d(mc, mw, ll)
            ));
        }
        let (bw, zw, mw) = (
            ns(Consumer::Walk, Pipe::Buffer),
            ns(Consumer::Walk, Pipe::Zbuf),
            ns(Consumer::Walk, Pipe::Memcpy),
        );
        let (bc, zc, mc) = (
            ns(Consumer::Checksum, Pipe::Buffer),
            ns(Consumer::Checksum, Pipe::Zbuf),
            ns(Consumer::Checksum, Pipe::Memcpy),
        );
        let (db, dz, dm) = (bc - bw, zc - zw, mc - mw);
        let scan_same = (dz - db).abs() <= 0.15 * db.abs().max(1.0);
        lines.push(format!(
            "Wall time: the checksum adds {db:.0} ns per packet in BUFFER, {dz:.0} in ZBUF and \
             {dm:.0} in the baseline. {} ZBUF saves BUFFER's copy-out, {:.0} ns per packet when \
             walking and {:.0} when checksumming, so ZBUF / BUFFER goes from {:.2}× to {:.2}×.",
            if scan_same {
                "About the same in every mode: scanning the records in place in the shared \
                 buffers costs nothing extra here. The scan's cost is its instructions (the \
                 same count in every mode, above), not its misses: a round's records are still \
                 in this CPU's L2 or L3 when the consumer reads them."
                    .to_string()
            } else if dz > db {
                format!(
                    "The scan is {:.0} ns per packet slower over ZBUF's buffers: the misses \
                     BUFFER's copy-out takes inside read(2), leaving a warm private copy, are \
                     taken by the scan itself in ZBUF (displaced misses).",
                    dz - db
                )
            } else {
                format!(
                    "The scan is {:.0} ns per packet slower over BUFFER's private copy than \
                     over ZBUF's buffers.",
                    db - dz
                )
            },
            bw - zw,
            bc - zc,
            bw / zw,
            bc / zc
        ));
        lines.push(if bc >= zc {
            "So ZBUF does not lose the memory-scanning benchmark here: the scan is a large cost \
             both modes pay, which dilutes ZBUF's saving, but never reverses it. The counters \
             say where the 2007 loss can come from: a scan does the same work in both modes, \
             and only the first-touch misses move, into read(2)'s copy in BUFFER (kernel \
             time, leaving a warm copy) or into the scan in ZBUF. When the records have left \
             the caches by the time the consumer reads them (small caches, a lagging \
             consumer), ZBUF's scan pays those misses in user time, and ZBUF keeps only the \
             copy's instructions as its saving."
                .to_string()
        } else {
            "So ZBUF loses the memory-scanning benchmark here, as in 2007.".to_string()
        });
        for l in lines {
            let _ = writeln!(s, "- {l}");
        }
        let _ = writeln!(s);
    }

    fn scale_section(&self, s: &mut String, rows: &[ScaleRow]) {
        let _ = writeln!(s, "## 4. Scale: descriptors on one interface\n");
        let _ = writeln!(
            s,
            "64-byte frames on one interface with 1, 8 or 64 descriptors, each with its own \
             libpcap filter: the first (`udp port 9`) accepts every frame and is drained in \
             ZBUF mode; every other one (`udp port 2001`, `udp port 2002`, …) rejects every \
             frame (checked: each saw every packet, only the first matched). The per-added \
             descriptor cost is (t(n) − t(1)) / (n − 1): what one more rejecting listener \
             costs each packet. Filters as the engine makes them by default (native code), \
             and again interpreted (`jit_enable` off), to tell the filter's part from the \
             rest of the delivery path.\n"
        );
        let _ = writeln!(
            s,
            "| descriptors | ns/packet, all | ns/packet per descriptor | ns per added \
             descriptor | interpreted: ns/packet, all | per descriptor | per added \
             descriptor |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let mj = self.scale_marginal();
        let mi = marginal(self.scale_interp.as_deref());
        let cell = |m: &[(usize, f64)], n: usize| {
            m.iter().find(|(k, _)| *k == n).map_or(String::new(), |(_, v)| format!("{v:.1}"))
        };
        let mut delivered: u64 = rows.iter().map(|r| r.delivered).sum();
        for r in rows {
            let i = self
                .scale_interp
                .as_ref()
                .and_then(|v| v.iter().find(|i| i.descriptors == r.descriptors));
            delivered += i.map_or(0, |i| i.delivered);
            let _ = writeln!(
                s,
                "| {} | {:.1} | {:.1} | {} | {} | {} | {} |",
                r.descriptors,
                r.ns_per_packet,
                r.per_descriptor(),
                cell(&mj, r.descriptors),
                i.map_or(String::new(), |i| format!("{:.1}", i.ns_per_packet)),
                i.map_or(String::new(), |i| format!("{:.1}", i.per_descriptor())),
                cell(&mi, r.descriptors)
            );
        }
        let _ = writeln!(s, "\n({delivered} packets delivered in all.)\n");
        if let Some(d) = &self.scale_dispatch {
            Self::dispatch_section(s, d);
        }
        if let Some(Ok(cache)) = &self.cachesim {
            Self::scale_cache_section(s, cache);
        }
        if let Some(why) = self.scale_explanation() {
            let _ = writeln!(s, "{why}\n");
        }
    }

    /// What the scale figures show, from the figures above; `None` when a
    /// part is missing.
    fn scale_explanation(&self) -> Option<String> {
        let at = |m: &[(usize, f64)], n: usize| m.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        let mj = self.scale_marginal();
        let mi = marginal(self.scale_interp.as_deref());
        let (j8, j64) = (at(&mj, 8)?, at(&mj, 64)?);
        let (i8, i64) = (at(&mi, 8)?, at(&mi, 64)?);
        let d = self.scale_dispatch.as_ref()?;
        let dn = |n: usize| d.iter().find(|r| r.programs == n);
        let (d8, d64) = (dn(8)?, dn(64)?);
        let cache = match &self.cachesim {
            Some(Ok(c)) => c,
            _ => return None,
        };
        let get = |n: &str| cache.iter().find(|r| r.consumer == "scale" && r.mode == n);
        let (c1, c8, c64) = (get("1")?, get("8")?, get("64")?);
        let added = |c: &CacheRow, n: f64, f: Field| (c.per(f(c)) - c1.per(f(c1))) / (n - 1.0);
        let (ir, i1, d1): (Field, Field, Field) = (|r| r.ir, |r| r.i1, |r| r.d1);
        let ratio = j64 / j8;
        let counts = format!(
            "Per added descriptor, callgrind counts {:.0} instructions at 64 and {:.0} at 8, \
             {:.2} and {:.2} simulated L1 instruction misses, {:.2} and {:.2} L1 data misses",
            added(c64, 64.0, ir),
            added(c8, 8.0, ir),
            added(c64, 64.0, i1),
            added(c8, 8.0, i1),
            added(c64, 64.0, d1),
            added(c8, 8.0, d1),
        );
        let verdict = if ratio <= 1.25 {
            format!("{ratio:.2}×: flat within the goal. {counts}.")
        } else {
            let calls = d64.dispatched_ns - d8.dispatched_ns;
            format!(
                "{ratio:.2}×, not flat within the goal's 1.25×. {counts}: no more work at 64, \
                 and no simulated cache misses. Of the {:.1} ns an added descriptor costs more \
                 at 64, the filter calls account for {calls:.2} ns (dispatched, the calls \
                 alone take {:.2} ns at 64 and {:.2} at 8); {:.2} ns of that would come back \
                 with the programs' code packed into shared pages instead of a mapping each \
                 (the instruction TLB; not done). The rest runs the same instructions at 8 \
                 and at 64 and misses no simulated cache; what the real caches and \
                 predictors do differently there, this machine has no counters to show.",
                j64 - j8,
                d64.dispatched_ns,
                d8.dispatched_ns,
                d64.dispatched_ns - d64.packed_ns,
            )
        };
        Some(format!(
            "**What the scale figures show.** Called in turn from one call site, 64 distinct \
             programs cost {:.2} ns per call and 64 copies of one program sharing its code \
             {:.2} ns, though both run the same instructions (at 8: {:.2} and {:.2}). The \
             difference is the number of targets the one call site jumps to in turn: past a \
             few dozen, the processor mispredicts the target of almost every call. This \
             machine has no counters to show it, but the third column removes exactly that \
             cause and the cost goes with it: through dispatchers, where every program has its \
             own call site, 64 distinct programs cost {:.2} ns per call ({:.2} at 8). So the \
             engine runs the readers' native filters that way: each tap has a dispatcher per \
             group of up to 32 readers (`filter::jit::compile_dispatch`, `src/tap/dispatch.rs`), \
             rebuilt when its readers or their filters change, for packets that come one at a \
             time. The bursts here are a driver's batch (`Sim::receive_burst`), which takes the \
             batch path instead (`Bpf::deliver_batch`): each reader filters the batch's 8 \
             packets in turn, so the one call site jumps to the same program 8 times running, \
             which the processor predicts as well as a dispatcher's own call sites. And since \
             64 descriptors run \
             64 programs' code for every packet, the code is kept short: short jumps, 8-bit \
             displacements and immediates where they fit, no prologue move a program does \
             not need (the `udp port N` programs average {:.0} bytes, {:.1} cache lines). \
             With both, an added descriptor costs {j8:.1} ns per packet at 8 descriptors \
             and {j64:.1} at 64: {verdict} \
             Interpreted filters run one code for every program and scale within {:.2}× \
             ({i8:.1} and {i64:.1} ns per added descriptor), but cost more than native code \
             at every count.",
            d64.distinct_ns,
            d64.shared_ns,
            d8.distinct_ns,
            d8.shared_ns,
            d64.dispatched_ns,
            d8.dispatched_ns,
            d64.code_bytes,
            d64.code_bytes / 64.0,
            i64 / i8,
        ))
    }

    /// The native filter calls alone: distinct programs against copies
    /// sharing one code, and distinct programs through dispatchers.
    fn dispatch_section(s: &mut String, rows: &[DispatchRow]) {
        let _ = writeln!(
            s,
            "### The native filter calls alone\n\nThe filters without the rest of the \
             delivery path: N programs called in turn on one 64-byte frame, as a delivery \
             loop calls one per descriptor. N distinct programs (`udp port 2000`, \
             `udp port 2001`, …), each with its own native code, called from one call site; \
             N copies of one program sharing one native code, from one call site; and the N \
             distinct programs again, called by dispatchers (`filter::jit::compile_dispatch`, \
             up to 32 programs each) that give every program its own call site, as the \
             engine calls them; and dispatched again with the programs' code packed end to \
             end in one mapping, where the engine maps each program on its own pages. The \
             filters run the same instructions every way; what differs is how many code \
             addresses each call site jumps to, and how many pages the code spans.\n"
        );
        let _ = writeln!(
            s,
            "| programs | distinct code, one call site: ns per call | shared code, one call \
             site | distinct code, dispatched | dispatched, code packed |\n| ---: | ---: | \
             ---: | ---: | ---: |"
        );
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.programs, r.distinct_ns, r.shared_ns, r.dispatched_ns, r.packed_ns
            );
        }
        let _ = writeln!(s);
    }

    /// The scale runs under callgrind's cache simulation: per packet, and
    /// per added descriptor.
    fn scale_cache_section(s: &mut String, cache: &[CacheRow]) {
        let get = |n: &str| cache.iter().find(|r| r.consumer == "scale" && r.mode == n);
        let (Some(one), Some(eight), Some(many)) = (get("1"), get("8"), get("64")) else {
            return;
        };
        let _ = writeln!(
            s,
            "### Counters: callgrind's cache simulation\n\n`scripts/bench-cachesim.sh` also \
             runs 1, 8 and 64 descriptors (`zbpf-bench --only scale --small --descriptors N`, \
             native code) under the same cache simulation (this CPU's L1 instruction and data \
             caches, and its L2 as \"LL\"). Per packet, and per added descriptor \
             ((v(n) − v(1)) / (n − 1)):\n"
        );
        let _ = writeln!(
            s,
            "| descriptors | instructions | I1 misses | D1 misses | LL misses | per added \
             descriptor: instructions | I1 misses | D1 misses | LL misses |\n| ---: | ---: | \
             ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let fields: [Field; 4] = [|r| r.ir, |r| r.i1, |r| r.d1, |r| r.ll];
        for (n, r) in [(1.0, one), (8.0, eight), (64.0, many)] {
            let mut line = format!("| {n} |");
            for f in fields {
                line += &format!(" {:.1} |", r.per(f(r)));
            }
            for f in fields {
                if n > 1.0 {
                    line += &format!(" {:.2} |", (r.per(f(r)) - one.per(f(one))) / (n - 1.0));
                } else {
                    line += " |";
                }
            }
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(s);
    }

    fn memory_section(&self, s: &mut String, rows: &[MemoryRow]) {
        let _ = writeln!(s, "## 5. Memory\n");
        let _ = writeln!(
            s,
            "Counted by the bench's global allocator: the heap bytes still allocated after \
             open(2) plus the configuration a capture needs (BUFFER: BIOCSBLEN; ZBUF: \
             BIOCSETBUFMODE and BIOCSETZBUF; then BIOCSETF with `udp port 9` and BIOCSETIF), \
             averaged over several descriptors, with the buffers at {} KiB. The heap bytes \
             are the engine's and the simulator's file-table entry (a kernel's `struct \
             file`); the allocations include the simulator's copy of each ioctl's argument, \
             freed at once. ZBUF's buffers are the process's own shared pages: the engine \
             holds them (one mapping per page), it does not allocate them.\n",
            rows.first().map_or(0, |r| r.bufsize / 1024)
        );
        let _ = writeln!(
            s,
            "| mode | heap bytes per descriptor | of which not the two buffers | \
             allocations | buffers in the process's memory | left after close \
             |\n| --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for r in rows {
            let own = if r.user_buffer_bytes == 0 {
                r.heap_bytes - 2.0 * r.bufsize as f64
            } else {
                r.heap_bytes
            };
            let _ = writeln!(
                s,
                "| {} | {:.0} | {:.0} | {:.1} | {} | {:.0} |",
                r.mode, r.heap_bytes, own, r.allocs, r.user_buffer_bytes, r.leaked_after_close
            );
        }
        if let Some(rows) = &self.capture {
            let worst = rows
                .iter()
                .filter(|r| r.spec.pipe != Pipe::Memcpy)
                .map(Row::deliver_allocs_per_packet)
                .fold(0.0, f64::max);
            let total: u64 = rows.iter().map(|r| r.delivered).sum();
            let _ = writeln!(
                s,
                "\nAllocations per packet while capturing: **{worst}** (worst configuration of \
                 section 2, over {total} packets delivered; goal zero).\n"
            );
        } else {
            let _ = writeln!(s);
        }
    }

    /// The key ratios, one line each (printed and closing the report).
    pub fn key_ratios(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let (Some(gm), Some(f)) = (self.filter_geomean(), &self.filter) {
            let best = f.rows.iter().map(|r| r.ratio()).fold(f64::MAX, f64::min);
            let worst = f.rows.iter().map(|r| r.ratio()).fold(0.0, f64::max);
            let gi = geomean(f.rows.iter().map(|r| r.interp_ratio()));
            v.push(format!(
                "filter: zbpf takes {gm:.2}× libpcap's time per packet as the engine runs it \
                 (native code; geometric mean of {} programs, {best:.2}× to {worst:.2}×), \
                 {gi:.2}× interpreted",
                f.rows.len()
            ));
            v.push(format!(
                "filter: {:.2} ns per packet only to read each packet's EtherType; net of it, \
                 native code takes {:.2}× libpcap's time",
                f.floor_ns,
                f.net_geomean().unwrap_or(f64::NAN)
            ));
            v.push(match (f.jitter_geomeans(), &f.jitter_source) {
                (Some((jit, default)), _) => format!(
                    "filter: zbpf's JIT takes {jit:.2}× FreeBSD bpf_jitter's time (geometric \
                     mean), {default:.2}× as the engine runs every program; {} verdicts differ",
                    f.rows.iter().filter_map(|r| r.jitter_mismatches).sum::<usize>()
                ),
                (None, Err(why)) => format!("filter: FreeBSD bpf_jitter not measured: {why}"),
                (None, Ok(_)) => "filter: FreeBSD bpf_jitter: no program to compare".into(),
            });
        }
        if let Some(rows) = &self.capture {
            for (size, snaplen) in [(1500, 65535), (64, 96)] {
                let b = find(rows, size, snaplen, Pipe::Buffer, false);
                let z = find(rows, size, snaplen, Pipe::Zbuf, false);
                let m = find(rows, size, snaplen, Pipe::Memcpy, false);
                if let (Some(b), Some(z), Some(m)) = (b, z, m) {
                    v.push(format!(
                        "capture {size} B, snaplen {snaplen}: ZBUF {:.2} Mpps = {:.2}× BUFFER, \
                         {:.2}× memcpy",
                        z.mpps(),
                        z.mpps() / b.mpps(),
                        z.mpps() / m.mpps()
                    ));
                }
            }
            if let Some(z) = find(rows, 64, 96, Pipe::Zbuf, true) {
                v.push(format!(
                    "capture 64 B, snaplen 96, BPF_T_FAST: ZBUF {:.2} Mpps ({:.0} ns/packet)",
                    z.mpps(),
                    z.best.ns_per_packet()
                ));
            }
        }
        if let Some(rows) = &self.consumers {
            for c in [Consumer::Walk, Consumer::Checksum] {
                let b = consumer_row(rows, c, Pipe::Buffer);
                let z = consumer_row(rows, c, Pipe::Zbuf);
                if let (Some(b), Some(z)) = (b, z) {
                    v.push(format!(
                        "consumer \"{}\": ZBUF / BUFFER = {:.2}×",
                        c.name(),
                        z.mpps() / b.mpps()
                    ));
                }
            }
        }
        for (n, m) in self.scale_marginal() {
            v.push(format!("scale: {m:.1} ns per packet for each added descriptor at {n}"));
        }
        if let Some(rows) = &self.memory {
            for r in rows {
                v.push(format!(
                    "memory, {}: {:.0} heap bytes per descriptor ({} KiB buffers)",
                    r.mode,
                    r.heap_bytes,
                    r.bufsize / 1024
                ));
            }
        }
        for g in self.goals() {
            v.push(format!("{}: {} ({})", g.what, g.got, if g.pass { "PASS" } else { "MISS" }));
        }
        v
    }
}
