//! Every ioctl of `IOCTL_TABLE` (plus zbpf's BIOCGETZNEXT and BIOCACKZBUF)
//! in every state a descriptor can be in, with good and bad arguments, as
//! one table: state × command × argument → result. The expected results are
//! FreeBSD's (bpf-facts.md §2, checked against `sys/net/bpf.c`,
//! `bpf_buffer.c`, `bpf_zerocopy.c` and `sys_generic.c`'s generic ioctl
//! layer):
//!
//! * the generic layer copies IOC_IN arguments in first (EFAULT before the
//!   driver runs, even on a locked descriptor), zeroes IOC_OUT-only ones,
//!   and copies out only on success (so an IOC_OUT command that succeeds
//!   with a bad pointer is EFAULT, one that fails keeps its errno, and a
//!   failed call never writes user memory); a command without direction
//!   bits is ENOTTY;
//! * after BIOCLOCK every command off the whitelist is EPERM, checked
//!   before anything else (BIOCSTSTAMP is on it, BIOCGTSTAMP is not);
//! * commands of the other buffer mode are EOPNOTSUPP; BIOCSETBUFMODE is
//!   EBUSY once buffers exist or an interface is attached, but checks its
//!   value first; unknown commands are EINVAL.
//!
//! Setters are followed by the matching getter ("then") where one exists,
//! so a setter that returns 0 without doing anything fails too.

mod engine_support;

use std::sync::atomic::Ordering;

use engine_support::*;
use zbpf::abi::ioccom::{io, ioc_copies_in, ioc_copies_out, ioc_len, ior, iow, IOC_OUT, IOC_VOID};
use zbpf::abi::ioctl::*;
use zbpf::abi::*;
use zbpf::hosted::net::SimIface;
use zbpf::hosted::process::SharedRegion;
use zbpf::hosted::sim::Sim;

/// The states a descriptor is put in before the command under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// Just opened: BUFFER mode, no buffers, not attached.
    Fresh,
    /// BIOCSBLEN 8192 done, not attached.
    Sized,
    /// BUFFER mode, attached to eth0 (default 4096-byte buffers).
    Attached,
    /// ZBUF mode chosen, no buffers yet.
    ZEmpty,
    /// ZBUF mode with two 2-page buffers set, not attached.
    ZSet,
    /// ZBUF mode, buffers set, attached to eth0.
    ZAttached,
    /// `Attached`, then BIOCLOCK.
    Locked,
    /// `ZAttached`, then BIOCLOCK.
    LockedZ,
    /// BUFFER mode, was attached to gone0, which then departed.
    Detached,
}
use St::*;

const ALL: &[St] = &[Fresh, Sized, Attached, ZEmpty, ZSet, ZAttached, Locked, LockedZ, Detached];
const UNLOCKED: &[St] = &[Fresh, Sized, Attached, ZEmpty, ZSet, ZAttached, Detached];
const LOCKED: &[St] = &[Locked, LockedZ];
const BUF_UNLOCKED: &[St] = &[Fresh, Sized, Attached, Detached];
const ZBUF_UNLOCKED: &[St] = &[ZEmpty, ZSet, ZAttached];
const BUFFER_ANY: &[St] = &[Fresh, Sized, Attached, Locked, Detached];
const ZBUF_ANY: &[St] = &[ZEmpty, ZSet, ZAttached, LockedZ];
/// Attached and unlocked.
const ATTACHED: &[St] = &[Attached, ZAttached];
const ATTACHED_ANY: &[St] = &[Attached, ZAttached, Locked, LockedZ];
/// Not attached (and so never locked here).
const UNATTACHED: &[St] = &[Fresh, Sized, ZEmpty, ZSet, Detached];

/// Pages per zero-copy buffer in the ZBUF states.
const ZPAGES: usize = 2;
/// BIOCGBLEN in the ZBUF states with buffers: buffer minus its header.
const ZBLEN: u32 = (ZPAGES * PAGE_SIZE - 32) as u32;

/// Where a program's instructions are.
#[derive(Clone, Debug)]
enum Insns {
    Null,
    Bad,
    Code(Vec<BpfInsn>),
}

/// Where a DLT list goes.
#[derive(Clone, Debug)]
enum List {
    Null,
    Room(usize),
    Bad,
}

/// A `struct bpf_zbuf` argument.
#[derive(Clone, Debug)]
enum Z {
    /// Two fresh shared regions of this many pages.
    Pages(usize),
    NullA,
    NullB,
    ZeroLen,
    /// Fresh 2-page regions, length 4097.
    OddLen,
    /// Buffer a 16 bytes into a fresh region.
    Unaligned,
    /// Fresh 1-page regions claimed to be 513 pages long.
    TooBig,
    /// Buffer a on a page that faults.
    Fault,
    /// Buffer a on a read-only page.
    ReadOnly,
    /// BIOCACKZBUF of NULL.
    AckNull,
    /// BIOCACKZBUF of a region that is not one of the descriptor's.
    AckStranger,
    /// BIOCACKZBUF of the descriptor's buffer a, which the user does not own.
    AckOwn,
}

/// A bad argument pointer.
#[derive(Clone, Copy, Debug)]
enum Bad {
    /// Address 8.
    Low,
    /// A page-aligned page that faults.
    Fault,
}

/// The argument of the call.
#[derive(Clone, Debug)]
enum Arg {
    /// No argument (`_IO`).
    Null,
    /// An output buffer of the command's size, pre-filled with 0xA5.
    Out,
    U32(u32),
    I32(i32),
    Tv(i64, i64),
    If(&'static str),
    IfRaw([u8; 16]),
    Prog(u32, Insns),
    Dlts(u32, List),
    Zbuf(Z),
    Ptr(Bad),
}
use Arg::*;

/// The expected result.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ex {
    /// Success.
    Ok,
    /// Success, and the argument now begins with these bytes.
    Out(Vec<u8>),
    /// Success with `bfl_len` = the list's length and these DLTs in it.
    DltList(Vec<u32>),
    /// This errno.
    E(Errno),
}

const OK: Ex = Ex::Ok;
const EPERM: Ex = Ex::E(Errno::EPERM);
const EINVAL: Ex = Ex::E(Errno::EINVAL);
const EFAULT: Ex = Ex::E(Errno::EFAULT);
const ENXIO: Ex = Ex::E(Errno::ENXIO);
const EBUSY: Ex = Ex::E(Errno::EBUSY);
const ENOMEM: Ex = Ex::E(Errno::ENOMEM);
const EOPNOTSUPP: Ex = Ex::E(Errno::EOPNOTSUPP);
const ENOTTY: Ex = Ex::E(Errno::ENOTTY);

fn out32(v: u32) -> Ex {
    Ex::Out(v.to_le_bytes().to_vec())
}

fn outi(v: i32) -> Ex {
    Ex::Out(v.to_le_bytes().to_vec())
}

fn out64(v: u64) -> Ex {
    Ex::Out(v.to_le_bytes().to_vec())
}

fn zeros(n: usize) -> Ex {
    Ex::Out(vec![0; n])
}

fn tv(sec: i64, usec: i64) -> Ex {
    Ex::Out(Timeval { tv_sec: sec, tv_usec: usec }.to_bytes().to_vec())
}

fn ifname(name: &str) -> Ex {
    Ex::Out(ifreq(name).to_bytes().to_vec())
}

/// A sysctl changed before the call.
#[derive(Clone, Copy, Debug)]
enum Tweak {
    None,
    ZerocopyOff,
    MaxBufsize(u32),
    MaxInsns(u32),
}

#[derive(Clone, Debug)]
struct Then {
    name: &'static str,
    cmd: u64,
    arg: Arg,
    expect: Ex,
}

#[derive(Clone, Debug)]
struct Case {
    state: St,
    tweak: Tweak,
    name: &'static str,
    cmd: u64,
    arg: Arg,
    expect: Ex,
    then: Option<Then>,
}

type Cmd = (&'static str, u64);

macro_rules! c {
    ($name:ident) => {
        (stringify!($name), $name)
    };
}

#[derive(Default)]
struct Table {
    cases: Vec<Case>,
}

impl Table {
    fn add(
        &mut self,
        states: &[St],
        tweak: Tweak,
        cmd: Cmd,
        arg: Arg,
        expect: Ex,
        then: Option<Then>,
    ) {
        for &state in states {
            self.cases.push(Case {
                state,
                tweak,
                name: cmd.0,
                cmd: cmd.1,
                arg: arg.clone(),
                expect: expect.clone(),
                then: then.clone(),
            });
        }
    }

    /// `cmd(arg)` in each of `states` gives `expect`.
    fn row(&mut self, states: &[St], cmd: Cmd, arg: Arg, expect: Ex) {
        self.add(states, Tweak::None, cmd, arg, expect, None);
    }

    /// ... and then `then(then_arg)` gives `then_expect`. (One row of the
    /// table, spelled out: hence the arguments.)
    #[allow(clippy::too_many_arguments)]
    fn row_then(
        &mut self,
        states: &[St],
        cmd: Cmd,
        arg: Arg,
        expect: Ex,
        then: Cmd,
        then_arg: Arg,
        then_expect: Ex,
    ) {
        let then = Then { name: then.0, cmd: then.1, arg: then_arg, expect: then_expect };
        self.add(states, Tweak::None, cmd, arg, expect, Some(then));
    }

    /// `cmd(arg)` after a sysctl change.
    fn row_tweak(&mut self, states: &[St], tweak: Tweak, cmd: Cmd, arg: Arg, expect: Ex) {
        self.add(states, tweak, cmd, arg, expect, None);
    }
}

/// `ld #0` × (n − 1), `ret a`: a valid program of n instructions.
fn long_program(n: usize) -> Vec<BpfInsn> {
    let mut p = vec![BpfInsn::stmt(op::BPF_LD | op::BPF_IMM, 0); n - 1];
    p.push(BpfInsn::stmt(op::BPF_RET | op::BPF_A, 0));
    p
}

fn invalid_programs() -> Vec<(&'static str, Vec<BpfInsn>)> {
    use op::*;
    vec![
        ("no final ret", vec![BpfInsn::stmt(BPF_LD | BPF_IMM, 0)]),
        ("unknown opcode", vec![BpfInsn::stmt(0xffff, 0), BpfInsn::stmt(BPF_RET | BPF_K, 1)]),
        (
            "division by constant 0",
            vec![BpfInsn::stmt(BPF_ALU | BPF_DIV | BPF_K, 0), BpfInsn::stmt(BPF_RET | BPF_K, 1)],
        ),
        (
            "jump past the end",
            vec![BpfInsn::stmt(BPF_JMP | BPF_JA, 5), BpfInsn::stmt(BPF_RET | BPF_K, 1)],
        ),
        (
            "conditional jump past the end",
            vec![
                BpfInsn::jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 1, 0),
                BpfInsn::stmt(BPF_RET | BPF_K, 1),
            ],
        ),
        (
            "scratch word 16",
            vec![BpfInsn::stmt(BPF_LD | BPF_MEM, 16), BpfInsn::stmt(BPF_RET | BPF_K, 1)],
        ),
    ]
}

/// Values BPF_T_VALID accepts.
const TSTAMP_VALID: &[u32] =
    &[0, 1, 2, 3, 0x100, 0x101, 0x102, 0x200, 0x201, 0x202, 0x300, 0x301, 0x302];
/// Values it rejects: NONE with flags, unknown flags, stray bits.
const TSTAMP_INVALID: &[u32] = &[4, 7, 0x103, 0x203, 0x303, 0x400, 0x1000, 0x1_0001, u32::MAX];

/// The specification.
fn table() -> Table {
    let mut t = Table::default();

    // BIOCGBLEN: bd_bufsize, in every state (whitelisted).
    t.row(&[Fresh, Attached, ZEmpty, Locked, Detached], c!(BIOCGBLEN), Out, out32(4096));
    t.row(&[Sized], c!(BIOCGBLEN), Out, out32(8192));
    t.row(&[ZSet, ZAttached, LockedZ], c!(BIOCGBLEN), Out, out32(ZBLEN));

    // BIOCSBLEN: BUFFER mode only, before attach; clamps to
    // [32, maxbufsize] and writes the clamped size back.
    let unattached_buf = &[Fresh, Sized, Detached];
    for (ask, got) in [
        (100_000, 100_000),
        (0, 32),
        (31, 32),
        (32, 32),
        (33, 33),
        (524_288, 524_288),
        (524_289, 524_288),
        (u32::MAX, 524_288),
    ] {
        t.row_then(
            unattached_buf,
            c!(BIOCSBLEN),
            U32(ask),
            out32(got),
            c!(BIOCGBLEN),
            Out,
            out32(got),
        );
    }
    t.row_tweak(
        unattached_buf,
        Tweak::MaxBufsize(65536),
        c!(BIOCSBLEN),
        U32(100_000),
        out32(65536),
    );
    t.row_then(&[Attached], c!(BIOCSBLEN), U32(100_000), EINVAL, c!(BIOCGBLEN), Out, out32(4096));
    t.row_then(&[ZEmpty], c!(BIOCSBLEN), U32(100_000), EOPNOTSUPP, c!(BIOCGBLEN), Out, out32(4096));
    t.row_then(
        &[ZSet, ZAttached],
        c!(BIOCSBLEN),
        U32(100_000),
        EOPNOTSUPP,
        c!(BIOCGBLEN),
        Out,
        out32(ZBLEN),
    );
    t.row(LOCKED, c!(BIOCSBLEN), U32(100_000), EPERM);

    // BIOCSETF, BIOCSETFNR, BIOCSETWF: same validation (bpf_setf).
    for cmd in [c!(BIOCSETF), c!(BIOCSETFNR), c!(BIOCSETWF)] {
        t.row(UNLOCKED, cmd, Prog(1, Insns::Code(ret(96))), OK);
        t.row(UNLOCKED, cmd, Prog(0, Insns::Null), OK);
        // Length 0: the pointer is never read.
        t.row(UNLOCKED, cmd, Prog(0, Insns::Bad), OK);
        t.row(UNLOCKED, cmd, Prog(512, Insns::Code(long_program(512))), OK);
        t.row(UNLOCKED, cmd, Prog(513, Insns::Code(long_program(513))), EINVAL);
        t.row(UNLOCKED, cmd, Prog(u32::MAX, Insns::Code(ret(1))), EINVAL);
        t.row_tweak(
            UNLOCKED,
            Tweak::MaxInsns(4),
            cmd,
            Prog(5, Insns::Code(long_program(5))),
            EINVAL,
        );
        t.row_tweak(UNLOCKED, Tweak::MaxInsns(4), cmd, Prog(4, Insns::Code(long_program(4))), OK);
        t.row(UNLOCKED, cmd, Prog(1, Insns::Null), EINVAL);
        // A fault copying the program in is EINVAL, not EFAULT.
        t.row(UNLOCKED, cmd, Prog(1, Insns::Bad), EINVAL);
        for (_, p) in invalid_programs() {
            t.row(UNLOCKED, cmd, Prog(p.len() as u32, Insns::Code(p)), EINVAL);
        }
        t.row(LOCKED, cmd, Prog(1, Insns::Code(ret(96))), EPERM);
        t.row(LOCKED, cmd, Prog(513, Insns::Code(long_program(513))), EPERM);
        t.row(LOCKED, cmd, Prog(1, Insns::Null), EPERM);
    }

    // BIOCFLUSH: always allowed.
    t.row(ALL, c!(BIOCFLUSH), Null, OK);

    // BIOCPROMISC: needs an interface.
    t.row(ATTACHED, c!(BIOCPROMISC), Null, OK);
    t.row(UNATTACHED, c!(BIOCPROMISC), Null, EINVAL);
    t.row(LOCKED, c!(BIOCPROMISC), Null, EPERM);

    // BIOCGDLT, BIOCGETIF: need an interface; whitelisted.
    t.row(ATTACHED_ANY, c!(BIOCGDLT), Out, out32(dlt::DLT_EN10MB));
    t.row(UNATTACHED, c!(BIOCGDLT), Out, EINVAL);
    t.row(ATTACHED_ANY, c!(BIOCGETIF), Out, ifname("eth0"));
    t.row(UNATTACHED, c!(BIOCGETIF), Out, EINVAL);

    // BIOCSETIF.
    let can_attach = &[Fresh, Sized, Attached, ZSet, ZAttached, Detached];
    t.row_then(can_attach, c!(BIOCSETIF), If("eth0"), OK, c!(BIOCGETIF), Out, ifname("eth0"));
    let mut padded = [0u8; 16];
    padded[..12].copy_from_slice(b"eth0\0garbage");
    t.row_then(can_attach, c!(BIOCSETIF), IfRaw(padded), OK, c!(BIOCGDLT), Out, out32(1));
    // ZBUF mode needs its buffers first.
    t.row_then(&[ZEmpty], c!(BIOCSETIF), If("eth0"), EINVAL, c!(BIOCGDLT), Out, EINVAL);
    // The name is looked up before the buffers are checked...
    t.row(UNLOCKED, c!(BIOCSETIF), If("nosuch0"), ENXIO);
    // ...but BUFFER mode allocates its buffers before the lookup.
    t.row_then(&[Fresh], c!(BIOCSETIF), If("nosuch0"), ENXIO, c!(BIOCSETBUFMODE), U32(2), EBUSY);
    // A failed BIOCSETIF leaves the descriptor where it was.
    t.row_then(ATTACHED, c!(BIOCSETIF), If("nosuch0"), ENXIO, c!(BIOCGETIF), Out, ifname("eth0"));
    t.row(UNLOCKED, c!(BIOCSETIF), If("gone0"), ENXIO);
    t.row(UNLOCKED, c!(BIOCSETIF), If(""), ENXIO);
    t.row(UNLOCKED, c!(BIOCSETIF), IfRaw([b'e'; 16]), ENXIO);
    t.row(LOCKED, c!(BIOCSETIF), If("eth0"), EPERM);

    // BIOCSRTIMEOUT: itimerfix, then tvtohz − 1 ticks (hz = 1000);
    // BIOCGRTIMEOUT gives ticks back as a timeval. Both whitelisted.
    for (set, get) in [
        ((1, 500_000), (1, 500_000)),
        ((0, 0), (0, 0)),
        ((0, 1), (0, 1000)),
        ((0, 1500), (0, 2000)),
        ((0, 999_999), (1, 0)),
        ((2, 0), (2, 0)),
        ((i64::MAX, 0), (2_147_483, 646_000)),
    ] {
        t.row_then(
            ALL,
            c!(BIOCSRTIMEOUT),
            Tv(set.0, set.1),
            OK,
            c!(BIOCGRTIMEOUT),
            Out,
            tv(get.0, get.1),
        );
    }
    for bad in [(-1, 0), (0, -1), (0, 1_000_000), (i64::MIN, 0), (5, i64::MAX)] {
        t.row_then(
            ALL,
            c!(BIOCSRTIMEOUT),
            Tv(bad.0, bad.1),
            EINVAL,
            c!(BIOCGRTIMEOUT),
            Out,
            tv(0, 0),
        );
    }
    t.row(ALL, c!(BIOCGRTIMEOUT), Out, tv(0, 0));

    // BIOCGSTATS: nothing received yet.
    t.row(ALL, c!(BIOCGSTATS), Out, zeros(8));

    // BIOCIMMEDIATE, BIOCFEEDBACK: any value, whitelisted.
    for v in [0, 1, 7] {
        t.row(ALL, c!(BIOCIMMEDIATE), U32(v), OK);
        t.row(ALL, c!(BIOCFEEDBACK), U32(v), OK);
    }

    // BIOCVERSION: 1.1.
    t.row(ALL, c!(BIOCVERSION), Out, Ex::Out(vec![1, 0, 1, 0]));

    // BIOCGRSIG / BIOCSRSIG: SIGIO by default; < NSIG (32).
    t.row(ALL, c!(BIOCGRSIG), Out, out32(23));
    for sig in [0, 1, 30, 31] {
        t.row_then(UNLOCKED, c!(BIOCSRSIG), U32(sig), OK, c!(BIOCGRSIG), Out, out32(sig));
    }
    for sig in [32, 33, 64, u32::MAX] {
        t.row_then(UNLOCKED, c!(BIOCSRSIG), U32(sig), EINVAL, c!(BIOCGRSIG), Out, out32(23));
    }
    t.row_then(LOCKED, c!(BIOCSRSIG), U32(31), EPERM, c!(BIOCGRSIG), Out, out32(23));

    // BIOCGHDRCMPLT / BIOCSHDRCMPLT: normalised to 0/1.
    t.row(ALL, c!(BIOCGHDRCMPLT), Out, out32(0));
    for (v, got) in [(5, 1), (1, 1), (0, 0), (u32::MAX, 1)] {
        t.row_then(UNLOCKED, c!(BIOCSHDRCMPLT), U32(v), OK, c!(BIOCGHDRCMPLT), Out, out32(got));
    }
    t.row_then(LOCKED, c!(BIOCSHDRCMPLT), U32(1), EPERM, c!(BIOCGHDRCMPLT), Out, out32(0));

    // BIOCGDIRECTION / BIOCSDIRECTION and their SEESENT aliases; the
    // getter is not whitelisted.
    for (get, set) in
        [(c!(BIOCGDIRECTION), c!(BIOCSDIRECTION)), (c!(BIOCGSEESENT), c!(BIOCSSEESENT))]
    {
        t.row(UNLOCKED, get, Out, out32(BPF_D_INOUT));
        t.row(LOCKED, get, Out, EPERM);
        for d in [BPF_D_IN, BPF_D_INOUT, BPF_D_OUT] {
            t.row_then(UNLOCKED, set, U32(d), OK, get, Out, out32(d));
        }
        for d in [3, 4, u32::MAX] {
            t.row_then(UNLOCKED, set, U32(d), EINVAL, get, Out, out32(BPF_D_INOUT));
        }
        t.row(LOCKED, set, U32(BPF_D_IN), EPERM);
    }

    // BIOCSDLT: a DLT the interface offers (eth0 has EN10MB and RAW).
    t.row_then(ATTACHED, c!(BIOCSDLT), U32(dlt::DLT_EN10MB), OK, c!(BIOCGDLT), Out, out32(1));
    t.row_then(
        ATTACHED,
        c!(BIOCSDLT),
        U32(dlt::DLT_RAW),
        OK,
        c!(BIOCGDLT),
        Out,
        out32(dlt::DLT_RAW),
    );
    t.row_then(ATTACHED, c!(BIOCSDLT), U32(105), EINVAL, c!(BIOCGDLT), Out, out32(1));
    t.row(UNATTACHED, c!(BIOCSDLT), U32(dlt::DLT_EN10MB), EINVAL);
    t.row(LOCKED, c!(BIOCSDLT), U32(dlt::DLT_RAW), EPERM);

    // BIOCGDLTLIST: count with a NULL list, ENOMEM when the list is too
    // short (before any copyout), EFAULT from the copyout; whitelisted.
    t.row(ATTACHED_ANY, c!(BIOCGDLTLIST), Dlts(0, List::Null), out32(2));
    t.row(ATTACHED_ANY, c!(BIOCGDLTLIST), Dlts(77, List::Null), out32(2));
    t.row(
        ATTACHED_ANY,
        c!(BIOCGDLTLIST),
        Dlts(2, List::Room(2)),
        Ex::DltList(vec![1, dlt::DLT_RAW]),
    );
    t.row(
        ATTACHED_ANY,
        c!(BIOCGDLTLIST),
        Dlts(8, List::Room(8)),
        Ex::DltList(vec![1, dlt::DLT_RAW]),
    );
    t.row(ATTACHED_ANY, c!(BIOCGDLTLIST), Dlts(1, List::Room(1)), ENOMEM);
    t.row(ATTACHED_ANY, c!(BIOCGDLTLIST), Dlts(0, List::Room(1)), ENOMEM);
    t.row(ATTACHED_ANY, c!(BIOCGDLTLIST), Dlts(1, List::Bad), ENOMEM);
    t.row(ATTACHED_ANY, c!(BIOCGDLTLIST), Dlts(2, List::Bad), EFAULT);
    t.row(UNATTACHED, c!(BIOCGDLTLIST), Dlts(0, List::Null), EINVAL);
    t.row(UNATTACHED, c!(BIOCGDLTLIST), Dlts(8, List::Room(8)), EINVAL);

    // BIOCLOCK: irreversible, whitelisted.
    t.row(ALL, c!(BIOCLOCK), Null, OK);
    t.row_then(&[Fresh], c!(BIOCLOCK), Null, OK, c!(BIOCSETIF), If("eth0"), EPERM);
    t.row_then(&[Attached], c!(BIOCLOCK), Null, OK, c!(BIOCGTSTAMP), Out, EPERM);
    t.row_then(&[Attached], c!(BIOCLOCK), Null, OK, c!(BIOCSTSTAMP), U32(1), OK);
    t.row_then(&[ZAttached], c!(BIOCLOCK), Null, OK, c!(BIOCROTZBUF), Out, zeros(24));

    // BIOCGETBUFMODE (not whitelisted).
    t.row(BUF_UNLOCKED, c!(BIOCGETBUFMODE), Out, out32(BPF_BUFMODE_BUFFER));
    t.row(ZBUF_UNLOCKED, c!(BIOCGETBUFMODE), Out, out32(BPF_BUFMODE_ZBUF));
    t.row(LOCKED, c!(BIOCGETBUFMODE), Out, EPERM);

    // BIOCSETBUFMODE: the value first, then "committed" (buffers or an
    // interface) is EBUSY, even for the current mode.
    for m in [BPF_BUFMODE_BUFFER, BPF_BUFMODE_ZBUF] {
        t.row_then(
            &[Fresh, ZEmpty],
            c!(BIOCSETBUFMODE),
            U32(m),
            OK,
            c!(BIOCGETBUFMODE),
            Out,
            out32(m),
        );
        t.row_then(
            &[Sized, Attached, Detached],
            c!(BIOCSETBUFMODE),
            U32(m),
            EBUSY,
            c!(BIOCGETBUFMODE),
            Out,
            out32(1),
        );
        t.row_then(
            &[ZSet, ZAttached],
            c!(BIOCSETBUFMODE),
            U32(m),
            EBUSY,
            c!(BIOCGETBUFMODE),
            Out,
            out32(2),
        );
    }
    for m in [0, 3, u32::MAX] {
        t.row(UNLOCKED, c!(BIOCSETBUFMODE), U32(m), EINVAL);
    }
    // net.bpf.zerocopy_enable=0: ZBUF is an invalid value, even before EBUSY.
    t.row_tweak(
        &[Fresh, ZEmpty, Attached, ZSet],
        Tweak::ZerocopyOff,
        c!(BIOCSETBUFMODE),
        U32(2),
        EINVAL,
    );
    t.row_tweak(&[Fresh, ZEmpty], Tweak::ZerocopyOff, c!(BIOCSETBUFMODE), U32(1), OK);
    t.row(LOCKED, c!(BIOCSETBUFMODE), U32(1), EPERM);

    // BIOCGETZMAX: ZBUF only, a size_t of 512 pages.
    t.row(ZBUF_UNLOCKED, c!(BIOCGETZMAX), Out, out64(2 * 1024 * 1024));
    t.row(BUF_UNLOCKED, c!(BIOCGETZMAX), Out, EOPNOTSUPP);
    t.row(LOCKED, c!(BIOCGETZMAX), Out, EPERM);

    // BIOCROTZBUF: ZBUF only, whitelisted; nothing to rotate here.
    t.row(ZBUF_ANY, c!(BIOCROTZBUF), Out, zeros(24));
    t.row(BUFFER_ANY, c!(BIOCROTZBUF), Out, EOPNOTSUPP);

    // BIOCSETZBUF: ZBUF only, once; checks in bpf_zerocopy.c's order.
    for (pages, blen) in [(1, 4096 - 32), (ZPAGES, ZBLEN), (512, 512 * 4096 - 32)] {
        t.row_then(
            &[ZEmpty],
            c!(BIOCSETZBUF),
            Zbuf(Z::Pages(pages)),
            OK,
            c!(BIOCGBLEN),
            Out,
            out32(blen),
        );
    }
    for z in [Z::NullA, Z::NullB, Z::ZeroLen, Z::OddLen, Z::Unaligned, Z::TooBig] {
        t.row_then(&[ZEmpty], c!(BIOCSETZBUF), Zbuf(z), EINVAL, c!(BIOCGBLEN), Out, out32(4096));
    }
    t.row_then(&[ZEmpty], c!(BIOCSETZBUF), Zbuf(Z::Fault), EFAULT, c!(BIOCGBLEN), Out, out32(4096));
    t.row(&[ZEmpty], c!(BIOCSETZBUF), Zbuf(Z::ReadOnly), EFAULT);
    t.row_then(
        &[ZSet, ZAttached],
        c!(BIOCSETZBUF),
        Zbuf(Z::Pages(1)),
        EINVAL,
        c!(BIOCGBLEN),
        Out,
        out32(ZBLEN),
    );
    // Pages are held before the "only once" check.
    t.row(&[ZSet, ZAttached], c!(BIOCSETZBUF), Zbuf(Z::Fault), EFAULT);
    t.row(&[ZSet, ZAttached], c!(BIOCSETZBUF), Zbuf(Z::NullA), EINVAL);
    t.row(BUF_UNLOCKED, c!(BIOCSETZBUF), Zbuf(Z::Pages(1)), EOPNOTSUPP);
    t.row(BUF_UNLOCKED, c!(BIOCSETZBUF), Zbuf(Z::NullA), EOPNOTSUPP);
    t.row(LOCKED, c!(BIOCSETZBUF), Zbuf(Z::Pages(1)), EPERM);

    // BIOCGTSTAMP (not whitelisted) / BIOCSTSTAMP (whitelisted).
    t.row(UNLOCKED, c!(BIOCGTSTAMP), Out, out32(0));
    t.row(LOCKED, c!(BIOCGTSTAMP), Out, EPERM);
    for &v in TSTAMP_VALID {
        t.row_then(UNLOCKED, c!(BIOCSTSTAMP), U32(v), OK, c!(BIOCGTSTAMP), Out, out32(v));
        t.row_then(LOCKED, c!(BIOCSTSTAMP), U32(v), OK, c!(BIOCGTSTAMP), Out, EPERM);
    }
    for &v in TSTAMP_INVALID {
        t.row_then(UNLOCKED, c!(BIOCSTSTAMP), U32(v), EINVAL, c!(BIOCGTSTAMP), Out, out32(0));
        t.row(LOCKED, c!(BIOCSTSTAMP), U32(v), EINVAL);
    }

    // BIOCSETVLANPCP: 0..=7.
    for pcp in 0..=7 {
        t.row(UNLOCKED, c!(BIOCSETVLANPCP), U32(pcp), OK);
    }
    for pcp in [8, 255, u32::MAX] {
        t.row(UNLOCKED, c!(BIOCSETVLANPCP), U32(pcp), EINVAL);
    }
    t.row(LOCKED, c!(BIOCSETVLANPCP), U32(1), EPERM);

    // FIONREAD: nothing buffered; whitelisted.
    t.row(ALL, c!(FIONREAD), Out, out32(0));

    // FIONBIO, FIOASYNC: accepted, not whitelisted.
    for v in [0, 1] {
        t.row(UNLOCKED, c!(FIONBIO), I32(v), OK);
        t.row(UNLOCKED, c!(FIOASYNC), I32(v), OK);
    }
    t.row(LOCKED, c!(FIONBIO), I32(1), EPERM);
    t.row(LOCKED, c!(FIOASYNC), I32(1), EPERM);

    // Owner: FIOSETOWN/FIOGETOWN (not whitelisted), TIOCSPGRP (not
    // whitelisted) / TIOCGPGRP (whitelisted) negate it.
    t.row(UNLOCKED, c!(FIOGETOWN), Out, outi(0));
    t.row(LOCKED, c!(FIOGETOWN), Out, EPERM);
    t.row(ALL, c!(TIOCGPGRP), Out, outi(0));
    t.row_then(UNLOCKED, c!(FIOSETOWN), I32(4242), OK, c!(FIOGETOWN), Out, outi(4242));
    t.row_then(UNLOCKED, c!(FIOSETOWN), I32(-77), OK, c!(TIOCGPGRP), Out, outi(77));
    t.row(LOCKED, c!(FIOSETOWN), I32(4242), EPERM);
    t.row_then(UNLOCKED, c!(TIOCSPGRP), I32(77), OK, c!(FIOGETOWN), Out, outi(-77));
    t.row_then(LOCKED, c!(TIOCSPGRP), I32(77), EPERM, c!(TIOCGPGRP), Out, outi(0));

    // SIOCGIFADDR: documented by bpf(4), not implemented.
    t.row(UNLOCKED, c!(SIOCGIFADDR), If("eth0"), EINVAL);
    t.row(LOCKED, c!(SIOCGIFADDR), If("eth0"), EPERM);

    // zbpf's BIOCGETZNEXT / BIOCACKZBUF: ZBUF only, allowed after BIOCLOCK
    // (consuming buffers, like BIOCROTZBUF). Nothing is owned here.
    t.row(ZBUF_ANY, c!(BIOCGETZNEXT), Out, zeros(24));
    t.row(BUFFER_ANY, c!(BIOCGETZNEXT), Out, EOPNOTSUPP);
    t.row(ZBUF_ANY, c!(BIOCACKZBUF), Zbuf(Z::AckNull), EINVAL);
    t.row(ZBUF_ANY, c!(BIOCACKZBUF), Zbuf(Z::AckStranger), EINVAL);
    t.row(&[ZSet, ZAttached, LockedZ], c!(BIOCACKZBUF), Zbuf(Z::AckOwn), EINVAL);
    t.row(BUFFER_ANY, c!(BIOCACKZBUF), Zbuf(Z::AckNull), EOPNOTSUPP);

    // Unknown commands: EINVAL from bpf (EPERM first when locked)...
    let unknown: [Cmd; 4] = [
        ("_IOW('B', 200, u_int)", iow::<u32>(b'B', 200)),
        ("_IO('B', 0)", io(b'B', 0)),
        ("_IOR('B', 134, u_int)", ior::<u32>(b'B', 134)),
        ("_IOR('B', 226, bpf_zbuf)", ior::<BpfZbuf>(b'B', 226)),
    ];
    for cmd in unknown {
        let arg = if cmd.1 & IOC_VOID != 0 { Null } else { U32(0) };
        t.row(UNLOCKED, cmd, arg.clone(), EINVAL);
        t.row(LOCKED, cmd, arg, EPERM);
    }
    // ...and malformed encodings are ENOTTY from the generic layer, before
    // bpf sees them.
    let malformed: [Cmd; 3] = [
        ("no direction bits", (4 << 16) | (u64::from(b'B') << 8) | 102),
        ("IOC_OUT of size 0", IOC_OUT | (u64::from(b'B') << 8) | 102),
        ("IOC_VOID of size 8", IOC_VOID | (8 << 16) | (u64::from(b'B') << 8) | 102),
    ];
    for cmd in malformed {
        t.row(ALL, cmd, U32(0), ENOTTY);
    }

    t
}

/// Every command under test.
fn commands() -> Vec<Cmd> {
    IOCTL_TABLE.iter().chain(ZBPF_IOCTL_TABLE).copied().collect()
}

/// Bad argument pointers, derived from the generic ioctl layer's rules:
/// IOC_IN commands fault on copyin before the driver runs; IOC_OUT-only
/// commands fault on copyout only if the driver succeeded (the baseline row
/// with a good buffer says whether it does).
fn bad_pointer_cases(t: &Table) -> Vec<Case> {
    let mut out = Vec::new();
    for (name, cmd) in commands() {
        if cmd & (zbpf::abi::ioccom::IOC_IN | IOC_OUT) == 0 {
            continue;
        }
        for &state in ALL {
            let expect = if ioc_copies_in(cmd) {
                EFAULT
            } else {
                let base = t
                    .cases
                    .iter()
                    .find(|c| {
                        c.state == state
                            && c.cmd == cmd
                            && matches!(c.arg, Out)
                            && matches!(c.tweak, Tweak::None)
                    })
                    .unwrap_or_else(|| panic!("no baseline row for {name} in {state:?}"));
                match &base.expect {
                    Ex::E(e) => Ex::E(*e),
                    _ => EFAULT,
                }
            };
            for bad in [Bad::Low, Bad::Fault] {
                out.push(Case {
                    state,
                    tweak: Tweak::None,
                    name,
                    cmd,
                    arg: Ptr(bad),
                    expect: expect.clone(),
                    then: None,
                });
            }
        }
    }
    out
}

/// A descriptor in `state`, on a machine with eth0 (EN10MB and RAW).
struct Env {
    sim: Sim,
    fd: i32,
    /// The ZBUF states' buffers.
    zbufs: Vec<SharedRegion>,
}

fn setup(state: St) -> Env {
    let sim = Sim::new();
    sim.add_iface(SimIface::build(
        "eth0",
        vec![(dlt::DLT_EN10MB, 14), (dlt::DLT_RAW, 0)],
        1500,
        Some(HOST_MAC),
    ));
    let fd = sim.open(2).expect("open");
    let mut zbufs = Vec::new();
    let must = |r: Result<()>, what: &str| {
        if let Err(e) = r {
            panic!("setting up {state:?}: {what}: {e:?}");
        }
    };
    match state {
        Fresh => {}
        Sized => must(set_blen(&sim, fd, 8192).map(drop), "BIOCSBLEN"),
        Attached | Locked => must(attach(&sim, fd, "eth0"), "BIOCSETIF"),
        ZEmpty | ZSet | ZAttached | LockedZ => {
            must(set_u32(&sim, fd, BIOCSETBUFMODE, BPF_BUFMODE_ZBUF), "BIOCSETBUFMODE");
            if state != ZEmpty {
                for _ in 0..2 {
                    zbufs.push(SharedRegion::new(ZPAGES * PAGE_SIZE).expect("region"));
                }
                let mut bz = BpfZbuf {
                    bz_bufa: zbufs[0].addr(),
                    bz_bufb: zbufs[1].addr(),
                    bz_buflen: (ZPAGES * PAGE_SIZE) as u64,
                };
                must(ioc(&sim, fd, BIOCSETZBUF, &mut bz), "BIOCSETZBUF");
            }
            if matches!(state, ZAttached | LockedZ) {
                must(attach(&sim, fd, "eth0"), "BIOCSETIF");
            }
        }
        Detached => {
            sim.add_iface(SimIface::ethernet("gone0", HOST_MAC));
            must(attach(&sim, fd, "gone0"), "BIOCSETIF gone0");
            sim.remove_iface("gone0");
        }
    }
    if matches!(state, Locked | LockedZ) {
        must(ioc0(&sim, fd, BIOCLOCK), "BIOCLOCK");
    }
    Env { sim, fd, zbufs }
}

/// The memory behind one argument.
struct ArgMem {
    /// The argument itself (8-byte aligned), or a bad address.
    buf: Vec<u64>,
    ptr: u64,
    /// Its bytes before the call.
    before: Vec<u8>,
    insns: Vec<BpfInsn>,
    list: Vec<u32>,
    regions: Vec<SharedRegion>,
}

impl ArgMem {
    fn bytes(&self) -> Vec<u8> {
        self.buf.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

fn region(pages: usize) -> SharedRegion {
    SharedRegion::new(pages * PAGE_SIZE).expect("region")
}

fn build_arg(cmd: u64, arg: &Arg, env: &Env) -> ArgMem {
    let size = ioc_len(cmd).max(32);
    let mut bytes = vec![0xa5u8; size];
    let mut insns = Vec::new();
    let mut list = Vec::new();
    let mut regions = Vec::new();
    let mut bad = None;
    match arg {
        Null => bad = Some(0),
        Out => {}
        U32(v) => bytes[..4].copy_from_slice(&v.to_le_bytes()),
        I32(v) => bytes[..4].copy_from_slice(&v.to_le_bytes()),
        Tv(s, u) => Timeval { tv_sec: *s, tv_usec: *u }.encode(&mut bytes),
        If(name) => ifreq(name).encode(&mut bytes),
        IfRaw(raw) => {
            IfReq { ifr_name: *raw, ..Default::default() }.encode(&mut bytes);
        }
        Prog(len, where_) => {
            let addr = match where_ {
                Insns::Null => 0,
                Insns::Bad => LOW_ADDR,
                Insns::Code(code) => {
                    insns = code.clone();
                    insns.as_mut_ptr() as u64
                }
            };
            BpfProgram { bf_len: *len, bf_insns: UserAddr(addr) }.encode(&mut bytes);
        }
        Dlts(len, where_) => {
            let addr = match where_ {
                List::Null => 0,
                List::Bad => LOW_ADDR,
                List::Room(n) => {
                    list = vec![0xa5a5_a5a5; *n];
                    list.as_mut_ptr() as u64
                }
            };
            BpfDltList { bfl_len: *len, bfl_list: UserAddr(addr) }.encode(&mut bytes);
        }
        Zbuf(z) => {
            let two = |pages: usize, regions: &mut Vec<SharedRegion>| {
                regions.push(region(pages));
                regions.push(region(pages));
                (regions[0].addr().0, regions[1].addr().0)
            };
            let (a, b, len) = match z {
                Z::Pages(n) => {
                    let (a, b) = two(*n, &mut regions);
                    (a, b, n * PAGE_SIZE)
                }
                Z::NullA => (0, two(1, &mut regions).1, PAGE_SIZE),
                Z::NullB => (two(1, &mut regions).0, 0, PAGE_SIZE),
                Z::ZeroLen => {
                    let (a, b) = two(1, &mut regions);
                    (a, b, 0)
                }
                Z::OddLen => {
                    let (a, b) = two(2, &mut regions);
                    (a, b, PAGE_SIZE + 1)
                }
                Z::Unaligned => {
                    let (a, b) = two(2, &mut regions);
                    (a + 16, b, PAGE_SIZE)
                }
                Z::TooBig => {
                    let (a, b) = two(1, &mut regions);
                    (a, b, 513 * PAGE_SIZE)
                }
                Z::Fault => (fault_page(), two(1, &mut regions).1, PAGE_SIZE),
                Z::ReadOnly => (read_only_page(), two(1, &mut regions).1, PAGE_SIZE),
                Z::AckNull => (0, 0, 0),
                Z::AckStranger => (two(1, &mut regions).0, 0, 0),
                Z::AckOwn => (env.zbufs.first().expect("own buffers").addr().0, 0, 0),
            };
            BpfZbuf { bz_bufa: UserAddr(a), bz_bufb: UserAddr(b), bz_buflen: len as u64 }
                .encode(&mut bytes);
        }
        Ptr(Bad::Low) => bad = Some(LOW_ADDR),
        Ptr(Bad::Fault) => bad = Some(fault_page()),
    }
    let mut buf = vec![0u64; size / 8];
    for (w, chunk) in buf.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    let ptr = bad.unwrap_or(buf.as_mut_ptr() as u64);
    ArgMem { before: bytes, buf, ptr, insns, list, regions }
}

/// Checks one call's outcome against the table; `None` when it matches.
fn check(cmd: u64, got: &Result<()>, expect: &Ex, mem: &ArgMem) -> Option<String> {
    let after = mem.bytes();
    let real_arg = mem.ptr == mem.buf.as_ptr() as u64;
    let untouched = after == mem.before;
    let list_untouched = mem.list.iter().all(|&v| v == 0xa5a5_a5a5);
    match (got, expect) {
        (Err(e), Ex::E(want)) if e == want => {
            if real_arg && !untouched {
                return Some("failed, but wrote the argument".into());
            }
            if !list_untouched {
                return Some("failed, but wrote the DLT list".into());
            }
            None
        }
        (Ok(()), Ex::Ok) => {
            if real_arg && !ioc_copies_out(cmd) && !untouched {
                return Some("an IOC_IN argument was written".into());
            }
            None
        }
        (Ok(()), Ex::Out(prefix)) => {
            if !after.starts_with(prefix) {
                let n = prefix.len();
                return Some(format!("argument is {:02x?}, expected {:02x?}", &after[..n], prefix));
            }
            // The rest of the command's argument was zeroed by the generic
            // layer before the driver saw it, unless the driver wrote it.
            None
        }
        (Ok(()), Ex::DltList(dlts)) => {
            let len = u32::from_le_bytes(after[..4].try_into().expect("4 bytes"));
            if len as usize != dlts.len() {
                return Some(format!("bfl_len {len}, expected {}", dlts.len()));
            }
            if mem.list.get(..dlts.len()) != Some(dlts.as_slice()) {
                return Some(format!("list {:?}, expected {dlts:?}", mem.list));
            }
            if mem.list[dlts.len()..].iter().any(|&v| v != 0xa5a5_a5a5) {
                return Some("wrote past the DLTs in the list".into());
            }
            None
        }
        (got, want) => Some(format!("got {got:?}, expected {want:?}")),
    }
}

fn run(case: &Case) -> Option<String> {
    let env = setup(case.state);
    let config = &env.sim.bpf().config;
    match case.tweak {
        Tweak::None => {}
        Tweak::ZerocopyOff => config.zerocopy_enable.store(false, Ordering::SeqCst),
        Tweak::MaxBufsize(v) => config.maxbufsize.store(v, Ordering::SeqCst),
        Tweak::MaxInsns(v) => config.maxinsns.store(v, Ordering::SeqCst),
    }
    let mut mem = build_arg(case.cmd, &case.arg, &env);
    let got = env.sim.ioctl(env.fd, case.cmd, mem.ptr as *mut std::ffi::c_void);
    if let Some(why) = check(case.cmd, &got, &case.expect, &mem) {
        return Some(why);
    }
    drop((std::mem::take(&mut mem.insns), std::mem::take(&mut mem.regions)));
    if let Some(then) = &case.then {
        let mem2 = build_arg(then.cmd, &then.arg, &env);
        let got2 = env.sim.ioctl(env.fd, then.cmd, mem2.ptr as *mut std::ffi::c_void);
        if let Some(why) = check(then.cmd, &got2, &then.expect, &mem2) {
            return Some(format!("then {}({:?}): {why}", then.name, then.arg));
        }
    }
    env.sim.close(env.fd).expect("close");
    drop(env.zbufs);
    None
}

#[test]
fn every_ioctl_in_every_state() {
    assert_eq!(zbpf::hosted::platform::HZ, 1000, "the timeout rows assume hz = 1000");
    let t = table();

    // The table covers every command in every state.
    let mut missing = Vec::new();
    for (name, cmd) in commands() {
        for &state in ALL {
            if !t.cases.iter().any(|c| c.cmd == cmd && c.state == state) {
                missing.push(format!("{name} in {state:?}"));
            }
        }
    }
    assert!(missing.is_empty(), "unspecified: {missing:#?}");

    let bad = bad_pointer_cases(&t);
    let cases: Vec<&Case> = t.cases.iter().chain(bad.iter()).collect();
    let mut failures = Vec::new();
    for case in &cases {
        if let Some(why) = run(case) {
            failures.push(format!(
                "{:?}: {}({:?}) [{:?}]: {why}",
                case.state, case.name, case.arg, case.tweak
            ));
        }
    }
    println!(
        "{} ioctl cases ({} table rows × states, {} bad-pointer cases), {} commands × {} states",
        cases.len(),
        t.cases.len(),
        bad.len(),
        commands().len(),
        ALL.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(cases.len() >= 1500, "the table shrank: {} cases", cases.len());
}

/// The table's negative cases must be able to fail: a descriptor that
/// accepted everything would be caught. (Guards against a runner that
/// compares nothing.)
#[test]
fn the_runner_detects_a_wrong_expectation() {
    let wrong = Case {
        state: Fresh,
        tweak: Tweak::None,
        name: "BIOCGBLEN",
        cmd: BIOCGBLEN,
        arg: Out,
        expect: out32(4097),
        then: None,
    };
    assert!(run(&wrong).is_some());
    let wrong_errno = Case { expect: EINVAL, ..wrong.clone() };
    assert!(run(&wrong_errno).is_some());
    let right = Case { expect: out32(4096), ..wrong };
    assert_eq!(run(&right), None);
}

/// A locked descriptor stays locked: BIOCLOCK cannot be undone, and the
/// whitelisted commands keep working (a read timeout set after the lock
/// takes effect).
#[test]
fn lock_is_irreversible_and_whitelisted_commands_work() {
    let env = setup(Locked);
    let (sim, fd) = (&env.sim, env.fd);
    assert_eq!(ioc0(sim, fd, BIOCLOCK), Ok(()));
    assert_eq!(set_u32(sim, fd, BIOCSDIRECTION, BPF_D_IN), Err(Errno::EPERM));
    set_timeout(sim, fd, 0, 30_000).expect("BIOCSRTIMEOUT after lock");
    let t0 = std::time::Instant::now();
    assert_eq!(read_once(sim, fd).map(|b| b.len()), Ok(0));
    let waited = t0.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(20),
        "the timeout set after BIOCLOCK was ignored ({waited:?})"
    );
    // Statistics and the interface are still readable.
    assert_eq!(stats(sim, fd), (0, 0));
    let mut ifr = IfReq::default();
    assert_eq!(ioc(sim, fd, BIOCGETIF, &mut ifr), Ok(()));
    assert_eq!(&ifr.ifr_name[..5], b"eth0\0");
}
