//! zbpf-bench: the benchmark suite behind `make bench`.
//!
//! Five benchmarks, all in one process on the userspace simulator:
//!
//! 1. filter: zbpf's `Program::run` against libpcap's C `bpf_filter()`
//!    and, when a FreeBSD source tree was at hand to build it, FreeBSD's
//!    own amd64 JIT (bpf_jitter), same programs, same packets;
//! 2. capture path: tap → filter → capture → rotation → consumer, BUFFER
//!    and ZBUF, against a memcpy baseline;
//! 3. the two consumers of the 2007 Zero-Copy BPF slides (walk the headers,
//!    checksum every byte), with callgrind's cache simulation to explain
//!    them (`--only consumers --small`, run by scripts/bench-cachesim.sh);
//! 4. scale: 1, 8, 64 descriptors on one interface, with the same cache
//!    simulation of each count (`--only scale --small --descriptors N`);
//! 5. memory: heap bytes per descriptor, allocations per packet.
//!
//! It prints the figures and writes a Markdown report and a PNG plot.
//! Benchmarks assert nothing about time: the suite fails only when it
//! cannot run or when two things that must agree do not (filter verdicts,
//! packets captured, counters).
//!
//! Its modules live next to this file; `workload.rs`, in the package's
//! library, is shared with the criterion bench `tests/bench/filter.rs`.

#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

mod alloc;
mod capture;
mod deliver;
mod driver;
mod filter;
mod jitter;
mod memory;
mod parts;
mod plot;
mod report;
mod scale;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use capture::{Consumer, Effort, Pipe, Spec};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

const USAGE: &str = "usage: zbpf-bench [--smoke] [--only SECTIONS] [--out DIR] [--cachesim FILE]
       zbpf-bench --only consumers --small --consumer walk|checksum --mode buffer|zbuf|memcpy
       zbpf-bench --deliver

  --smoke            a few packets per configuration: checks that everything runs and
                     agrees, in seconds; the report goes to target/bench-smoke/
  --only SECTIONS    comma-separated: filter,capture,consumers,scale,memory (default all)
  --out DIR          where benchmarks.md and benchmarks.png go (default tests/bench)
  --cachesim FILE    the table scripts/bench-cachesim.sh wrote, for the report
  --samples N        samples per configuration (default 5; the best is kept)
  --small            one consumer configuration, a small fixed run for callgrind;
                     prints `cachesim-packets N` and writes no report
  --rounds N         rounds of the --small run (default 16)
  --descriptors N    with --only scale --small: the descriptors of the run (default 8)
  --deliver          delivery alone (the twin of tests/ukld/ukld_bench.c): prints one
                     tab-separated line per configuration and writes no report
  --config C         with --deliver: that configuration only, MODE,DESCRIPTORS,SIZE
                     (BUFFER or ZBUF, 1 or 8, 64 or 1500)";

const SECTIONS: [&str; 5] = ["filter", "capture", "consumers", "scale", "memory"];

struct Args {
    smoke: bool,
    only: Vec<String>,
    out: Option<PathBuf>,
    cachesim: Option<PathBuf>,
    samples: Option<usize>,
    small: bool,
    deliver: bool,
    config: Option<String>,
    consumer: Consumer,
    mode: Pipe,
    rounds: usize,
    descriptors: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        smoke: false,
        only: SECTIONS.iter().map(|s| s.to_string()).collect(),
        out: None,
        cachesim: None,
        samples: None,
        small: false,
        deliver: false,
        config: None,
        consumer: Consumer::Walk,
        mode: Pipe::Zbuf,
        rounds: 16,
        descriptors: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--smoke" => a.smoke = true,
            "--small" => a.small = true,
            "--deliver" => a.deliver = true,
            "--config" => a.config = Some(value()?),
            "--only" => {
                a.only = value()?.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = a.only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    return Err(format!("--only: unknown section {bad}\n{USAGE}"));
                }
            }
            "--out" => a.out = Some(PathBuf::from(value()?)),
            "--cachesim" => a.cachesim = Some(PathBuf::from(value()?)),
            "--samples" => {
                a.samples = Some(value()?.parse().map_err(|e| format!("--samples: {e}"))?)
            }
            "--consumer" => {
                a.consumer = Consumer::parse(&value()?).ok_or(format!("--consumer\n{USAGE}"))?
            }
            "--mode" => a.mode = Pipe::parse(&value()?).ok_or(format!("--mode\n{USAGE}"))?,
            "--rounds" => a.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--descriptors" => {
                a.descriptors = value()?.parse().map_err(|e| format!("--descriptors: {e}"))?
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(a)
}

/// The small, fixed run callgrind measures.
fn small(args: &Args) -> Result<(), String> {
    if args.only == ["scale"] {
        let packets = scale::small(args.descriptors.max(1), true, args.rounds)?;
        println!("cachesim-packets {packets}");
        return Ok(());
    }
    let spec = Spec {
        size: 1500,
        snaplen: 65535,
        pipe: args.mode,
        fast_ts: false,
        consumer: args.consumer,
    };
    let (sim, iface) = capture::machine();
    let mut rig = capture::Rig::new(spec, &sim, &iface)?;
    rig.run(4)?;
    let s = capture::cachesim_measured(&mut rig, args.rounds)?;
    println!("cachesim-packets {}", s.packets);
    Ok(())
}

fn run(args: &Args) -> Result<(), String> {
    if args.small {
        return small(args);
    }
    if args.deliver {
        return deliver::print(args.config.as_deref());
    }
    let wants = |s: &str| args.only.iter().any(|o| o == s);
    let samples = args.samples.unwrap_or(if args.smoke { 1 } else { 5 });
    let effort = if args.smoke {
        Effort { sample: Duration::from_millis(1), samples }
    } else {
        Effort { sample: Duration::from_millis(150), samples }
    };
    let machine = report::Machine::probe();
    println!("zbpf-bench on {} ({} cores), {}", machine.cpu, machine.cores, machine.date);
    println!("load average at start: {}", machine.load.0);

    let filter = if wants("filter") {
        println!("\n== 1. filter: zbpf vs libpcap bpf_filter()");
        let f =
            if args.smoke { filter::run(2000, 1, 0.0)? } else { filter::run(usize::MAX, 9, 25.0)? };
        println!(
            "{} packets from {} traces; both machines agree on every verdict",
            f.packets, f.files
        );
        match &f.jitter_source {
            Ok(src) => println!("FreeBSD bpf_jitter built from {src}"),
            Err(why) => println!("FreeBSD bpf_jitter not measured: {why}"),
        }
        let opt = |v: Option<f64>, unit: &str| v.map_or("-".into(), |v| format!("{v:.2}{unit}"));
        println!(
            "{:<20} {:>5} {:>8} {:>8} {:>8} {:>8} {:>10} {:>8} {:>8} {:>9} {:>10}",
            "program",
            "insns",
            "interp",
            "jit",
            "jitter",
            "libpcap",
            "interp/pc",
            "jit/pc",
            "jit/bj",
            "fallbacks",
            "bj≠interp"
        );
        for r in &f.rows {
            println!(
                "{:<20} {:>5} {:>8.2} {:>8} {:>8} {:>8.2} {:>9.2}x {:>8} {:>8} {:>9} {:>10}",
                r.label,
                r.insns,
                r.zbpf_ns,
                opt(r.jit_ns, ""),
                opt(r.jitter_ns, ""),
                r.pcap_ns,
                r.interp_ratio(),
                opt(r.jit_ratio(), "x"),
                opt(r.jit_over_jitter(), "x"),
                r.fallbacks.map_or("-".into(), |n| n.to_string()),
                r.jitter_mismatches.map_or("-".into(), |n| n.to_string())
            );
        }
        println!(
            "{:<20} {:>5} {:>8.2}  (the loop reading only each EtherType)",
            "floor", "", f.floor_ns
        );
        Some(f)
    } else {
        None
    };

    let print_rows = |rows: &[capture::Row]| {
        println!(
            "{:>6} {:>7} {:<7} {:<11} {:<20} {:>8} {:>9} {:>7}",
            "frame", "snaplen", "mode", "timestamps", "consumer", "Mpps", "ns/pkt", "GB/s"
        );
        for r in rows {
            println!(
                "{:>6} {:>7} {:<7} {:<11} {:<20} {:>8.3} {:>9.1} {:>7.2}",
                r.spec.size,
                r.spec.snaplen,
                r.spec.pipe.name(),
                r.spec.ts_name(),
                r.spec.consumer.name(),
                r.mpps(),
                r.best.ns_per_packet(),
                r.gbps()
            );
        }
    };
    let capture = if wants("capture") {
        println!("\n== 2. capture path (tap, filter, capture, rotation, consumer)");
        let rows = capture::measure(&capture::matrix(), effort)?;
        print_rows(&rows);
        let clock = capture::clock_ns(effort);
        println!("the full-precision clock (platform uptime()): {clock:.1} ns per read");
        println!("\n== 2b. where a ZBUF capture's time goes (snaplen 65535)");
        let parts = parts::measure(effort)?;
        for p in &parts {
            println!("{:>5} B  {:<13} {:>7.1} ns/packet", p.size, format!("{:?}", p.rung), p.ns);
        }
        Some((rows, (clock, parts)))
    } else {
        None
    };
    let (capture, clock_and_parts) = capture.unzip();
    let (clock_ns, parts) = clock_and_parts.unzip();
    let consumers = if wants("consumers") {
        println!("\n== 3. consumers: walk the headers vs checksum every byte");
        let rows = capture::measure(&capture::consumers(), effort)?;
        print_rows(&rows);
        Some(rows)
    } else {
        None
    };
    let scale = if wants("scale") {
        println!("\n== 4. scale: descriptors on one interface, 64 B");
        let jit = scale::measure(&[1, 8, 64], true, effort)?;
        let interp = scale::measure(&[1, 8, 64], false, effort)?;
        println!(
            "{:>11} {:>10} {:>15} {:>10} {:>15}",
            "descriptors", "ns/packet", "ns/packet/desc", "interp ns", "interp ns/desc"
        );
        for (j, i) in jit.iter().zip(&interp) {
            println!(
                "{:>11} {:>10.1} {:>15.2} {:>10.1} {:>15.2}",
                j.descriptors,
                j.ns_per_packet,
                j.per_descriptor(),
                i.ns_per_packet,
                i.per_descriptor()
            );
        }
        let dispatch = scale::dispatch(&[1, 8, 64], effort)?;
        println!("native filter calls alone: ns per call");
        println!(
            "{:>11} {:>10} {:>12} {:>12} {:>12}",
            "programs", "distinct", "shared code", "dispatched", "packed"
        );
        for d in &dispatch {
            println!(
                "{:>11} {:>10.2} {:>12.2} {:>12.2} {:>12.2}",
                d.programs, d.distinct_ns, d.shared_ns, d.dispatched_ns, d.packed_ns
            );
        }
        Some((jit, (interp, dispatch)))
    } else {
        None
    };
    let (scale, rest) = scale.unzip();
    let (scale_interp, scale_dispatch) = rest.unzip();
    let memory = if wants("memory") {
        println!("\n== 5. memory per descriptor");
        let rows = memory::measure(if args.smoke { 2 } else { 16 })?;
        for r in &rows {
            println!(
                "{:<7} {:>10.0} heap bytes, {:>5.1} allocations, {} bytes of shared buffers, \
                 {:.0} bytes left after close",
                r.mode, r.heap_bytes, r.allocs, r.user_buffer_bytes, r.leaked_after_close
            );
        }
        Some(rows)
    } else {
        None
    };

    let mut machine = machine;
    machine.load.1 = report::loadavg();
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(if args.smoke { "target/bench-smoke" } else { "tests/bench" })
    });
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let png = out.join("benchmarks.png");
    let (plot, plot_error) = match plot::draw(
        &png,
        &plot::PlotData {
            filter: filter.as_ref(),
            capture: capture.as_deref(),
            consumers: consumers.as_deref(),
            scale: scale.as_deref(),
            scale_interp: scale_interp.as_deref(),
        },
    ) {
        Ok(()) => (Some("benchmarks.png".to_string()), None),
        Err(e) => {
            eprintln!("zbpf-bench: no plot: {e}");
            (None, Some(e))
        }
    };
    let results = report::Results {
        machine,
        command: if args.smoke {
            "make bench   # this file: zbpf-bench --smoke".into()
        } else {
            "make bench".into()
        },
        smoke: args.smoke,
        samples,
        filter,
        capture,
        clock_ns,
        parts,
        consumers,
        cachesim: args.cachesim.as_ref().map(|p| report::read_cachesim(p)),
        scale,
        scale_interp,
        scale_dispatch,
        memory,
        plot,
        plot_error,
    };
    let md = out.join("benchmarks.md");
    std::fs::write(&md, results.markdown()).map_err(|e| format!("{}: {e}", md.display()))?;
    println!("\n== key ratios");
    for line in results.key_ratios() {
        println!("  {line}");
    }
    println!("\nwrote {} and {}", md.display(), png.display());
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zbpf-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
