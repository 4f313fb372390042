//! Delivery alone, in the simulator: the twin of the userspace kld
//! harness's benchmark (tests/ukld/ukld_bench.c), which sends the same
//! bursts through the real zbpf.ko. One Ethernet interface, D descriptors
//! with an accept-all filter (`ret #65535`), BUFFER or ZBUF, 64 or 1500
//! byte frames; only the burst through the tap is timed, the drain that
//! follows (read(2), or acknowledging the shared buffers) is not. As the
//! harness's driver does, the burst cycles through [`LIST`] copies of the
//! frame, each in its own buffer (a driver's packets are, each in its own
//! cluster), not one buffer over and over. Printed as tab-separated lines
//! for tests/ukld/bench.sh (`zbpf-bench --deliver`).

use std::time::Instant;

use zbpf::abi::{bpf_wordalign, Errno};
use zbpf::engine::Knob;
use zbpf::hosted::consumer::{Capture, Mode, ZbufStyle};
use zbpf::hosted::traffic;

use crate::capture::{capture_config, machine, record_hdrlen};

/// Bytes of each capture buffer; `maxbufsize` is raised to it. The same
/// as ukld_bench.c's BENCH_BUFSIZE.
pub const BUFSIZE: usize = 1024 * 1024;
/// ZBUF's shared header in front of the records.
const ZBUF_HEADER: usize = 32;
/// Frames in their own buffers the burst cycles through: ukld_bench.c's
/// BENCH_LIST, the packets of one if_input list, each in its own mbuf.
const LIST: usize = 16;
/// Timed bursts per configuration (the median is kept), after a warm-up.
const REPS: usize = 21;
const WARMUP: usize = 3;

/// Packets per burst: one and a half buffers' worth, so every burst
/// rotates while capturing and nothing is dropped. The same formula as
/// ukld_bench.c's, which checks that the two agree.
pub fn burst(size: usize) -> usize {
    (BUFSIZE - ZBUF_HEADER) / bpf_wordalign(record_hdrlen() + size) * 3 / 2
}

/// One configuration's median nanoseconds per packet.
fn measure(zbuf: bool, descriptors: usize, size: usize) -> Result<f64, String> {
    let (sim, iface) = machine();
    sim.bpf().config.set(Knob::MaxBufSize, BUFSIZE as i32).map_err(|e| e.to_string())?;
    let mode = if zbuf { Mode::Zbuf(ZbufStyle::Header) } else { Mode::Buffer };
    let cfg = capture_config(mode, BUFSIZE, "", 65535);
    let mut caps = Vec::new();
    for i in 0..descriptors {
        caps.push(Capture::open(&sim, &cfg).map_err(|e| format!("opening #{i}: {e}"))?);
    }
    let frame = traffic::fixed(1, size).remove(0);
    let frames: Vec<Vec<u8>> = (0..LIST).map(|_| frame.clone()).collect();
    let n = burst(size);
    let mut samples = Vec::new();
    for rep in 0..WARMUP + REPS {
        let t0 = Instant::now();
        sim.receive_burst(&iface, frames.iter().cycle().take(n).map(Vec::as_slice));
        let ns = t0.elapsed().as_secs_f64() * 1e9 / n as f64;
        if rep >= WARMUP {
            samples.push(ns);
        }
        for (i, cap) in caps.iter_mut().enumerate() {
            let mut seen = 0;
            loop {
                match cap.next_batch(|_| seen += 1) {
                    Ok(0) | Err(Errno::EWOULDBLOCK) => break,
                    Ok(_) => {}
                    Err(e) => return Err(format!("draining #{i}: {e}")),
                }
            }
            if seen != n {
                return Err(format!("descriptor #{i} saw {seen} of {n} packets"));
            }
        }
    }
    let sent = ((WARMUP + REPS) * n) as u64;
    for (i, cap) in caps.iter().enumerate() {
        let st = cap.stats().map_err(|e| format!("BIOCGSTATS: {e}"))?;
        if u64::from(st.bs_recv) != sent || st.bs_drop != 0 {
            return Err(format!(
                "descriptor #{i}: received {} of {sent}, dropped {}",
                st.bs_recv, st.bs_drop
            ));
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

/// Prints `sim MODE DESCRIPTORS SIZE BURST NS` for every configuration,
/// or for `only` (`MODE,DESCRIPTORS,SIZE`).
pub fn print(only: Option<&str>) -> Result<(), String> {
    let mut matched = false;
    for zbuf in [false, true] {
        for descriptors in [1, 8] {
            for size in [64, 1500] {
                let mode = if zbuf { "ZBUF" } else { "BUFFER" };
                if only.is_some_and(|c| c != format!("{mode},{descriptors},{size}")) {
                    continue;
                }
                matched = true;
                let ns = measure(zbuf, descriptors, size)?;
                println!("sim\t{mode}\t{descriptors}\t{size}\t{}\t{ns:.1}", burst(size));
            }
        }
    }
    if !matched {
        return Err(format!("--config {}: no such configuration", only.unwrap_or("")));
    }
    Ok(())
}
