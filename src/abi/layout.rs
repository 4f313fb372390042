//! Byte images of ABI structures.
//!
//! Every structure that crosses the user/kernel boundary is declared with
//! `abi_struct!`. The macro emits the `repr(C)` type, compile-time checks of
//! its size, alignment and every field offset, a [`StructLayout`] row for the
//! generated C check against FreeBSD's headers, and padding-free conversion to
//! and from bytes. Conversions are field by field, so padding is never read
//! and every bit pattern decodes to a value: user bytes cannot produce an
//! invalid Rust value.

/// A user-space address. It is carried as a number and never dereferenced by
/// the engine; only the platform's copy and page-holding functions take it.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserAddr(pub u64);

impl UserAddr {
    /// The null user pointer.
    pub const NULL: UserAddr = UserAddr(0);

    /// Whether this is the null pointer.
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }
}

/// A field of an ABI structure: a fixed native-endian (amd64: little-endian)
/// byte image.
pub trait AbiField: Copy {
    /// Bytes the field occupies.
    const SIZE: usize;
    /// Reads the field from the front of `bytes`; `None` if `bytes` is
    /// shorter than the field.
    fn read(bytes: &[u8]) -> Option<Self>;
    /// Writes the field to the front of `bytes`, as far as `bytes` reaches.
    fn write(self, bytes: &mut [u8]);
}

fn copy_prefix(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl AbiField for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            fn read(bytes: &[u8]) -> Option<Self> {
                let raw = bytes.get(..core::mem::size_of::<$t>())?;
                Some(<$t>::from_ne_bytes(raw.try_into().ok()?))
            }
            fn write(self, bytes: &mut [u8]) {
                copy_prefix(bytes, &self.to_ne_bytes());
            }
        }
    )*};
}
int_field!(u8, u16, u32, u64, i16, i32, i64);

impl AbiField for UserAddr {
    const SIZE: usize = 8;
    fn read(bytes: &[u8]) -> Option<Self> {
        u64::read(bytes).map(UserAddr)
    }
    fn write(self, bytes: &mut [u8]) {
        self.0.write(bytes)
    }
}

impl<T: AbiField + Default, const N: usize> AbiField for [T; N] {
    const SIZE: usize = T::SIZE * N;
    fn read(bytes: &[u8]) -> Option<Self> {
        let mut out = [T::default(); N];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = T::read(bytes.get(i * T::SIZE..)?)?;
        }
        Some(out)
    }
    fn write(self, bytes: &mut [u8]) {
        for (i, v) in self.iter().enumerate() {
            if let Some(dst) = bytes.get_mut(i * T::SIZE..) {
                v.write(dst);
            }
        }
    }
}

/// One field of a [`StructLayout`].
#[derive(Clone, Copy, Debug)]
pub struct FieldLayout {
    /// The C field name.
    pub name: &'static str,
    /// Its offset in bytes.
    pub offset: usize,
    /// Its size in bytes.
    pub size: usize,
}

/// The layout of one ABI structure as the Rust side computes it.
#[derive(Clone, Copy, Debug)]
pub struct StructLayout {
    /// The C type, e.g. `struct bpf_hdr`.
    pub c_name: &'static str,
    /// `sizeof`.
    pub size: usize,
    /// `_Alignof`.
    pub align: usize,
    /// Every named field.
    pub fields: &'static [FieldLayout],
}

/// Declares an ABI structure; see the module documentation.
macro_rules! abi_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident = $cname:literal, size $size:literal, align $align:literal {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty = $off:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        static_assertions::const_assert_eq!(core::mem::size_of::<$name>(), $size);
        static_assertions::const_assert_eq!(core::mem::align_of::<$name>(), $align);
        $( static_assertions::const_assert_eq!(core::mem::offset_of!($name, $field), $off); )*

        impl $name {
            /// `sizeof` of the C structure.
            pub const SIZE: usize = $size;

            /// The layout row checked against FreeBSD's headers.
            pub const LAYOUT: $crate::abi::layout::StructLayout = $crate::abi::layout::StructLayout {
                c_name: $cname,
                size: core::mem::size_of::<$name>(),
                align: core::mem::align_of::<$name>(),
                fields: &[ $( $crate::abi::layout::FieldLayout {
                    name: stringify!($field),
                    offset: core::mem::offset_of!($name, $field),
                    size: core::mem::size_of::<$ty>(),
                }, )* ],
            };

            /// Decodes the structure from its byte image; `None` if `bytes`
            /// is shorter than the structure.
            pub fn decode(bytes: &[u8]) -> Option<Self> {
                if bytes.len() < $size {
                    return None;
                }
                Some(Self { $( $field: <$ty as $crate::abi::layout::AbiField>::read(bytes.get($off..)?)?, )* })
            }

            /// Writes the byte image, padding zeroed, to the front of `out`.
            pub fn encode(&self, out: &mut [u8]) {
                for b in out.iter_mut().take($size) {
                    *b = 0;
                }
                $( if let Some(dst) = out.get_mut($off..) {
                    $crate::abi::layout::AbiField::write(self.$field, dst);
                } )*
            }

            /// The byte image, padding zeroed.
            pub fn to_bytes(&self) -> [u8; $size] {
                let mut out = [0u8; $size];
                self.encode(&mut out);
                out
            }
        }

        impl $crate::abi::layout::AbiField for $name {
            const SIZE: usize = $size;
            fn read(bytes: &[u8]) -> Option<Self> {
                Self::decode(bytes)
            }
            fn write(self, bytes: &mut [u8]) {
                let image = self.to_bytes();
                for (d, s) in bytes.iter_mut().zip(image.iter()) {
                    *d = *s;
                }
            }
        }
    };
}
pub(crate) use abi_struct;
