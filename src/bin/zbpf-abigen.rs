//! `zbpf-abigen`: prints a C file of `_Static_assert`s that compares zbpf's
//! ABI tables (`src/abi`) with FreeBSD's own headers.
//!
//! `scripts/abi-check.sh` compiles the output twice against FreeBSD 15.0's
//! `/usr/include`: once as userland (ioctl numbers, structure layouts,
//! constants, errnos) and once with `-D_KERNEL` (the kernel-only errnos such
//! as `ERESTART`). Any difference is a compile error naming the item.
//!
//! ```text
//! zbpf-abigen [--break KEY]...   print the C check
//! zbpf-abigen --list-ioctls      print the FreeBSD ioctl names zbpf knows
//! zbpf-abigen --list-keys        print every KEY --break accepts
//! ```
//!
//! Every assertion's message is `<KEY>` (in angle brackets) followed by a
//! description. `--break KEY` makes exactly that assertion expect a wrong
//! value, so a self-test can prove the check catches drift:
//!
//! | KEY | broken expectation |
//! | --- | --- |
//! | `BIOCSETZBUF` (any ioctl, constant or errno) | value + 1 |
//! | `BIOCGETZNEXT` (a zbpf extension) | equal to a FreeBSD command |
//! | `struct bpf_hdr` | `sizeof` + 1 |
//! | `struct bpf_hdr:align` | `_Alignof` * 2 |
//! | `struct bpf_hdr.bh_caplen` | `offsetof` + 1 |
//! | `struct bpf_hdr.bh_caplen:size` | field `sizeof` + 1 |

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;

use zbpf::abi::errno::ERRNO_TABLE;
use zbpf::abi::ioctl::{IOCTL_TABLE, ZBPF_IOCTL_TABLE};
use zbpf::abi::types::STRUCT_LAYOUTS;
use zbpf::abi::CONST_TABLE;

/// The FreeBSD release whose headers the check is written for.
const FREEBSD: &str = "FreeBSD 15.0 (amd64)";

/// Headers of the userland translation unit, in include order.
const USER_HEADERS: &[&str] = &[
    "sys/types.h",
    "sys/param.h",
    "sys/ioctl.h",
    "sys/ioccom.h",
    "sys/time.h",
    "sys/socket.h",
    "sys/filio.h",
    "sys/sockio.h",
    "sys/ttycom.h",
    "sys/poll.h",
    "sys/event.h",
    // net/bpfdesc.h (struct xbpf_d) is not hidden behind _KERNEL, but its
    // kernel-side struct bpf_d embeds a struct mtx: make that type complete,
    // as userland consumers of the header (netstat) do through sys/user.h.
    "sys/_lock.h",
    "sys/_mutex.h",
    "net/if.h",
    "net/bpf.h",
    "net/dlt.h",
    "net/bpfdesc.h",
    "fcntl.h",
    "signal.h",
    "errno.h",
    "stddef.h",
];

/// Headers of the kernel translation unit (compiled with `-D_KERNEL`). Kept to
/// what needs no generated headers nor Concurrency Kit.
const KERNEL_HEADERS: &[&str] = &["sys/param.h", "sys/errno.h"];

/// FreeBSD's kernel-internal pseudo-errors (`ERESTART`, `EJUSTRETURN`,
/// `ENOIOCTL`, ...) are exactly the negative ones; userland never sees them.
fn kernel_only_errno(value: i32) -> bool {
    value < 0
}

#[derive(Default)]
struct Gen {
    out: String,
    /// Keys still to be broken; each must be used exactly once.
    breaks: BTreeSet<String>,
    used: BTreeSet<String>,
    asserts: usize,
}

impl Gen {
    /// Whether the assertion `key` is to be broken (and records that it was).
    fn broken(&mut self, key: &str) -> bool {
        if self.breaks.contains(key) {
            self.used.insert(key.to_owned());
            true
        } else {
            false
        }
    }

    /// `broken` if the assertion `key` is to be broken, else `good`.
    fn pick<T>(&mut self, key: &str, good: T, broken: T) -> T {
        if self.broken(key) {
            broken
        } else {
            good
        }
    }

    fn assert(&mut self, cond: &str, key: &str, what: &str) {
        self.asserts += 1;
        let msg = format!("<{key}> {what}");
        writeln!(self.out, "_Static_assert({cond}, {});", c_string(&msg)).unwrap();
    }

    fn line(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn ioctls(&mut self) {
        self.line("\n/* ioctl commands: src/abi/ioctl.rs IOCTL_TABLE */");
        for &(name, value) in IOCTL_TABLE {
            let want = self.pick(name, value, value.wrapping_add(1));
            let cond = format!("(unsigned long)({name}) == {want:#x}UL");
            self.assert(&cond, name, &format!("{name} is {value:#x} in src/abi"));
        }
    }

    fn extensions(&mut self) {
        self.line("\n/* zbpf's own commands: src/abi/ioctl.rs ZBPF_IOCTL_TABLE. FreeBSD must not");
        self.line(" * define their names, and no FreeBSD command may have their values. */");
        for &(name, _) in ZBPF_IOCTL_TABLE {
            let msg = format!("{FREEBSD} defines {name}, a zbpf extension's name");
            writeln!(self.out, "#ifdef {name}\n#error {}\n#endif", c_string(&msg)).unwrap();
        }
        for &(name, value) in ZBPF_IOCTL_TABLE {
            // Broken: take the value of the first FreeBSD command.
            let value = self.pick(name, value, IOCTL_TABLE[0].1);
            for &(fname, _) in IOCTL_TABLE {
                let cond = format!("{value:#x}UL != (unsigned long)({fname})");
                let what = format!("{name} ({value:#x}) collides with {fname}");
                self.assert(&cond, name, &what);
            }
        }
    }

    fn structs(&mut self) {
        self.line("\n/* structure layouts: src/abi/types.rs STRUCT_LAYOUTS */");
        for s in STRUCT_LAYOUTS {
            let c = s.c_name;
            let key = c.to_owned();
            let size = self.pick(&key, s.size, s.size + 1);
            let cond = format!("sizeof({c}) == {size}u");
            self.assert(&cond, &key, &format!("sizeof is {}", s.size));
            let key = format!("{c}:align");
            let align = self.pick(&key, s.align, s.align * 2);
            self.assert(
                &format!("_Alignof({c}) == {align}u"),
                &key,
                &format!("_Alignof is {}", s.align),
            );
            for f in s.fields {
                let field = f.name.strip_prefix("r#").unwrap_or(f.name);
                let key = format!("{c}.{field}");
                let off = self.pick(&key, f.offset, f.offset + 1);
                self.assert(
                    &format!("offsetof({c}, {field}) == {off}u"),
                    &key,
                    &format!("offsetof is {}", f.offset),
                );
                let key = format!("{c}.{field}:size");
                let size = self.pick(&key, f.size, f.size + 1);
                self.assert(
                    &format!("sizeof((({c} *)0)->{field}) == {size}u"),
                    &key,
                    &format!("field sizeof is {}", f.size),
                );
            }
        }
    }

    fn consts(&mut self) {
        self.line("\n/* constants: src/abi/mod.rs CONST_TABLE (macros and enum values) */");
        for &(name, value) in CONST_TABLE {
            let want = self.pick(name, value, value.wrapping_add(1));
            let cond = format!("(long long)({name}) == {}", c_i64(want));
            self.assert(&cond, name, &format!("{name} is {value} in src/abi"));
        }
    }

    fn errnos(&mut self, kernel: bool) {
        for &(name, value) in ERRNO_TABLE {
            if !kernel && kernel_only_errno(value) {
                let msg = format!("{name} is kernel-only in src/abi but visible to userland");
                writeln!(self.out, "#ifdef {name}\n#error {}\n#endif", c_string(&msg)).unwrap();
                continue;
            }
            let want = self.pick(name, value, value.wrapping_add(1));
            let cond = format!("({name}) == {}", c_i64(want.into()));
            self.assert(&cond, name, &format!("{name} is {value} in src/abi"));
        }
    }
}

/// A C integer constant expression of type `long long` for `v`.
fn c_i64(v: i64) -> String {
    if v == i64::MIN {
        "(-9223372036854775807LL - 1)".to_owned()
    } else if v < 0 {
        format!("({v}LL)")
    } else {
        format!("{v}LL")
    }
}

/// A C string literal.
fn c_string(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            ' '..='~' => out.push(ch),
            _ => write!(out, "\\x{:02x}", ch as u32 & 0xff).unwrap(),
        }
    }
    out.push('"');
    out
}

/// Every key `--break` accepts.
fn all_keys() -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    keys.extend(IOCTL_TABLE.iter().map(|(n, _)| (*n).to_owned()));
    keys.extend(ZBPF_IOCTL_TABLE.iter().map(|(n, _)| (*n).to_owned()));
    for s in STRUCT_LAYOUTS {
        keys.push(s.c_name.to_owned());
        keys.push(format!("{}:align", s.c_name));
        for f in s.fields {
            let field = f.name.strip_prefix("r#").unwrap_or(f.name);
            keys.push(format!("{}.{field}", s.c_name));
            keys.push(format!("{}.{field}:size", s.c_name));
        }
    }
    keys.extend(CONST_TABLE.iter().map(|(n, _)| (*n).to_owned()));
    keys.extend(ERRNO_TABLE.iter().map(|(n, _)| (*n).to_owned()));
    keys
}

fn generate(breaks: BTreeSet<String>) -> Result<String, String> {
    let mut g = Gen::default();
    g.breaks.extend(breaks);
    g.line("/*");
    g.line(" * GENERATED FILE - DO NOT EDIT. Written by zbpf-abigen (src/bin/zbpf-abigen.rs)");
    g.line(&format!(
        " * from zbpf {}'s src/abi tables; compiled by scripts/abi-check.sh",
        env!("CARGO_PKG_VERSION")
    ));
    g.line(&format!(" * against {FREEBSD}'s headers, twice:"));
    g.line(" * as userland, and with -D_KERNEL.");
    g.line(" * Each _Static_assert's message starts with the --break key of the item.");
    if !g.breaks.is_empty() {
        let list: Vec<&str> = g.breaks.iter().map(String::as_str).collect();
        let list = format!(" *   {}", list.join(", "));
        g.line(" * DELIBERATELY BROKEN (--break) for a self-test:");
        g.line(&list);
    }
    g.line(" */");

    g.line("\n#ifdef _KERNEL\n");
    for h in KERNEL_HEADERS {
        g.line(&format!("#include <{h}>"));
    }
    g.line("\n/* errnos, the kernel-only ones included: src/abi/errno.rs ERRNO_TABLE */");
    g.errnos(true);
    let kernel_asserts = g.asserts;

    g.line("\n#else /* !_KERNEL */\n");
    for h in USER_HEADERS {
        g.line(&format!("#include <{h}>"));
    }
    g.ioctls();
    g.extensions();
    g.structs();
    g.consts();
    g.line("\n/* errnos as userland sees them: src/abi/errno.rs ERRNO_TABLE */");
    g.errnos(false);
    let user_asserts = g.asserts - kernel_asserts;
    g.line("\n#endif /* _KERNEL */");
    g.line(&format!(
        "\n/* zbpf-abigen: {user_asserts} userland assertions, {kernel_asserts} kernel assertions */"
    ));

    let unused: Vec<&str> = g.breaks.difference(&g.used).map(String::as_str).collect();
    if !unused.is_empty() {
        let unused = unused.join(", ");
        return Err(format!("--break: unknown keys: {unused}"));
    }
    Ok(g.out)
}

fn usage() -> &'static str {
    "usage: zbpf-abigen [--break KEY]... | --list-ioctls | --list-keys"
}

fn main() -> ExitCode {
    let mut breaks = BTreeSet::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--break" => match args.next() {
                Some(key) => {
                    breaks.insert(key);
                }
                None => {
                    eprintln!("{}", usage());
                    return ExitCode::from(2);
                }
            },
            "--list-ioctls" => {
                for (name, _) in IOCTL_TABLE {
                    println!("{name}");
                }
                return ExitCode::SUCCESS;
            }
            "--list-keys" => {
                for key in all_keys() {
                    println!("{key}");
                }
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("zbpf-abigen: unknown argument {arg:?}\n{}", usage());
                return ExitCode::from(2);
            }
        }
    }
    match generate(breaks) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zbpf-abigen: {e}");
            ExitCode::from(2)
        }
    }
}
