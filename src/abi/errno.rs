//! FreeBSD errno values, the only error currency of the device.

use core::fmt;

/// An errno as FreeBSD's bpf returns it: one of FreeBSD's values (1 to
/// `ELAST`, or the kernel-only `ERESTART`), never anything else.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Errno(i32);

/// FreeBSD's largest errno (sys/errno.h, 14.x and 15.0).
pub const ELAST: i32 = 97;

macro_rules! errnos {
    ($($name:ident = $v:literal, $text:literal;)*) => {
        impl Errno {
            $(
                #[doc = $text]
                pub const $name: Errno = Errno($v);
            )*

            /// The symbolic name, if known.
            pub const fn name(self) -> &'static str {
                match self.0 {
                    $($v => stringify!($name),)*
                    _ => "E?",
                }
            }
        }

        /// `(name, value)` of every errno, for the C check.
        pub const ERRNO_TABLE: &[(&str, i32)] = &[$((stringify!($name), $v)),*];
    };
}

errnos! {
    EPERM = 1, "Operation not permitted.";
    ENOENT = 2, "No such file or directory.";
    EINTR = 4, "Interrupted system call.";
    EIO = 5, "Input/output error.";
    ENXIO = 6, "Device not configured.";
    EBADF = 9, "Bad file descriptor.";
    ENOMEM = 12, "Cannot allocate memory.";
    EFAULT = 14, "Bad address.";
    EBUSY = 16, "Device busy.";
    EINVAL = 22, "Invalid argument.";
    ENOSPC = 28, "No space left on device.";
    ENOTTY = 25, "Inappropriate ioctl for device.";
    EAGAIN = 35, "Resource temporarily unavailable (also EWOULDBLOCK).";
    EMSGSIZE = 40, "Message too long.";
    EOPNOTSUPP = 45, "Operation not supported.";
    ENETDOWN = 50, "Network is down.";
    ERESTART = -1, "Kernel-only: restart the system call.";
}

impl Errno {
    /// `EWOULDBLOCK` is `EAGAIN`.
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;

    /// The errno `value`, if FreeBSD has one of that value.
    pub const fn new(value: i32) -> Option<Errno> {
        if (value >= 1 && value <= ELAST) || value == Errno::ERESTART.0 {
            Some(Errno(value))
        } else {
            None
        }
    }

    /// The number.
    pub const fn get(self) -> i32 {
        self.0
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The result of a device operation.
pub type Result<T> = core::result::Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_freebsd_values() {
        assert_eq!(Errno::new(22), Some(Errno::EINVAL));
        assert_eq!(Errno::new(-1), Some(Errno::ERESTART));
        assert_eq!(Errno::new(ELAST).map(Errno::get), Some(ELAST));
        for bad in [0, ELAST + 1, -2, i32::MIN, i32::MAX] {
            assert_eq!(Errno::new(bad), None, "{bad}");
        }
        for &(name, value) in ERRNO_TABLE {
            assert_eq!(Errno::new(value).map(Errno::name), Some(name));
        }
    }
}
