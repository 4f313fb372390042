//! An mbuf chain as the engine's segment list, walked through the shims.
//!
//! A frame whose 802.1Q tag the hardware stripped (M_VLANTAG) is shown to
//! the taps with the tag back in place after the two addresses, as
//! FreeBSD's ETHER_BPF_MTAP does.

use core::marker::PhantomData;

use super::ffi;
use crate::packet::Segments;

/// An mbuf chain handed to a tap, valid for the duration of the call.
pub struct Mbufs<'a> {
    head: *const ffi::mbuf,
    tag: Option<[u8; 4]>,
    _chain: PhantomData<&'a ffi::mbuf>,
}

/// Where the reinserted tag goes: after the destination and source MACs.
const TAG_OFFSET: usize = 12;

impl Mbufs<'_> {
    /// # Safety
    /// `m` must be a valid mbuf chain that nobody frees or changes while the
    /// returned value lives.
    pub unsafe fn new(m: *const ffi::mbuf) -> Self {
        let mut tci = 0u16;
        // SAFETY: the caller vouches for `m`.
        let tagged = unsafe { ffi::zbpf_kpi_mbuf_vlantag(m, &mut tci) } != 0;
        let tag = tagged.then(|| {
            let t = tci.to_be_bytes();
            [0x81, 0x00, t[0], t[1]]
        });
        Mbufs { head: m, tag, _chain: PhantomData }
    }
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
        MbufIter { m: self.head, pending: &[], tag: self.tag.as_ref(), pos: 0 }
    }
}
