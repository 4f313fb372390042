//! Fuzz target: the pcap and pcapng reader over any bytes. No panic; the
//! strict, partial and streaming readers agree; and every packet it returns
//! is a run of bytes of the input, each after the one before (the reader
//! copies packets out of the file, it never makes bytes up or pads them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zbpf::hosted::pcap::{self, PcapReader, MAX_RECORD};

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let (records, err) = pcap::read_partial(data);
    match pcap::parse(data) {
        Ok(all) => {
            assert!(err.is_none(), "parse succeeded but read_partial failed: {err:?}");
            assert_eq!(all, records, "parse and read_partial disagree");
        }
        Err(e) => assert_eq!(Some(e.to_string()), err.map(|e| e.to_string())),
    }
    let mut streamed = Vec::new();
    if let Ok(reader) = PcapReader::new(data) {
        streamed.extend(reader.map_while(Result::ok));
    }
    assert_eq!(streamed, records, "the streaming reader disagrees");
    let mut cursor = 0;
    for (i, r) in records.iter().enumerate() {
        assert!(r.data.len() <= MAX_RECORD as usize, "record {i}: {} bytes", r.data.len());
        assert_eq!(r.caplen() as usize, r.data.len(), "record {i}: caplen");
        let at = find(&data[cursor..], &r.data).unwrap_or_else(|| {
            panic!("record {i} ({} bytes) is not in the input after offset {cursor}", r.data.len())
        });
        cursor += at + r.data.len();
    }
});
