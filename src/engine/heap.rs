//! BUFFER mode: two kernel buffers, copied out by read(2).

use alloc::vec::Vec;

use super::buffers::Buffer;
use crate::abi::{Errno, Result};
use crate::packet::PacketBytes;

/// A kernel-memory capture buffer.
pub struct HeapBuf {
    bytes: Vec<u8>,
}

impl HeapBuf {
    /// A zeroed buffer of `size` bytes; ENOMEM if memory is short.
    pub fn new(size: usize) -> Result<HeapBuf> {
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(size).map_err(|_| Errno::ENOMEM)?;
        bytes.resize(size, 0);
        Ok(HeapBuf { bytes })
    }

    /// The first `len` bytes (what a read returns).
    pub fn data(&self, len: usize) -> &[u8] {
        &self.bytes[..len.min(self.bytes.len())]
    }
}

impl Buffer for HeapBuf {
    fn write(&mut self, off: usize, data: &[u8]) {
        if let Some(dst) = self.bytes.get_mut(off..off.saturating_add(data.len())) {
            dst.copy_from_slice(data);
        }
    }

    fn write_block<const N: usize>(&mut self, off: usize, block: &[u8; N]) {
        if let Some(dst) = self.bytes.get_mut(off..off.saturating_add(N)) {
            dst.copy_from_slice(block);
        }
    }

    fn write_packet<B: PacketBytes + ?Sized>(&mut self, off: usize, pkt: &B, len: usize) {
        let Some(mut dst) = self.bytes.get_mut(off..off.saturating_add(len)) else { return };
        pkt.for_each_piece(len, |piece| {
            let n = piece.len().min(dst.len());
            let (head, rest) = core::mem::take(&mut dst).split_at_mut(n);
            crate::copy::copy(head, &piece[..n]);
            dst = rest;
        });
    }
}
