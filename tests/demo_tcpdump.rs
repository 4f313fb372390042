//! The demo end to end: run `zbpf-demo` with a small packet count and a
//! DNS filter, then read both capture files it wrote (BUFFER and ZBUF) with
//! the real tcpdump (`tcpdump -nn -r`). tcpdump must read every packet the
//! demo says it captured (one line each; our own pcap reader agrees), and
//! every packet must match the filter: tcpdump shows port 53 on every
//! line, and libpcap's interpreter accepts every record. The demo's
//! "matched" count must be what libpcap's interpreter accepts of the frames
//! the demo sends.
//!
//! tcpdump is required (scripts/deps.sh installs it): a missing tcpdump
//! fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use zbpf::abi::dlt::DLT_EN10MB;
use zbpf::hosted::{libpcap, pcap, traffic};

const COUNT: usize = 3000;
const FILTER: &str = "udp port 53";

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("zbpf-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The demo's figures for one mode.
#[derive(Debug, Default)]
struct Report {
    matched: Option<u64>,
    captured: Option<(PathBuf, u64)>,
    balanced: bool,
}

/// The last whitespace-separated field of `line`, as a number.
fn last_number(line: &str) -> u64 {
    line.split_whitespace().last().and_then(|w| w.parse().ok()).unwrap_or_else(|| {
        panic!("no number at the end of {line:?}");
    })
}

fn parse_reports(stdout: &str) -> Vec<Report> {
    let mut reports: Vec<Report> = Vec::new();
    for line in stdout.lines() {
        let t = line.trim();
        if t.starts_with("BUFFER  (") || t.starts_with("ZBUF  (") {
            reports.push(Report::default());
        } else if let Some(r) = reports.last_mut() {
            if t.starts_with("matched by the filter") {
                r.matched = Some(last_number(t));
            } else if let Some(rest) = t.strip_prefix("captured into ") {
                let path = rest.split_whitespace().next().expect("a path");
                r.captured = Some((PathBuf::from(path), last_number(t)));
            } else if t.starts_with("check: matched = captured + dropped") && t.ends_with("ok") {
                r.balanced = true;
            }
        }
    }
    reports
}

/// `tcpdump -nn -r file`: its output lines (one per packet).
fn tcpdump(file: &Path) -> Vec<String> {
    let out = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tcpdump (install it: scripts/deps.sh): {e}"));
    assert!(
        out.status.success(),
        "tcpdump -nn -r {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn tcpdump_reads_what_the_demo_captured() {
    let dir = TempDir::new("demo-tcpdump");
    let out = Command::new(env!("CARGO_BIN_EXE_zbpf-demo"))
        .args(["--count", &COUNT.to_string(), "--filter", FILTER, "--bufsize", "65536"])
        .arg("--out")
        .arg(&dir.0)
        .output()
        .expect("run zbpf-demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "zbpf-demo failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // What the filter must match of the frames the demo sends (its
    // generated traffic: traffic::mixed(4096, 2026), replayed in order).
    let prog = libpcap::compile(FILTER, DLT_EN10MB, 262_144).unwrap();
    let frames = traffic::mixed(4096, 2026);
    let expected_matched = (0..COUNT)
        .map(|i| &frames[i % frames.len()])
        .filter(|f| libpcap::bpf_filter(&prog, f, f.len() as u32) != 0)
        .count() as u64;
    assert!(expected_matched > 10, "the filter matches too little traffic to test");

    let reports = parse_reports(&stdout);
    assert_eq!(reports.len(), 2, "two modes reported:\n{stdout}");
    let mut files = Vec::new();
    for r in &reports {
        assert!(r.balanced, "the demo's own check failed:\n{stdout}");
        assert_eq!(r.matched, Some(expected_matched), "matched count:\n{stdout}");
        let (file, captured) = r.captured.clone().expect("a captured line");
        assert!(captured > 0, "nothing captured:\n{stdout}");
        assert!(file.starts_with(&dir.0), "{} not in the --out directory", file.display());
        files.push((file, captured));
    }
    let names: Vec<_> = files.iter().map(|(f, _)| f.file_name().unwrap().to_owned()).collect();
    assert_eq!(names, ["zbpf-buffer.pcap", "zbpf-zbuf.pcap"]);

    for (file, captured) in files {
        let ours = pcap::read_file(&file).expect("our reader reads the file");
        assert_eq!(ours.len() as u64, captured, "{}: records in the file", file.display());
        for (i, r) in ours.iter().enumerate() {
            assert!(
                libpcap::bpf_filter(&prog, &r.data, r.data.len() as u32) != 0,
                "{}: record {i} does not match {FILTER:?}",
                file.display()
            );
        }
        let lines = tcpdump(&file);
        assert_eq!(lines.len() as u64, captured, "{}: tcpdump lines", file.display());
        for line in &lines {
            assert!(
                line.contains(".53:") || line.contains(".53 >"),
                "{}: tcpdump line without port 53: {line}",
                file.display()
            );
        }
    }
}
