//! Native code details that the differential tests reach only by chance:
//! jumps of every length (short and long encodings), the dispatcher that
//! calls many programs from their own call sites, and the engine's use of
//! it when many descriptors listen on one interface and change filters.

mod engine_support;

use std::sync::Arc;

use engine_support::*;
use zbpf::abi::ioctl::{BIOCIMMEDIATE, BIOCSETF};
use zbpf::abi::op::*;
use zbpf::abi::{dlt, BpfInsn};
use zbpf::filter::jit::{compile, compile_dispatch, DISPATCH_SLOTS, FALLBACK};
use zbpf::filter::{NativeCode, Program};
use zbpf::hosted::native::HostedNative;
use zbpf::hosted::net::Segmentation;
use zbpf::hosted::platform::HostedPlatform;
use zbpf::hosted::sim::Sim;
use zbpf::hosted::{libpcap, traffic};
use zbpf::platform::Platform;

fn native(insns: &[BpfInsn]) -> Arc<dyn NativeCode> {
    HostedNative::map(&compile(insns)).expect("native code maps")
}

/// What native code answers for a head of `head.len()` bytes.
fn call(code: &dyn NativeCode, head: &[u8], wirelen: u32) -> u64 {
    let mut mem = [0u32; 16];
    // SAFETY: `code` is a validated program's JIT code, mapped by `code`;
    // it reads only `head` and `mem`.
    unsafe { code.entry()(head.as_ptr(), head.len() as u64, wirelen, mem.as_mut_ptr()) }
}

/// A program whose jump skips `n` loads: the jump's displacement grows
/// with `n`, across the rel8 limit. Unconditional (`ja`) or conditional.
fn skipping(n: usize, ja: bool) -> Vec<BpfInsn> {
    let mut p = vec![BpfInsn::stmt(BPF_LD | BPF_H | BPF_ABS, 12)];
    if ja {
        p.push(BpfInsn::jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, 1));
        p.push(BpfInsn::stmt(BPF_JMP | BPF_JA, n as u32 + 1));
        p.push(BpfInsn::stmt(BPF_RET | BPF_K, 0));
    } else {
        p.push(BpfInsn::jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, n as u8 + 1));
    }
    for i in 0..n {
        p.push(BpfInsn::stmt(BPF_LD | BPF_B | BPF_ABS, 14 + (i % 40) as u32));
    }
    p.push(BpfInsn::stmt(BPF_RET | BPF_A, 0));
    p.push(BpfInsn::stmt(BPF_RET | BPF_K, 7));
    p
}

#[test]
fn jumps_of_every_length_agree_with_the_interpreter() {
    let frames = traffic::mixed(64, 11);
    let mut checked = 0;
    for ja in [false, true] {
        let lengths: Vec<usize> = if ja { (0..300).collect() } else { (0..255).collect() };
        for n in lengths {
            let insns = skipping(n, ja);
            let prog = Program::new(&insns).expect("valid");
            let code = native(&insns);
            for f in &frames {
                let wire = f.len() as u32;
                let r = call(&*code, f, wire);
                assert_eq!(r, u64::from(prog.run(f, wire)), "n={n} ja={ja}");
                // A head too short for the loads falls back (at the
                // load past its end), or answers as the interpreter does.
                // Falling back there, the whole packet is rejected.
                let r = call(&*code, &f[..20], wire);
                let want = u64::from(prog.run(&f[..20], wire));
                assert!(r == want || (r == FALLBACK && want == 0), "n={n}");
                checked += 2;
            }
        }
    }
    println!("{checked} native runs over jumps of every length");
}

#[test]
fn jumps_are_short_where_targets_are_near() {
    // Shorter jumps are the point: a small program's code must be smaller
    // than the same program with a jump too long for a rel8.
    let near = compile(&skipping(1, false));
    let far = compile(&skipping(40, false));
    // The hot part: what a head long enough for every load runs.
    let near_len = near.hot_end - near.entry;
    let far_len = far.hot_end - far.entry;
    // 39 more loads of 4 bytes each (disp8), and two jumps 4 bytes longer:
    // the one over the loads, and the prologue's bounds check, whose
    // checked copy follows the hot part.
    assert_eq!(far_len - near_len, 39 * 4 + 2 * 4, "near {near_len}, far {far_len}");
}

/// A load past the head returns exactly FALLBACK, from either copy of the
/// program: `Program::run` takes the low half, 0, as the answer for a
/// whole packet.
#[test]
fn a_fallback_is_exactly_fallback() {
    // ldh [12]; jeq #0x800 -> ld [30]; ret a (copy 1 on heads under 34).
    let code = native(&[
        BpfInsn::stmt(BPF_LD | BPF_H | BPF_ABS, 12),
        BpfInsn::jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, 0, 1),
        BpfInsn::stmt(BPF_LD | BPF_W | BPF_ABS, 30),
        BpfInsn::stmt(BPF_RET | BPF_A, 0),
    ]);
    let mut pkt = [0u8; 40];
    pkt[12] = 8;
    pkt[30..34].copy_from_slice(&[0, 0, 0, 7]);
    for len in [0, 13, 14, 33] {
        assert_eq!(call(&*code, &pkt[..len], 40), FALLBACK, "head of {len}");
    }
    assert_eq!(call(&*code, &pkt[..34], 40), 7);
}

#[test]
fn a_port_filter_fits_in_three_cache_lines() {
    // Dozens of descriptors each run their own filter's code for every
    // packet: its size is what the instruction cache holds per descriptor.
    for port in [53, 2001, 65535] {
        let c = compile(&compiled(&format!("udp port {port}")));
        let len = c.hot_end - c.entry;
        println!("udp port {port}: {len} bytes ({} with the checked copy)", c.code.len() - c.entry);
        assert!(len <= 3 * 64, "udp port {port}: {len} bytes");
    }
}

fn expressions() -> Vec<&'static str> {
    vec![
        "udp port 53",
        "tcp",
        "ip6",
        "arp",
        "udp",
        "icmp",
        "vlan",
        "tcp port 80",
        "udp portrange 1000-2000",
        "ip and len > 200",
        "not ip",
        "tcp[13] & 2 != 0",
    ]
}

fn compiled(expr: &str) -> Vec<BpfInsn> {
    libpcap::compile(expr, dlt::DLT_EN10MB, 65535).expect("libpcap compiles")
}

#[test]
fn dispatcher_puts_each_answer_in_its_slot() {
    let exprs = expressions();
    let frames = traffic::mixed(200, 5);
    for len in [2, 7, DISPATCH_SLOTS] {
        // Every third slot has no program.
        let programs: Vec<Option<Arc<dyn NativeCode>>> = (0..len)
            .map(|i| (i % 3 != 2).then(|| native(&compiled(exprs[i % exprs.len()]))))
            .collect();
        let targets: Vec<Option<u64>> =
            programs.iter().map(|p| p.as_ref().map(|c| c.entry() as usize as u64)).collect();
        let dispatcher =
            HostedNative::map(&compile_dispatch(&targets).expect("within slots")).expect("maps");
        for f in &frames {
            for head in [&f[..], &f[..f.len().min(30)]] {
                let mut out = [0x5a5a_5a5a_5a5a_5a5au64; DISPATCH_SLOTS + 1];
                let wire = f.len() as u32;
                // A dispatcher of `len` slots writes out[..len]; the programs
                // it calls use no scratch memory.
                // SAFETY: it and its programs stay mapped (`programs`).
                unsafe {
                    dispatcher.entry()(
                        head.as_ptr(),
                        head.len() as u64,
                        wire,
                        out.as_mut_ptr().cast(),
                    )
                };
                for (i, p) in programs.iter().enumerate() {
                    let want = p.as_ref().map_or(u64::MAX, |c| call(&**c, head, wire));
                    assert_eq!(out[i], want, "slot {i} of {len}");
                }
                assert!(out[len..].iter().all(|&w| w == 0x5a5a_5a5a_5a5a_5a5a), "wrote past {len}");
            }
        }
    }
    assert!(compile_dispatch(&vec![None; DISPATCH_SLOTS + 1]).is_none());
}

/// A filter that goes through scratch memory: no dispatcher may call it.
fn through_scratch() -> Vec<BpfInsn> {
    vec![
        BpfInsn::stmt(BPF_LD | BPF_W | BPF_LEN, 0),
        BpfInsn::stmt(BPF_ST, 3),
        BpfInsn::stmt(BPF_LD | BPF_MEM, 3),
        BpfInsn::jump(BPF_JMP | BPF_JGT | BPF_K, 300, 0, 1),
        BpfInsn::stmt(BPF_RET | BPF_K, 100),
        BpfInsn::stmt(BPF_RET | BPF_K, 0),
    ]
}

/// The filter of descriptor `i` in round `round`.
fn filter_of(i: usize, round: usize) -> Vec<BpfInsn> {
    let exprs = expressions();
    match (i + round) % 15 {
        13 => through_scratch(),
        14 => ret(96),
        k => compiled(exprs[(k + i / 15) % exprs.len()]),
    }
}

/// The bytes each record holds, checked against what an interpreter
/// running the descriptor's filter keeps of each frame.
fn check(sim: &Sim, fd: i32, filter: &[BpfInsn], frames: &[Vec<u8>], what: &str) {
    let prog = Program::new(filter).expect("valid");
    let want: Vec<Vec<u8>> = frames
        .iter()
        .filter_map(|f| {
            let keep = prog.run(f, f.len() as u32) as usize;
            (keep > 0).then(|| f[..keep.min(f.len())].to_vec())
        })
        .collect();
    let mut got = Vec::new();
    while fionread(sim, fd) > 0 {
        got.extend(records(&read_once(sim, fd).expect("read")).into_iter().map(|r| r.data));
    }
    assert_eq!(got.len(), want.len(), "{what}: records");
    assert!(got == want, "{what}: captured bytes differ");
}

#[test]
fn many_readers_get_what_their_own_filters_accept() {
    let sim = Sim::new();
    let iface = ether(&sim, "em0");
    // Frames in chains of up to 6 segments: some heads are too short for
    // the native code, which must then leave the answer to the interpreter.
    iface.set_segmentation(Segmentation::Random(6));
    // Two full groups and a partial one.
    let n = 2 * DISPATCH_SLOTS + 6;
    let fds: Vec<i32> = (0..n)
        .map(|i| {
            let fd = sim.open(2).expect("open");
            set_blen(&sim, fd, 1 << 20).expect("BIOCSBLEN");
            // A read returns what the store buffer holds.
            set_u32(&sim, fd, BIOCIMMEDIATE, 1).expect("BIOCIMMEDIATE");
            set_prog(&sim, fd, BIOCSETF, &filter_of(i, 0)).expect("BIOCSETF");
            attach(&sim, fd, "em0").expect("BIOCSETIF");
            fd
        })
        .collect();
    let dispatched = || {
        let epoch = &sim.bpf().platform.services.epoch;
        let section = epoch.enter();
        let key = <HostedPlatform as Platform>::iface_key(&iface);
        let n = sim.bpf().tap_with_readers(&section, key, primary_dlt(&iface));
        let n = n.map_or(0, |t| t.dispatched(&section));
        epoch.exit(section);
        n
    };
    // Every filter but the constant ones and those using scratch memory.
    let callable = |round: usize| (0..n).filter(|&i| !matches!((i + round) % 15, 13 | 14)).count();
    assert_eq!(dispatched(), callable(0));

    for round in 0..3 {
        if round > 0 {
            // Change every other descriptor's filter: the tap's
            // dispatchers must follow.
            for (i, &fd) in fds.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
                set_prog(&sim, fd, BIOCSETF, &filter_of(i, round)).expect("BIOCSETF");
            }
        }
        let frames = traffic::mixed(300, 100 + round as u64);
        for f in &frames {
            sim.receive(&iface, f);
        }
        for (i, &fd) in fds.iter().enumerate() {
            let r = if round > 0 && i % 2 == 1 { round } else { 0 };
            check(&sim, fd, &filter_of(i, r), &frames, &format!("round {round}, descriptor {i}"));
        }
    }
    // Closing descriptors shrinks the groups; the rest still capture right.
    for &fd in &fds[..DISPATCH_SLOTS] {
        sim.close(fd).expect("close");
    }
    let frames = traffic::mixed(100, 999);
    for f in &frames {
        sim.receive(&iface, f);
    }
    for (i, &fd) in fds.iter().enumerate().skip(DISPATCH_SLOTS) {
        let r = if i % 2 == 1 { 2 } else { 0 };
        check(&sim, fd, &filter_of(i, r), &frames, &format!("after closing, descriptor {i}"));
    }
    assert!(dispatched() > 0);
}
