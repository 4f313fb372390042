//! The encoding of ioctl command numbers (FreeBSD `sys/ioccom.h`).
//!
//! A command carries its direction, the size of its argument, a group letter
//! and a number. The generic ioctl layer copies `len` bytes in before the call
//! and out after it, so a driver always sees a kernel buffer of exactly that
//! size.

/// Bits reserved for the argument length.
pub const IOCPARM_SHIFT: u32 = 13;
/// Mask of the argument length.
pub const IOCPARM_MASK: u64 = (1 << IOCPARM_SHIFT) - 1;
/// Largest argument the generic layer copies.
pub const IOCPARM_MAX: usize = 1 << IOCPARM_SHIFT;
/// No argument.
pub const IOC_VOID: u64 = 0x2000_0000;
/// Argument copied out to the caller.
pub const IOC_OUT: u64 = 0x4000_0000;
/// Argument copied in from the caller.
pub const IOC_IN: u64 = 0x8000_0000;
/// Argument copied both ways.
pub const IOC_INOUT: u64 = IOC_IN | IOC_OUT;
/// All direction bits.
pub const IOC_DIRMASK: u64 = IOC_VOID | IOC_OUT | IOC_IN;

/// `_IOC(inout, group, num, len)`.
pub const fn ioc(inout: u64, group: u8, num: u8, len: usize) -> u64 {
    inout | (((len as u64) & IOCPARM_MASK) << 16) | ((group as u64) << 8) | num as u64
}

/// `_IO(g, n)`: a command without an argument.
pub const fn io(group: u8, num: u8) -> u64 {
    ioc(IOC_VOID, group, num, 0)
}

/// `_IOR(g, n, t)`: the driver fills a `t` for the caller.
pub const fn ior<T>(group: u8, num: u8) -> u64 {
    ioc(IOC_OUT, group, num, core::mem::size_of::<T>())
}

/// `_IOW(g, n, t)`: the caller passes a `t` to the driver.
pub const fn iow<T>(group: u8, num: u8) -> u64 {
    ioc(IOC_IN, group, num, core::mem::size_of::<T>())
}

/// `_IOWR(g, n, t)`: a `t` goes in and comes back out.
pub const fn iowr<T>(group: u8, num: u8) -> u64 {
    ioc(IOC_INOUT, group, num, core::mem::size_of::<T>())
}

/// `IOCPARM_LEN(cmd)`: the argument size a command encodes.
pub const fn ioc_len(cmd: u64) -> usize {
    ((cmd >> 16) & IOCPARM_MASK) as usize
}

/// Whether the generic layer copies the argument in before the call.
pub const fn ioc_copies_in(cmd: u64) -> bool {
    cmd & IOC_IN != 0
}

/// Whether the generic layer copies the argument out after the call.
pub const fn ioc_copies_out(cmd: u64) -> bool {
    cmd & IOC_OUT != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_c_macros() {
        // Three values quoted in bpf(4) discussions for years.
        assert_eq!(ior::<u32>(b'B', 102), 0x4004_4266);
        assert_eq!(ioc(IOC_IN, b'B', 108, 32), 0x8020_426c);
        assert_eq!(io(b'B', 104), 0x2000_4268);
        assert_eq!(ioc_len(0x8010_4267), 16);
        assert!(ioc_copies_in(iowr::<u32>(b'B', 102)));
        assert!(ioc_copies_out(iowr::<u32>(b'B', 102)));
        assert!(!ioc_copies_in(io(b'B', 1)));
    }
}
