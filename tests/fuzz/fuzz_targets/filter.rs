//! Fuzz target: validate arbitrary instructions, and run every program the
//! validator accepts over the packet in the input, contiguous and split
//! into segments, interpreted and as native code: no panic, no crash, and
//! every way gives the same answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zbpf::abi::BpfInsn;
use zbpf::filter::Program;

fuzz_target!(|data: &[u8]| {
    // Layout: [n_insns][n_insns * 8 bytes of instructions][cut points...][packet]
    let Some((&n, rest)) = data.split_first() else { return };
    let n = usize::from(n % 64);
    if rest.len() < n * 8 + 2 {
        return;
    }
    let (code, rest) = rest.split_at(n * 8);
    let insns: Vec<BpfInsn> = code.chunks_exact(8).filter_map(BpfInsn::decode).collect();
    let (cuts, packet) = rest.split_at(2);
    let wirelen = packet.len() as u32 ^ u32::from(cuts[0]);
    let Ok(prog) = Program::new(&insns) else { return };
    let whole = prog.run(packet, wirelen);
    let a = usize::from(cuts[0]).min(packet.len());
    let b = usize::from(cuts[1]).min(packet.len()).max(a);
    let segs: [&[u8]; 4] = [&packet[..a], &[], &packet[a..b], &packet[b..]];
    assert_eq!(whole, prog.run_segments(&segs[..], wirelen));
    let native = zbpf::hosted::native::native_program(&insns).expect("validated above");
    assert_eq!(whole, native.run(packet, wirelen));
    assert_eq!(whole, native.run_segments(&segs[..], wirelen));
});
