//! A small safe binding of the real libpcap, the reference zbpf's filter
//! machine is tested against: its filter compiler, its userland `bpf_filter`
//! interpreter, and its savefile reader.
//!
//! Semantics of libpcap 1.10's `bpf_filter` that differ from FreeBSD's
//! kernel (and so from zbpf), which differential tests must steer around:
//! a shift by X of 32 or more yields 0 (FreeBSD's amd64 kernel, like zbpf,
//! takes the count modulo 32), and scratch memory is not zeroed before a run
//! (zbpf's is), so a program must store before it loads.

use core::ffi::{c_char, c_int, c_uint, CStr};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::string::{String, ToString};
use std::sync::Mutex;
use std::vec::Vec;

use crate::abi::BpfInsn;

/// `PCAP_NETMASK_UNKNOWN`.
pub const PCAP_NETMASK_UNKNOWN: u32 = 0xffff_ffff;
/// `PCAP_ERRBUF_SIZE`.
const PCAP_ERRBUF_SIZE: usize = 256;

/// An opaque `pcap_t`.
#[repr(C)]
struct PcapT {
    _private: [u8; 0],
}

/// `struct bpf_program` as libpcap declares it.
#[repr(C)]
struct CBpfProgram {
    bf_len: c_uint,
    bf_insns: *mut BpfInsn,
}

/// `struct pcap_pkthdr`.
#[repr(C)]
struct PcapPkthdr {
    ts: libc::timeval,
    caplen: u32,
    len: u32,
}

#[link(name = "pcap")]
unsafe extern "C" {
    fn pcap_open_dead(linktype: c_int, snaplen: c_int) -> *mut PcapT;
    fn pcap_compile(
        p: *mut PcapT,
        fp: *mut CBpfProgram,
        expr: *const c_char,
        optimize: c_int,
        netmask: u32,
    ) -> c_int;
    fn pcap_freecode(fp: *mut CBpfProgram);
    fn pcap_geterr(p: *mut PcapT) -> *mut c_char;
    fn pcap_close(p: *mut PcapT);
    fn pcap_open_offline(fname: *const c_char, errbuf: *mut c_char) -> *mut PcapT;
    fn pcap_next_ex(p: *mut PcapT, hdr: *mut *mut PcapPkthdr, data: *mut *const u8) -> c_int;
    fn pcap_datalink(p: *mut PcapT) -> c_int;
    fn pcap_lib_version() -> *const c_char;
    #[link_name = "bpf_filter"]
    fn c_bpf_filter(pc: *const BpfInsn, pkt: *const u8, wirelen: c_uint, buflen: c_uint) -> c_uint;
}

/// Serialises calls into libpcap's compiler and reader (not thread-safe in
/// older releases).
static LIBPCAP: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    // A panic while holding the lock leaves no libpcap state half-done that
    // matters to the next caller.
    LIBPCAP.lock().unwrap_or_else(|e| e.into_inner())
}

/// libpcap's version string, e.g. "libpcap version 1.10.3 (with TPACKET_V3)".
pub fn version() -> String {
    // SAFETY: pcap_lib_version returns a pointer to a static NUL-terminated
    // string that lives as long as the library.
    let s = unsafe { CStr::from_ptr(pcap_lib_version()) };
    s.to_string_lossy().into_owned()
}

/// A `pcap_t` closed on drop.
struct Handle(*mut PcapT);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the pointer came from pcap_open_dead/pcap_open_offline, is
        // non-null, and is closed exactly once, here.
        unsafe { pcap_close(self.0) }
    }
}

impl Handle {
    fn error(&self) -> String {
        // SAFETY: the handle is open; pcap_geterr returns a pointer to its
        // NUL-terminated error buffer, copied before the handle can change.
        let s = unsafe { CStr::from_ptr(pcap_geterr(self.0)) };
        s.to_string_lossy().into_owned()
    }
}

/// Compiles a tcpdump expression with libpcap's compiler for the data-link
/// type `linktype` (a DLT as libpcap on this host numbers it; `DLT_RAW` is
/// 12), optimised, with an unknown netmask and snap length `snaplen`.
///
/// libpcap compiles `protochain` with backward jumps, which FreeBSD's
/// validator (and zbpf's) refuses; everything else it emits validates.
pub fn compile(expr: &str, linktype: u32, snaplen: u32) -> Result<Vec<BpfInsn>, String> {
    let cexpr = CString::new(expr).map_err(|_| "expression contains a NUL byte".to_string())?;
    let linktype = c_int::try_from(linktype).map_err(|_| "link type out of range".to_string())?;
    let snaplen = c_int::try_from(snaplen).map_err(|_| "snap length out of range".to_string())?;
    let _guard = lock();
    // SAFETY: pcap_open_dead takes two integers and returns an owned handle
    // or null.
    let raw = unsafe { pcap_open_dead(linktype, snaplen) };
    if raw.is_null() {
        return Err("pcap_open_dead failed".to_string());
    }
    let handle = Handle(raw);
    let mut prog = CBpfProgram { bf_len: 0, bf_insns: core::ptr::null_mut() };
    // SAFETY: the handle is open, `prog` is a valid bpf_program to fill, and
    // `cexpr` is NUL-terminated and outlives the call.
    let rc = unsafe { pcap_compile(handle.0, &mut prog, cexpr.as_ptr(), 1, PCAP_NETMASK_UNKNOWN) };
    if rc != 0 {
        return Err(handle.error());
    }
    let insns = if prog.bf_insns.is_null() || prog.bf_len == 0 {
        Vec::new()
    } else {
        // SAFETY: after pcap_compile succeeded, bf_insns holds bf_len `struct
        // bpf_insn`s (BpfInsn's layout), copied out before pcap_freecode.
        unsafe { core::slice::from_raw_parts(prog.bf_insns, prog.bf_len as usize) }.to_vec()
    };
    // SAFETY: `prog` was filled by pcap_compile and is freed exactly once.
    unsafe { pcap_freecode(&mut prog) };
    Ok(insns)
}

/// A program checked once, run many times by libpcap's own interpreter.
///
/// libpcap's `bpf_filter` takes no program length, so it must only ever see
/// programs zbpf's validator accepts (forward jumps in range, a final
/// return, scratch indices in range): constructing a `PcapFilter` is that
/// check, so that running it costs only the C call (benchmarks compare it
/// with zbpf's interpreter).
#[derive(Clone, Debug)]
pub struct PcapFilter {
    insns: Vec<BpfInsn>,
}

impl PcapFilter {
    /// Accepts exactly the programs zbpf's validator accepts.
    pub fn new(insns: &[BpfInsn]) -> Result<PcapFilter, crate::filter::ValidateError> {
        crate::filter::validate(insns)?;
        Ok(PcapFilter { insns: insns.to_vec() })
    }

    /// libpcap's `bpf_filter` over `pkt` with `buflen = pkt.len()`. An empty
    /// program returns `u32::MAX`, as libpcap does for a null program.
    #[inline]
    pub fn run(&self, pkt: &[u8], wirelen: u32) -> u32 {
        if self.insns.is_empty() {
            return u32::MAX;
        }
        let buflen = c_uint::try_from(pkt.len()).unwrap_or(c_uint::MAX);
        // A validated, non-empty program keeps the interpreter inside it;
        // `buflen` is clamped, so a longer slice only hides bytes from it.
        // SAFETY: the program was validated in `new`; it reads `pkt` only
        // within `buflen` bytes, which `pkt` holds.
        unsafe { c_bpf_filter(self.insns.as_ptr(), pkt.as_ptr(), wirelen, buflen) }
    }
}

/// Runs libpcap's userland interpreter (`bpf_filter`) over `pkt`, with
/// `buflen = pkt.len()`: validates the program, then [`PcapFilter::run`].
/// Panics on a program zbpf's validator rejects (libpcap would run off its
/// end). A 0-byte packet is passed as is (userland libpcap has no mbuf
/// convention), but differential tests skip them.
pub fn bpf_filter(insns: &[BpfInsn], pkt: &[u8], wirelen: u32) -> u32 {
    match PcapFilter::new(insns) {
        Ok(f) => f.run(pkt, wirelen),
        Err(e) => panic!("libpcap::bpf_filter needs a valid program: {e}"),
    }
}

/// One packet as libpcap's savefile reader delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflinePacket {
    /// `ts.tv_sec`, as libpcap computed it (1.10 sign-extends the file's
    /// 32-bit field).
    pub ts_sec: i64,
    /// `ts.tv_usec`, unnormalised.
    pub ts_usec: i64,
    /// `len`.
    pub wirelen: u32,
    /// The `caplen` captured bytes.
    pub data: Vec<u8>,
}

/// A capture file as libpcap reads it.
#[derive(Clone, Debug)]
pub struct Offline {
    /// `pcap_datalink`: the DLT of the whole file.
    pub dlt: u32,
    /// The packets read before the end or the first error.
    pub packets: Vec<OfflinePacket>,
    /// libpcap's message if reading stopped on an error.
    pub error: Option<String>,
}

/// Reads a capture file with libpcap's own reader (`pcap_open_offline`,
/// `pcap_next_ex`), with microsecond timestamps. `Err` if it cannot even be
/// opened.
pub fn read_offline(path: &Path) -> Result<Offline, String> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| "path contains a NUL byte".to_string())?;
    let mut errbuf = [0 as c_char; PCAP_ERRBUF_SIZE];
    let _guard = lock();
    // pcap_open_offline returns an owned handle, or null with a message.
    // SAFETY: `cpath` is NUL-terminated; `errbuf` has PCAP_ERRBUF_SIZE bytes.
    let raw = unsafe { pcap_open_offline(cpath.as_ptr(), errbuf.as_mut_ptr()) };
    if raw.is_null() {
        // SAFETY: on failure libpcap wrote a NUL-terminated message into the
        // buffer, which was zeroed beforehand in any case.
        let msg = unsafe { CStr::from_ptr(errbuf.as_ptr()) };
        return Err(msg.to_string_lossy().into_owned());
    }
    let handle = Handle(raw);
    // SAFETY: the handle is open.
    let dlt = unsafe { pcap_datalink(handle.0) } as u32;
    let mut packets = Vec::new();
    loop {
        let mut hdr: *mut PcapPkthdr = core::ptr::null_mut();
        let mut data: *const u8 = core::ptr::null();
        // SAFETY: the handle is open and both out-pointers are valid.
        let rc = unsafe { pcap_next_ex(handle.0, &mut hdr, &mut data) };
        match rc {
            1 => {}
            -2 => return Ok(Offline { dlt, packets, error: None }),
            _ => return Ok(Offline { dlt, packets, error: Some(handle.error()) }),
        }
        // SAFETY: on success libpcap set `hdr` to a valid header that stays
        // valid until the next call on the handle.
        let h = unsafe { &*hdr };
        let bytes = if h.caplen == 0 || data.is_null() {
            Vec::new()
        } else {
            // SAFETY: on success `data` points to `caplen` bytes, valid until
            // the next call on the handle; they are copied now.
            unsafe { core::slice::from_raw_parts(data, h.caplen as usize) }.to_vec()
        };
        packets.push(OfflinePacket {
            ts_sec: h.ts.tv_sec,
            ts_usec: h.ts.tv_usec,
            wirelen: h.len,
            data: bytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::op::*;
    use crate::filter::Program;

    #[test]
    fn compiles_and_runs_ip() {
        assert!(version().starts_with("libpcap version"));
        let insns = compile("ip", crate::abi::dlt::DLT_EN10MB, 262_144).unwrap();
        assert_eq!(insns[0], BpfInsn::stmt(BPF_LD | BPF_H | BPF_ABS, 12));
        let prog = Program::new(&insns).unwrap();
        let mut frame = [0u8; 60];
        frame[12] = 0x08;
        assert_eq!(bpf_filter(&insns, &frame, 60), 262_144);
        assert_eq!(prog.run(&frame, 60), 262_144);
        frame[12] = 0x86;
        assert_eq!(bpf_filter(&insns, &frame, 60), 0);
        assert_eq!(bpf_filter(&[], &frame, 60), u32::MAX);
        assert!(compile("no such thing", 1, 100).is_err());
        assert!(compile("ip\0", 1, 100).is_err());
        // A raw-IP link type compiles as libpcap numbers it.
        assert!(compile("ip", crate::abi::dlt::DLT_RAW, 100).is_ok());
    }

    #[test]
    #[should_panic(expected = "valid program")]
    fn refuses_invalid_programs() {
        bpf_filter(&[BpfInsn::stmt(BPF_LD | BPF_IMM, 1)], &[1], 1);
    }

    /// zbpf's reader and libpcap's agree on every test trace: the same
    /// packets, bytes, lengths and timestamps (modulo libpcap 1.10 reading
    /// the 32-bit seconds as signed; timestamps whose fraction is not below
    /// a second are not compared).
    #[test]
    fn reader_agrees_with_libpcap_on_every_trace() {
        use super::super::pcap::read_file_partial;
        use std::path::PathBuf;
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/pcap");
        let mut files = Vec::new();
        for dir in ["tcpdump", "libpcap-filter"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                files.push(e.unwrap().path());
            }
        }
        files.sort();
        let (mut packets, mut odd_times, mut differ) = (0usize, 0usize, Vec::new());
        for f in &files {
            let (ours, our_err) = read_file_partial(f);
            let theirs = read_offline(f).unwrap();
            packets += theirs.packets.len();
            let mut problem = None;
            if our_err.is_some() != theirs.error.is_some() {
                problem =
                    Some(std::format!("errors: ours {our_err:?}, libpcap {:?}", theirs.error));
            } else if ours.len() != theirs.packets.len() {
                problem = Some(std::format!("{} vs {} packets", ours.len(), theirs.packets.len()));
            }
            for (i, (a, b)) in ours.iter().zip(&theirs.packets).enumerate() {
                if problem.is_some() {
                    break;
                }
                if a.data != b.data || a.wirelen != b.wirelen {
                    problem = Some(std::format!("packet {i}: bytes or length differ"));
                } else if !(0..1_000_000).contains(&b.ts_usec) {
                    odd_times += 1;
                } else if a.ts_sec as u32 != b.ts_sec as u32
                    || i64::from(a.ts_nsec / 1000) != b.ts_usec
                {
                    problem = Some(std::format!("packet {i}: timestamps differ"));
                }
            }
            if let Some(p) = problem {
                differ.push(std::format!("{}: {p}", f.display()));
            }
        }
        std::eprintln!(
            "{} files, {packets} packets read alike by libpcap ({odd_times} odd timestamps skipped)",
            files.len()
        );
        for m in &differ {
            std::eprintln!("  {m}");
        }
        assert!(differ.is_empty(), "{} files differ", differ.len());
        assert!(packets > 10_000);
    }

    /// What PcapWriter writes, libpcap (and tcpdump, when installed) reads
    /// back unchanged.
    #[test]
    fn writer_output_reads_in_libpcap_and_tcpdump() {
        use super::super::pcap::{dlt_to_linktype, PcapWriter};
        let path =
            std::env::temp_dir().join(std::format!("zbpf-writer-{}.pcap", std::process::id()));
        let mut frame = std::vec![0u8; 60];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        let mut w = PcapWriter::create(&path, dlt_to_linktype(1), 0).unwrap();
        for i in 0..5u8 {
            frame[59] = i;
            w.write_packet(1_700_000_000 + i64::from(i), u32::from(i) * 1000, 64, &frame).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let got = read_offline(&path).unwrap();
        assert_eq!(got.dlt, 1);
        assert_eq!(got.error, None);
        assert_eq!(got.packets.len(), 5);
        for (i, p) in got.packets.iter().enumerate() {
            assert_eq!(p.ts_sec, 1_700_000_000 + i as i64);
            assert_eq!(p.ts_usec, i as i64 * 1000);
            assert_eq!((p.wirelen, p.data.len(), p.data[59]), (64, 60, i as u8));
        }
        match std::process::Command::new("tcpdump").arg("-nn").arg("-r").arg(&path).output() {
            Ok(out) => {
                assert!(out.status.success(), "tcpdump: {}", String::from_utf8_lossy(&out.stderr));
                assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5);
            }
            Err(e) => std::eprintln!("tcpdump not run: {e}"),
        }
        let _ = std::fs::remove_file(&path);
    }
}
