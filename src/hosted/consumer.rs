//! A safe userland consumer of a simulated bpf descriptor, for both buffer
//! modes: what libpcap's BPF module does, in Rust, for the tests, the demo
//! and the tools.
//!
//! Records are walked with BPF_WORDALIGN(hdrlen + caplen) and checked
//! against the buffer before any byte is read, so a corrupt buffer gives an
//! error, never a read out of bounds.

use std::prelude::rust_2021::*;

use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::process::SharedRegion;
use super::sim::{PollFd, Sim};
use crate::abi::ioctl::*;
use crate::abi::*;
use crate::abi::{Errno, Result};

/// How a ZBUF consumer finds and returns buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZbufStyle {
    /// The shared header only: compare generations, store `bzh_user_gen`.
    Header,
    /// BIOCGETZNEXT and BIOCACKZBUF.
    Ioctl,
    /// Alternate between the two, buffer by buffer.
    Mixed,
}

/// The buffer mode to capture with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// read(2) of kernel buffers.
    Buffer,
    /// Shared zero-copy buffers.
    Zbuf(ZbufStyle),
}

/// What to capture and how.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    /// Interface name.
    pub iface: String,
    /// Buffer mode.
    pub mode: Mode,
    /// BUFFER: the BIOCSBLEN request. ZBUF: each buffer's size, header
    /// included (rounded up to pages).
    pub bufsize: usize,
    /// A read filter (none: every packet whole).
    pub filter: Option<Vec<BpfInsn>>,
    /// BIOCIMMEDIATE.
    pub immediate: bool,
    /// Read timeout (BUFFER: BIOCSRTIMEOUT; ZBUF: the poll timeout).
    pub timeout: Option<Duration>,
    /// BIOCSTSTAMP value.
    pub tstamp: u32,
    /// BIOCSDIRECTION.
    pub direction: Direction,
    /// Non-blocking reads.
    pub nonblock: bool,
}

impl CaptureConfig {
    /// Defaults: BUFFER mode, 64 KiB, no filter, 100 ms timeout.
    pub fn new(iface: &str, mode: Mode) -> Self {
        CaptureConfig {
            iface: iface.to_owned(),
            mode,
            bufsize: 64 * 1024,
            filter: None,
            immediate: false,
            timeout: Some(Duration::from_millis(100)),
            tstamp: BPF_T_MICROTIME,
            direction: Direction::InOut,
            nonblock: false,
        }
    }
}

/// One captured packet.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// Seconds.
    pub ts_sec: i64,
    /// µs, ns or 2^-64 fraction, depending on BPF_T_*.
    pub ts_frac: u64,
    /// Bytes captured.
    pub caplen: u32,
    /// Length on the wire.
    pub datalen: u32,
    /// Record header length.
    pub hdrlen: u16,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// A malformed record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkError {
    /// Offset of the bad record.
    pub offset: usize,
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed bpf record at offset {}", self.offset)
    }
}

impl std::error::Error for WalkError {}

/// The fields of a record header, read at their offsets (`bpf_hdr` and
/// `bpf_xhdr` share one layout on amd64).
struct RecordHeader {
    bh_tstamp: BpfTs,
    bh_caplen: u32,
    bh_datalen: u32,
    bh_hdrlen: u16,
}

impl RecordHeader {
    /// Reads a header from the first `SIZEOF_BPF_HDR` bytes of `b` (the
    /// caller checked there are that many; missing bytes read as zero).
    fn read(b: &[u8]) -> RecordHeader {
        use core::mem::offset_of;
        let mut h = [0u8; SIZEOF_BPF_HDR];
        if let Some(src) = b.first_chunk::<SIZEOF_BPF_HDR>() {
            h = *src;
        }
        let u64_at = |o: usize| u64::from_ne_bytes(*h[o..].first_chunk::<8>().unwrap_or(&[0; 8]));
        let u32_at = |o: usize| u32::from_ne_bytes(*h[o..].first_chunk::<4>().unwrap_or(&[0; 4]));
        let hdrlen = offset_of!(BpfXhdr, bh_hdrlen);
        RecordHeader {
            bh_tstamp: BpfTs {
                bt_sec: u64_at(offset_of!(BpfTs, bt_sec)) as i64,
                bt_frac: u64_at(offset_of!(BpfTs, bt_frac)),
            },
            bh_caplen: u32_at(offset_of!(BpfXhdr, bh_caplen)),
            bh_datalen: u32_at(offset_of!(BpfXhdr, bh_datalen)),
            bh_hdrlen: u16::from_ne_bytes([h[hdrlen], h[hdrlen + 1]]),
        }
    }
}

/// Walks the records of one buffer (`bh_*` headers, BPF_WORDALIGN steps).
pub fn walk_records(
    buf: &[u8],
    mut f: impl FnMut(&Record<'_>),
) -> core::result::Result<usize, WalkError> {
    let mut off = 0usize;
    let mut n = 0;
    while off < buf.len() {
        let rest = &buf[off..];
        if rest.len() < SIZEOF_BPF_HDR {
            return Err(WalkError { offset: off });
        }
        let h = RecordHeader::read(rest);
        let hdrlen = usize::from(h.bh_hdrlen);
        let caplen = h.bh_caplen as usize;
        let Some(data) = rest.get(hdrlen..hdrlen.saturating_add(caplen)) else {
            return Err(WalkError { offset: off });
        };
        if hdrlen < SIZEOF_BPF_HDR {
            return Err(WalkError { offset: off });
        }
        f(&Record {
            ts_sec: h.bh_tstamp.bt_sec,
            ts_frac: h.bh_tstamp.bt_frac,
            caplen: h.bh_caplen,
            datalen: h.bh_datalen,
            hdrlen: h.bh_hdrlen,
            data,
        });
        n += 1;
        off += bpf_wordalign(hdrlen + caplen);
    }
    Ok(n)
}

/// An open capture on a simulated interface.
pub struct Capture<'s> {
    sim: &'s Sim,
    fd: i32,
    mode: Mode,
    timeout: Option<Duration>,
    /// BUFFER mode: the read buffer (exactly BIOCGBLEN bytes).
    buf: Vec<u8>,
    /// ZBUF mode: buffers a and b.
    zbufs: Vec<SharedRegion>,
    /// ZBUF: the buffer being processed, returned on the next call.
    current: Option<usize>,
    /// ZBUF: the buffer processed last (libpcap checks the other first).
    last: Option<usize>,
    acks: u64,
}

/// `ioctl` with a typed argument.
pub fn ioctl_with<T>(sim: &Sim, fd: i32, cmd: u64, arg: &mut T) -> Result<()> {
    sim.ioctl(fd, cmd, (arg as *mut T).cast::<c_void>())
}

impl<'s> Capture<'s> {
    /// Opens /dev/bpf, configures it as `cfg` says and attaches.
    pub fn open(sim: &'s Sim, cfg: &CaptureConfig) -> Result<Capture<'s>> {
        let fd = sim.open(2 | if cfg.nonblock { O_NONBLOCK } else { 0 })?;
        let mut cap = Capture {
            sim,
            fd,
            mode: cfg.mode,
            timeout: cfg.timeout,
            buf: Vec::new(),
            zbufs: Vec::new(),
            current: None,
            last: None,
            acks: 0,
        };
        match cfg.mode {
            Mode::Buffer => {
                let mut size = cfg.bufsize as u32;
                ioctl_with(sim, fd, BIOCSBLEN, &mut size)?;
            }
            Mode::Zbuf(_) => {
                let mut mode = BPF_BUFMODE_ZBUF;
                ioctl_with(sim, fd, BIOCSETBUFMODE, &mut mode)?;
                let mut zmax = 0u64;
                ioctl_with(sim, fd, BIOCGETZMAX, &mut zmax)?;
                let len = cfg.bufsize.div_ceil(PAGE_SIZE).max(1) * PAGE_SIZE;
                let len = len.min(zmax as usize);
                for _ in 0..2 {
                    cap.zbufs.push(SharedRegion::new(len).map_err(|_| Errno::ENOMEM)?);
                }
                let mut bz = BpfZbuf {
                    bz_bufa: cap.zbufs[0].addr(),
                    bz_bufb: cap.zbufs[1].addr(),
                    bz_buflen: len as u64,
                };
                ioctl_with(sim, fd, BIOCSETZBUF, &mut bz)?;
            }
        }
        let mut ts = cfg.tstamp;
        ioctl_with(sim, fd, BIOCSTSTAMP, &mut ts)?;
        let mut dir = cfg.direction as u32;
        ioctl_with(sim, fd, BIOCSDIRECTION, &mut dir)?;
        if cfg.immediate {
            let mut on = 1u32;
            ioctl_with(sim, fd, BIOCIMMEDIATE, &mut on)?;
        }
        if let (Some(t), Mode::Buffer) = (cfg.timeout, cfg.mode) {
            let mut tv =
                Timeval { tv_sec: t.as_secs() as i64, tv_usec: i64::from(t.subsec_micros()) };
            ioctl_with(sim, fd, BIOCSRTIMEOUT, &mut tv)?;
        }
        if let Some(insns) = &cfg.filter {
            let mut insns = insns.clone();
            let mut prog = BpfProgram {
                bf_len: insns.len() as u32,
                bf_insns: UserAddr(insns.as_mut_ptr() as u64),
            };
            ioctl_with(sim, fd, BIOCSETF, &mut prog)?;
        }
        let mut ifr = IfReq::default();
        for (d, s) in ifr.ifr_name.iter_mut().zip(cfg.iface.bytes().take(15)) {
            *d = s;
        }
        ioctl_with(sim, fd, BIOCSETIF, &mut ifr)?;
        let mut blen = 0u32;
        ioctl_with(sim, fd, BIOCGBLEN, &mut blen)?;
        if cfg.mode == Mode::Buffer {
            cap.buf = vec![0; blen as usize];
        }
        Ok(cap)
    }

    /// The descriptor.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Buffers given back to the kernel so far (ZBUF).
    pub fn acks(&self) -> u64 {
        self.acks
    }

    /// BIOCGSTATS.
    pub fn stats(&self) -> Result<BpfStat> {
        let mut st = BpfStat::default();
        ioctl_with(self.sim, self.fd, BIOCGSTATS, &mut st)?;
        Ok(st)
    }

    /// Calls `f` for each record of the next buffer. Returns how many
    /// records there were (0 after a timeout with nothing captured).
    pub fn next_batch(&mut self, f: impl FnMut(&Record<'_>)) -> Result<usize> {
        match self.mode {
            Mode::Buffer => {
                let n = self.sim.read(self.fd, self.buf.as_mut_ptr(), self.buf.len())?;
                walk_records(&self.buf[..n], f).map_err(|_| Errno::EINVAL)
            }
            Mode::Zbuf(style) => {
                self.release_current(style)?;
                let Some((i, len)) = self.next_owned(style)? else { return Ok(0) };
                self.current = Some(i);
                self.last = Some(i);
                let region = &self.zbufs[i];
                let len = len.min(region.len() - ZBUF_HEADER);
                let records = region.as_ptr().wrapping_add(ZBUF_HEADER);
                // The kernel handed this buffer over (generation check or
                // BIOCGETZNEXT) and writes it only after we give it back.
                // SAFETY: `len` bytes inside the mapping, which outlives the
                // call; nothing writes them meanwhile (above).
                let data = unsafe { std::slice::from_raw_parts(records, len) };
                walk_records(data, f).map_err(|_| Errno::EINVAL)
            }
        }
    }

    fn header(&self, i: usize, word: usize) -> &AtomicU32 {
        self.zbufs[i].word(word)
    }

    /// Whether the user owns buffer `i`, and its length.
    fn owned_by_header(&self, i: usize) -> Option<usize> {
        let kgen = self.header(i, 0).load(Ordering::Acquire);
        (kgen != self.header(i, 2).load(Ordering::Relaxed))
            .then(|| self.header(i, 1).load(Ordering::Relaxed) as usize)
    }

    fn use_ioctls(&self, style: ZbufStyle) -> bool {
        match style {
            ZbufStyle::Header => false,
            ZbufStyle::Ioctl => true,
            ZbufStyle::Mixed => self.acks % 2 == 1,
        }
    }

    fn release_current(&mut self, style: ZbufStyle) -> Result<()> {
        let Some(i) = self.current.take() else { return Ok(()) };
        if self.use_ioctls(style) {
            let mut bz = BpfZbuf { bz_bufa: self.zbufs[i].addr(), ..Default::default() };
            ioctl_with(self.sim, self.fd, BIOCACKZBUF, &mut bz)?;
        } else {
            let kgen = self.header(i, 0).load(Ordering::Acquire);
            self.header(i, 2).store(kgen, Ordering::Release);
        }
        self.acks += 1;
        Ok(())
    }

    fn find_owned(&self, style: ZbufStyle) -> Result<Option<(usize, usize)>> {
        if self.use_ioctls(style) {
            let mut bz = BpfZbuf::default();
            ioctl_with(self.sim, self.fd, BIOCGETZNEXT, &mut bz)?;
            return Ok(self
                .zbufs
                .iter()
                .position(|r| r.addr() == bz.bz_bufa)
                .map(|i| (i, bz.bz_buflen as usize)));
        }
        let first = if self.last == Some(0) { 1 } else { 0 };
        Ok([first, 1 - first].into_iter().find_map(|i| self.owned_by_header(i).map(|len| (i, len))))
    }

    fn next_owned(&mut self, style: ZbufStyle) -> Result<Option<(usize, usize)>> {
        if let Some(found) = self.find_owned(style)? {
            return Ok(Some(found));
        }
        let ms = self.timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        let mut pfd = [PollFd { fd: self.fd, events: PollEvents::POLLIN, ..Default::default() }];
        self.sim.poll(&mut pfd, ms)?;
        if let Some(found) = self.find_owned(style)? {
            return Ok(Some(found));
        }
        let mut bz = BpfZbuf::default();
        ioctl_with(self.sim, self.fd, BIOCROTZBUF, &mut bz)?;
        self.find_owned(style)
    }
}

const ZBUF_HEADER: usize = BpfZbufHeader::SIZE;

impl Drop for Capture<'_> {
    fn drop(&mut self) {
        let _ = self.sim.close(self.fd);
    }
}
