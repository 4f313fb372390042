//! A simulated user process: its memory as the kernel reaches it.
//!
//! Copies to and from "user addresses" go through `process_vm_readv` and
//! `process_vm_writev` on our own pid, so a bad pointer gives EFAULT as
//! copyin(9) does, never a crash. Zero-copy buffers are held the way the
//! kernel holds them: each page gets a second, separate mapping of the same
//! memory (`mremap` with old size 0), so the engine writes page by page into
//! pages that are not contiguous, while the user thread reads the original
//! mapping. That only works for shared memory: buffers must come from
//! [`SharedRegion`] (a memfd mapping) or another MAP_SHARED mapping.

use std::prelude::rust_2021::*;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::abi::{Errno, Result, UserAddr, PAGE_SIZE};
use crate::platform::{HeldPages, ReadSink, UserCtx, WriteSource};

fn vm_copy(local: *mut u8, remote: u64, len: usize, write: bool) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let l = libc::iovec { iov_base: local.cast(), iov_len: len };
    let r = libc::iovec { iov_base: remote as usize as *mut libc::c_void, iov_len: len };
    // The kernel checks the remote side and fails with EFAULT rather than
    // faulting; our own pid is always accessible to us.
    // SAFETY: `l` is `len` bytes of a live buffer the caller lends for the call.
    let n = unsafe {
        let pid = libc::getpid();
        if write {
            libc::process_vm_writev(pid, &l, 1, &r, 1, 0)
        } else {
            libc::process_vm_readv(pid, &l, 1, &r, 1, 0)
        }
    };
    if n == len as isize {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

/// Copies `dst.len()` bytes from user address `src`.
pub fn copy_from_user(src: UserAddr, dst: &mut [u8]) -> Result<()> {
    vm_copy(dst.as_mut_ptr(), src.0, dst.len(), false)
}

/// Copies `src` to user address `dst`.
pub fn copy_to_user(src: &[u8], dst: UserAddr) -> Result<()> {
    vm_copy(src.as_ptr().cast_mut(), dst.0, src.len(), true)
}

/// Held pages: one private kernel-side mapping per page.
pub struct HostedPages {
    pages: Vec<NonNull<u8>>,
}

// SAFETY: the mappings belong to this value alone and are plain memory;
// nothing about them is tied to the thread that created them.
unsafe impl Send for HostedPages {}
// SAFETY: shared access only hands out the pointers; writes through them
// are the engine's, under its descriptor lock.
unsafe impl Sync for HostedPages {}

// SAFETY: each pointer is a private PAGE_SIZE read-write mapping made by
// `hold_page` (mmap results are page-aligned), unmapped only in `drop`; the
// list never changes; the mappings alias only the user's buffer, never
// memory a Rust object owns.
unsafe impl HeldPages for HostedPages {
    fn count(&self) -> usize {
        self.pages.len()
    }
    fn page(&self, index: usize) -> Option<NonNull<u8>> {
        self.pages.get(index).copied()
    }
}

impl Drop for HostedPages {
    fn drop(&mut self) {
        for p in &self.pages {
            // SAFETY: each pointer is a PAGE_SIZE mapping created by
            // `hold_pages` and unmapped only here.
            unsafe { libc::munmap(p.as_ptr().cast(), PAGE_SIZE) };
        }
    }
}

/// Holds one user page for writing: fault it in for write (EFAULT if
/// unmapped or read-only) and map it a second time.
fn hold_page(addr: u64) -> Result<NonNull<u8>> {
    let mut byte = [0u8; 1];
    copy_from_user(UserAddr(addr), &mut byte)?;
    copy_to_user(&byte, UserAddr(addr))?;
    let p = if mremap_duplicates() {
        // SAFETY: an old size of 0 makes a new mapping of the same shared
        // pages and touches nothing else (MAP_FAILED becomes EFAULT below).
        unsafe {
            libc::mremap(addr as usize as *mut libc::c_void, 0, PAGE_SIZE, libc::MREMAP_MAYMOVE)
        }
    } else {
        map_again(addr)
    };
    if p == libc::MAP_FAILED {
        return Err(Errno::EFAULT);
    }
    NonNull::new(p.cast()).ok_or(Errno::EFAULT)
}

/// Whether mremap with an old size of 0 (a second mapping of the same
/// shared pages) works here. Under valgrind it does not (EINVAL): then
/// [`SharedRegion`]s keep their memfd, and pages are mapped again from it
/// (what `scripts/bench-cachesim.sh` relies on).
fn mremap_duplicates() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        // SAFETY: a fresh anonymous shared page, duplicated, then both
        // mappings are unmapped; nothing else refers to them.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                PAGE_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return true;
            }
            let q = libc::mremap(p, 0, PAGE_SIZE, libc::MREMAP_MAYMOVE);
            if q != libc::MAP_FAILED {
                libc::munmap(q, PAGE_SIZE);
            }
            libc::munmap(p, PAGE_SIZE);
            q != libc::MAP_FAILED
        }
    })
}

/// The memfds of live [`SharedRegion`]s, (start, length, fd), kept only
/// where mremap cannot duplicate a mapping.
static MEMFDS: Mutex<Vec<(u64, usize, i32)>> = Mutex::new(Vec::new());

/// Maps the page at `addr` of a [`SharedRegion`] a second time, from the
/// region's memfd. MAP_FAILED if `addr` is in no region.
fn map_again(addr: u64) -> *mut libc::c_void {
    let fds = MEMFDS.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(&(start, _, fd)) =
        fds.iter().find(|&&(start, len, _)| addr >= start && addr - start < len as u64)
    else {
        return libc::MAP_FAILED;
    };
    let off = (addr - start) & !(PAGE_SIZE as u64 - 1);
    // SAFETY: a new shared mapping of one page of a live memfd (the lock
    // keeps the region from closing it meanwhile); nothing else is touched.
    unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            off as libc::off_t,
        )
    }
}

/// The calling thread as a process of the simulated machine.
#[derive(Clone, Copy, Debug)]
pub struct SimProc {
    /// Its pid.
    pub pid: i32,
}

impl UserCtx for SimProc {
    type Pages = HostedPages;

    fn copy_in(&mut self, src: UserAddr, dst: &mut [u8]) -> Result<()> {
        copy_from_user(src, dst)
    }

    fn copy_out(&mut self, src: &[u8], dst: UserAddr) -> Result<()> {
        copy_to_user(src, dst)
    }

    fn hold_pages(&mut self, addr: UserAddr, npages: usize) -> Result<HostedPages> {
        let mut held = HostedPages { pages: Vec::with_capacity(npages) };
        for i in 0..npages {
            let page = addr.0.checked_add((i * PAGE_SIZE) as u64).ok_or(Errno::EFAULT)?;
            // On error, `held` drops and releases what was held so far.
            held.pages.push(hold_page(page)?);
        }
        Ok(held)
    }

    fn pid(&self) -> i32 {
        self.pid
    }
}

/// A user buffer given to read(2).
pub struct UserReadBuf {
    /// Where the bytes go.
    pub addr: UserAddr,
    /// Bytes asked for.
    pub len: usize,
    /// Bytes copied so far.
    pub done: usize,
}

impl ReadSink for UserReadBuf {
    fn resid(&self) -> usize {
        self.len - self.done
    }
    fn copy_out(&mut self, data: &[u8]) -> Result<()> {
        if data.len() > self.resid() {
            return Err(Errno::EINVAL);
        }
        copy_to_user(data, UserAddr(self.addr.0 + self.done as u64))?;
        self.done += data.len();
        Ok(())
    }
}

/// A user buffer given to write(2).
pub struct UserWriteBuf {
    /// Where the bytes are.
    pub addr: UserAddr,
    /// Bytes offered.
    pub len: usize,
    /// Bytes consumed so far.
    pub done: usize,
}

impl WriteSource for UserWriteBuf {
    fn resid(&self) -> usize {
        self.len - self.done
    }
    fn copy_in(&mut self, dst: &mut [u8]) -> Result<()> {
        if dst.len() > self.resid() {
            return Err(Errno::EINVAL);
        }
        copy_from_user(UserAddr(self.addr.0 + self.done as u64), dst)?;
        self.done += dst.len();
        Ok(())
    }
}

/// Page-aligned memory shared between the user and the simulated kernel:
/// a memfd mapped MAP_SHARED, so it also stays shared across fork().
pub struct SharedRegion {
    ptr: NonNull<u8>,
    len: usize,
    /// The memfd, kept open only where pages are mapped again from it.
    fd: Option<i32>,
}

// SAFETY: the region is plain shared memory owned by this value.
unsafe impl Send for SharedRegion {}
// SAFETY: readers and writers synchronise through the ZBUF protocol.
unsafe impl Sync for SharedRegion {}

impl SharedRegion {
    /// `len` bytes (rounded up to pages), zeroed.
    pub fn new(len: usize) -> std::io::Result<SharedRegion> {
        let len = len.div_ceil(PAGE_SIZE).max(1) * PAGE_SIZE;
        // SAFETY: memfd_create takes a NUL-terminated name and flags.
        let fd = unsafe { libc::memfd_create(c"zbpf-zbuf".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is the memfd just created.
        let sized = unsafe { libc::ftruncate(fd, len as libc::off_t) };
        // SAFETY: a fresh shared mapping of the whole memfd.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        let err = std::io::Error::last_os_error();
        let keep = sized == 0 && p != libc::MAP_FAILED && !mremap_duplicates();
        if !keep {
            // SAFETY: the mapping (if any) keeps the memory; the fd is ours.
            unsafe { libc::close(fd) };
        }
        if sized != 0 || p == libc::MAP_FAILED {
            return Err(err);
        }
        let ptr = NonNull::new(p.cast()).ok_or(err)?;
        if keep {
            let mut fds = MEMFDS.lock().unwrap_or_else(PoisonError::into_inner);
            fds.push((ptr.as_ptr() as u64, len, fd));
        }
        Ok(SharedRegion { ptr, len, fd: keep.then_some(fd) })
    }

    /// The user address.
    pub fn addr(&self) -> UserAddr {
        UserAddr(self.ptr.as_ptr() as u64)
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (never: at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw pointer, for consumers that read the records.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The 32-bit word `index` of the region as an atomic: how a ZBUF
    /// consumer reads and writes the header words the engine shares.
    pub fn word(&self, index: usize) -> &AtomicU32 {
        assert!(index < self.len / 4, "word {index} outside a {}-byte region", self.len);
        // SAFETY: in bounds (checked), 4-byte aligned (the region is
        // page-aligned), and mapped as long as `self` lives.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().cast::<u32>().add(index)) }
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        if let Some(fd) = self.fd {
            let mut fds = MEMFDS.lock().unwrap_or_else(PoisonError::into_inner);
            fds.retain(|&(_, _, f)| f != fd);
            // SAFETY: the memfd was kept open by `new` and is closed once,
            // here, after it left the table.
            unsafe { libc::close(fd) };
        }
        // SAFETY: the mapping was created by `new` with this length.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
