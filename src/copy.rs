//! The copy of captured bytes into the capture buffers, the one copy per
//! byte a capture makes.
//!
//! In userspace that is the C library's memcpy, with vector registers. The
//! kernel may not use them, and the kernel's memcpy (FreeBSD amd64,
//! `MEMMOVE` in sys/amd64/amd64/support.S) moves 8 bytes at a time up to
//! 1 KiB and uses `rep movsb` beyond. On Intel processors with ERMS,
//! `rep movsb` is the faster from about 256 bytes on (FreeBSD's own comment
//! there puts the crossing near 256 bytes on Intel and near 1 KiB on AMD;
//! on this machine, 512 to 1024 bytes copy in 3 to 25 ns less). So the
//! kernel build copies 256 bytes and more itself with an inline `rep movsb`
//! on those processors: ZBUF's record pieces split at a page boundary, and
//! the mid-sized packets, are such copies. Elsewhere memcpy decides.

use core::sync::atomic::{AtomicUsize, Ordering};

/// The shortest copy made with `rep movsb` here; `usize::MAX`: none
/// (userspace, or a processor where memcpy's choice stands).
static REP_MOVSB_MIN: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Where `rep movsb` overtakes 8-byte moves on Intel with ERMS.
#[cfg(all(target_arch = "x86_64", feature = "kmod"))]
const INTEL_ERMS_MIN: usize = 256;

/// Copies `src` into `dst`, of the same length (callers cut them so).
#[inline(always)]
pub fn copy(dst: &mut [u8], src: &[u8]) {
    if dst.len() == src.len() {
        // SAFETY: both slices are valid for `len` bytes; a `&mut` slice
        // overlaps no other.
        unsafe { copy_raw(dst.as_mut_ptr(), src.as_ptr(), dst.len()) }
    } else {
        dst.copy_from_slice(src);
    }
}

/// [`copy`] between raw pointers.
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `len` bytes, not
/// overlapping.
#[inline(always)]
pub unsafe fn copy_raw(dst: *mut u8, src: *const u8, len: usize) {
    if len >= REP_MOVSB_MIN.load(Ordering::Relaxed) {
        // SAFETY: the caller's contract.
        unsafe { rep_movsb(dst, src, len) }
    } else {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) }
    }
}

/// `rep movsb`: `len` bytes from `src` to `dst`, forward (the ABI keeps the
/// direction flag clear).
///
/// # Safety
/// As [`copy_raw`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rep_movsb(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract: the instruction reads `src..src+len`
    // and writes `dst..dst+len`, nothing else, and touches no stack.
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
unsafe fn rep_movsb(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) }
}

/// Chooses the kernel build's copies for the processor it runs on (at
/// module load): `rep movsb` from [`INTEL_ERMS_MIN`] bytes on Intel with
/// ERMS, else memcpy for every length.
#[cfg(all(target_arch = "x86_64", feature = "kmod"))]
pub fn choose_for_this_processor() {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    let vendor = __cpuid(0);
    // "GenuineIntel" in ebx, edx, ecx.
    let intel = (vendor.ebx, vendor.edx, vendor.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e);
    let erms = vendor.eax >= 7 && __cpuid_count(7, 0).ebx & (1 << 9) != 0;
    let min = if intel && erms { INTEL_ERMS_MIN } else { usize::MAX };
    REP_MOVSB_MIN.store(min, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rep movsb` copies exactly, at every length around the threshold and
    /// every alignment of both ends within 16 bytes.
    #[test]
    fn rep_movsb_copies_exactly() {
        let src: std::vec::Vec<u8> = (0..2200u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in (0..80).chain((80..2100).step_by(13)) {
            for s in 0..16 {
                for d in 0..16 {
                    let mut dst = [0xeeu8; 2300];
                    let mut want = [0xeeu8; 2300];
                    want[64 + d..64 + d + len].copy_from_slice(&src[s..s + len]);
                    // SAFETY: both ranges are inside their arrays.
                    unsafe { rep_movsb(dst.as_mut_ptr().add(64 + d), src.as_ptr().add(s), len) };
                    assert_eq!(dst, want, "len {len}, source +{s}, destination +{d}");
                }
            }
        }
    }
}
