//! Criterion benchmark: time per packet of zbpf's filter machine and of
//! libpcap's C `bpf_filter()`, on the same libpcap-compiled programs and
//! the same Ethernet packets of the test traces, in one run; then the ratio
//! per program.
//!
//! ```sh
//! cargo bench -p zbpf-bench --bench filter            # measure
//! cargo bench -p zbpf-bench --bench filter -- --test  # run each once
//! ```
//!
//! One criterion iteration is one packet: the packets are taken in turn
//! from the mix, so each sample averages over all of them. Before timing,
//! both machines run every program over every packet and must agree on
//! every verdict; the bench panics otherwise.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use zbpf_bench::workload;

/// Samples (iterations, elapsed) of one program on one machine.
type Samples = RefCell<Vec<(u64, Duration)>>;

/// The machines: zbpf's interpreter, zbpf's native code (what the engine
/// runs by default), libpcap's `bpf_filter()`.
const MACHINES: [&str; 3] = ["zbpf", "zbpf-jit", "libpcap"];

/// Runs `iters` packets through `run`, cycling through the mix.
fn cycle(mix: &[(&[u8], u32)], iters: u64, run: impl Fn(&[u8], u32) -> u32) -> Duration {
    let n = mix.len();
    let mut i = 0usize;
    let mut acc = 0u64;
    let t0 = Instant::now();
    for _ in 0..iters {
        let (pkt, wirelen) = mix[i];
        acc = acc.wrapping_add(u64::from(run(black_box(pkt), wirelen)));
        i += 1;
        if i == n {
            i = 0;
        }
    }
    let elapsed = t0.elapsed();
    black_box(acc);
    elapsed
}

/// Median nanoseconds per packet over the samples of at least 1000
/// packets (criterion's warm-up calls start tiny), or over all of them.
fn median_ns(samples: &[(u64, Duration)]) -> Option<f64> {
    let big: Vec<f64> = samples
        .iter()
        .filter(|(iters, _)| *iters >= 1000)
        .map(|(iters, d)| d.as_secs_f64() * 1e9 / *iters as f64)
        .collect();
    let mut v = if big.is_empty() {
        samples.iter().map(|(iters, d)| d.as_secs_f64() * 1e9 / (*iters).max(1) as f64).collect()
    } else {
        big
    };
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn main() {
    let mix = workload::ethernet_mix(usize::MAX).expect("the test traces");
    let filters = workload::filters().expect("libpcap compiles every expression");
    println!(
        "{} Ethernet packets ({} bytes) from {} traces of {}",
        mix.len(),
        mix.bytes(),
        mix.files,
        workload::trace_root().display()
    );
    for f in &filters {
        let accepted = workload::agree(f, &mix).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "{:<20} {:>3} insns, accepts {accepted} of {} packets{}",
            f.label,
            f.insns.len(),
            mix.len(),
            if f.jit.is_some() { "" } else { " (no native code)" }
        );
    }
    let packets: Vec<(&[u8], u32)> = mix.iter().collect();

    let test_mode = std::env::args().any(|a| a == "--test");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args();
    let results: Vec<[Samples; 3]> = filters.iter().map(|_| Default::default()).collect();
    for (f, samples) in filters.iter().zip(&results) {
        let mut g = c.benchmark_group(format!("filter/{}", f.label));
        g.throughput(Throughput::Elements(1));
        // Each machine's call is monomorphised into its own loop, as the
        // engine calls its filter: no dynamic dispatch on either side.
        let mut bench = |m: usize, run: &dyn Fn(u64) -> Duration| {
            g.bench_function(MACHINES[m], |b| {
                b.iter_custom(|iters| {
                    let d = run(iters);
                    samples[m].borrow_mut().push((iters, d));
                    d
                })
            });
        };
        bench(0, &|iters| cycle(&packets, iters, |p, w| f.zbpf.run(p, w)));
        if let Some(j) = &f.jit {
            bench(1, &|iters| cycle(&packets, iters, |p, w| j.run(p, w)));
        }
        bench(2, &|iters| cycle(&packets, iters, |p, w| f.pcap.run(p, w)));
        g.finish();
    }
    c.final_summary();

    if test_mode {
        println!("\ntest mode: every benchmark ran once and the verdicts agree; no timing");
        return;
    }
    println!(
        "\nzbpf vs libpcap bpf_filter(), ns per packet (median of criterion's samples), {} \
         packets",
        mix.len()
    );
    println!(
        "{:<20} {:>8} {:>8} {:>8} {:>11} {:>11}",
        "program", "zbpf", "zbpf-jit", "libpcap", "zbpf/pcap", "jit/pcap"
    );
    let (mut interp, mut native) = (Vec::new(), Vec::new());
    let cell = |v: Option<f64>, width: usize, unit: &str| {
        v.map_or(format!("{:>width$}", "-"), |v| {
            format!("{:>w$.2}{unit}", v, w = width - unit.len())
        })
    };
    for (f, samples) in filters.iter().zip(&results) {
        let [z, j, p] = [0, 1, 2].map(|m| median_ns(&samples[m].borrow()));
        let Some(p) = p else { continue };
        let rz = z.map(|z| z / p);
        let rj = j.map(|j| j / p);
        interp.extend(rz);
        native.extend(rj);
        println!(
            "{:<20} {} {} {p:>8.2} {} {}",
            f.label,
            cell(z, 8, ""),
            cell(j, 8, ""),
            cell(rz, 11, "x"),
            cell(rj, 11, "x")
        );
    }
    for (what, ratios) in [("interpreter", interp), ("JIT", native)] {
        if !ratios.is_empty() {
            println!(
                "geometric mean, zbpf {what} / libpcap: {:.2}x",
                workload::geomean(ratios.into_iter())
            );
        }
    }
}
