//! The store/hold/free buffer machine, shared by both buffer modes.
//!
//! Two buffers rotate through three slots. Packets are appended to the
//! store buffer; a full (or timed-out) store buffer moves to the hold slot
//! for the reader; the reader gives it back as the free buffer. What differs
//! between kernel buffers (BUFFER mode, read(2)) and zero-copy buffers
//! (ZBUF, shared with the process) is behind the [`Buffer`] trait: how bytes
//! are written, whether the store buffer is writable, whether the reader
//! has given the hold buffer back, and what handing a buffer over means.

use crate::abi::bpf_wordalign;
use crate::packet::PacketBytes;

use super::record::{self, Stamp};

/// One capture buffer, as the slot machine sees it.
pub trait Buffer {
    /// Writes `data` at byte `off` of the record area.
    fn write(&mut self, off: usize, data: &[u8]);
    /// Writes a fixed-size block at `off` (the caller checked it fits): one
    /// copy of a known length, which compiles to a few moves.
    fn write_block<const N: usize>(&mut self, off: usize, block: &[u8; N]) {
        self.write(off, block);
    }
    /// Writes the first `len` bytes of `pkt` at byte `off`.
    fn write_packet<B: PacketBytes + ?Sized>(&mut self, off: usize, pkt: &B, len: usize);
    /// Whether the kernel may append to this buffer (ZBUF: not handed to the
    /// user yet).
    fn writable(&self) -> bool {
        true
    }
    /// Whether the reader has given this (held) buffer back. BUFFER mode:
    /// never here; read(2) frees the hold buffer itself.
    fn acked(&self) -> bool {
        false
    }
    /// The buffer, holding `len` bytes of records, now belongs to the
    /// reader. At most once per fill.
    fn hand_over(&mut self, _len: usize) {}
    /// The buffer came back to the free slot.
    fn reclaimed(&mut self) {}
    /// Whether the user owns this buffer now (ZBUF: handed over and not
    /// given back).
    fn user_owned(&self) -> bool {
        false
    }
}

/// The outcome of appending one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caught {
    /// Stored; wake the reader if `wakeup`.
    Stored {
        /// A buffer was rotated, or the reader wants every packet.
        wakeup: bool,
    },
    /// No room and no free buffer: counted as a drop.
    Dropped,
}

/// The padding before a record (at most 7 bytes) plus its header.
const BLOCK: usize = 7 + record::MAX_HDRLEN;

/// Two buffers in three slots.
pub struct Slots<B> {
    /// Where packets are appended.
    pub store: B,
    /// The buffer waiting for (or owned by) the reader.
    pub hold: Option<B>,
    /// The spare buffer.
    pub free: Option<B>,
    /// Bytes used in the store buffer (the last record is not padded).
    pub slen: usize,
    /// Bytes in the hold buffer.
    pub hlen: usize,
    /// Usable bytes per buffer.
    pub bufsize: usize,
    /// A read(2) has taken the hold buffer out to copy it.
    pub hold_busy: bool,
}

impl<B: Buffer> Slots<B> {
    /// Fresh slots: `store` is filled first, `free` is the spare.
    pub fn new(store: B, free: B, bufsize: usize) -> Self {
        Slots { store, hold: None, free: Some(free), slen: 0, hlen: 0, bufsize, hold_busy: false }
    }

    /// Whether the hold slot is occupied (present or being copied).
    pub fn hold_occupied(&self) -> bool {
        self.hold.is_some() || self.hold_busy
    }

    /// ROTATE_BUFFERS: store becomes hold, free becomes store. Needs a free
    /// buffer; returns false (and changes nothing) without one.
    pub fn rotate(&mut self) -> bool {
        let Some(free) = self.free.take() else { return false };
        let mut held = core::mem::replace(&mut self.store, free);
        held.hand_over(self.slen);
        self.hold = Some(held);
        self.hlen = self.slen;
        self.slen = 0;
        true
    }

    /// Moves an acknowledged hold buffer back to the free slot.
    pub fn reclaim_if_acked(&mut self) {
        if self.free.is_none() && self.hold.as_ref().is_some_and(Buffer::acked) {
            self.free_hold();
        }
    }

    /// Moves the hold buffer to the free slot.
    pub fn free_hold(&mut self) {
        if let Some(mut h) = self.hold.take() {
            h.reclaimed();
            self.free = Some(h);
            self.hlen = 0;
        }
    }

    /// reset_d: discard what the kernel owns. The hold buffer goes if
    /// `hold_discardable` (BUFFER mode) or the reader gave it back; the
    /// store data goes if the store buffer is still the kernel's.
    pub fn reset(&mut self, hold_discardable: bool) {
        if self.hold.as_ref().is_some_and(|h| hold_discardable || h.acked()) {
            self.free_hold();
        }
        if self.store.writable() {
            self.slen = 0;
        }
    }

    /// Readiness: a held buffer the reader has not given back, or data in
    /// the store buffer when the reader wants it now.
    pub fn ready(&self, eager: bool) -> bool {
        let held = self.hold.as_ref().is_some_and(|h| !h.acked()) && self.hlen != 0;
        held || (eager && self.slen != 0)
    }

    /// BIOCROTZBUF: hands a partly filled store buffer to the reader when
    /// the hold slot is free. An acknowledged hold buffer is reclaimed first
    /// (FreeBSD waits for the next packet to do that). Returns whether a
    /// rotation happened.
    pub fn force_rotate(&mut self) -> bool {
        self.reclaim_if_acked();
        self.hold.is_none() && self.slen != 0 && self.rotate()
    }

    /// The buffer a consumer should process next: the held one if the user
    /// still owns it, else a store buffer handed over when it filled.
    pub fn oldest_user_owned(&self) -> Option<&B> {
        self.hold
            .as_ref()
            .filter(|h| h.user_owned())
            .or(Some(&self.store).filter(|b| b.user_owned()))
    }

    /// catchpacket: appends one record. `snaplen` is the filter's answer,
    /// `pktlen` the packet's length; `eager` means the reader wants a
    /// wakeup for every packet (immediate mode or a fired timeout).
    pub fn catch<P: PacketBytes + ?Sized>(
        &mut self,
        pkt: &P,
        snaplen: u32,
        hdrlen: usize,
        stamp: &Stamp,
        eager: bool,
    ) -> Caught {
        self.reclaim_if_acked();
        let pktlen = pkt.len();
        let want = (snaplen as usize).min(pktlen);
        let totlen = (hdrlen + want).min(self.bufsize);
        if totlen < hdrlen {
            // A buffer smaller than one header cannot hold any record.
            return Caught::Dropped;
        }
        let mut curlen = bpf_wordalign(self.slen);
        let mut wakeup = eager;
        if curlen + totlen > self.bufsize || !self.store.writable() {
            if self.free.is_none() {
                self.store.hand_over(self.slen);
                return Caught::Dropped;
            }
            self.rotate();
            wakeup = true;
            curlen = 0;
        }
        let caplen = totlen - hdrlen;
        let datalen = u32::try_from(pktlen).unwrap_or(u32::MAX);
        // The padding after the previous record (never old bytes) and the
        // header, in one block. Past `curlen + hdrlen` the block holds
        // zeros, which the packet's bytes then overwrite or which stay as
        // padding.
        let gap = curlen - self.slen;
        let mut block = [0u8; BLOCK];
        if let Some(at) = block.get_mut(gap..) {
            record::write_header(at, stamp, caplen as u32, datalen, hdrlen);
        }
        if self.slen + BLOCK <= self.bufsize {
            self.store.write_block(self.slen, &block);
        } else {
            self.store.write(self.slen, block.get(..gap + hdrlen).unwrap_or(&block));
        }
        self.store.write_packet(curlen + hdrlen, pkt, caplen);
        self.slen = curlen + totlen;
        Caught::Stored { wakeup }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{BpfHdr, Tstamp};
    use crate::platform::Bintime;
    use alloc::vec;
    use alloc::vec::Vec;

    struct Mem(Vec<u8>);
    impl Buffer for Mem {
        fn write(&mut self, off: usize, data: &[u8]) {
            self.0[off..off + data.len()].copy_from_slice(data);
        }
        fn write_packet<B: PacketBytes + ?Sized>(&mut self, off: usize, pkt: &B, len: usize) {
            let mut at = off;
            pkt.for_each_piece(len, |p| {
                self.0[at..at + p.len()].copy_from_slice(p);
                at += p.len();
            });
        }
    }

    fn stamp() -> Stamp {
        Stamp { tstamp: Tstamp::DEFAULT, uptime: Bintime::default(), boottime: Bintime::default() }
    }

    #[test]
    fn rotation_and_drop() {
        let mut s = Slots::new(Mem(vec![0xee; 100]), Mem(vec![0xee; 100]), 100);
        let pkt = [7u8; 30];
        assert_eq!(
            s.catch(&pkt[..], u32::MAX, 26, &stamp(), false),
            Caught::Stored { wakeup: false }
        );
        assert_eq!(s.slen, 56);
        // The next record does not fit: rotate.
        assert_eq!(
            s.catch(&pkt[..], u32::MAX, 26, &stamp(), false),
            Caught::Stored { wakeup: true }
        );
        assert_eq!((s.hlen, s.slen), (56, 56));
        let held = &s.hold.as_ref().unwrap().0;
        let h = BpfHdr::decode(held).unwrap();
        assert_eq!((h.bh_caplen, h.bh_datalen, h.bh_hdrlen), (30, 30, 26));
        assert_eq!(&held[26..56], &pkt[..]);
        // Store full again, no free buffer: drop.
        assert_eq!(s.catch(&pkt[..], u32::MAX, 26, &stamp(), false), Caught::Dropped);
        // Snap length caps, and padding before the next record is zeroed.
        s.free_hold();
        let mut s2 = Slots::new(Mem(vec![0xee; 200]), Mem(vec![0xee; 200]), 200);
        s2.catch(&pkt[..], 3, 26, &stamp(), false);
        assert_eq!(s2.slen, 29);
        s2.catch(&pkt[..], 3, 26, &stamp(), false);
        assert_eq!(&s2.store.0[29..32], &[0, 0, 0]);
        assert_eq!(s2.slen, 32 + 29);
    }

    #[test]
    fn oversized_packet_truncated_to_buffer() {
        let mut s = Slots::new(Mem(vec![0; 64]), Mem(vec![0; 64]), 64);
        let pkt = [1u8; 1000];
        assert_eq!(
            s.catch(&pkt[..], u32::MAX, 26, &stamp(), false),
            Caught::Stored { wakeup: false }
        );
        assert_eq!(s.slen, 64);
        let h = BpfHdr::decode(&s.store.0).unwrap();
        assert_eq!((h.bh_caplen, h.bh_datalen), (38, 1000));
    }
}
