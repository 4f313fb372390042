//! What one descriptor costs in memory: heap bytes and allocations made by
//! open(2) and the configuration a capture needs (buffer mode and size, a
//! filter, the interface), counted by the bench's allocator, per mode.

use std::ffi::c_void;

use zbpf::abi::ioctl::{BIOCSBLEN, BIOCSETBUFMODE, BIOCSETF, BIOCSETIF, BIOCSETZBUF};
use zbpf::abi::{dlt, BpfProgram, BpfZbuf, IfReq, UserAddr, BPF_BUFMODE_ZBUF};
use zbpf::hosted::libpcap;
use zbpf::hosted::process::SharedRegion;
use zbpf::hosted::sim::Sim;

use crate::alloc::Snapshot;
use crate::capture::{machine, BUFSIZE};

/// One mode's result.
#[derive(Clone, Debug)]
pub struct MemoryRow {
    /// "BUFFER" or "ZBUF".
    pub mode: &'static str,
    /// Capture buffer size asked for.
    pub bufsize: usize,
    /// Heap bytes still allocated per descriptor after open + configure.
    pub heap_bytes: f64,
    /// Allocation calls per descriptor during open + configure.
    pub allocs: f64,
    /// Bytes of the two capture buffers that live in the process's own
    /// (shared) memory rather than on the engine's heap.
    pub user_buffer_bytes: usize,
    /// Heap bytes per descriptor not given back after close.
    pub leaked_after_close: f64,
}

fn ioctl<T>(sim: &Sim, fd: i32, cmd: u64, arg: &mut T) -> Result<(), String> {
    sim.ioctl(fd, cmd, (arg as *mut T).cast::<c_void>()).map_err(|e| format!("ioctl {cmd:#x}: {e}"))
}

/// Opens and configures one descriptor as a capture would.
fn open_one(sim: &Sim, zbuf: Option<(&SharedRegion, &SharedRegion)>) -> Result<i32, String> {
    let fd = sim.open(2).map_err(|e| format!("open: {e}"))?;
    match zbuf {
        None => {
            let mut size = BUFSIZE as u32;
            ioctl(sim, fd, BIOCSBLEN, &mut size)?;
        }
        Some((a, b)) => {
            let mut mode = BPF_BUFMODE_ZBUF;
            ioctl(sim, fd, BIOCSETBUFMODE, &mut mode)?;
            let mut bz =
                BpfZbuf { bz_bufa: a.addr(), bz_bufb: b.addr(), bz_buflen: a.len() as u64 };
            ioctl(sim, fd, BIOCSETZBUF, &mut bz)?;
        }
    }
    let mut insns = libpcap::compile("udp port 9", dlt::DLT_EN10MB, 65535)?;
    let mut prog =
        BpfProgram { bf_len: insns.len() as u32, bf_insns: UserAddr(insns.as_mut_ptr() as u64) };
    ioctl(sim, fd, BIOCSETF, &mut prog)?;
    let mut ifr = IfReq::default();
    ifr.ifr_name[..3].copy_from_slice(b"em0");
    ioctl(sim, fd, BIOCSETIF, &mut ifr)?;
    Ok(fd)
}

/// Measures `n` descriptors per mode; the averages are per descriptor.
pub fn measure(n: usize) -> Result<Vec<MemoryRow>, String> {
    let mut rows = Vec::new();
    for zbuf in [false, true] {
        let (sim, _iface) = machine();
        // Warm the machine's tables: opening n descriptors grows them once
        // (the file table's capacity stays), which is not a descriptor's
        // cost.
        let mut warm = Vec::new();
        for _ in 0..n {
            warm.push(open_one(&sim, None)?);
        }
        for fd in warm {
            sim.close(fd).map_err(|e| e.to_string())?;
        }
        sim.bpf().platform.services.epoch.wait();
        let regions: Vec<(SharedRegion, SharedRegion)> = if zbuf {
            (0..n)
                .map(|_| Ok((SharedRegion::new(BUFSIZE)?, SharedRegion::new(BUFSIZE)?)))
                .collect::<std::io::Result<_>>()
                .map_err(|e| format!("shared buffers: {e}"))?
        } else {
            Vec::new()
        };
        // libpcap's compiler allocates too: compile once outside, count
        // its allocations separately and subtract them.
        let c0 = Snapshot::now();
        let _ = libpcap::compile("udp port 9", dlt::DLT_EN10MB, 65535)?;
        let compile_allocs = Snapshot::now().allocs_since(&c0);
        let before = Snapshot::now();
        let mut fds = Vec::new();
        for i in 0..n {
            fds.push(open_one(&sim, regions.get(i).map(|(a, b)| (a, b)))?);
        }
        let after = Snapshot::now();
        for fd in fds {
            sim.close(fd).map_err(|e| e.to_string())?;
        }
        // Closing frees after the epoch; wait for it like unload does.
        sim.bpf().platform.services.epoch.wait();
        let closed = Snapshot::now();
        let allocs = after.allocs_since(&before).saturating_sub(compile_allocs * n as u64);
        rows.push(MemoryRow {
            mode: if zbuf { "ZBUF" } else { "BUFFER" },
            bufsize: BUFSIZE,
            heap_bytes: after.live_since(&before) as f64 / n as f64,
            allocs: allocs as f64 / n as f64,
            user_buffer_bytes: if zbuf { 2 * BUFSIZE } else { 0 },
            leaked_after_close: closed.live_since(&before) as f64 / n as f64,
        });
    }
    Ok(rows)
}
