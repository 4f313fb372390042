//! Runs FreeBSD's 91 bpf_filter regression cases (see `freebsd_cases`)
//! against zbpf's validator and interpreter, over a contiguous buffer and
//! over many segmentations of the same bytes.

mod freebsd_cases;

use freebsd_cases::{cases, Case, LONG_PROGRAM_LOADS};
use zbpf::filter::{validate, Program};

/// The cases FreeBSD expects the validator to refuse.
const INVALID: [&str; 10] = [
    "test0001", "test0075", "test0076", "test0077", "test0078", "test0081", "test0082", "test0083",
    "test0090", "test0091",
];

/// Segmentations of `bytes` that must all give the contiguous answer:
/// every two-way split, one byte per segment, and both of those with empty
/// segments before, between and after.
fn segmentations(bytes: &[u8]) -> Vec<Vec<&[u8]>> {
    const NONE: &[u8] = &[];
    let mut out: Vec<Vec<&[u8]>> = vec![vec![bytes]];
    if bytes.is_empty() {
        // A chain of no segments at all stands for an empty packet too.
        out.push(Vec::new());
    }
    for at in 0..=bytes.len() {
        let (head, tail) = bytes.split_at(at);
        out.push(vec![head, tail]);
        out.push(vec![NONE, head, NONE, tail, NONE]);
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    let mut padded = vec![NONE];
    for &one in &singles {
        padded.push(one);
        padded.push(NONE);
    }
    out.push(singles);
    out.push(padded);
    out
}

fn check(case: &Case, failures: &mut Vec<String>) -> usize {
    let tag = format!("{} ({})", case.name, case.what);
    let verdict = validate(&case.insns);
    let built = Program::new(&case.insns);
    if verdict.is_err() != case.invalid {
        failures.push(format!(
            "{tag}: validate says {:?}, FreeBSD says {}",
            verdict,
            if case.invalid { "invalid" } else { "valid" }
        ));
        return 0;
    }
    if built.is_err() != verdict.is_err() {
        failures.push(format!("{tag}: Program::new disagrees with validate"));
        return 0;
    }
    let Ok(prog) = built else {
        return 0;
    };
    let mut programs = vec![("interpreter", prog)];
    // The same program compiled to native code (x86-64, hosted builds).
    #[cfg(all(feature = "hosted", target_arch = "x86_64"))]
    {
        let native = zbpf::hosted::native::native_program(&case.insns).expect("validated");
        assert!(native.is_native(), "{tag}: the JIT did not attach");
        programs.push(("native code", native));
    }
    let bytes = &case.packet[..case.buflen];
    let mut runs = 0;
    for (how, prog) in &programs {
        let got = prog.run(bytes, case.wirelen);
        runs += 1;
        if got != case.expect {
            failures.push(format!("{tag}: {how} returned {got:#x}, expected {:#x}", case.expect));
        }
        for segs in segmentations(bytes) {
            let got = prog.run_segments(segs.as_slice(), case.wirelen);
            runs += 1;
            if got != case.expect {
                let lens: Vec<usize> = segs.iter().map(|s| s.len()).collect();
                failures.push(format!(
                    "{tag}: {how} over segments {lens:?} returned {got:#x}, expected {:#x}",
                    case.expect
                ));
            }
        }
    }
    runs
}

#[test]
fn freebsd_bpf_filter_regression() {
    let all = cases();
    assert_eq!(all.len(), 91, "FreeBSD's suite has 91 cases");
    for (i, case) in all.iter().enumerate() {
        assert_eq!(case.name, format!("test{:04}", i + 1), "cases out of order");
        assert!(case.buflen <= case.packet.len(), "{}: buflen", case.name);
    }
    let invalid: Vec<&str> = all.iter().filter(|c| c.invalid).map(|c| c.name).collect();
    assert_eq!(invalid, INVALID, "the expected-invalid set");
    let long = &all[83];
    assert_eq!(long.insns.len(), LONG_PROGRAM_LOADS + 1);

    let mut failures = Vec::new();
    let mut runs = 0;
    for case in &all {
        runs += check(case, &mut failures);
    }
    println!(
        "freebsd bpf_filter regression: {} cases, {} refused by the validator, \
         {} run ({} filter runs incl. segmentations), {} failures",
        all.len(),
        invalid.len(),
        all.len() - invalid.len(),
        runs,
        failures.len()
    );
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}
