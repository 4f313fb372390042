//! FreeBSD errno values, the only error currency of the device.

use core::fmt;

/// An errno as FreeBSD's bpf returns it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Errno(pub i32);

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
