//! Capture files: a reader of pcap and pcapng, and a writer of classic pcap.
//!
//! The reader takes classic pcap in both byte orders with the microsecond,
//! nanosecond and Kuznetzov ("modified pcap") magics, and pcapng in both byte
//! orders: section headers (SHB), interface descriptions (IDB, with their
//! `if_tsresol` and `if_tsoffset` options), enhanced, simple and obsolete
//! packet blocks (EPB, SPB, PB). Every other block is skipped, each packet
//! carries the link type of its own interface, and a new section starts over
//! with its own byte order and interfaces.
//!
//! Corrupt or truncated input yields a [`PcapError`], never a panic, and no
//! allocation is larger than one packet of at most [`MAX_RECORD`] bytes (or
//! one interface description block of at most [`MAX_BLOCK`] bytes); whatever
//! else a block holds is read and discarded.
//!
//! Like libpcap, the reader cuts a packet longer than its file's (or
//! interface's) snap length to that length (a snap length of 0 or above
//! [`MAX_RECORD`] counts as [`MAX_RECORD`]): fuzzed files in tcpdump's test
//! suite rely on it. The one deliberate difference: classic pcap seconds and
//! fractions are unsigned, as the format's specification says (libpcap 1.10
//! reads them as signed), and a fraction field worth a second or more
//! carries into the seconds.
//!
//! Two ways to read a whole file: [`read_file`] is strict (any error, even
//! after good records, is the result), [`read_file_partial`] returns the
//! records read before the first error together with that error. The
//! [`PcapReader`] streams records from any [`Read`].
//!
//! The writer, [`PcapWriter`], produces classic little-endian microsecond
//! pcap (magic `0xa1b2c3d4`, version 2.4), what every pcap reader reads.

#![forbid(unsafe_code)]

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::vec;
use std::vec::Vec;

/// Largest packet the reader accepts and the writer writes: libpcap's
/// `MAXIMUM_SNAPLEN`, 256 KiB.
pub const MAX_RECORD: u32 = 262_144;

/// Largest pcapng section header or interface description block the reader
/// holds in memory (1 MiB). Other blocks are streamed, not held.
pub const MAX_BLOCK: u32 = 1 << 20;

/// `LINKTYPE_NULL`: BSD loopback, a 4-byte host-order address family.
pub const LINKTYPE_NULL: u32 = 0;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// `LINKTYPE_RAW`: raw IPv4 or IPv6 (`DLT_RAW`, 12 on FreeBSD and Linux).
pub const LINKTYPE_RAW: u32 = 101;
/// `LINKTYPE_LOOP`: OpenBSD loopback, a 4-byte network-order address family.
pub const LINKTYPE_LOOP: u32 = 108;

/// The FreeBSD DLT of a file's LINKTYPE, for the link types zbpf uses: only
/// raw IP differs (`LINKTYPE_RAW` 101 is `DLT_RAW` 12); every other value is
/// returned unchanged.
pub fn linktype_to_dlt(linktype: u32) -> u32 {
    match linktype {
        LINKTYPE_RAW => crate::abi::dlt::DLT_RAW,
        other => other,
    }
}

/// The LINKTYPE a file must carry for a FreeBSD DLT: the inverse of
/// [`linktype_to_dlt`] (`DLT_RAW` 12 becomes 101).
pub fn dlt_to_linktype(dlt: u32) -> u32 {
    match dlt {
        crate::abi::dlt::DLT_RAW => LINKTYPE_RAW,
        other => other,
    }
}

/// Why a capture file could not be read.
#[derive(Debug)]
pub enum PcapError {
    /// The underlying reader failed (other than by ending early).
    Io(io::Error),
    /// The file starts with neither a pcap magic nor a pcapng section header.
    BadMagic(u32),
    /// A pcap or pcapng version this reader does not know.
    UnsupportedVersion {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// The input ended inside a header, a block or a packet.
    Truncated,
    /// A packet claims more than [`MAX_RECORD`] captured bytes.
    RecordTooLarge(u32),
    /// A pcapng block length is impossible (too small, not a multiple of 4,
    /// too large to hold, or different in the trailer).
    BadBlockLength {
        /// The block type.
        block_type: u32,
        /// The length it claims.
        len: u32,
    },
    /// A pcapng packet names an interface no IDB of its section described.
    UnknownInterface(u32),
    /// Any other inconsistency, described.
    Malformed(&'static str),
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::Io(e) => write!(f, "read error: {e}"),
            PcapError::BadMagic(m) => write!(f, "not a pcap or pcapng file (magic {m:#010x})"),
            PcapError::UnsupportedVersion { major, minor } => {
                write!(f, "unsupported file format version {major}.{minor}")
            }
            PcapError::Truncated => write!(f, "truncated file"),
            PcapError::RecordTooLarge(n) => {
                write!(f, "packet of {n} captured bytes exceeds the {MAX_RECORD}-byte limit")
            }
            PcapError::BadBlockLength { block_type, len } => {
                write!(f, "pcapng block {block_type:#x} has an invalid length {len}")
            }
            PcapError::UnknownInterface(i) => write!(f, "packet on undeclared interface {i}"),
            PcapError::Malformed(what) => write!(f, "malformed file: {what}"),
        }
    }
}

impl std::error::Error for PcapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PcapError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for PcapError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            PcapError::Truncated
        } else {
            PcapError::Io(e)
        }
    }
}

/// One captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The LINKTYPE of the packet's interface (low 16 bits of the file's
    /// field; see [`linktype_to_dlt`]).
    pub linktype: u32,
    /// Seconds since the epoch.
    pub ts_sec: i64,
    /// Nanoseconds, below 1,000,000,000.
    pub ts_nsec: u32,
    /// Length of the packet on the wire.
    pub wirelen: u32,
    /// The captured bytes (at most [`MAX_RECORD`]).
    pub data: Vec<u8>,
}

impl Record {
    /// Bytes captured: `data.len()`.
    pub fn caplen(&self) -> u32 {
        // At most MAX_RECORD, which fits.
        u32::try_from(self.data.len()).unwrap_or(u32::MAX)
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, PcapError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

/// Fills `buf` or fails with [`PcapError::Truncated`].
fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), PcapError> {
    if read_full(r, buf)? == buf.len() {
        Ok(())
    } else {
        Err(PcapError::Truncated)
    }
}

/// Reads exactly `len` bytes into a new vector, `len` being already bounded.
fn read_vec<R: Read>(r: &mut R, len: u32) -> Result<Vec<u8>, PcapError> {
    let mut v = vec![0u8; len as usize];
    read_exact(r, &mut v)?;
    Ok(v)
}

/// Reads and discards exactly `len` bytes.
fn skip<R: Read>(r: &mut R, len: u64) -> Result<(), PcapError> {
    let copied = io::copy(&mut r.by_ref().take(len), &mut io::sink())?;
    if copied == len {
        Ok(())
    } else {
        Err(PcapError::Truncated)
    }
}

/// `n` rounded up to a multiple of 4.
fn pad4(n: u32) -> u64 {
    (u64::from(n) + 3) & !3
}

/// A byte order, decided by a magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Little,
    Big,
}

impl Order {
    fn u16(self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        match self {
            Order::Little => u16::from_le_bytes(a),
            Order::Big => u16::from_be_bytes(a),
        }
    }

    fn u32(self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        match self {
            Order::Little => u32::from_le_bytes(a),
            Order::Big => u32::from_be_bytes(a),
        }
    }

    fn u64(self, b: &[u8]) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        match self {
            Order::Little => u64::from_le_bytes(a),
            Order::Big => u64::from_be_bytes(a),
        }
    }
}

const PCAP_MAGIC_MICRO: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NANO: u32 = 0xa1b2_3c4d;
const PCAP_MAGIC_KUZNETZOV: u32 = 0xa1b2_cd34;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_PB: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;
/// Most interfaces one pcapng section may declare.
const MAX_INTERFACES: usize = 65_536;

/// libpcap's `pcap_adjust_snapshot`: 0 or too large means the largest.
fn effective_snaplen(snaplen: u32) -> u32 {
    if snaplen == 0 || snaplen > MAX_RECORD {
        MAX_RECORD
    } else {
        snaplen
    }
}

/// A pcapng interface, as its IDB describes it.
#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: u32,
    /// Effective snap length: between 1 and MAX_RECORD.
    snaplen: u32,
    /// Timestamp units per second (`if_tsresol`), at least 1.
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset: i64,
}

impl Interface {
    /// (seconds, nanoseconds) of a timestamp in this interface's units.
    fn timestamp(&self, ticks: u64) -> (i64, u32) {
        let sec = ticks / self.units_per_sec;
        let frac = u128::from(ticks % self.units_per_sec);
        let nsec = frac * 1_000_000_000 / u128::from(self.units_per_sec);
        let sec = i64::try_from(sec).unwrap_or(i64::MAX).saturating_add(self.offset);
        (sec, u32::try_from(nsec).unwrap_or(999_999_999))
    }
}

#[derive(Debug)]
enum Format {
    Pcap {
        order: Order,
        /// Nanosecond timestamps.
        nanos: bool,
        /// Extra record-header bytes (8 for Kuznetzov's format).
        extra: usize,
        linktype: u32,
        snaplen: u32,
    },
    Pcapng {
        order: Order,
        interfaces: Vec<Interface>,
    },
}

/// A streaming reader of pcap and pcapng records.
///
/// After the first error, [`next_record`](PcapReader::next_record) keeps
/// returning `Ok(None)` and the iterator ends.
#[derive(Debug)]
pub struct PcapReader<R> {
    r: R,
    format: Format,
    failed: bool,
}

impl PcapReader<BufReader<File>> {
    /// Opens a file and reads its header.
    pub fn open<P: AsRef<Path>>(path: P) -> Result<Self, PcapError> {
        PcapReader::new(BufReader::new(File::open(path)?))
    }
}

impl<R: Read> PcapReader<R> {
    /// Reads the file header (pcap) or first section header (pcapng).
    pub fn new(mut r: R) -> Result<Self, PcapError> {
        let mut magic = [0u8; 4];
        read_exact(&mut r, &mut magic)?;
        let le = u32::from_le_bytes(magic);
        if le == PCAPNG_SHB {
            let mut reader = PcapReader {
                r,
                format: Format::Pcapng { order: Order::Little, interfaces: Vec::new() },
                failed: false,
            };
            reader.read_shb()?;
            return Ok(reader);
        }
        let (order, nanos, extra) = match (le, le.swap_bytes()) {
            (PCAP_MAGIC_MICRO, _) => (Order::Little, false, 0),
            (_, PCAP_MAGIC_MICRO) => (Order::Big, false, 0),
            (PCAP_MAGIC_NANO, _) => (Order::Little, true, 0),
            (_, PCAP_MAGIC_NANO) => (Order::Big, true, 0),
            (PCAP_MAGIC_KUZNETZOV, _) => (Order::Little, false, 8),
            (_, PCAP_MAGIC_KUZNETZOV) => (Order::Big, false, 8),
            _ => return Err(PcapError::BadMagic(u32::from_be_bytes(magic))),
        };
        let mut hdr = [0u8; 20];
        read_exact(&mut r, &mut hdr)?;
        let (major, minor) = (order.u16(&hdr[0..2]), order.u16(&hdr[2..4]));
        if major != 2 {
            return Err(PcapError::UnsupportedVersion { major, minor });
        }
        let snaplen = effective_snaplen(order.u32(&hdr[12..16]));
        let linktype = order.u32(&hdr[16..20]) & 0xffff;
        let format = Format::Pcap { order, nanos, extra, linktype, snaplen };
        Ok(PcapReader { r, format, failed: false })
    }

    /// The link type of a classic pcap file, or of the first interface of the
    /// current pcapng section (if one was declared yet).
    pub fn linktype(&self) -> Option<u32> {
        match &self.format {
            Format::Pcap { linktype, .. } => Some(*linktype),
            Format::Pcapng { interfaces, .. } => interfaces.first().map(|i| i.linktype),
        }
    }

    /// Whether the input is pcapng.
    pub fn is_pcapng(&self) -> bool {
        matches!(self.format, Format::Pcapng { .. })
    }

    /// The next record, `Ok(None)` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<Record>, PcapError> {
        if self.failed {
            return Ok(None);
        }
        let result = match self.format {
            Format::Pcap { .. } => self.next_pcap(),
            Format::Pcapng { .. } => self.next_pcapng(),
        };
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn next_pcap(&mut self) -> Result<Option<Record>, PcapError> {
        let Format::Pcap { order, nanos, extra, linktype, snaplen } = self.format else {
            return Err(PcapError::Malformed("reader state"));
        };
        let mut hdr = [0u8; 24];
        let hdr = &mut hdr[..16 + extra];
        match read_full(&mut self.r, hdr)? {
            0 => return Ok(None),
            n if n < hdr.len() => return Err(PcapError::Truncated),
            _ => {}
        }
        let sec = order.u32(&hdr[0..4]);
        let frac = order.u32(&hdr[4..8]);
        let caplen = order.u32(&hdr[8..12]);
        let wirelen = order.u32(&hdr[12..16]);
        if caplen > MAX_RECORD {
            return Err(PcapError::RecordTooLarge(caplen));
        }
        let data = read_vec(&mut self.r, caplen.min(snaplen))?;
        skip(&mut self.r, u64::from(caplen.saturating_sub(snaplen)))?;
        // Normalise a fraction of a second that is not one.
        let per_sec: u32 = if nanos { 1_000_000_000 } else { 1_000_000 };
        let ts_sec = i64::from(sec) + i64::from(frac / per_sec);
        let frac = frac % per_sec;
        let ts_nsec = if nanos { frac } else { frac * 1000 };
        Ok(Some(Record { linktype, ts_sec, ts_nsec, wirelen, data }))
    }

    /// Reads a section header whose 4-byte block type was just read.
    fn read_shb(&mut self) -> Result<(), PcapError> {
        let mut head = [0u8; 8];
        read_exact(&mut self.r, &mut head)?;
        let order = match u32::from_le_bytes([head[4], head[5], head[6], head[7]]) {
            PCAPNG_BOM => Order::Little,
            m if m.swap_bytes() == PCAPNG_BOM => Order::Big,
            _ => return Err(PcapError::Malformed("bad pcapng byte-order magic")),
        };
        let total = order.u32(&head[0..4]);
        if total < 28 || total % 4 != 0 || total > MAX_BLOCK {
            return Err(PcapError::BadBlockLength { block_type: PCAPNG_SHB, len: total });
        }
        // Version (4), section length (8), options, trailer (4).
        let rest = read_vec(&mut self.r, total - 12)?;
        let (major, minor) = (order.u16(&rest[0..2]), order.u16(&rest[2..4]));
        if major != 1 {
            return Err(PcapError::UnsupportedVersion { major, minor });
        }
        let trailer = order.u32(&rest[rest.len() - 4..]);
        if trailer != total {
            return Err(PcapError::BadBlockLength { block_type: PCAPNG_SHB, len: trailer });
        }
        self.format = Format::Pcapng { order, interfaces: Vec::new() };
        Ok(())
    }

    /// Reads and checks the trailing copy of a block's total length.
    fn read_trailer(&mut self, order: Order, block_type: u32, total: u32) -> Result<(), PcapError> {
        let mut t = [0u8; 4];
        read_exact(&mut self.r, &mut t)?;
        let len = order.u32(&t);
        if len != total {
            return Err(PcapError::BadBlockLength { block_type, len });
        }
        Ok(())
    }

    fn next_pcapng(&mut self) -> Result<Option<Record>, PcapError> {
        loop {
            let order = match &self.format {
                Format::Pcapng { order, .. } => *order,
                Format::Pcap { .. } => return Err(PcapError::Malformed("reader state")),
            };
            let mut head = [0u8; 8];
            match read_full(&mut self.r, &mut head[..4])? {
                0 => return Ok(None),
                4 => {}
                _ => return Err(PcapError::Truncated),
            }
            let block_type = order.u32(&head[0..4]);
            if block_type == PCAPNG_SHB {
                self.read_shb()?;
                continue;
            }
            read_exact(&mut self.r, &mut head[4..8])?;
            let total = order.u32(&head[4..8]);
            if total < 12 || total % 4 != 0 {
                return Err(PcapError::BadBlockLength { block_type, len: total });
            }
            // Bytes between the length and the trailer.
            let body = total - 12;
            match block_type {
                PCAPNG_IDB => {
                    if body < 8 || total > MAX_BLOCK {
                        return Err(PcapError::BadBlockLength { block_type, len: total });
                    }
                    let b = read_vec(&mut self.r, body)?;
                    self.read_trailer(order, block_type, total)?;
                    let interface = parse_idb(order, &b)?;
                    if let Format::Pcapng { interfaces, .. } = &mut self.format {
                        if interfaces.len() >= MAX_INTERFACES {
                            return Err(PcapError::Malformed("too many interfaces"));
                        }
                        interfaces.push(interface);
                    }
                }
                PCAPNG_EPB | PCAPNG_PB => {
                    if body < 20 {
                        return Err(PcapError::BadBlockLength { block_type, len: total });
                    }
                    let mut fixed = [0u8; 20];
                    read_exact(&mut self.r, &mut fixed)?;
                    let ifindex = if block_type == PCAPNG_EPB {
                        order.u32(&fixed[0..4])
                    } else {
                        u32::from(order.u16(&fixed[0..2]))
                    };
                    let ticks = u64::from(order.u32(&fixed[4..8])) << 32
                        | u64::from(order.u32(&fixed[8..12]));
                    let caplen = order.u32(&fixed[12..16]);
                    let wirelen = order.u32(&fixed[16..20]);
                    let interface = self.interface(ifindex)?;
                    if caplen > MAX_RECORD {
                        return Err(PcapError::RecordTooLarge(caplen));
                    }
                    if pad4(caplen) > u64::from(body - 20) {
                        return Err(PcapError::Malformed("packet data overruns its block"));
                    }
                    let data = read_vec(&mut self.r, caplen.min(interface.snaplen))?;
                    skip(&mut self.r, u64::from(body - 20) - data.len() as u64)?;
                    self.read_trailer(order, block_type, total)?;
                    let (ts_sec, ts_nsec) = interface.timestamp(ticks);
                    let linktype = interface.linktype;
                    return Ok(Some(Record { linktype, ts_sec, ts_nsec, wirelen, data }));
                }
                PCAPNG_SPB => {
                    if body < 4 {
                        return Err(PcapError::BadBlockLength { block_type, len: total });
                    }
                    let mut fixed = [0u8; 4];
                    read_exact(&mut self.r, &mut fixed)?;
                    let wirelen = order.u32(&fixed);
                    let interface = self.interface(0)?;
                    // At most MAX_RECORD, the largest snap length.
                    let caplen = wirelen.min(body - 4).min(interface.snaplen);
                    let data = read_vec(&mut self.r, caplen)?;
                    skip(&mut self.r, u64::from(body - 4 - caplen))?;
                    self.read_trailer(order, block_type, total)?;
                    let linktype = interface.linktype;
                    return Ok(Some(Record { linktype, ts_sec: 0, ts_nsec: 0, wirelen, data }));
                }
                _ => {
                    skip(&mut self.r, u64::from(body))?;
                    self.read_trailer(order, block_type, total)?;
                }
            }
        }
    }

    fn interface(&self, index: u32) -> Result<Interface, PcapError> {
        match &self.format {
            Format::Pcapng { interfaces, .. } => {
                interfaces.get(index as usize).copied().ok_or(PcapError::UnknownInterface(index))
            }
            Format::Pcap { .. } => Err(PcapError::Malformed("reader state")),
        }
    }
}

/// Parses an IDB body (without the block type, length and trailer).
fn parse_idb(order: Order, b: &[u8]) -> Result<Interface, PcapError> {
    let mut interface = Interface {
        linktype: u32::from(order.u16(&b[0..2])),
        snaplen: effective_snaplen(order.u32(&b[4..8])),
        units_per_sec: 1_000_000,
        offset: 0,
    };
    let mut opts = &b[8..];
    while opts.len() >= 4 {
        let code = order.u16(&opts[0..2]);
        let len = usize::from(order.u16(&opts[2..4]));
        let padded = (len + 3) & !3;
        if code == 0 {
            break;
        }
        let Some(value) = opts.get(4..4 + len) else {
            return Err(PcapError::Malformed("IDB option overruns its block"));
        };
        match (code, len) {
            (9, 1) => {
                let v = value[0];
                interface.units_per_sec = if v & 0x80 != 0 {
                    1u64.checked_shl(u32::from(v & 0x7f)).filter(|_| v & 0x7f < 64)
                } else {
                    10u64.checked_pow(u32::from(v))
                }
                .ok_or(PcapError::Malformed("if_tsresol out of range"))?;
            }
            (14, 8) => interface.offset = order.u64(value) as i64,
            _ => {}
        }
        opts = opts.get(4 + padded..).unwrap_or(&[]);
    }
    Ok(interface)
}

impl<R: Read> Iterator for PcapReader<R> {
    type Item = Result<Record, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Every record of a capture read from `r`, stopping at the first error:
/// the records before it, and the error if there was one.
pub fn read_partial<R: Read>(r: R) -> (Vec<Record>, Option<PcapError>) {
    let mut records = Vec::new();
    let mut reader = match PcapReader::new(r) {
        Ok(reader) => reader,
        Err(e) => return (records, Some(e)),
    };
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => records.push(rec),
            Ok(None) => return (records, None),
            Err(e) => return (records, Some(e)),
        }
    }
}

/// Every record of a capture held in memory; any error is the result.
pub fn parse(bytes: &[u8]) -> Result<Vec<Record>, PcapError> {
    match read_partial(bytes) {
        (records, None) => Ok(records),
        (_, Some(e)) => Err(e),
    }
}

/// Every record of a capture file; any error, even after good records, is
/// the result. See [`read_file_partial`] to keep the good records.
pub fn read_file<P: AsRef<Path>>(path: P) -> Result<Vec<Record>, PcapError> {
    match read_file_partial(path) {
        (records, None) => Ok(records),
        (_, Some(e)) => Err(e),
    }
}

/// The records of a capture file up to its first error, and that error.
pub fn read_file_partial<P: AsRef<Path>>(path: P) -> (Vec<Record>, Option<PcapError>) {
    match File::open(path) {
        Ok(f) => read_partial(BufReader::new(f)),
        Err(e) => (Vec::new(), Some(e.into())),
    }
}

/// A writer of classic pcap: little-endian, microsecond timestamps, version
/// 2.4, what `tcpdump -r` and every other reader accept.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
    snaplen: u32,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (or truncates) a file and writes the header.
    pub fn create<P: AsRef<Path>>(path: P, linktype: u32, snaplen: u32) -> io::Result<Self> {
        PcapWriter::new(BufWriter::new(File::create(path)?), linktype, snaplen)
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header. `linktype` is the file's LINKTYPE (see
    /// [`dlt_to_linktype`]); a `snaplen` of 0 or above [`MAX_RECORD`]
    /// becomes [`MAX_RECORD`], and packets are cut to it.
    pub fn new(mut w: W, linktype: u32, snaplen: u32) -> io::Result<Self> {
        let snaplen = effective_snaplen(snaplen);
        let mut hdr = [0u8; 24];
        hdr[0..4].copy_from_slice(&PCAP_MAGIC_MICRO.to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        hdr[16..20].copy_from_slice(&snaplen.to_le_bytes());
        hdr[20..24].copy_from_slice(&linktype.to_le_bytes());
        w.write_all(&hdr)?;
        Ok(PcapWriter { w, snaplen })
    }

    /// The snap length packets are cut to.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Writes one packet: at most `snaplen` bytes of `data`, and `wirelen` as
    /// given. Seconds are stored modulo 2^32 (the format's field is 32 bits);
    /// microseconds of a million or more carry into the seconds.
    pub fn write_packet(
        &mut self,
        ts_sec: i64,
        ts_usec: u32,
        wirelen: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let caplen = data.len().min(self.snaplen as usize);
        let sec = ts_sec.wrapping_add(i64::from(ts_usec / 1_000_000)) as u32;
        let usec = ts_usec % 1_000_000;
        let mut hdr = [0u8; 16];
        hdr[0..4].copy_from_slice(&sec.to_le_bytes());
        hdr[4..8].copy_from_slice(&usec.to_le_bytes());
        // caplen <= snaplen <= MAX_RECORD, so the cast is exact.
        hdr[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        hdr[12..16].copy_from_slice(&wirelen.to_le_bytes());
        self.w.write_all(&hdr)?;
        self.w.write_all(&data[..caplen])
    }

    /// Writes a record read from a file (its link type is not checked;
    /// nanoseconds are truncated to microseconds).
    pub fn write_record(&mut self, rec: &Record) -> io::Result<()> {
        self.write_packet(rec.ts_sec, rec.ts_nsec / 1000, rec.wirelen, &rec.data)
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// The underlying writer (not flushed).
    pub fn into_inner(self) -> W {
        self.w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::string::String;
    use std::{eprintln, format};

    fn sample() -> Vec<Record> {
        (0u32..20)
            .map(|i| Record {
                linktype: LINKTYPE_ETHERNET,
                ts_sec: 1_700_000_000 + i64::from(i),
                ts_nsec: i * 37_000,
                wirelen: 60 + i * 10,
                data: (0..(i * 7) as u8).collect(),
            })
            .collect()
    }

    #[test]
    fn writer_then_reader_round_trips() {
        let records = sample();
        let mut w = PcapWriter::new(Vec::new(), LINKTYPE_ETHERNET, 0).unwrap();
        for r in &records {
            w.write_record(r).unwrap();
        }
        let bytes = w.into_inner();
        assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(parse(&bytes).unwrap(), records);

        // Every strict prefix that is not a record boundary is an error, and
        // the partial reader returns the whole records before it.
        let mut boundaries = vec![24usize];
        for r in &records {
            boundaries.push(boundaries.last().unwrap() + 16 + r.data.len());
        }
        for cut in 0..bytes.len() {
            let (got, err) = read_partial(&bytes[..cut]);
            let whole = boundaries.iter().filter(|&&b| b <= cut).count().saturating_sub(1);
            assert_eq!(got, records[..whole], "cut at {cut}");
            assert_eq!(err.is_none(), boundaries.contains(&cut), "cut at {cut}");
        }
    }

    #[test]
    fn writer_cuts_to_snaplen_and_carries_microseconds() {
        let mut w = PcapWriter::new(Vec::new(), LINKTYPE_RAW, 4).unwrap();
        w.write_packet(10, 2_500_000, 100, &[1, 2, 3, 4, 5, 6]).unwrap();
        let got = parse(&w.into_inner()).unwrap();
        assert_eq!(
            got,
            [Record {
                linktype: 101,
                ts_sec: 12,
                ts_nsec: 500_000_000,
                wirelen: 100,
                data: vec![1, 2, 3, 4]
            }]
        );
        assert_eq!(linktype_to_dlt(LINKTYPE_RAW), 12);
        assert_eq!(dlt_to_linktype(12), LINKTYPE_RAW);
    }

    /// A pcapng file built by hand: big-endian, two interfaces, nanosecond
    /// and power-of-two resolutions, an unknown block, an SPB.
    #[test]
    fn pcapng_big_endian_by_hand() {
        fn block(out: &mut Vec<u8>, btype: u32, body: &[u8]) {
            let total = 12 + body.len() as u32;
            out.extend_from_slice(&btype.to_be_bytes());
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(&total.to_be_bytes());
        }
        let mut f = Vec::new();
        let mut shb = Vec::new();
        shb.extend_from_slice(&PCAPNG_BOM.to_be_bytes());
        shb.extend_from_slice(&1u16.to_be_bytes());
        shb.extend_from_slice(&0u16.to_be_bytes());
        shb.extend_from_slice(&(-1i64).to_be_bytes());
        block(&mut f, PCAPNG_SHB, &shb);
        // Interface 0: Ethernet, snaplen 3, nanoseconds.
        let mut idb = Vec::new();
        idb.extend_from_slice(&1u16.to_be_bytes());
        idb.extend_from_slice(&0u16.to_be_bytes());
        idb.extend_from_slice(&3u32.to_be_bytes());
        idb.extend_from_slice(&[0, 9, 0, 1, 9, 0, 0, 0, 0, 0, 0, 0]);
        block(&mut f, PCAPNG_IDB, &idb);
        // Interface 1: raw IP, 2^-10 s, offset 100 s.
        let mut idb = Vec::new();
        idb.extend_from_slice(&101u16.to_be_bytes());
        idb.extend_from_slice(&0u16.to_be_bytes());
        idb.extend_from_slice(&0u32.to_be_bytes());
        idb.extend_from_slice(&[0, 9, 0, 1, 0x8a, 0, 0, 0]);
        idb.extend_from_slice(&[0, 14, 0, 8]);
        idb.extend_from_slice(&100i64.to_be_bytes());
        block(&mut f, PCAPNG_IDB, &idb);
        block(&mut f, 0x0bad_0001, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let epb = |ifc: u32, ticks: u64, data: &[u8]| {
            let mut b = Vec::new();
            b.extend_from_slice(&ifc.to_be_bytes());
            b.extend_from_slice(&((ticks >> 32) as u32).to_be_bytes());
            b.extend_from_slice(&(ticks as u32).to_be_bytes());
            b.extend_from_slice(&(data.len() as u32).to_be_bytes());
            b.extend_from_slice(&(data.len() as u32 + 1).to_be_bytes());
            b.extend_from_slice(data);
            b.resize(20 + data.len().div_ceil(4) * 4, 0);
            b
        };
        block(&mut f, PCAPNG_EPB, &epb(0, 5_000_000_123, &[0xaa, 0xbb]));
        block(&mut f, PCAPNG_EPB, &epb(1, 3 * 1024 + 512, &[1, 2, 3, 4, 5]));
        block(&mut f, PCAPNG_SPB, &[0, 0, 0, 5, 9, 8, 7, 6, 5, 0, 0, 0]);
        let got = parse(&f).unwrap();
        assert_eq!(
            got,
            [
                Record { linktype: 1, ts_sec: 5, ts_nsec: 123, wirelen: 3, data: vec![0xaa, 0xbb] },
                Record {
                    linktype: 101,
                    ts_sec: 103,
                    ts_nsec: 500_000_000,
                    wirelen: 6,
                    data: vec![1, 2, 3, 4, 5]
                },
                Record { linktype: 1, ts_sec: 0, ts_nsec: 0, wirelen: 5, data: vec![9, 8, 7] },
            ]
        );
        // Truncation anywhere is an error, never a panic.
        for cut in 0..f.len() {
            let _ = read_partial(&f[..cut]);
        }
        // A packet on an undeclared interface.
        let mut bad = f.clone();
        block(&mut bad, PCAPNG_EPB, &epb(7, 0, &[1]));
        assert!(matches!(parse(&bad), Err(PcapError::UnknownInterface(7))));
    }

    #[test]
    fn hostile_headers_are_errors() {
        assert!(matches!(parse(b""), Err(PcapError::Truncated)));
        assert!(matches!(parse(b"GIF89a.................."), Err(PcapError::BadMagic(_))));
        let mut w = PcapWriter::new(Vec::new(), 1, 0).unwrap().into_inner();
        w.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        assert!(matches!(parse(&w), Err(PcapError::RecordTooLarge(0x7fff_ffff))));
        // A pcapng block claiming 4 GiB.
        let mut ng = Vec::new();
        ng.extend_from_slice(&PCAPNG_SHB.to_le_bytes());
        ng.extend_from_slice(&0xffff_fffcu32.to_le_bytes());
        ng.extend_from_slice(&PCAPNG_BOM.to_le_bytes());
        assert!(matches!(parse(&ng), Err(PcapError::BadBlockLength { .. })));
        assert!(!format!("{}", PcapError::Truncated).is_empty());
    }

    fn pcap_files() -> Vec<PathBuf> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/pcap");
        let mut files = Vec::new();
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    files.push(p);
                }
            }
        }
        files.sort();
        files
    }

    /// Every trace reads; the fuzzed ones among them (tcpdump's regression
    /// inputs, with records longer than their snap length, odd timestamps,
    /// bogus link types) read as libpcap reads them, and damaged copies of
    /// every trace (cut short, bytes overwritten, a length field blown up)
    /// give errors or records but never a panic.
    #[test]
    fn every_test_trace_reads_without_panicking() {
        let files = pcap_files();
        let (mut clean, mut failed, mut packets, mut pcapng) = (0, 0, 0usize, 0);
        let mut errors: Vec<String> = Vec::new();
        let (mut damaged, mut damaged_errors) = (0usize, 0usize);
        let mut rng = crate::hosted::traffic::Rng::new(0x5eed);
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            if bytes.starts_with(&PCAPNG_SHB.to_le_bytes()) {
                pcapng += 1;
            }
            let (records, err) = read_partial(&bytes[..]);
            packets += records.len();
            match err {
                None => clean += 1,
                Some(e) => {
                    failed += 1;
                    errors.push(format!("{}: {e}", f.file_name().unwrap().to_string_lossy()));
                }
            }
            let mut variants: Vec<Vec<u8>> = Vec::new();
            // Cut short.
            variants.push(bytes[..rng.below(bytes.len() as u64) as usize].to_vec());
            // A few bytes overwritten anywhere, and in the first 64 bytes.
            for span in [bytes.len(), 64] {
                let mut v = bytes.clone();
                for _ in 0..8 {
                    let i = rng.below(span.min(v.len()) as u64) as usize;
                    v[i] = rng.next_u64() as u8;
                }
                variants.push(v);
            }
            // The first record's (or block's) length field blown up.
            for at in [8usize, 32] {
                let mut v = bytes.clone();
                if v.len() >= at + 4 {
                    v[at..at + 4].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
                }
                variants.push(v);
            }
            for v in &variants {
                damaged += 1;
                if read_partial(&v[..]).1.is_some() {
                    damaged_errors += 1;
                }
            }
            // Every prefix of small files too.
            if bytes.len() < 1024 {
                for cut in 0..bytes.len() {
                    let _ = read_partial(&bytes[..cut]);
                }
            }
        }
        eprintln!(
            "{} files ({pcapng} pcapng): {clean} read cleanly, {failed} with an error, \
             {packets} packets; {damaged} damaged copies: {damaged_errors} errors, none panicked",
            files.len()
        );
        for e in &errors {
            eprintln!("  {e}");
        }
        assert!(files.len() > 800);
        assert!(pcapng >= 40);
        assert_eq!(failed, 0, "libpcap reads every trace cleanly: {errors:?}");
        assert!(packets > 10_000);
        assert!(damaged_errors * 2 > damaged, "most damaged copies are reported");
    }
}
