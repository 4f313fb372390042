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
//!
//! Without vector registers, a copy into lines that are not in the cache
//! waits for each line's ownership in turn (measured in the userspace kld
//! harness: 12 to 16 ns more per 1500-byte copy than glibc's AVX-512
//! memcpy once a capture's buffers outgrow the cache, as with 8 readers).
//! Every copy here is a record's bytes into a capture buffer, which fills
//! front to back, so after each `rep movsb` the kernel build asks for
//! ownership of the lines that follow, as many bytes as it just copied:
//! where the next record of about the same size will go. A prefetch is a
//! hint: it never faults, past a buffer's end included.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The shortest copy made with `rep movsb` here; `usize::MAX`: none
/// (userspace, or a processor where memcpy's choice stands).
static REP_MOVSB_MIN: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Whether a `rep movsb` copy is followed by PREFETCHW of the lines after
/// it (the processor has PREFETCHW; set with [`REP_MOVSB_MIN`]).
static PREFETCH_NEXT: AtomicBool = AtomicBool::new(false);

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
        if PREFETCH_NEXT.load(Ordering::Relaxed) {
            prefetch_for_write(dst as usize + len, len);
        }
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

/// PREFETCHW of the cache lines from the one holding `start` to the one
/// holding `start + len - 1`: their ownership asked for before they are
/// written.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_for_write(start: usize, len: usize) {
    let stop = start.saturating_add(len);
    let mut line = start & !63;
    while line < stop {
        // SAFETY: a prefetch reads and writes no memory and never faults,
        // whatever the address; it changes no register or flag.
        unsafe {
            core::arch::asm!("prefetchw [{0}]", in(reg) line,
                options(nostack, preserves_flags, readonly))
        };
        line = line.saturating_add(64);
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn prefetch_for_write(_start: usize, _len: usize) {}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
unsafe fn rep_movsb(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::copy_nonoverlapping(src, dst, len) }
}

/// Chooses the kernel build's copies for the processor it runs on (at
/// module load): `rep movsb` from [`INTEL_ERMS_MIN`] bytes on Intel with
/// ERMS, followed by PREFETCHW of the next lines where the processor has
/// it; else memcpy for every length.
#[cfg(all(target_arch = "x86_64", feature = "kmod"))]
pub fn choose_for_this_processor() {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    let vendor = __cpuid(0);
    // "GenuineIntel" in ebx, edx, ecx.
    let intel = (vendor.ebx, vendor.edx, vendor.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e);
    let erms = vendor.eax >= 7 && __cpuid_count(7, 0).ebx & (1 << 9) != 0;
    let min = if intel && erms { INTEL_ERMS_MIN } else { usize::MAX };
    // PRFCHW: CPUID 0x8000_0001, ecx bit 8.
    let prfchw =
        __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 8) != 0;
    PREFETCH_NEXT.store(min != usize::MAX && prfchw, Ordering::Relaxed);
    REP_MOVSB_MIN.store(min, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prefetch after a copy may name any address: past a buffer's
    /// end, unmapped memory, the top of the address space. It ends there
    /// (no overflow, no endless loop) and faults nowhere.
    #[test]
    fn prefetch_for_write_is_harmless_anywhere() {
        let buf = [0u8; 256];
        prefetch_for_write(buf.as_ptr() as usize + 200, 1500);
        prefetch_for_write(0, 8192);
        prefetch_for_write(usize::MAX - 100, 1500);
        prefetch_for_write(usize::MAX, usize::MAX);
        prefetch_for_write(64, 0);
    }

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
