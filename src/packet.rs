//! The bytes of one packet, as the filter and the capture path see them: one
//! contiguous slice, or a chain of segments shaped like an mbuf chain
//! (any number of segments, empty ones included).
//!
//! Both shapes answer the same questions with the same results: the total
//! length, a big-endian load of 1, 2 or 4 bytes at an offset, and a copy of a
//! prefix. The filter machine and the capture path are generic over
//! [`PacketBytes`], so one implementation serves both.

#![forbid(unsafe_code)]

/// Read access to a packet's bytes.
pub trait PacketBytes {
    /// Bytes present (the filter's `buflen`).
    fn len(&self) -> usize;

    /// Whether no byte is present.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `N` bytes at `off`, or `None` if any of them lies past the end.
    fn load<const N: usize>(&self, off: usize) -> Option<[u8; N]>;

    /// Calls `f` with consecutive pieces covering bytes `[0, len)` (stopping at
    /// the end of the packet), in order. Pieces may be empty.
    fn for_each_piece(&self, len: usize, f: impl FnMut(&[u8]));

    /// The contiguous bytes at the front of the packet.
    fn head(&self) -> &[u8];
}

impl PacketBytes for [u8] {
    #[inline(always)]
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    #[inline(always)]
    fn load<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        let end = off.checked_add(N)?;
        let bytes = self.get(off..end)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Some(out)
    }

    fn for_each_piece(&self, len: usize, mut f: impl FnMut(&[u8])) {
        f(&self[..len.min(self.len())]);
    }

    #[inline(always)]
    fn head(&self) -> &[u8] {
        self
    }
}

/// A source of segments: an mbuf chain in the kernel, a list of slices in the
/// simulator.
pub trait Segments {
    /// The iterator over the segments.
    type Iter<'a>: Iterator<Item = &'a [u8]>
    where
        Self: 'a;

    /// The segments, in order.
    fn segments(&self) -> Self::Iter<'_>;
}

/// The segments of a slice of slices.
pub struct SliceSegments<'a, 's> {
    inner: core::slice::Iter<'a, &'s [u8]>,
}

impl<'a, 's: 'a> Iterator for SliceSegments<'a, 's> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        self.inner.next().map(|s| -> &'a [u8] { s })
    }
}

impl<'s> Segments for [&'s [u8]] {
    type Iter<'a>
        = SliceSegments<'a, 's>
    where
        Self: 'a;

    fn segments(&self) -> Self::Iter<'_> {
        SliceSegments { inner: self.iter() }
    }
}

/// A segmented packet with its first segment and total length worked out
/// once, so that loads within the first segment (nearly all of them: link,
/// network and transport headers) cost one comparison.
pub struct Chain<'a, S: Segments + ?Sized> {
    head: &'a [u8],
    len: usize,
    segs: &'a S,
}

impl<'a, S: Segments + ?Sized> Chain<'a, S> {
    /// Walks the chain once.
    pub fn new(segs: &'a S) -> Self {
        let mut head: &[u8] = &[];
        let mut len = 0usize;
        for s in segs.segments() {
            if len == 0 && head.is_empty() {
                head = s;
            }
            len += s.len();
        }
        Chain { head, len, segs }
    }

    /// A chain whose total length the caller already knows (an mbuf
    /// packet header's): only the first segments are looked at. Should the
    /// segments hold fewer bytes, copies are padded with zeros.
    pub fn with_len(segs: &'a S, len: usize) -> Self {
        let head = segs.segments().find(|s| !s.is_empty()).unwrap_or(&[]);
        Chain { head: head.get(..len).unwrap_or(head), len, segs }
    }

    /// The first non-empty segment (or an empty slice).
    pub fn head(&self) -> &'a [u8] {
        self.head
    }

    #[cold]
    fn load_slow<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        let end = off.checked_add(N)?;
        if end > self.len {
            return None;
        }
        let mut out = [0u8; N];
        let mut filled = 0usize;
        let mut base = 0usize;
        for s in self.segs.segments() {
            let seg_end = base + s.len();
            if seg_end > off + filled {
                let from = off + filled - base;
                let take = (s.len() - from).min(N - filled);
                out[filled..filled + take].copy_from_slice(&s[from..from + take]);
                filled += take;
                if filled == N {
                    return Some(out);
                }
            }
            base = seg_end;
        }
        None
    }
}

impl<S: Segments + ?Sized> PacketBytes for Chain<'_, S> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn load<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        match self.head.load::<N>(off) {
            Some(v) => Some(v),
            None => self.load_slow::<N>(off),
        }
    }

    #[inline(always)]
    fn head(&self) -> &[u8] {
        self.head
    }

    fn for_each_piece(&self, len: usize, mut f: impl FnMut(&[u8])) {
        let mut left = len.min(self.len);
        for s in self.segs.segments() {
            if left == 0 {
                return;
            }
            let take = s.len().min(left);
            f(&s[..take]);
            left -= take;
        }
        // Segments shorter than the stated length: never leave a record's
        // bytes unwritten.
        const ZEROS: [u8; 64] = [0; 64];
        while left > 0 {
            let take = left.min(ZEROS.len());
            f(&ZEROS[..take]);
            left -= take;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn chain_with_stated_length_pads_a_short_chain_and_clips_a_long_head() {
        let segs: [&[u8]; 3] = [&[], &[1, 2, 3], &[4, 5]];
        let short = Chain::with_len(&segs[..], 8);
        assert_eq!(short.len(), 8);
        assert_eq!(short.head(), &[1, 2, 3]);
        let mut copied = Vec::new();
        short.for_each_piece(8, |p| copied.extend_from_slice(p));
        assert_eq!(copied, [1, 2, 3, 4, 5, 0, 0, 0]);
        assert_eq!(short.load::<2>(6), None, "a load past the bytes present fails");
        let long = Chain::with_len(&segs[..], 2);
        assert_eq!(long.head(), &[1, 2]);
        assert_eq!(long.load::<1>(2), None, "a load past the stated length fails");
    }

    #[test]
    fn chain_loads_match_contiguous_loads() {
        let bytes: Vec<u8> = (0u8..20).collect();
        let segs: [&[u8]; 6] = [&[], &bytes[..3], &[], &bytes[3..4], &bytes[4..11], &bytes[11..]];
        let chain = Chain::new(&segs[..]);
        assert_eq!(chain.len(), 20);
        for off in 0..24 {
            assert_eq!(chain.load::<4>(off), bytes[..].load::<4>(off), "word at {off}");
            assert_eq!(chain.load::<2>(off), bytes[..].load::<2>(off), "half at {off}");
            assert_eq!(chain.load::<1>(off), bytes[..].load::<1>(off), "byte at {off}");
        }
        let mut copied = Vec::new();
        chain.for_each_piece(13, |p| copied.extend_from_slice(p));
        assert_eq!(copied, &bytes[..13]);
        assert_eq!(bytes[..].load::<4>(usize::MAX), None);
    }
}
