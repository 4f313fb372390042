//! zbpf's filter machine against libpcap's, on real traffic.
//!
//! Each tcpdump expression is compiled by the real libpcap (`pcap_compile`,
//! optimised) for a link type, must pass zbpf's validator, and then runs on
//! every non-empty packet of every test trace of that link type, both in
//! libpcap's `bpf_filter` and in zbpf's [`Program::run`]; the results must be
//! equal. (The other link types have few packets, `DLT_LOOP` none, so some
//! of the Ethernet traces' IP packets are re-framed for each of them too.)
//! Every packet is also cut into several segment chains (empty
//! segments included, and a run of one-byte segments) and
//! [`Program::run_segments`] must give the same result again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zbpf::abi::BpfInsn;
use zbpf::filter::{validate, Program};
use zbpf::hosted::libpcap;
use zbpf::hosted::pcap::{self, Record};
use zbpf::hosted::traffic::Rng;

const SNAPLEN: u32 = 262_144;

/// Expressions for Ethernet (`DLT_EN10MB`).
const ETHERNET: &[&str] = &[
    "",
    "ip",
    "ip6",
    "arp",
    "rarp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "igmp",
    "pim",
    "vrrp",
    "sctp",
    "ip proto 47",
    "ip6 proto 6",
    "tcp port 80",
    "udp port 53",
    "port 53 or port 67 or port 68",
    "tcp dst port 443 or tcp src port 22",
    "udp port 123 or udp port 161 or udp port 514",
    // Long runs of `jeq`, which the JIT compiles as table lookups.
    "port 20 or port 21 or port 22 or port 23 or port 25 or port 53 or port 80 or port 110 \
     or port 143 or port 179 or port 443 or port 993 or port 995 or port 3306 or port 6379",
    "dst port 1 or dst port 2 or dst port 3 or dst port 4 or dst port 5 or dst port 6 \
     or dst port 7 or dst port 8 or dst port 9 or dst port 53",
    "host 10.0.0.1 or host 10.0.0.2 or host 192.168.1.1 or host 192.168.1.2 or host 8.8.8.8 \
     or host 8.8.4.4 or host 1.1.1.1 or host 131.151.32.21 or host 131.151.32.129",
    "portrange 1-1023",
    "tcp portrange 6000-6063",
    "udp src portrange 1024-65535",
    "host 192.168.1.1",
    "src host 192.168.1.104 and dst host 192.168.1.1",
    "host 127.0.0.1 or host 10.0.0.1",
    "dst host 255.255.255.255",
    "net 10.0.0.0/8",
    "net 192.168.0.0/16",
    "src net 131.151.0.0/16 and not dst net 131.151.0.0/16",
    "ip6 net fe80::/10",
    "ip multicast",
    "ip6 multicast",
    "ether broadcast",
    "ether multicast",
    "ether[0] & 1 = 1",
    "ether host ff:ff:ff:ff:ff:ff",
    "ether src 00:1f:29:da:2d:79",
    "ether dst 00:e0:f9:cc:18:00 or ether src 00:60:08:9f:b1:f3",
    "ether proto 0x88cc",
    "ether[12:2] = 0x8100 or ether[12:2] = 0x88a8",
    "vlan",
    "vlan and ip",
    "vlan 1213",
    "vlan 100 or vlan 202",
    "vlan and vlan",
    "vlan and tcp port 80",
    "mpls",
    "pppoed",
    "pppoes",
    "pppoes and ip",
    "stp",
    "llc",
    "isis",
    "decnet",
    "ipx",
    "atalk",
    "ip[6:2] & 0x1fff != 0",
    "ip[6:2] & 0x3fff != 0",
    "ip[6] & 0x40 != 0",
    "ip[0] & 0xf > 5",
    "ip[1] & 0xfc != 0",
    "ip[8] < 64",
    "tcp[13] & 2 != 0",
    "tcp[13] = 0x12",
    "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
    "tcp[tcpflags] == tcp-ack",
    "tcp[12] >> 4 > 5",
    "tcp[((tcp[12] & 0xf0) >> 2):4] = 0x47455420",
    "udp[4:2] > 100",
    "udp and (udp[8] | udp[9]) = 0",
    "icmp[icmptype] = icmp-echo or icmp[icmptype] = icmp-echoreply",
    "icmp[0] = 3",
    "ip6[6] = 58",
    "ip6 and udp port 547",
    "len > 1000",
    "len <= 64",
    "greater 500",
    "less 100",
    "ip[2:2] % 7 = 3",
    "(tcp[0:2] ^ tcp[2:2]) & 0xff = 0x10",
    "(tcp[0:2] ^ tcp[2:2]) & 3 = 1",
    "ip[2:2] / 4 * 4 = ip[2:2]",
    "(ip[2:2] - ((ip[0] & 0xf) << 2)) > 100",
    "ip[2:2] * 3 > 4000",
    "-len & 0xff > 0x80",
    "len - 14 = ip[2:2]",
    "(ip[12:4] ^ ip[16:4]) % 1000 < 500",
    "ip[0] << 2 & 0x3c > 20",
    "not ip and not ip6 and not arp",
    "not tcp and not udp",
    "ip and not (tcp or udp or icmp)",
    "host 192.168.1.1 and (tcp or icmp)",
    "(tcp port 80 or tcp port 8080) and not host 10.0.0.1",
    "ip and udp dst port 4789",
    "geneve",
];

/// Expressions for the link types that carry IP directly or behind a short
/// fixed header (BSD loopback, raw IP, Linux cooked, PPP, Cisco HDLC).
const IP_LEVEL: &[&str] = &[
    "",
    "ip",
    "ip6",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "tcp port 80",
    "udp port 53",
    "portrange 1-1023",
    "host 127.0.0.1",
    "host 192.168.1.1 or host 10.0.0.1",
    "net 10.0.0.0/8",
    "net 192.168.0.0/16",
    "ip6 net fe80::/10",
    "ip multicast",
    "ip[6:2] & 0x1fff != 0",
    "ip[8] > 60",
    "ip[0] & 0xf = 5 and ip[9] = 17",
    "tcp[13] & 2 != 0",
    "tcp[tcpflags] & tcp-push != 0",
    "(tcp[0:2] ^ tcp[2:2]) & 0xff = 0x10",
    "(tcp[0:2] ^ tcp[2:2]) & 3 = 1",
    "ip[2:2] % 7 = 3",
    "len > 100",
    "less 80",
    "not ip",
    "ip6 and tcp",
    "ip and not tcp",
];

/// Expressions for 802.11, with or without a radiotap header.
const WLAN: &[&str] = &[
    "",
    "type mgt",
    "type data",
    "type ctl",
    "subtype beacon",
    "type mgt subtype probe-req",
    "wlan addr1 ff:ff:ff:ff:ff:ff",
    "wlan host 00:0c:41:82:b2:55",
    "ip",
    "tcp",
    "udp port 53",
    "not type ctl",
    "wlan[0] & 0xc = 8",
    "len > 200",
];

/// File LINKTYPE, the DLT libpcap compiles for, the expression set.
const GROUPS: &[(u32, u32, &[&str])] = &[
    (1, 1, ETHERNET),
    (0, 0, IP_LEVEL),
    (108, 108, IP_LEVEL),
    (101, 12, IP_LEVEL),
    (228, 228, IP_LEVEL),
    (229, 229, IP_LEVEL),
    (113, 113, IP_LEVEL),
    (9, 9, IP_LEVEL),
    (104, 104, IP_LEVEL),
    (127, 127, WLAN),
    (105, 105, WLAN),
];

/// One random segmentation of `pkt`: either random cut points (repeated
/// points make empty segments, and an empty segment may lead), or the first
/// 64 bytes one by one with empty segments between some of them.
fn segmentation<'a>(rng: &mut Rng, pkt: &'a [u8]) -> Vec<&'a [u8]> {
    let mut segs: Vec<&[u8]> = Vec::new();
    if rng.below(3) == 0 {
        let split = pkt.len().min(64);
        for i in 0..split {
            if rng.below(4) == 0 {
                segs.push(&[]);
            }
            segs.push(&pkt[i..i + 1]);
        }
        segs.push(&pkt[split..]);
        return segs;
    }
    let mut cuts: Vec<usize> =
        (0..rng.below(8)).map(|_| rng.below(pkt.len() as u64 + 1) as usize).collect();
    cuts.sort_unstable();
    if rng.below(4) == 0 {
        segs.push(&[]);
    }
    let mut from = 0;
    for c in cuts {
        segs.push(&pkt[from..c]);
        from = c;
    }
    segs.push(&pkt[from..]);
    segs
}

fn trace_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pcap");
    let mut files = Vec::new();
    for dir in ["tcpdump", "libpcap-filter"] {
        for e in std::fs::read_dir(root.join(dir)).expect("test traces") {
            files.push(e.expect("directory entry").path());
        }
    }
    files.sort();
    files
}

struct Packet {
    file: String,
    index: usize,
    rec: Record,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn libpcap_and_zbpf_agree_on_every_packet() {
    // Every non-empty packet of every trace, by LINKTYPE.
    let mut by_linktype: BTreeMap<u32, Vec<Packet>> = BTreeMap::new();
    for f in trace_files() {
        let (records, _) = pcap::read_file_partial(&f);
        let file = f.file_name().unwrap().to_string_lossy().into_owned();
        for (index, rec) in records.into_iter().enumerate() {
            if !rec.data.is_empty() {
                let file = file.clone();
                by_linktype.entry(rec.linktype).or_default().push(Packet { file, index, rec });
            }
        }
    }

    // The link types other than Ethernet have few packets (DLT_LOOP none),
    // so the IPv4 and IPv6 packets of Ethernet traces are also re-framed for
    // each of them.
    let mut reframed: Vec<Packet> = Vec::new();
    let ip_frames = by_linktype[&1]
        .iter()
        .filter(|p| {
            p.rec.data.len() > 14 && matches!(p.rec.data[12..14], [0x08, 0x00] | [0x86, 0xdd])
        })
        .step_by(3)
        .take(2000);
    for (n, p) in ip_frames.enumerate() {
        let v6 = p.rec.data[12] == 0x86;
        let ip = &p.rec.data[14..];
        let ethertype = [p.rec.data[12], p.rec.data[13]];
        // Address families of IPv6: Linux (what libpcap on this host
        // compiles for), NetBSD/OpenBSD, FreeBSD, Darwin.
        let af: u32 = if v6 { [10, 24, 10, 28, 10, 30][n % 6] } else { 2 };
        let sll = {
            let mut h = vec![0, (n % 5) as u8, 0, 1, 0, 6];
            h.extend_from_slice(&p.rec.data[6..12]);
            h.extend_from_slice(&[0, 0]);
            h.extend_from_slice(&ethertype);
            h
        };
        let headers: [(u32, Vec<u8>); 7] = [
            (0, af.to_le_bytes().to_vec()),
            (108, af.to_be_bytes().to_vec()),
            (101, Vec::new()),
            (if v6 { 229 } else { 228 }, Vec::new()),
            (113, sll),
            (9, vec![0xff, 0x03, 0x00, if v6 { 0x57 } else { 0x21 }]),
            (104, vec![if n % 2 == 0 { 0x0f } else { 0x8f }, 0x00, ethertype[0], ethertype[1]]),
        ];
        for (linktype, header) in headers {
            let mut rec = p.rec.clone();
            rec.linktype = linktype;
            rec.data = [&header[..], ip].concat();
            rec.wirelen = (rec.wirelen - 14).wrapping_add(header.len() as u32);
            let file = format!("{} (re-framed for LINKTYPE {linktype})", p.file);
            reframed.push(Packet { file, index: p.index, rec });
        }
    }
    for p in reframed {
        by_linktype.entry(p.rec.linktype).or_default().push(p);
    }
    for (&linktype, packets) in &by_linktype {
        if GROUPS.iter().any(|g| g.0 == linktype) {
            println!("link type {linktype}: {} packets", packets.len());
        }
    }

    let mut rng = Rng::new(0x7a62_7066);
    let (mut pairs, mut segmented, mut filters) = (0u64, 0u64, 0usize);
    let mut one_sided: Vec<String> = Vec::new();
    let mut never: Vec<String> = Vec::new();
    let mut mismatches: Vec<String> = Vec::new();
    for &(linktype, dlt, exprs) in GROUPS {
        let packets = by_linktype.get(&linktype).map(Vec::as_slice).unwrap_or(&[]);
        assert!(!packets.is_empty(), "no packets of link type {linktype}");
        // Three segmentations per packet, shared by all filters.
        let segs: Vec<Vec<Vec<&[u8]>>> = packets
            .iter()
            .map(|p| (0..3).map(|_| segmentation(&mut rng, &p.rec.data)).collect())
            .collect();
        for expr in exprs {
            let insns: Vec<BpfInsn> = match libpcap::compile(expr, dlt, SNAPLEN) {
                Ok(insns) => insns,
                // libpcap 1.10 refuses, say, "ip6" on DLT_IPV4.
                Err(e) if e.contains("rejects all packets") => {
                    never.push(format!("{expr:?} (DLT {dlt})"));
                    continue;
                }
                Err(e) => panic!("libpcap cannot compile {expr:?} for DLT {dlt}: {e}"),
            };
            if let Err(e) = validate(&insns) {
                panic!("zbpf rejects libpcap's program for {expr:?} (DLT {dlt}): {e}");
            }
            let prog = Program::new(&insns).expect("validated");
            let native = zbpf::hosted::native::native_program(&insns).expect("validated");
            assert!(native.is_native(), "the JIT did not attach");
            filters += 1;
            let (mut accepted, mut rejected) = (0u32, 0u32);
            for (p, segs) in packets.iter().zip(&segs) {
                let (data, wirelen) = (&p.rec.data[..], p.rec.wirelen);
                let want = libpcap::bpf_filter(&insns, data, wirelen);
                let got = prog.run(data, wirelen);
                pairs += 1;
                if want == 0 {
                    rejected += 1;
                } else {
                    accepted += 1;
                }
                let mut report = |what: &str, got: u32| {
                    if mismatches.len() < 20 {
                        mismatches.push(format!(
                            "{expr:?} (DLT {dlt}) on {}#{} ({what}): libpcap {want}, zbpf {got}; \
                             wirelen {wirelen}, packet {}",
                            p.file,
                            p.index,
                            hex(data)
                        ));
                    }
                };
                if got != want {
                    report("contiguous", got);
                }
                let got = native.run(data, wirelen);
                if got != want {
                    report("native code", got);
                }
                for s in segs {
                    segmented += 1;
                    let got = prog.run_segments(&s[..], wirelen);
                    if got != want {
                        report("segmented", got);
                    }
                    let got = native.run_segments(&s[..], wirelen);
                    if got != want {
                        report("native code, segmented", got);
                    }
                }
            }
            if (accepted == 0 || rejected == 0) && !expr.is_empty() {
                one_sided.push(format!(
                    "{expr:?} (DLT {dlt}): {accepted} accepted, {rejected} rejected"
                ));
            }
        }
    }
    println!(
        "{filters} (filter, link type) programs; {pairs} (filter, packet) pairs compared with \
         libpcap; {segmented} segmented runs; {} mismatches",
        mismatches.len()
    );
    println!("libpcap found {} expressions to reject everything: {never:?}", never.len());
    println!("{} programs saw only one outcome:", one_sided.len());
    for s in &one_sided {
        println!("  {s}");
    }
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    assert!(mismatches.is_empty(), "zbpf and libpcap disagree: {mismatches:#?}");
    assert!(pairs > 100_000, "only {pairs} pairs compared");
    assert!(segmented >= 3 * pairs);
    assert!(ETHERNET.len() >= 60);
    assert!(
        never.iter().all(|n| n.ends_with("(DLT 228)") || n.ends_with("(DLT 229)")),
        "only IPv4-only and IPv6-only link types make expressions reject everything"
    );
    // "" accepts everything by definition and is not counted.
    assert!(
        one_sided.len() * 8 < filters,
        "too many filters saw only accepts or only rejects: {one_sided:#?}"
    );
    let ethernet_one_sided = one_sided.iter().filter(|s| s.contains("(DLT 1)")).count();
    assert!(ethernet_one_sided * 10 < ETHERNET.len());
}
