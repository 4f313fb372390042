//! A generator of realistic Ethernet traffic for the simulator: IPv4 and
//! IPv6, TCP, UDP and ICMP, ARP, VLAN-tagged frames, with correct IPv4
//! header checksums, in a reproducible mix of sizes.

#![forbid(unsafe_code)]

use std::prelude::rust_2021::*;

/// A small deterministic PRNG (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The MAC of the simulated interface's host.
pub const HOST_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
/// The MAC of the simulated peer.
pub const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02];

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in h.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ether(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(1514);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An IPv4 packet in an Ethernet frame, `total` bytes long on the wire
/// (at least 60), with `proto`, ports and a patterned payload.
pub fn ipv4_frame(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    sport: u16,
    dport: u16,
    total: usize,
    seq: u32,
) -> Vec<u8> {
    let total = total.clamp(60, 1514);
    let mut f = ether(PEER_MAC, HOST_MAC, 0x0800);
    let ip_len = (total - 14) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let ck = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    f.extend_from_slice(&ip);
    match proto {
        6 => {
            let mut tcp = [0u8; 20];
            tcp[0..2].copy_from_slice(&sport.to_be_bytes());
            tcp[2..4].copy_from_slice(&dport.to_be_bytes());
            tcp[4..8].copy_from_slice(&seq.to_be_bytes());
            tcp[12] = 0x50;
            tcp[13] = if seq % 16 == 0 { 0x02 } else { 0x18 };
            tcp[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
            f.extend_from_slice(&tcp);
        }
        17 => {
            let udp_len = ip_len - 20;
            f.extend_from_slice(&sport.to_be_bytes());
            f.extend_from_slice(&dport.to_be_bytes());
            f.extend_from_slice(&udp_len.to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        }
        _ => {
            f.extend_from_slice(&[8, 0, 0, 0]);
            f.extend_from_slice(&(seq as u16).to_be_bytes());
            f.extend_from_slice(&(seq as u16).to_be_bytes());
        }
    }
    let mut i = 0u8;
    while f.len() < total {
        f.push(i);
        i = i.wrapping_add(1);
    }
    f
}

/// A UDP over IPv6 frame of `total` bytes.
pub fn ipv6_udp_frame(sport: u16, dport: u16, total: usize) -> Vec<u8> {
    let total = total.clamp(62, 1514);
    let mut f = ether(PEER_MAC, HOST_MAC, 0x86dd);
    let payload = (total - 14 - 40) as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&payload.to_be_bytes());
    f.push(17);
    f.push(64);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&payload.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(total, 0x5a);
    f
}

/// An ARP request.
pub fn arp_frame(target: [u8; 4]) -> Vec<u8> {
    let mut f = ether([0xff; 6], PEER_MAC, 0x0806);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[192, 0, 2, 2]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f.resize(60, 0);
    f
}

/// A VLAN-tagged (802.1Q) IPv4 UDP frame.
pub fn vlan_frame(vid: u16, total: usize, seq: u32) -> Vec<u8> {
    let inner =
        ipv4_frame([10, 1, 0, 2], [10, 1, 0, 1], 17, 5000, 53, total.saturating_sub(4), seq);
    let mut f = inner[..12].to_vec();
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&inner[12..]);
    f
}

/// A reproducible mix: mostly TCP (ports 80, 443, 22) and UDP (53, 123),
/// some ICMP, IPv6, ARP and VLAN, sizes from 60 to 1514 bytes.
pub fn mixed(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let sizes = [60, 64, 128, 256, 576, 1024, 1280, 1500, 1514];
    (0..count)
        .map(|i| {
            let seq = i as u32;
            let size = sizes[rng.below(sizes.len() as u64) as usize];
            let host = [192, 0, 2, 1 + rng.below(20) as u8];
            let peer = [198, 51, 100, 1 + rng.below(50) as u8];
            let eph = 49152 + rng.below(16000) as u16;
            match rng.below(20) {
                0..=7 => {
                    let port = [80, 443, 22][rng.below(3) as usize];
                    ipv4_frame(peer, host, 6, eph, port, size, seq)
                }
                8..=11 => {
                    let port = [53, 123][rng.below(2) as usize];
                    ipv4_frame(peer, host, 17, eph, port, size, seq)
                }
                12..=13 => ipv4_frame(peer, host, 1, 0, 0, size.min(1000), seq),
                14..=16 => ipv6_udp_frame(eph, 443, size),
                17 => arp_frame(host),
                _ => vlan_frame(100 + rng.below(3) as u16, size, seq),
            }
        })
        .collect()
}

/// `count` identical-size UDP frames of exactly `size` bytes (benchmarks).
pub fn fixed(count: usize, size: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| ipv4_frame([198, 51, 100, 7], [192, 0, 2, 1], 17, 40000, 9, size, i as u32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_asked_size_and_a_valid_ip_checksum() {
        for f in mixed(200, 7) {
            assert!((60..=1514).contains(&f.len()));
            if f[12..14] == [0x08, 0x00] {
                assert_eq!(ipv4_checksum(&f[14..34]), 0);
            }
        }
        assert!(fixed(3, 64).iter().all(|f| f.len() == 64));
    }
}
