//! zbpf-demo: the bpf engine of the zbpf kernel module, run in userspace.
//!
//! A simulated Ethernet interface carries traffic (generated, or replayed
//! from a pcap file); zbpf captures it twice, once with classic kernel
//! buffers and read(2) (BUFFER mode) and once with buffers shared with the
//! process (ZBUF, zero-copy), through a filter compiled by the real libpcap.
//! Each capture is written to a pcap file that tcpdump reads.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zbpf::abi::dlt;
use zbpf::hosted::consumer::{Capture, CaptureConfig, Mode, ZbufStyle};
use zbpf::hosted::net::SimIface;
use zbpf::hosted::pcap::{self, PcapWriter};
use zbpf::hosted::sim::Sim;
use zbpf::hosted::{libpcap, traffic};

struct Args {
    pcap: Option<PathBuf>,
    filter: String,
    count: usize,
    out: PathBuf,
    bufsize: usize,
    snaplen: u32,
    rate: u64,
}

const USAGE: &str = "usage: zbpf-demo [--pcap FILE] [--filter EXPR] [--count N] [--bufsize BYTES] [--snaplen N] [--out DIR]

  --pcap FILE     replay the packets of FILE (Ethernet, DLT_NULL or raw IP) instead of generated traffic
  --filter EXPR   a tcpdump filter expression, compiled by libpcap (default: \"tcp or udp\")
  --count N       packets to send through the interface (default 300000; a pcap file is replayed until N)
  --bufsize BYTES size of each of the two capture buffers (default 524288)
  --snaplen N     bytes kept per packet (default 262144)
  --rate PPS      packets per second the interface receives (default 500000; 0 = as fast as possible)
  --out DIR       where the pcap files go (default target/zbpf-demo)";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        pcap: None,
        filter: "tcp or udp".into(),
        count: 300_000,
        out: PathBuf::from("target/zbpf-demo"),
        bufsize: 512 * 1024,
        snaplen: 262_144,
        rate: 500_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--pcap" => a.pcap = Some(PathBuf::from(value()?)),
            "--filter" => a.filter = value()?,
            "--count" => a.count = value()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--bufsize" => a.bufsize = value()?.parse().map_err(|e| format!("--bufsize: {e}"))?,
            "--snaplen" => a.snaplen = value()?.parse().map_err(|e| format!("--snaplen: {e}"))?,
            "--out" => a.out = PathBuf::from(value()?),
            "--rate" => a.rate = value()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(a)
}

/// The frames to send and the interface's data-link type.
fn load_traffic(args: &Args) -> Result<(Vec<Vec<u8>>, u32, String), String> {
    let Some(path) = &args.pcap else {
        let frames = traffic::mixed(4096, 2026);
        return Ok((
            frames,
            dlt::DLT_EN10MB,
            "generated traffic (TCP, UDP, ICMP, IPv6, ARP, VLAN)".into(),
        ));
    };
    let records = pcap::read_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let first = records.first().ok_or_else(|| format!("{}: no packets", path.display()))?;
    let dlt = pcap::linktype_to_dlt(first.linktype);
    if ![dlt::DLT_EN10MB, dlt::DLT_NULL, dlt::DLT_RAW].contains(&dlt) {
        return Err(format!(
            "{}: link type {} is not Ethernet, DLT_NULL or raw IP",
            path.display(),
            first.linktype
        ));
    }
    let frames: Vec<Vec<u8>> = records
        .into_iter()
        .filter(|r| pcap::linktype_to_dlt(r.linktype) == dlt && !r.data.is_empty())
        .map(|r| r.data)
        .collect();
    let what = format!("{} packets from {}", frames.len(), path.display());
    Ok((frames, dlt, what))
}

fn make_iface(dlt: u32) -> Arc<SimIface> {
    match dlt {
        dlt::DLT_NULL => SimIface::loopback("lo0"),
        dlt::DLT_RAW => SimIface::build("tun0", vec![(dlt::DLT_RAW, 0)], 1500, None),
        _ => SimIface::ethernet("em0", traffic::HOST_MAC),
    }
}

struct Outcome {
    received: u64,
    matched: u64,
    dropped: u64,
    captured: u64,
    bytes: u64,
    elapsed: Duration,
    file: PathBuf,
}

fn run_mode(
    args: &Args,
    frames: &[Vec<u8>],
    dlt: u32,
    mode: Mode,
    label: &str,
    file: &Path,
) -> Result<Outcome, String> {
    let sim = Sim::new();
    let iface = sim.add_iface(make_iface(dlt));
    let name = zbpf::platform::NetIf::name(&iface).to_owned();
    let program =
        libpcap::compile(&args.filter, dlt, args.snaplen).map_err(|e| format!("filter: {e}"))?;
    let mut cfg = CaptureConfig::new(&name, mode);
    cfg.filter = Some(program);
    cfg.bufsize = args.bufsize;
    cfg.timeout = Some(Duration::from_millis(50));
    let mut cap =
        Capture::open(&sim, &cfg).map_err(|e| format!("{label}: opening the capture: {e}"))?;
    let mut out = PcapWriter::create(file, pcap::dlt_to_linktype(dlt), args.snaplen)
        .map_err(|e| format!("{}: {e}", file.display()))?;

    let sent = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let start = Instant::now();
    let (mut captured, mut bytes) = (0u64, 0u64);
    let mut write_error = None;
    std::thread::scope(|s| {
        s.spawn(|| {
            // The "network": frames arrive in bursts of 32, as from a NIC ring.
            let mut i = 0;
            while i < args.count {
                let n = 32.min(args.count - i);
                sim.receive_burst(&iface, (i..i + n).map(|k| frames[k % frames.len()].as_slice()));
                i += n;
                sent.store(i as u64, Ordering::Relaxed);
                if args.rate > 0 {
                    let due = start + Duration::from_secs_f64(i as f64 / args.rate as f64);
                    while Instant::now() < due {
                        std::thread::yield_now();
                    }
                }
            }
            done.store(true, Ordering::Release);
        });
        let mut last_report = Instant::now();
        loop {
            let finished = done.load(Ordering::Acquire);
            let got = cap.next_batch(|r| {
                captured += 1;
                bytes += u64::from(r.caplen);
                let usec = (r.ts_frac as u32).min(999_999);
                if let Err(e) = out.write_packet(r.ts_sec, usec, r.datalen, r.data) {
                    write_error.get_or_insert(e);
                }
            });
            let got = match got {
                Ok(n) => n,
                Err(e) => {
                    write_error.get_or_insert(std::io::Error::other(format!("capture: {e}")));
                    break;
                }
            };
            if last_report.elapsed() > Duration::from_millis(200) {
                let n = sent.load(Ordering::Relaxed);
                eprint!("\r  {label:6} sent {n:>9} of {}   captured {captured:>9}", args.count);
                last_report = Instant::now();
            }
            if finished && got == 0 {
                break;
            }
        }
    });
    let elapsed = start.elapsed();
    eprint!("\r{:78}\r", "");
    if let Some(e) = write_error {
        return Err(format!("{label}: {e}"));
    }
    out.flush().map_err(|e| e.to_string())?;
    let stats = sim.bpf().stats();
    let me = stats.first().ok_or("no descriptor statistics")?;
    Ok(Outcome {
        received: me.bd_rcount,
        matched: me.bd_fcount,
        dropped: me.bd_dcount,
        captured,
        bytes,
        elapsed,
        file: file.to_owned(),
    })
}

fn report(label: &str, what: &str, o: &Outcome) -> bool {
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    println!("{label}  ({what})");
    println!("    packets seen by the interface tap  {:>10}", o.received);
    println!("    matched by the filter              {:>10}", o.matched);
    println!("    captured into {:<20} {:>10}", o.file.display(), o.captured);
    println!("    dropped (no buffer space)          {:>10}", o.dropped);
    println!(
        "    throughput                         {:>10.2} Mpps seen, {:.1} MB/s captured, in {:.2} s",
        o.received as f64 / secs / 1e6,
        o.bytes as f64 / secs / 1e6,
        secs
    );
    let balanced = o.matched == o.captured + o.dropped;
    if balanced {
        println!(
            "    check: matched = captured + dropped  ({} = {} + {})  ok",
            o.matched, o.captured, o.dropped
        );
    } else {
        println!(
            "    check FAILED: matched {} != captured {} + dropped {}",
            o.matched, o.captured, o.dropped
        );
    }
    balanced
}

fn show_with_tcpdump(file: &Path) {
    let Ok(out) =
        std::process::Command::new("tcpdump").args(["-nn", "-c", "4", "-r"]).arg(file).output()
    else {
        println!(
            "    (tcpdump is not installed; read the file with: tcpdump -nn -r {})",
            file.display()
        );
        return;
    };
    println!("    tcpdump -nn -c 4 -r {}:", file.display());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("      {line}");
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let (frames, dlt, what) = match load_traffic(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("zbpf-demo: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("zbpf-demo: {}: {e}", args.out.display());
        std::process::exit(1);
    }
    println!("zbpf demo: the bpf(4) engine of the zbpf kernel module, running in userspace.");
    println!("A simulated interface receives {} packets of {what}", args.count);
    if args.rate > 0 {
        println!("at {} packets per second;", args.rate);
    }
    println!(
        "zbpf captures the ones matching \"{}\" (compiled by {}),",
        args.filter,
        libpcap::version()
    );
    println!("first with kernel buffers copied out by read(2), then with zero-copy buffers");
    println!(
        "shared with the process. Frames reach the engine cut into random mbuf-like chains.\n"
    );
    let _ = std::io::stdout().flush();

    let modes = [
        (Mode::Buffer, "BUFFER", "read(2): the kernel copies each buffer out", "zbpf-buffer.pcap"),
        (
            Mode::Zbuf(ZbufStyle::Header),
            "ZBUF",
            "zero-copy: records read in place",
            "zbpf-zbuf.pcap",
        ),
    ];
    let mut ok = true;
    for (mode, label, what, file) in modes {
        match run_mode(&args, &frames, dlt, mode, label, &args.out.join(file)) {
            Ok(o) => {
                ok &= report(label, what, &o);
                show_with_tcpdump(&o.file);
                println!();
            }
            Err(e) => {
                eprintln!("zbpf-demo: {e}");
                ok = false;
            }
        }
    }
    println!(
        "\"seen\" counts every packet the tap offered, \"matched\" those the filter accepted."
    );
    println!("A matched packet that finds both buffers full is dropped and counted: try");
    println!("--rate 0 to send as fast as the machine can and watch the consumer fall behind.");
    if !ok {
        std::process::exit(1);
    }
}
