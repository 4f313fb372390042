//! What the filter benchmarks run: tcpdump expressions compiled by libpcap,
//! and the Ethernet packets of the test traces. Shared by `zbpf-bench` and
//! the criterion bench (`tests/bench/filter.rs`), so both time the same
//! programs over the same bytes.

use std::path::{Path, PathBuf};

use zbpf::abi::{dlt, BpfInsn};
use zbpf::filter::Program;
use zbpf::hosted::libpcap::{self, PcapFilter};
use zbpf::hosted::pcap;
use zbpf::hosted::sim::Sim;

/// The snap length the programs are compiled with (tcpdump's default).
pub const SNAPLEN: u32 = 262_144;

/// The tcpdump expressions: (short label, expression).
pub fn expressions() -> Vec<(&'static str, String)> {
    let ports = [20, 21, 22, 23, 25, 53, 80, 110, 143, 179, 443, 993, 995, 3306, 6379, 6633];
    let chain = ports.iter().map(|p| format!("port {p}")).collect::<Vec<_>>().join(" or ");
    vec![
        ("accept-all", String::new()),
        ("tcp", "tcp".into()),
        ("port 80", "port 80".into()),
        ("host and udp", "host 131.151.32.21 and udp".into()),
        ("net/16 not port 22", "net 131.151.0.0/16 and not port 22".into()),
        ("vlan 100", "vlan 100".into()),
        ("ip6", "ip6".into()),
        ("16-port chain", chain),
        ("tcp SYN", "tcp[13] & 2 != 0".into()),
        ("icmp or arp", "icmp or arp".into()),
        ("udp port 53", "udp port 53".into()),
        ("HTTP GET", "tcp[((tcp[12] & 0xf0) >> 2):4] = 0x47455420".into()),
    ]
}

/// One program in both machines.
pub struct Filter {
    /// Short label.
    pub label: &'static str,
    /// The tcpdump expression.
    pub expr: String,
    /// libpcap's compiled instructions.
    pub insns: Vec<BpfInsn>,
    /// zbpf's validated, pre-decoded program, run by the interpreter.
    pub zbpf: Program,
    /// The same program as the engine makes it by default (`jit_enable`):
    /// compiled to native code, when the platform can run it.
    pub jit: Option<Program>,
    /// libpcap's `bpf_filter` over the same instructions.
    pub pcap: PcapFilter,
}

/// Compiles every expression for Ethernet.
pub fn filters() -> Result<Vec<Filter>, String> {
    // The engine's own way to make a program (`Bpf::program`), which
    // compiles it to native code: a simulated machine provides it.
    let sim = Sim::new();
    expressions()
        .into_iter()
        .map(|(label, expr)| {
            let insns = libpcap::compile(&expr, dlt::DLT_EN10MB, SNAPLEN)
                .map_err(|e| format!("{expr:?}: {e}"))?;
            let zbpf = Program::new(&insns).map_err(|e| format!("{expr:?}: {e}"))?;
            let pcap = PcapFilter::new(&insns).map_err(|e| format!("{expr:?}: {e}"))?;
            let jit = sim.bpf().program(&insns).map_err(|e| format!("{expr:?}: {e}"))?;
            let jit = jit.is_native().then_some(jit);
            Ok(Filter { label, expr, insns, zbpf, jit, pcap })
        })
        .collect()
}

/// Packets stored back to back in one arena.
pub struct Mix {
    data: Vec<u8>,
    /// (offset, captured length, length on the wire).
    index: Vec<(usize, usize, u32)>,
    /// How many trace files contributed.
    pub files: usize,
}

impl Mix {
    /// Number of packets.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether it holds no packet.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Captured bytes in all.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Every packet in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u32)> + '_ {
        self.index.iter().map(|&(off, len, wirelen)| (&self.data[off..off + len], wirelen))
    }
}

/// The test traces' folder.
pub fn trace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/pcap")
}

/// Every non-empty Ethernet packet of every test trace, file by file in
/// name order (at most `max` packets, spread evenly over the traces).
pub fn ethernet_mix(max: usize) -> Result<Mix, String> {
    let root = trace_root();
    let mut files = Vec::new();
    for dir in ["tcpdump", "libpcap-filter"] {
        let entries = std::fs::read_dir(root.join(dir))
            .map_err(|e| format!("{}: {e}", root.join(dir).display()))?;
        for e in entries {
            files.push(e.map_err(|e| e.to_string())?.path());
        }
    }
    files.sort();
    let mut all = Vec::new();
    let mut used = 0;
    for f in &files {
        let (records, _) = pcap::read_file_partial(f);
        let before = all.len();
        all.extend(records.into_iter().filter(|r| r.linktype == 1 && !r.data.is_empty()));
        used += usize::from(all.len() > before);
    }
    if all.is_empty() {
        return Err(format!("no Ethernet packets under {}", root.display()));
    }
    let step = all.len().div_ceil(max.max(1));
    let mut mix = Mix { data: Vec::new(), index: Vec::new(), files: used };
    for r in all.iter().step_by(step) {
        mix.index.push((mix.data.len(), r.data.len(), r.wirelen));
        mix.data.extend_from_slice(&r.data);
    }
    Ok(mix)
}

/// Runs zbpf (interpreted, and native when there is native code) and
/// libpcap over every packet; returns the packets accepted and, at the
/// first packet where they disagree, its index and the three answers.
pub fn agree(f: &Filter, mix: &Mix) -> Result<usize, String> {
    let mut accepted = 0;
    for (i, (pkt, wirelen)) in mix.iter().enumerate() {
        let ours = f.zbpf.run(pkt, wirelen);
        let native = f.jit.as_ref().map_or(ours, |j| j.run(pkt, wirelen));
        let theirs = f.pcap.run(pkt, wirelen);
        if ours != theirs || native != theirs {
            return Err(format!(
                "{:?}: packet {i} of the mix: zbpf interpreter {ours}, zbpf JIT {native}, \
                 libpcap {theirs}",
                f.expr
            ));
        }
        accepted += usize::from(ours != 0);
    }
    Ok(accepted)
}

/// The geometric mean of ratios (NaN for none): how every comparison of
/// the filter machines is summed up.
pub fn geomean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x.ln(), n + 1));
    if n == 0 {
        f64::NAN
    } else {
        (sum / n as f64).exp()
    }
}
