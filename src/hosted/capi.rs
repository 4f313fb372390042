//! The simulator's C API: the syscalls of a process that uses /dev/bpf, for
//! C programs compiled on Linux (the FreeBSD test kit's consumers, libpcap's
//! BPF module) to run against the same engine as the kernel module.
//!
//! Conventions are Linux's where C code meets its own libc: `open` flags,
//! `struct pollfd` event bits and errno values are Linux's (translated from
//! FreeBSD's by name); ioctl commands and their structures are FreeBSD's, as
//! on /dev/bpf. Failures return -1 and set errno. One simulated machine per
//! process, created on first use. Declared in `tests/sim/zsim.h`.

use std::prelude::rust_2021::*;

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr};
use std::sync::{Arc, OnceLock};

use super::net::SimIface;
use super::sim::{PollFd, Sim};
use super::traffic;
use crate::abi::{Errno, PollEvents, POLLWRNORM};
use crate::engine::Knob;

static SIM: OnceLock<Sim> = OnceLock::new();

/// The process's simulated machine.
pub fn sim() -> &'static Sim {
    SIM.get_or_init(Sim::new)
}

/// FreeBSD errno → Linux errno, by name.
fn linux_errno(e: Errno) -> c_int {
    match e {
        Errno::EPERM => libc::EPERM,
        Errno::ENOENT => libc::ENOENT,
        Errno::EINTR => libc::EINTR,
        Errno::EIO => libc::EIO,
        Errno::ENXIO => libc::ENXIO,
        Errno::EBADF => libc::EBADF,
        Errno::ENOMEM => libc::ENOMEM,
        Errno::EFAULT => libc::EFAULT,
        Errno::EBUSY => libc::EBUSY,
        Errno::EINVAL => libc::EINVAL,
        Errno::ENOTTY => libc::ENOTTY,
        Errno::EAGAIN => libc::EAGAIN,
        Errno::EMSGSIZE => libc::EMSGSIZE,
        Errno::EOPNOTSUPP => libc::EOPNOTSUPP,
        Errno::ENETDOWN => libc::ENETDOWN,
        _ => libc::EIO,
    }
}

fn fail(e: Errno) -> c_int {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = linux_errno(e) };
    -1
}

fn done(r: crate::abi::Result<()>) -> c_int {
    r.map_or_else(fail, |()| 0)
}

fn size(r: crate::abi::Result<usize>) -> isize {
    r.map_or_else(|e| fail(e) as isize, |n| n as isize)
}

fn str_arg<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller passes a NUL-terminated string (C API contract).
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

/// open(2) of the bpf device; `flags` are Linux's.
///
/// # Safety
/// `path` is ignored (there is one device); any value is accepted.
#[no_mangle]
pub unsafe extern "C" fn zsim_open(_path: *const c_char, flags: c_int) -> c_int {
    let mut fbsd = flags & libc::O_ACCMODE;
    if flags & libc::O_NONBLOCK != 0 {
        fbsd |= crate::abi::O_NONBLOCK;
    }
    sim().open(fbsd).unwrap_or_else(fail)
}

/// ioctl(2) with FreeBSD's command numbers and structures.
#[no_mangle]
pub extern "C" fn zsim_ioctl(fd: c_int, cmd: c_ulong, arg: *mut c_void) -> c_int {
    done(sim().ioctl(fd, cmd, arg))
}

/// read(2).
#[no_mangle]
pub extern "C" fn zsim_read(fd: c_int, buf: *mut c_void, len: usize) -> isize {
    size(sim().read(fd, buf.cast(), len))
}

/// write(2).
#[no_mangle]
pub extern "C" fn zsim_write(fd: c_int, buf: *const c_void, len: usize) -> isize {
    size(sim().write(fd, buf.cast(), len))
}

/// close(2).
#[no_mangle]
pub extern "C" fn zsim_close(fd: c_int) -> c_int {
    done(sim().close(fd))
}

/// fcntl(fd, F_SETFL, flags): only O_NONBLOCK (Linux's value) matters.
#[no_mangle]
pub extern "C" fn zsim_setfl(fd: c_int, flags: c_int) -> c_int {
    done(sim().set_nonblock(fd, flags & libc::O_NONBLOCK != 0))
}

fn to_fbsd_events(ev: libc::c_short) -> PollEvents {
    let ev = ev as c_int;
    let mut out = PollEvents::empty();
    let map = [
        (libc::POLLIN as c_int, PollEvents::POLLIN),
        (libc::POLLPRI as c_int, PollEvents::POLLPRI),
        (libc::POLLOUT as c_int, PollEvents::POLLOUT),
        (libc::POLLRDNORM as c_int, PollEvents::POLLRDNORM),
        (libc::POLLWRNORM as c_int, POLLWRNORM),
    ];
    for (l, f) in map {
        if ev & l != 0 {
            out |= f;
        }
    }
    out
}

fn to_linux_events(ev: PollEvents, asked: libc::c_short) -> libc::c_short {
    let asked = asked as c_int;
    let mut out = 0;
    let map = [
        (PollEvents::POLLIN, libc::POLLIN as c_int),
        (PollEvents::POLLPRI, libc::POLLPRI as c_int),
        (PollEvents::POLLERR, libc::POLLERR as c_int),
        (PollEvents::POLLHUP, libc::POLLHUP as c_int),
        (PollEvents::POLLNVAL, libc::POLLNVAL as c_int),
        (PollEvents::POLLRDNORM, libc::POLLRDNORM as c_int),
    ];
    for (f, l) in map {
        if ev.contains(f) {
            out |= l;
        }
    }
    // FreeBSD's POLLWRNORM is POLLOUT: give back whichever was asked.
    if ev.contains(PollEvents::POLLOUT) {
        out |= asked & (libc::POLLOUT as c_int | libc::POLLWRNORM as c_int);
    }
    out as libc::c_short
}

/// poll(2) over simulated descriptors, with Linux's `struct pollfd`.
///
/// # Safety
/// `fds` must point to `nfds` valid entries, as for poll(2).
#[no_mangle]
pub unsafe extern "C" fn zsim_poll(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    timeout: c_int,
) -> c_int {
    if fds.is_null() && nfds != 0 {
        return fail(Errno::EFAULT);
    }
    let slots: &mut [libc::pollfd] = if nfds == 0 {
        &mut []
    } else {
        // SAFETY: the caller passes `nfds` valid entries (poll's contract).
        unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) }
    };
    let mut ours: Vec<PollFd> = slots
        .iter()
        .map(|p| PollFd { fd: p.fd, events: to_fbsd_events(p.events), ..Default::default() })
        .collect();
    match sim().poll(&mut ours, timeout) {
        Ok(n) => {
            for (p, o) in slots.iter_mut().zip(ours.iter()) {
                p.revents = to_linux_events(o.revents, p.events);
            }
            n as c_int
        }
        Err(e) => fail(e),
    }
}

fn find(name: *const c_char) -> Option<Arc<SimIface>> {
    sim().bpf().platform.services.net.find(str_arg(name)?)
}

/// Adds an Ethernet interface named `name`; 0, or -1 (EINVAL).
///
/// # Safety
/// `name` must be NUL-terminated (or null).
#[no_mangle]
pub unsafe extern "C" fn zsim_iface_add(name: *const c_char) -> c_int {
    let Some(name) = str_arg(name).filter(|n| !n.is_empty() && n.len() < 16) else {
        return fail(Errno::EINVAL);
    };
    if sim().bpf().platform.services.net.find(name).is_some() {
        return fail(Errno::EBUSY);
    }
    sim().add_iface(SimIface::ethernet(name, traffic::HOST_MAC));
    0
}

/// Connects two interfaces back to back (epair).
///
/// # Safety
/// The names must be NUL-terminated (or null).
#[no_mangle]
pub unsafe extern "C" fn zsim_iface_pair(a: *const c_char, b: *const c_char) -> c_int {
    match (find(a), find(b)) {
        (Some(a), Some(b)) => {
            SimIface::pair(&a, &b);
            0
        }
        _ => fail(Errno::ENXIO),
    }
}

/// The interface departs.
///
/// # Safety
/// `name` must be NUL-terminated (or null).
#[no_mangle]
pub unsafe extern "C" fn zsim_iface_remove(name: *const c_char) -> c_int {
    match str_arg(name) {
        Some(n) if find(name).is_some() => {
            sim().remove_iface(n);
            0
        }
        _ => fail(Errno::ENXIO),
    }
}

/// The interface receives (`inbound` != 0) or sends a frame.
///
/// # Safety
/// `name` must be NUL-terminated (or null); `frame` must hold `len`
/// readable bytes.
#[no_mangle]
pub unsafe extern "C" fn zsim_inject(
    name: *const c_char,
    frame: *const c_void,
    len: usize,
    inbound: c_int,
) -> c_int {
    let Some(iface) = find(name) else { return fail(Errno::ENXIO) };
    if frame.is_null() && len != 0 {
        return fail(Errno::EFAULT);
    }
    let bytes: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: the caller passes `len` readable bytes.
        unsafe { std::slice::from_raw_parts(frame.cast(), len) }
    };
    if inbound != 0 {
        sim().receive(&iface, bytes);
    } else {
        sim().transmit(&iface, bytes);
    }
    0
}

/// Frames descriptors have written on an interface so far.
///
/// # Safety
/// `name` must be NUL-terminated (or null).
#[no_mangle]
pub unsafe extern "C" fn zsim_iface_sent(name: *const c_char) -> c_int {
    find(name).map_or_else(|| fail(Errno::ENXIO), |i| i.wire().len() as c_int)
}

fn knob(name: *const c_char) -> Option<Knob> {
    Some(match str_arg(name)? {
        "bufsize" => Knob::BufSize,
        "maxbufsize" => Knob::MaxBufSize,
        "maxinsns" => Knob::MaxInsns,
        "zerocopy_enable" => Knob::ZerocopyEnable,
        "optimize_writers" => Knob::OptimizeWriters,
        "jit_enable" => Knob::JitEnable,
        _ => return None,
    })
}

/// Reads a `net.bpf` knob by its last name component ("zerocopy_enable").
///
/// # Safety
/// `name` must be NUL-terminated (or null); `value` must be writable.
#[no_mangle]
pub unsafe extern "C" fn zsim_sysctl_get(name: *const c_char, value: *mut c_int) -> c_int {
    let Some(k) = knob(name) else { return fail(Errno::ENOENT) };
    if value.is_null() {
        return fail(Errno::EFAULT);
    }
    // SAFETY: checked non-null; the caller passes a writable int.
    unsafe { *value = sim().bpf().config.get(k) };
    0
}

/// Sets a `net.bpf` knob.
///
/// # Safety
/// `name` must be NUL-terminated (or null).
#[no_mangle]
pub unsafe extern "C" fn zsim_sysctl_set(name: *const c_char, value: c_int) -> c_int {
    let Some(k) = knob(name) else { return fail(Errno::ENOENT) };
    done(sim().bpf().config.set(k, value))
}
