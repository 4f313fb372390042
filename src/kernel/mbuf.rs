//! A packet's mbuf chain as the engine's segment list: the first mbuf as
//! the tap wrapper described it, the rest walked through the shims.
//!
//! A frame whose 802.1Q tag the hardware stripped (M_VLANTAG) is shown to
//! the taps with the tag back in place after the two addresses, as
//! FreeBSD's ETHER_BPF_MTAP does.

use super::ffi;
use crate::packet::Segments;

/// An mbuf chain handed to a tap, valid for the duration of the call.
pub struct Mbufs<'a> {
    first: &'a [u8],
    rest: *const ffi::mbuf,
    tag: Option<[u8; 4]>,
}

/// Where the reinserted tag goes: after the destination and source MACs.
const TAG_OFFSET: usize = 12;

impl<'a> Mbufs<'a> {
    /// The chain of a packet description, and its length as the taps see
    /// it (the reinserted tag included).
    ///
    /// # Safety
    /// `pkt` must describe a valid mbuf chain (its first mbuf's data valid
    /// for `data_len` bytes) that nobody frees or changes while the
    /// returned value lives.
    pub unsafe fn new(pkt: &'a ffi::zbpf_packet) -> (Self, usize) {
        let first: &[u8] = if pkt.data.is_null() || pkt.data_len == 0 {
            &[]
        } else {
            // SAFETY: the caller vouches for the first mbuf's data.
            unsafe { core::slice::from_raw_parts(pkt.data, pkt.data_len as usize) }
        };
        let tag = (pkt.flags & ffi::ZBPF_PKT_VLANTAG != 0).then(|| {
            let t = pkt.vlan_tag.to_be_bytes();
            [0x81, 0x00, t[0], t[1]]
        });
        let len = pkt.len as usize + if tag.is_some() { 4 } else { 0 };
        (Mbufs { first, rest: pkt.next, tag }, len)
    }
}

/// The bytes of a packet its first mbuf holds whole (no other mbuf, no tag
/// to put back), the usual received packet: the engine then takes them as
/// one slice, as it takes the simulator's frames, without walking a chain.
///
/// # Safety
/// As [`Mbufs::new`].
pub unsafe fn whole(pkt: &ffi::zbpf_packet) -> Option<&[u8]> {
    let single =
        pkt.next.is_null() && pkt.flags & ffi::ZBPF_PKT_VLANTAG == 0 && pkt.data_len == pkt.len;
    if !single {
        return None;
    }
    if pkt.data_len == 0 {
        return Some(&[]);
    }
    if pkt.data.is_null() {
        // Not a packet a driver makes; the chain's path keeps its length.
        return None;
    }
    // SAFETY: the caller vouches for the first mbuf's data.
    Some(unsafe { core::slice::from_raw_parts(pkt.data, pkt.data_len as usize) })
}

/// The iterator over an mbuf chain's data.
pub struct MbufIter<'a> {
    m: *const ffi::mbuf,
    pending: &'a [u8],
    tag: Option<&'a [u8; 4]>,
    pos: usize,
}

impl<'a> Iterator for MbufIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while self.pending.is_empty() {
            if self.m.is_null() {
                return None;
            }
            // SAFETY: `m` is a live mbuf of the chain (Mbufs::new's
            // contract); m_data is valid for m_len bytes.
            self.pending = unsafe {
                let data = ffi::zbpf_kpi_mbuf_data(self.m);
                let len = ffi::zbpf_kpi_mbuf_len(self.m) as usize;
                self.m = ffi::zbpf_kpi_mbuf_next(self.m);
                if data.is_null() || len == 0 {
                    &[]
                } else {
                    core::slice::from_raw_parts(data, len)
                }
            };
        }
        if let Some(tag) = self.tag {
            if self.pos == TAG_OFFSET {
                self.tag = None;
                return Some(tag);
            }
            if self.pos < TAG_OFFSET && self.pos + self.pending.len() > TAG_OFFSET {
                let (out, rest) = self.pending.split_at(TAG_OFFSET - self.pos);
                self.pending = rest;
                self.pos += out.len();
                return Some(out);
            }
        }
        let out = core::mem::take(&mut self.pending);
        self.pos += out.len();
        Some(out)
    }
}

impl<'c> Segments for Mbufs<'c> {
    type Iter<'a>
        = MbufIter<'a>
    where
        Self: 'a;

    fn segments(&self) -> MbufIter<'_> {
        MbufIter { m: self.rest, pending: self.first, tag: self.tag.as_ref(), pos: 0 }
    }
}
