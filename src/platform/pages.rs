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
    // reads: nothing reads record bytes back.
    // SAFETY: HeldPages' contract: `page` is valid for writes of PAGE_SIZE
    // bytes while `pages` lives and overlaps no Rust-owned memory, so not
    // `data`; `in_page + data.len() <= PAGE_SIZE` (checked); `&mut pages`
    // keeps every other write of ours out.
    unsafe { crate::copy::copy_raw(page.as_ptr().add(in_page), data.as_ptr(), data.len()) }
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
    // SAFETY: HeldPages' contract: `page` is PAGE_SIZE-aligned and valid for
    // reads and writes of PAGE_SIZE bytes while `pages` lives, which the
    // result borrows; `at` is 4-aligned and `at + 4 <= PAGE_SIZE` (checked);
    // our accesses to the word are all atomic, and the user's are outside
    // Rust's memory model.
    Some(unsafe { AtomicU32::from_ptr(page.as_ptr().add(at).cast::<u32>()) })
}
