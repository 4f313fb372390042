//! ZBUF mode: two buffers in the process's memory, shared with the kernel,
//! with the generation protocol in a 32-byte header at the front of each.
//!
//! The pages are held for the descriptor's lifetime and reached through the
//! platform: as one span where the platform maps them one after the other
//! (the kernel module does, with pmap_qenter(9)), so that a record across a
//! page boundary is one copy; else one page at a time (through the direct
//! map, as FreeBSD's own bpf does), scatter-gather. The pages are reached only through
//! [`platform::pages`](crate::platform::pages), which relies on
//! [`HeldPages`]' safety contract; this module has no unsafe code.
//!
//! The process can write anything, at any time, anywhere in these buffers.
//! So the kernel side reads nothing back but `bzh_user_gen`, and uses it
//! only in an equality test with its own private copy of the generation.
//! Every size, offset and length used for copying is kernel-private.

use core::sync::atomic::{AtomicU32, Ordering};

use super::buffers::Buffer;
use crate::abi::{BpfZbufHeader, UserAddr, PAGE_SIZE};
use crate::packet::PacketBytes;
use crate::platform::{pages, HeldPages};

/// Bytes of the shared header in front of the records.
pub const HEADER_LEN: usize = BpfZbufHeader::SIZE;

/// Word indices of the header fields.
const KERNEL_GEN: usize = 0;
const KERNEL_LEN: usize = 1;
const USER_GEN: usize = 2;

/// One zero-copy buffer.
pub struct ZeroBuf<Pg: HeldPages> {
    pages: Pg,
    uaddr: UserAddr,
    /// Bytes including the header (page multiple).
    size: usize,
    /// Handed to the user and not yet reclaimed (ZBUF_FLAG_ASSIGNED).
    assigned: bool,
    /// The kernel's generation of this buffer; the header's copy is for the
    /// user only.
    gen: u32,
    /// The record length last handed over.
    handed_len: usize,
}

impl<Pg: HeldPages> ZeroBuf<Pg> {
    /// Takes over held pages covering `size` bytes at `uaddr` (already
    /// validated) and zeroes the shared header, so both generations start
    /// at 0.
    pub fn new(pages: Pg, uaddr: UserAddr, size: usize) -> Self {
        let mut zb = ZeroBuf { pages, uaddr, size, assigned: false, gen: 0, handed_len: 0 };
        zb.copy_in_pages(0, &[0u8; HEADER_LEN]);
        zb
    }

    /// The user address the process gave.
    pub fn uaddr(&self) -> UserAddr {
        self.uaddr
    }

    /// The record length last handed over (`bzh_kernel_len`).
    pub fn handed_len(&self) -> usize {
        self.handed_len
    }

    /// Acknowledges the buffer on the user's behalf, exactly as the user's
    /// own store of `bzh_user_gen = bzh_kernel_gen` would.
    pub fn ack(&self) {
        if let Some(w) = self.header_word(USER_GEN) {
            w.store(self.gen, Ordering::Release);
        }
    }

    /// The header word `index` as an atomic, in page 0.
    fn header_word(&self, index: usize) -> Option<&AtomicU32> {
        debug_assert!(index < HEADER_LEN / 4);
        // The user may write the word concurrently: every value is possible,
        // and the kernel only compares it.
        pages::word(&self.pages, 0, index * 4)
    }

    /// Copies `data` to buffer byte `off` (header included): in one copy
    /// where the platform maps the pages one after the other, else page by
    /// page. Bytes past the end of the buffer are not written.
    fn copy_in_pages(&mut self, off: usize, data: &[u8]) {
        let fits = data.len().min(self.size.saturating_sub(off));
        if let Some(head) = data.get(..fits) {
            if pages::write_span(&mut self.pages, off, head) {
                return;
            }
        }
        let mut off = off;
        let mut data = data;
        while !data.is_empty() && off < self.size {
            let (page_index, in_page) = (off / PAGE_SIZE, off % PAGE_SIZE);
            let n = data.len().min(PAGE_SIZE - in_page).min(self.size - off);
            if !pages::write(&mut self.pages, page_index, in_page, &data[..n]) {
                return;
            }
            data = &data[n..];
            off += n;
        }
    }
}

impl<Pg: HeldPages> Buffer for ZeroBuf<Pg> {
    fn write(&mut self, off: usize, data: &[u8]) {
        self.copy_in_pages(HEADER_LEN + off, data);
    }

    fn write_block<const N: usize>(&mut self, off: usize, block: &[u8; N]) {
        let off = HEADER_LEN + off;
        // The common case, a block inside the buffer, in one copy: into the
        // span if there is one, else inside one page.
        let fits = off + N <= self.size
            && (pages::write_span(&mut self.pages, off, block)
                || pages::write(&mut self.pages, off / PAGE_SIZE, off % PAGE_SIZE, block));
        if !fits {
            self.copy_in_pages(off, block);
        }
    }

    fn write_packet<B: PacketBytes + ?Sized>(&mut self, off: usize, pkt: &B, len: usize) {
        let mut at = HEADER_LEN + off;
        pkt.for_each_piece(len, |piece| {
            self.copy_in_pages(at, piece);
            at += piece.len();
        });
    }

    fn writable(&self) -> bool {
        !self.assigned
    }

    fn acked(&self) -> bool {
        // Acquire pairs with the user's release store of bzh_user_gen: the
        // user is done with the records before the kernel writes again.
        self.header_word(USER_GEN).is_some_and(|w| w.load(Ordering::Acquire) == self.gen)
    }

    fn hand_over(&mut self, len: usize) {
        if self.assigned {
            return;
        }
        self.assigned = true;
        self.handed_len = len;
        self.gen = self.gen.wrapping_add(1);
        if let (Some(klen), Some(kgen)) =
            (self.header_word(KERNEL_LEN), self.header_word(KERNEL_GEN))
        {
            klen.store(len as u32, Ordering::Relaxed);
            // Release: the records and kernel_len are visible before the
            // new generation tells the user the buffer is theirs.
            kgen.store(self.gen, Ordering::Release);
        }
    }

    fn reclaimed(&mut self) {
        self.assigned = false;
    }

    fn user_owned(&self) -> bool {
        self.assigned && !self.acked()
    }
}
