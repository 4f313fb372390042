//! Reads and writes of [`HeldPages`]: the one place that dereferences the
//! pointers a platform's held pages hand out, relying on the trait's
//! contract. The user process may change the pages at any time, so the
//! only reads are atomic.

use core::sync::atomic::AtomicU32;

use super::HeldPages;
use crate::abi::PAGE_SIZE;

/// Copies `data` into page `index` at byte `in_page`. Writes nothing and
/// returns false when the page does not exist or `data` would not fit.
#[inline(always)]
pub fn write<Pg: HeldPages>(pages: &mut Pg, index: usize, in_page: usize, data: &[u8]) -> bool {
    let Some(page) = pages.page(index) else { return false };
    if in_page > PAGE_SIZE || data.len() > PAGE_SIZE - in_page {
        return false;
    }
    // A concurrent user write to these bytes only changes what the user
    // reads: nothing reads record bytes back. HeldPages' contract: `page` is
    // valid for writes of PAGE_SIZE bytes while `pages` lives and overlaps
    // no Rust-owned memory, so not `data`; `&mut pages` keeps every other
    // write of ours out.
    // SAFETY: a held page, `in_page + data.len() <= PAGE_SIZE` (checked).
    unsafe { crate::copy::copy_raw(page.as_ptr().add(in_page), data.as_ptr(), data.len()) }
    true
}

/// Copies `data` to byte `at` of the pages' span ([`HeldPages::span`]), in
/// one copy across page boundaries. Writes nothing and returns false when
/// the pages have no span or `data` would not fit in it.
#[inline(always)]
pub fn write_span<Pg: HeldPages>(pages: &mut Pg, at: usize, data: &[u8]) -> bool {
    let Some(span) = pages.span() else { return false };
    let len = pages.count().saturating_mul(PAGE_SIZE);
    if at > len || data.len() > len - at {
        return false;
    }
    // A concurrent user write to these bytes only changes what the user
    // reads: nothing reads record bytes back. HeldPages' contract: `span`
    // is valid for writes of `count() * PAGE_SIZE` bytes while `pages`
    // lives and overlaps no Rust-owned memory, so not `data`; `&mut pages`
    // keeps every other write of ours out.
    // SAFETY: the held span, `at + data.len()` within it (checked).
    unsafe { crate::copy::copy_raw(span.as_ptr().add(at), data.as_ptr(), data.len()) }
    true
}

/// The 32-bit word at byte `at` of page `index`, as an atomic (the user may
/// change it at any time), or `None` when the page does not exist or `at`
/// is not a 4-aligned offset inside it.
#[inline]
pub fn word<Pg: HeldPages>(pages: &Pg, index: usize, at: usize) -> Option<&AtomicU32> {
    let page = pages.page(index)?;
    if at % 4 != 0 || at >= PAGE_SIZE {
        return None;
    }
    // HeldPages' contract: `page` is PAGE_SIZE-aligned and valid for reads
    // and writes of PAGE_SIZE bytes while `pages` lives, which the result
    // borrows; our accesses to the word are all atomic, and the user's are
    // outside Rust's memory model.
    // SAFETY: a held page's word, 4-aligned, `at + 4 <= PAGE_SIZE` (checked).
    Some(unsafe { AtomicU32::from_ptr(page.as_ptr().add(at).cast::<u32>()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ptr::NonNull;

    /// Three pages of one page-aligned allocation, with or without a span.
    struct Pages {
        mem: std::boxed::Box<Mem>,
        span: bool,
    }

    #[repr(C, align(4096))]
    struct Mem([[u8; PAGE_SIZE]; 3]);

    // SAFETY: the pages are the three PAGE_SIZE arrays of `mem`, owned by
    // the value and reached only through these pointers while it lives;
    // the span is the same memory in order.
    unsafe impl HeldPages for Pages {
        fn count(&self) -> usize {
            3
        }
        fn page(&self, index: usize) -> Option<NonNull<u8>> {
            self.mem.0.get(index).map(|p| NonNull::from(p).cast())
        }
        fn span(&self) -> Option<NonNull<u8>> {
            self.span.then(|| NonNull::from(&*self.mem).cast())
        }
    }

    #[test]
    fn a_span_takes_a_write_across_pages_whole_and_nothing_past_its_end() {
        let data: std::vec::Vec<u8> = (0..3000u32).map(|i| i as u8 ^ 0x5a).collect();
        let mut p = Pages { mem: std::boxed::Box::new(Mem([[0; PAGE_SIZE]; 3])), span: true };
        let at = PAGE_SIZE - 1000;
        assert!(write_span(&mut p, at, &data));
        assert_eq!(&p.mem.0[0][at..], &data[..1000]);
        assert_eq!(&p.mem.0[1][..2000], &data[1000..]);
        assert!(p.mem.0[1][2000..].iter().all(|&b| b == 0));
        // Past the end: nothing written.
        assert!(!write_span(&mut p, 3 * PAGE_SIZE - 10, &data[..11]));
        assert!(p.mem.0[2].iter().all(|&b| b == 0));
        // No span: refused, for the caller's page-by-page copy.
        let mut q = Pages { mem: std::boxed::Box::new(Mem([[0; PAGE_SIZE]; 3])), span: false };
        assert!(!write_span(&mut q, 0, &data));
        assert!(q.mem.0.iter().flatten().all(|&b| b == 0));
    }
}
