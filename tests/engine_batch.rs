//! A driver's batch (an m_nextpkt list, `Sim::receive_burst`) goes through
//! the engine's batch path: each reader filters the batch and stores what
//! it accepts under one hold of its lock. What the readers get must be what
//! packet-by-packet delivery (`Sim::receive`, one `Bpf::tap` per packet)
//! gives them: the same records in the same order, the same counters, the
//! same drops when the buffers overflow; and one timestamp per packet,
//! shared by every reader that accepts it.

use std::time::Duration;

use zbpf::abi::{dlt, Direction, BPF_T_NANOTIME};
use zbpf::hosted::consumer::{Capture, CaptureConfig, Mode, ZbufStyle};
use zbpf::hosted::libpcap;
use zbpf::hosted::net::SimIface;
use zbpf::hosted::sim::Sim;
use zbpf::hosted::traffic;

/// One reader's setup.
struct Reader {
    mode: Mode,
    bufsize: usize,
    filter: &'static str,
    snaplen: u32,
    direction: Direction,
}

const READERS: [Reader; 4] = [
    // Accepts everything, small buffers: it drops once both are full.
    Reader {
        mode: Mode::Buffer,
        bufsize: 4096,
        filter: "",
        snaplen: 65535,
        direction: Direction::InOut,
    },
    // Accepts a subset, cut to 100 bytes.
    Reader {
        mode: Mode::Buffer,
        bufsize: 65536,
        filter: "udp",
        snaplen: 100,
        direction: Direction::InOut,
    },
    // Zero-copy, everything.
    Reader {
        mode: Mode::Zbuf(ZbufStyle::Header),
        bufsize: 65536,
        filter: "",
        snaplen: 65535,
        direction: Direction::InOut,
    },
    // Outbound only: neither sees nor counts the received frames.
    Reader {
        mode: Mode::Buffer,
        bufsize: 65536,
        filter: "",
        snaplen: 65535,
        direction: Direction::Out,
    },
];

/// One record: caplen, datalen, the bytes, the timestamp.
type Rec = (u32, u32, Vec<u8>, (i64, u64));

/// The records of each reader, and each reader's (received, dropped).
type Seen = (Vec<Vec<Rec>>, Vec<(u32, u32)>);

fn capture(frames: &[Vec<u8>], batched: bool) -> Seen {
    let sim = Sim::new();
    let iface = sim.add_iface(SimIface::ethernet("em0", traffic::HOST_MAC));
    let mut caps: Vec<Capture<'_>> = READERS
        .iter()
        .map(|r| {
            let mut cfg = CaptureConfig::new("em0", r.mode);
            cfg.bufsize = r.bufsize;
            cfg.filter =
                Some(libpcap::compile(r.filter, dlt::DLT_EN10MB, r.snaplen).expect("compiles"));
            cfg.timeout = Some(Duration::ZERO);
            cfg.nonblock = true;
            cfg.tstamp = BPF_T_NANOTIME;
            cfg.direction = r.direction;
            Capture::open(&sim, &cfg).expect("opens")
        })
        .collect();
    if batched {
        sim.receive_burst(&iface, frames.iter().map(Vec::as_slice));
    } else {
        for f in frames {
            sim.receive(&iface, f);
        }
    }
    let mut records = Vec::new();
    let mut stats = Vec::new();
    for cap in caps.iter_mut() {
        let mut mine = Vec::new();
        while cap
            .next_batch(|r| {
                mine.push((r.caplen, r.datalen, r.data.to_vec(), (r.ts_sec, r.ts_frac)))
            })
            .unwrap_or(0)
            > 0
        {}
        let st = cap.stats().expect("BIOCGSTATS");
        records.push(mine);
        stats.push((st.bs_recv, st.bs_drop));
    }
    (records, stats)
}

fn frames() -> Vec<Vec<u8>> {
    // 45 frames (five batches and a part), UDP and TCP of varied sizes.
    let mut v = traffic::fixed(23, 200);
    v.extend(traffic::fixed(22, 1400));
    for (i, f) in v.iter_mut().enumerate().filter(|(i, _)| i % 3 == 0) {
        // IPv4 protocol byte: TCP instead of UDP for every third frame.
        f[23] = 6;
        f[14 + 10] = i as u8;
    }
    v
}

#[test]
fn a_batch_stores_what_packet_by_packet_delivery_stores() {
    let frames = frames();
    let (batched, batched_stats) = capture(&frames, true);
    let (single, single_stats) = capture(&frames, false);
    assert_eq!(batched_stats, single_stats, "(received, dropped) per reader");
    for (i, (b, s)) in batched.iter().zip(&single).enumerate() {
        let strip = |v: &Vec<Rec>| {
            v.iter().map(|(c, d, bytes, _)| (*c, *d, bytes.clone())).collect::<Vec<_>>()
        };
        assert_eq!(strip(b), strip(s), "reader {i}: the records, timestamps aside");
    }
    // The cases the readers were set up for did happen.
    assert!(batched_stats[0].1 > 0, "the small-buffer reader dropped: {batched_stats:?}");
    assert!(batched[1].len() < frames.len() && batched[1].iter().all(|r| r.0 <= 100));
    assert_eq!(batched[2].len(), frames.len());
    // bpf_mtap checks the direction before counting a packet received.
    assert!(batched[3].is_empty() && batched_stats[3] == (0, 0));
}

#[test]
fn a_batched_packet_has_one_timestamp_for_every_reader() {
    let frames = frames();
    let (batched, _) = capture(&frames, true);
    // Reader 2 took every frame in order; reader 1 the UDP ones, each with
    // the timestamp of the same frame in reader 2's records.
    let stamps: Vec<_> = batched[2].iter().map(|r| r.3).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "timestamps never go back");
    let udp: Vec<usize> = (0..frames.len()).filter(|i| i % 3 != 0).collect();
    assert_eq!(batched[1].len(), udp.len());
    for (r, &i) in batched[1].iter().zip(&udp) {
        assert_eq!(r.3, stamps[i], "frame {i}: the same timestamp in both readers");
    }
}
