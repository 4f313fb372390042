//! The record header written before each captured packet, and the one
//! timestamp a packet gets.

use core::cell::Cell;
use core::mem::offset_of;

use static_assertions::const_assert_eq;

use crate::abi::{bpf_hdrlen, BpfHdr, BpfTs, BpfXhdr, Tstamp, TstampFlags, TstampFormat};
use crate::platform::{Bintime, Platform};

/// How good a timestamp a descriptor needs, in FreeBSD's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quality {
    /// BPF_T_NONE.
    None,
    /// Tick precision.
    Fast,
    /// Full precision.
    Normal,
}

impl Quality {
    /// The quality a timestamp setting asks for.
    pub fn of(t: Tstamp) -> Quality {
        if t.format() == TstampFormat::None {
            Quality::None
        } else if t.flags().contains(TstampFlags::FAST) {
            Quality::Fast
        } else {
            Quality::Normal
        }
    }
}

/// The timestamp of one packet, read from the clock at most once per
/// quality and shared by every descriptor that accepts the packet; the
/// boot time comes from the delivery's [`BootTime`].
pub struct PacketTime<'b> {
    /// The best quality read so far (`None`: no clock read yet; a hardware
    /// stamp counts as the best).
    quality: Quality,
    uptime: Bintime,
    boot: &'b BootTime,
}

impl<'b> PacketTime<'b> {
    /// A packet with an optional hardware or driver timestamp (uptime),
    /// delivered with others that share `boot`.
    pub fn new(hw: Option<Bintime>, boot: &'b BootTime) -> Self {
        match hw {
            Some(uptime) => PacketTime { quality: Quality::Normal, uptime, boot },
            None => PacketTime { quality: Quality::None, uptime: Bintime::default(), boot },
        }
    }

    /// The boot time, read at most once per delivery.
    pub fn boottime<P: Platform>(&self, platform: &P) -> Bintime {
        self.boot.get(platform)
    }

    /// The packet's uptime for a descriptor wanting `quality`: the hardware
    /// stamp if there is one, else a clock read of at least that quality,
    /// taken the first time it is needed (none for BPF_T_NONE).
    #[inline]
    pub fn get<P: Platform>(&mut self, platform: &P, quality: Quality) -> Bintime {
        if quality > self.quality {
            self.uptime = match quality {
                Quality::Normal => platform.uptime(),
                _ => platform.uptime_fast(),
            };
            self.quality = quality;
        }
        self.uptime
    }
}

/// The boot time, read at most once per delivery (one packet, or a
/// driver's batch of them) and only when a record needs it: it changes
/// only when the clock is set, and FreeBSD reads it without a lock too.
#[derive(Default)]
pub struct BootTime(Cell<Option<Bintime>>);

impl BootTime {
    /// The boot time, read now if not yet.
    pub fn get<P: Platform>(&self, platform: &P) -> Bintime {
        if let Some(boot) = self.0.get() {
            return boot;
        }
        let boot = platform.boottime();
        self.0.set(Some(boot));
        boot
    }
}

/// Whether records under timestamp setting `t` add the boot time: wall
/// clock (not monotonic) and a timestamp at all.
pub fn needs_boottime(t: Tstamp) -> bool {
    t.format() != TstampFormat::None && !t.flags().contains(TstampFlags::MONOTONIC)
}

/// Everything a record header needs besides the lengths.
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    /// The timestamp setting of the descriptor.
    pub tstamp: Tstamp,
    /// The packet's uptime (ignored for BPF_T_NONE).
    pub uptime: Bintime,
    /// Boot time, added unless the setting is monotonic.
    pub boottime: Bintime,
}

/// Largest record header length: WORDALIGN(26 + L) - L peaks at 33.
pub const MAX_HDRLEN: usize = 33;

/// The record header length for a link header of `link_hdrlen` bytes.
pub fn hdrlen(link_hdrlen: u32) -> usize {
    bpf_hdrlen(link_hdrlen as usize)
}

// On amd64 `bpf_hdr` and `bpf_xhdr` share one layout; only the meaning of
// the second timestamp word differs. The header is written by offsets.
const_assert_eq!(offset_of!(BpfHdr, bh_caplen), offset_of!(BpfXhdr, bh_caplen));
const_assert_eq!(offset_of!(BpfHdr, bh_datalen), offset_of!(BpfXhdr, bh_datalen));
const_assert_eq!(offset_of!(BpfHdr, bh_hdrlen), offset_of!(BpfXhdr, bh_hdrlen));
const SEC: usize = offset_of!(BpfTs, bt_sec);
const FRAC: usize = offset_of!(BpfTs, bt_frac);
const CAPLEN: usize = offset_of!(BpfHdr, bh_caplen);
const DATALEN: usize = offset_of!(BpfHdr, bh_datalen);
const HDRLEN: usize = offset_of!(BpfHdr, bh_hdrlen);

/// Writes a record header into `out`, the zeroed bytes that will precede
/// the packet data: the `bpf_hdr` or `bpf_xhdr` fields by offset, leaving
/// the gap between byte 26 and `hdrlen` zero. Fields that do not fit in
/// `out` are left out (callers pass at least [`MAX_HDRLEN`] bytes).
pub fn write_header(out: &mut [u8], stamp: &Stamp, caplen: u32, datalen: u32, hdrlen: usize) {
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(dst) = out.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    let t = stamp.tstamp;
    let format = t.format();
    if format != TstampFormat::None {
        let bt = if t.flags().contains(TstampFlags::MONOTONIC) {
            stamp.uptime
        } else {
            stamp.uptime + stamp.boottime
        };
        let frac = match format {
            TstampFormat::Micro => bt.usec(),
            TstampFormat::Nano => bt.nsec(),
            _ => bt.frac,
        };
        put(SEC, &bt.sec.to_ne_bytes());
        put(FRAC, &frac.to_ne_bytes());
    }
    put(CAPLEN, &caplen.to_ne_bytes());
    put(DATALEN, &datalen.to_ne_bytes());
    put(HDRLEN, &(hdrlen as u16).to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lengths() {
        assert_eq!(hdrlen(14), 26);
        assert_eq!(hdrlen(4), 28);
        assert_eq!(hdrlen(0), 32);
        assert_eq!(hdrlen(7), 33);
        assert!((0..64).all(|l| hdrlen(l) <= MAX_HDRLEN));
    }

    fn header(stamp: &Stamp, caplen: u32, datalen: u32, hdrlen: usize) -> [u8; MAX_HDRLEN] {
        let mut out = [0u8; MAX_HDRLEN];
        write_header(&mut out, stamp, caplen, datalen, hdrlen);
        out
    }

    #[test]
    fn timestamp_formats() {
        let up = Bintime { sec: 5, frac: 1 << 63 };
        let boot = Bintime { sec: 1000, frac: 1 << 63 };
        let stamp = |raw| Stamp { tstamp: Tstamp::new(raw).unwrap(), uptime: up, boottime: boot };
        let micro = header(&stamp(0), 1, 2, 26);
        let h = BpfHdr::decode(&micro).unwrap();
        assert_eq!((h.bh_tstamp.tv_sec, h.bh_tstamp.tv_usec), (1006, 0));
        assert_eq!((h.bh_caplen, h.bh_datalen, h.bh_hdrlen), (1, 2, 26));
        let nano_mono = BpfXhdr::decode(&header(&stamp(0x201), 1, 2, 26)).unwrap();
        assert_eq!((nano_mono.bh_tstamp.bt_sec, nano_mono.bh_tstamp.bt_frac), (5, 500_000_000));
        let bin = BpfXhdr::decode(&header(&stamp(0x202), 1, 2, 26)).unwrap();
        assert_eq!((bin.bh_tstamp.bt_sec, bin.bh_tstamp.bt_frac), (5, 1 << 63));
        let none = header(&stamp(3), 1, 2, 33);
        assert!(none[..16].iter().all(|&b| b == 0) && none[26..].iter().all(|&b| b == 0));
    }
}
