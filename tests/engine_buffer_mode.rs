//! BUFFER mode (kernel buffers and read(2)) against FreeBSD's semantics
//! (bpf-facts.md §4, `bpfread`, `catchpacket`, `bpfpoll`, `bpf_timed_out`,
//! `bpf_wakeup`): the store/hold/free rotation and the exact record layout,
//! read sizes, timeouts, immediate and non-blocking reads, FIONREAD,
//! BIOCFLUSH, statistics, timestamps, direction, poll, SIGIO and EINTR.
//!
//! Timing assertions are generous bounds only (a 50 ms timeout returns
//! within [40 ms, 2 s]).

mod engine_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine_support::*;
use zbpf::abi::ioctl::*;
use zbpf::abi::*;
use zbpf::hosted::net::SimIface;
use zbpf::hosted::sim::{oflags, PollFd, Sim};

const MS: Duration = Duration::from_millis(1);

fn nonblock_read(sim: &Sim, fd: i32) -> Result<Vec<u8>> {
    sim.set_nonblock(fd, true).expect("nonblock");
    let r = read_once(sim, fd);
    sim.set_nonblock(fd, false).expect("block");
    r
}

fn poll1(sim: &Sim, fd: i32, events: PollEvents, timeout_ms: i32) -> PollEvents {
    let mut p = [PollFd { fd, events, ..Default::default() }];
    let n = sim.poll(&mut p, timeout_ms).expect("poll");
    assert_eq!(n, usize::from(!p[0].revents.is_empty()));
    p[0].revents
}

/// What `catchpacket` does to the store buffer, as a model: the records a
/// sequence of packets leaves before the first rotation, and the length.
fn model(
    lens: &[usize],
    snap: usize,
    hdrlen: usize,
    bufsize: usize,
) -> (Vec<(usize, usize)>, usize) {
    let mut slen = 0;
    let mut recs = Vec::new();
    for &len in lens {
        let totlen = (hdrlen + snap.min(len)).min(bufsize);
        let curlen = wordalign(slen);
        assert!(curlen + totlen <= bufsize, "the model is only for packets that fit");
        recs.push((curlen, totlen - hdrlen));
        slen = curlen + totlen;
    }
    (recs, slen)
}

/// Fills both buffers of `fd` with 0xff bytes and reads them out, so that
/// stale bytes would show in any gap the engine fails to zero.
fn dirty_both_buffers(sim: &Sim, iface: &Arc<SimIface>, fd: i32, bufsize: usize) {
    let junk = vec![0xffu8; bufsize + 100];
    for _ in 0..2 {
        sim.receive(iface, &junk);
    }
    // One full buffer held, one full store buffer.
    assert_eq!(nonblock_read(sim, fd).expect("dirty 1").len(), bufsize);
    assert_eq!(nonblock_read(sim, fd).expect("dirty 2").len(), bufsize);
    assert_eq!(nonblock_read(sim, fd), Err(Errno::EWOULDBLOCK));
}

/// The layout of a filled buffer for a link header of `l` bytes: records
/// at BPF_WORDALIGN'ed offsets, `bh_hdrlen` = WORDALIGN(26 + L) − L, zero
/// bytes between 26 and hdrlen and between records, caplen = min(filter,
/// packet, bufsize − hdrlen), datalen = packet length, no padding counted
/// after the last record.
fn layout_for(dlt: u32, l: usize, expected_hdrlen: usize) {
    assert_eq!(hdrlen_for(l), expected_hdrlen);
    let sim = Sim::new();
    let iface = sim.add_iface(SimIface::build("if0", vec![(dlt, l as u32)], 9000, Some(HOST_MAC)));
    let bufsize = 1024;
    for snap in [u32::MAX, 40, 3] {
        let fd = open_on(&sim, "if0", bufsize as u32);
        dirty_both_buffers(&sim, &iface, fd, bufsize);
        if snap != u32::MAX {
            set_prog(&sim, fd, BIOCSETF, &ret(snap)).expect("BIOCSETF");
        }
        let lens = [61, 47, 70, 33, 90, 14, 19];
        let frames: Vec<Vec<u8>> =
            lens.iter().enumerate().map(|(i, &n)| frame(n, 0x10 + i as u8)).collect();
        let (want, slen) = model(&lens, snap as usize, expected_hdrlen, bufsize);
        let check = |buf: &[u8]| {
            assert_eq!(buf.len(), slen, "read returns the stored bytes, unpadded");
            let recs = records(buf);
            assert_eq!(recs.len(), frames.len());
            for ((r, f), &(off, caplen)) in recs.iter().zip(&frames).zip(&want) {
                assert_eq!(r.off, off);
                assert_eq!(usize::from(r.hdrlen), expected_hdrlen);
                assert_eq!(r.caplen as usize, caplen);
                assert_eq!(r.datalen as usize, f.len());
                assert_eq!(r.data, f[..caplen]);
                let gap = &r.header[SIZEOF_HDR..];
                assert!(gap.iter().all(|&b| b == 0), "gap after the header: {gap:?}");
                assert!(r.sec > 1_000_000_000, "default timestamps are wall-clock");
                assert!(r.frac < 1_000_000, "default timestamps are microseconds");
            }
        };
        // The store buffer, rotated by a non-blocking read.
        for f in &frames {
            sim.receive(&iface, f);
        }
        assert_eq!(fionread(&sim, fd) as usize, slen, "FIONREAD counts the store buffer");
        assert_eq!(poll1(&sim, fd, PollEvents::POLLIN, 0), PollEvents::empty(), "nothing held");
        check(&nonblock_read(&sim, fd).expect("read"));
        if snap != u32::MAX {
            sim.close(fd).expect("close");
            continue;
        }
        // The same again, rotated by a packet that does not fit.
        for f in &frames {
            sim.receive(&iface, f);
        }
        let big = frame(1000, 0x77);
        sim.receive(&iface, &big);
        assert_eq!(poll1(&sim, fd, PollEvents::POLLIN, 0), PollEvents::POLLIN);
        assert_eq!(fionread(&sim, fd) as usize, slen + bufsize);
        check(&read_once(&sim, fd).expect("read"));
        // The packet that caused the rotation is alone in the new store
        // buffer, cut to fit it.
        let buf = nonblock_read(&sim, fd).expect("second read");
        let recs = records(&buf);
        assert_eq!(recs.len(), 1);
        assert_eq!((recs[0].off, recs[0].caplen as usize), (0, bufsize - expected_hdrlen));
        assert_eq!(recs[0].datalen, 1000);
        assert_eq!(recs[0].data, big[..bufsize - expected_hdrlen]);
        sim.close(fd).expect("close");
    }
    // A packet larger than the buffer is cut to fit an empty buffer.
    let fd = open_on(&sim, "if0", 128);
    let huge = frame(1000, 0x33);
    sim.receive(&iface, &huge);
    let buf = nonblock_read(&sim, fd).expect("read");
    let recs = records(&buf);
    assert_eq!(buf.len(), 128);
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].caplen as usize, recs[0].datalen), (128 - expected_hdrlen, 1000));
    assert_eq!(recs[0].data, huge[..128 - expected_hdrlen]);
}

#[test]
fn record_layout_ethernet() {
    layout_for(dlt::DLT_EN10MB, 14, 26);
}

#[test]
fn record_layout_null() {
    layout_for(dlt::DLT_NULL, 4, 28);
}

#[test]
fn record_layout_no_link_header() {
    layout_for(dlt::DLT_RAW, 0, 32);
}

/// Two buffers rotate through store, hold and free: while one is held the
/// other fills; with both full, packets are dropped until read(2) frees the
/// held one.
#[test]
fn store_hold_free_rotation_and_drops() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    // One 60-byte packet per 128-byte buffer (86 + 88 > 128).
    let fd = open_on(&sim, "eth0", 128);
    let f: Vec<Vec<u8>> = (0..8).map(|i| frame(60, i)).collect();
    sim.receive(&eth, &f[0]); // store: f0
    assert_eq!(stats(&sim, fd), (1, 0));
    assert_eq!(fionread(&sim, fd), 86);
    sim.receive(&eth, &f[1]); // rotate: hold f0, store f1
    assert_eq!(fionread(&sim, fd), 86 + 86);
    for p in &f[2..5] {
        sim.receive(&eth, p); // no free buffer: dropped
    }
    assert_eq!(stats(&sim, fd), (5, 3));
    assert_eq!(records(&read_once(&sim, fd).expect("read"))[0].data, f[0]);
    // The held buffer is free again: the next packet rotates.
    sim.receive(&eth, &f[5]); // hold f1, store f5
    assert_eq!(stats(&sim, fd), (6, 3));
    assert_eq!(records(&read_once(&sim, fd).expect("read"))[0].data, f[1]);
    assert_eq!(records(&nonblock_read(&sim, fd).expect("read"))[0].data, f[5]);
    assert_eq!(nonblock_read(&sim, fd), Err(Errno::EWOULDBLOCK));
    // A blocked reader is woken by the rotation, not before.
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let r = read_once(&sim, fd);
            done.store(true, Ordering::SeqCst);
            r
        });
        std::thread::sleep(30 * MS);
        sim.receive(&eth, &f[6]);
        std::thread::sleep(50 * MS);
        assert!(!done.load(Ordering::SeqCst), "read returned before a buffer was full");
        sim.receive(&eth, &f[7]);
        let buf = reader.join().expect("reader").expect("read");
        assert_eq!(records(&buf)[0].data, f[6]);
    });
}

/// read(2) must ask for exactly BIOCGBLEN bytes (EINVAL otherwise, checked
/// first); ZBUF descriptors cannot be read (EOPNOTSUPP); a never-attached
/// descriptor reads ENXIO.
#[test]
fn read_size_must_equal_the_buffer_size() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = sim.open(2).expect("open");
    let mut buf = vec![0u8; 70_000];
    assert_eq!(sim.read(fd, buf.as_mut_ptr(), 4096), Err(Errno::ENXIO), "never attached");
    assert_eq!(sim.read(fd, buf.as_mut_ptr(), 4095), Err(Errno::EINVAL));
    assert_eq!(set_blen(&sim, fd, 33), Ok(33));
    assert_eq!(sim.read(fd, buf.as_mut_ptr(), 4096), Err(Errno::EINVAL));
    assert_eq!(sim.read(fd, buf.as_mut_ptr(), 33), Err(Errno::ENXIO));
    assert_eq!(set_blen(&sim, fd, 65_536), Ok(65_536));
    attach(&sim, fd, "eth0").expect("attach");
    sim.receive(&eth, &frame(100, 1));
    sim.set_nonblock(fd, true).expect("nonblock");
    for len in [0, 1, 4096, 65_535, 65_537, 70_000] {
        assert_eq!(sim.read(fd, buf.as_mut_ptr(), len), Err(Errno::EINVAL), "read of {len}");
    }
    assert_eq!(fionread(&sim, fd), 126, "the failed reads consumed nothing");
    assert_eq!(sim.read(fd, buf.as_mut_ptr(), 65_536), Ok(126));
    // A fault copying out is EFAULT.
    sim.receive(&eth, &frame(100, 2));
    assert_eq!(sim.read(fd, LOW_ADDR as *mut u8, 65_536), Err(Errno::EFAULT));
    assert_eq!(fionread(&sim, fd), 0, "the buffer that faulted is consumed, as in FreeBSD");

    let z = sim.open(2).expect("open");
    set_u32(&sim, z, BIOCSETBUFMODE, BPF_BUFMODE_ZBUF).expect("zbuf mode");
    let size = blen(&sim, z);
    assert_eq!(sim.read(z, buf.as_mut_ptr(), size), Err(Errno::EOPNOTSUPP));
    assert_eq!(sim.read(z, buf.as_mut_ptr(), size + 1), Err(Errno::EINVAL));
}

/// BIOCSRTIMEOUT: a read with nothing captured returns 0 bytes after about
/// the timeout; with a partly filled store buffer it returns that buffer.
#[test]
fn read_timeout() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = open_on(&sim, "eth0", 4096);
    set_timeout(&sim, fd, 0, 50_000).expect("BIOCSRTIMEOUT");
    let mut tv = Timeval::default();
    ioc(&sim, fd, BIOCGRTIMEOUT, &mut tv).expect("BIOCGRTIMEOUT");
    assert_eq!((tv.tv_sec, tv.tv_usec), (0, 50_000));

    let t0 = Instant::now();
    assert_eq!(read_once(&sim, fd).expect("read").len(), 0);
    let waited = t0.elapsed();
    assert!(waited >= 40 * MS && waited <= 2000 * MS, "empty read took {waited:?}");

    let f = frame(200, 9);
    sim.receive(&eth, &f);
    let t0 = Instant::now();
    let buf = read_once(&sim, fd).expect("read");
    let waited = t0.elapsed();
    assert!(waited >= 40 * MS && waited <= 2000 * MS, "partial read took {waited:?}");
    let recs = records(&buf);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].data, f);

    // A zero timeout waits for a full buffer (here: until a packet that
    // does not fit arrives).
    set_timeout(&sim, fd, 0, 0).expect("BIOCSRTIMEOUT 0");
    sim.receive(&eth, &frame(3000, 1));
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let r = read_once(&sim, fd);
            done.store(true, Ordering::SeqCst);
            r
        });
        std::thread::sleep(120 * MS);
        assert!(!done.load(Ordering::SeqCst), "a read without timeout returned early");
        sim.receive(&eth, &frame(3000, 2));
        let buf = reader.join().expect("reader").expect("read");
        assert_eq!(records(&buf).len(), 1);
    });
}

/// Immediate mode: each packet is readable at once, and wakes a sleeping
/// reader.
#[test]
fn immediate_mode() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = open_on(&sim, "eth0", 65_536);
    set_u32(&sim, fd, BIOCIMMEDIATE, 1).expect("BIOCIMMEDIATE");
    // A long read timeout: without the immediate wakeup the reader would
    // return only after 5 s.
    set_timeout(&sim, fd, 5, 0).expect("timeout");
    let f1 = frame(80, 1);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let t0 = Instant::now();
            (read_once(&sim, fd), t0.elapsed())
        });
        std::thread::sleep(30 * MS);
        sim.receive(&eth, &f1);
        let (buf, waited) = reader.join().expect("reader");
        let buf = buf.expect("read");
        assert!(waited < 2500 * MS, "the packet did not wake the reader ({waited:?})");
        let recs = records(&buf);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].data, f1);
    });
    // Already pending: readable and returned at once.
    for i in 0..3 {
        let f = frame(90 + i, 10 + i as u8);
        sim.receive(&eth, &f);
        assert_eq!(
            poll1(&sim, fd, PollEvents::POLLIN | PollEvents::POLLRDNORM, 0),
            PollEvents::POLLIN | PollEvents::POLLRDNORM
        );
        let t0 = Instant::now();
        let recs = records(&read_once(&sim, fd).expect("read"));
        assert!(t0.elapsed() < 2500 * MS);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].data, f);
    }
    // Turned off: data waits for the timeout again.
    set_u32(&sim, fd, BIOCIMMEDIATE, 0).expect("BIOCIMMEDIATE 0");
    sim.receive(&eth, &frame(60, 1));
    assert_eq!(poll1(&sim, fd, PollEvents::POLLIN, 0), PollEvents::empty());
}

/// Non-blocking reads: EWOULDBLOCK (EAGAIN) when nothing is captured, the
/// partial store buffer otherwise; set by open flags, fcntl or FIONBIO.
#[test]
fn non_blocking_reads() {
    assert_eq!(Errno::EWOULDBLOCK, Errno::EAGAIN);
    assert_eq!(Errno::EWOULDBLOCK.get(), 35);
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = sim.open(oflags::O_RDWR | oflags::O_NONBLOCK).expect("open");
    attach(&sim, fd, "eth0").expect("attach");
    assert_eq!(read_once(&sim, fd), Err(Errno::EWOULDBLOCK));
    let f = frame(64, 3);
    sim.receive(&eth, &f);
    let recs = records(&read_once(&sim, fd).expect("read"));
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].data, f);
    assert_eq!(read_once(&sim, fd), Err(Errno::EWOULDBLOCK));

    // FIONBIO 0 makes it blocking (a timed read returns 0 bytes); 1 again
    // non-blocking.
    set_timeout(&sim, fd, 0, 20_000).expect("timeout");
    let mut off = 0i32;
    ioc(&sim, fd, FIONBIO, &mut off).expect("FIONBIO 0");
    assert_eq!(read_once(&sim, fd).map(|b| b.len()), Ok(0));
    let mut on = 1i32;
    ioc(&sim, fd, FIONBIO, &mut on).expect("FIONBIO 1");
    assert_eq!(read_once(&sim, fd), Err(Errno::EWOULDBLOCK));
}

/// FIONREAD counts the store buffer plus the hold buffer.
#[test]
fn fionread_counts_store_and_hold() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = open_on(&sim, "eth0", 256);
    assert_eq!(fionread(&sim, fd), 0);
    sim.receive(&eth, &frame(60, 1));
    assert_eq!(fionread(&sim, fd), 86);
    sim.receive(&eth, &frame(61, 2));
    assert_eq!(fionread(&sim, fd), 88 + 87);
    // 176 + 126 > 256: rotation; hold 175, store 126.
    sim.receive(&eth, &frame(100, 3));
    assert_eq!(fionread(&sim, fd), 175 + 126);
    read_once(&sim, fd).expect("read");
    assert_eq!(fionread(&sim, fd), 126);
}

/// BIOCFLUSH discards both buffers and zeroes the counters.
#[test]
fn flush_discards_everything() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = open_on(&sim, "eth0", 128);
    for i in 0..4 {
        sim.receive(&eth, &frame(60, i));
    }
    assert_eq!(stats(&sim, fd), (4, 2));
    assert!(fionread(&sim, fd) > 0);
    ioc0(&sim, fd, BIOCFLUSH).expect("BIOCFLUSH");
    assert_eq!(fionread(&sim, fd), 0);
    assert_eq!(stats(&sim, fd), (0, 0));
    assert_eq!(nonblock_read(&sim, fd), Err(Errno::EWOULDBLOCK));
    // Capture goes on afterwards.
    let f = frame(70, 9);
    sim.receive(&eth, &f);
    assert_eq!(records(&nonblock_read(&sim, fd).expect("read"))[0].data, f);
}

/// What resets a descriptor (reset_d): BIOCSETF and BIOCSETIF (even to the
/// same interface) discard stored packets and zero the counters;
/// BIOCSETFNR, BIOCSDLT to the current DLT and BIOCSETWF do not.
#[test]
fn what_resets_a_descriptor() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = open_on(&sim, "eth0", 4096);
    let keeps = |what: &str, f: &dyn Fn()| {
        sim.receive(&eth, &frame(60, 1));
        let before = (fionread(&sim, fd), stats(&sim, fd));
        assert!(before.0 > 0);
        f();
        assert_eq!((fionread(&sim, fd), stats(&sim, fd)), before, "{what} reset the descriptor");
    };
    keeps("BIOCSETFNR", &|| set_prog(&sim, fd, BIOCSETFNR, &ret(1000)).expect("BIOCSETFNR"));
    keeps("BIOCSETWF", &|| set_prog(&sim, fd, BIOCSETWF, &ret(1000)).expect("BIOCSETWF"));
    keeps("BIOCSDLT", &|| set_u32(&sim, fd, BIOCSDLT, dlt::DLT_EN10MB).expect("BIOCSDLT"));
    let resets = |what: &str, f: &dyn Fn()| {
        sim.receive(&eth, &frame(60, 1));
        assert!(fionread(&sim, fd) > 0);
        f();
        assert_eq!((fionread(&sim, fd), stats(&sim, fd)), (0, (0, 0)), "{what} did not reset");
    };
    resets("BIOCSETF", &|| set_prog(&sim, fd, BIOCSETF, &ret(1000)).expect("BIOCSETF"));
    resets("BIOCSETIF", &|| attach(&sim, fd, "eth0").expect("BIOCSETIF"));
    resets("BIOCFLUSH", &|| ioc0(&sim, fd, BIOCFLUSH).expect("BIOCFLUSH"));
}

/// Several threads may read one descriptor (FreeBSD's
/// tests/sys/net/bpf/bpf_multi_read.c): every captured packet is returned
/// exactly once, and captured + dropped = received.
#[test]
fn concurrent_readers_share_one_descriptor() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = open_on(&sim, "eth0", 512);
    set_u32(&sim, fd, BIOCIMMEDIATE, 1).expect("immediate");
    set_timeout(&sim, fd, 0, 50_000).expect("timeout");
    let sending = AtomicBool::new(true);
    let total = 400usize;
    let seen: Vec<Vec<u16>> = std::thread::scope(|s| {
        let readers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let mut got = Vec::new();
                    loop {
                        let buf = read_len(&sim, fd, 512).expect("read");
                        if buf.is_empty() && !sending.load(Ordering::SeqCst) {
                            return got;
                        }
                        for r in records(&buf) {
                            got.push(u16::from_be_bytes([r.data[14], r.data[15]]));
                        }
                    }
                })
            })
            .collect();
        for i in 0..total {
            let mut f = frame(80, 0);
            f[14..16].copy_from_slice(&(i as u16).to_be_bytes());
            sim.receive(&eth, &f);
            if i % 50 == 0 {
                std::thread::sleep(MS);
            }
        }
        sending.store(false, Ordering::SeqCst);
        readers.into_iter().map(|r| r.join().expect("reader")).collect()
    });
    let mut all: Vec<u16> = seen.concat();
    let captured = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), captured, "a packet was returned twice");
    let (recv, drop) = stats(&sim, fd);
    assert_eq!(recv as usize, total);
    assert_eq!(captured + drop as usize, total, "captured {captured}, dropped {drop}");
    assert!(captured > 0);
}

/// BIOCGSTATS: received counts packets before the filter (after the
/// direction check); dropped counts packets lost with both buffers full.
/// BIOCSETF zeroes them, BIOCSETFNR does not.
#[test]
fn statistics() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = open_on(&sim, "eth0", 4096);
    set_prog(&sim, fd, BIOCSETF, &ret(0)).expect("reject all");
    for i in 0..10 {
        sim.receive(&eth, &frame(100, i));
    }
    assert_eq!(stats(&sim, fd), (10, 0));
    assert_eq!(fionread(&sim, fd), 0, "rejected packets are not stored");
    // A filter that keeps half of them.
    set_prog(&sim, fd, BIOCSETFNR, &ipv4_only()).expect("BIOCSETFNR");
    assert_eq!(stats(&sim, fd), (10, 0), "BIOCSETFNR keeps the counters");
    let mut arp = frame(60, 1);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    for i in 0..6 {
        let ip = frame(60, 2);
        sim.receive(&eth, if i % 2 == 0 { &arp } else { &ip });
    }
    assert_eq!(stats(&sim, fd), (16, 0));
    assert_eq!(records(&nonblock_read(&sim, fd).expect("read")).len(), 3);
    set_prog(&sim, fd, BIOCSETF, &[]).expect("BIOCSETF");
    assert_eq!(stats(&sim, fd), (0, 0), "BIOCSETF resets the counters");
    // Outgoing packets are not counted by an inbound-only descriptor.
    set_u32(&sim, fd, BIOCSDIRECTION, BPF_D_IN).expect("direction");
    sim.transmit(&eth, &frame(60, 3));
    assert_eq!(stats(&sim, fd), (0, 0));
    // Drops: 4096-byte buffers, 1000-byte packets: four per buffer.
    for i in 0..20 {
        sim.receive(&eth, &frame(1000, i));
    }
    // 1026-byte records at offsets 0, 1032, 2064: three per buffer; six
    // stored, the rest dropped.
    assert_eq!(stats(&sim, fd), (20, 14));
}

/// Nanoseconds since the epoch (or since boot) of a record's timestamp,
/// read according to its format.
fn ts_nanos(r: &Rec, tstamp: u32) -> i128 {
    let sub = match tstamp & BPF_T_FORMAT_MASK {
        BPF_T_MICROTIME => {
            assert!(r.frac < 1_000_000, "microseconds {} in a bpf_hdr", r.frac);
            r.frac * 1000
        }
        BPF_T_NANOTIME => {
            assert!(r.frac < 1_000_000_000, "nanoseconds {} in a bpf_xhdr", r.frac);
            r.frac
        }
        BPF_T_BINTIME => (1_000_000_000u64 * (r.frac >> 32)) >> 32,
        _ => unreachable!(),
    };
    i128::from(r.sec) * 1_000_000_000 + i128::from(sub)
}

/// Every BPF_T_* setting: NONE gives zeros; MICROTIME writes a bpf_hdr
/// (timeval), NANOTIME and BINTIME a bpf_xhdr (same 26-byte layout on
/// amd64, but ns or a binary fraction); MONOTONIC counts from boot,
/// otherwise wall clock; FAST is never later than NORMAL. One timestamp per
/// packet is shared by descriptors of the same quality.
#[test]
fn timestamps_in_every_format() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let settings = [0, 1, 2, 3, 0x100, 0x101, 0x102, 0x200, 0x201, 0x202, 0x300, 0x301, 0x302];
    let fds: Vec<i32> = settings
        .iter()
        .map(|&t| {
            let fd = open_on(&sim, "eth0", 8192);
            set_u32(&sim, fd, BIOCSTSTAMP, t).expect("BIOCSTSTAMP");
            assert_eq!(get_u32(&sim, fd, BIOCGTSTAMP), Ok(t));
            fd
        })
        .collect();
    let wall_before =
        SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as i128;
    let frames: Vec<Vec<u8>> = (0..3).map(|i| frame(60 + i, i as u8)).collect();
    for f in &frames {
        sim.receive(&eth, f);
        std::thread::sleep(3 * MS);
    }
    let wall_after =
        SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as i128;
    let mut got = std::collections::HashMap::new();
    for (&t, &fd) in settings.iter().zip(&fds) {
        let recs = records(&nonblock_read(&sim, fd).expect("read"));
        assert_eq!(recs.len(), 3);
        for (r, f) in recs.iter().zip(&frames) {
            assert_eq!(r.data, *f);
            assert_eq!(r.hdrlen, 26, "the same header length for bpf_hdr and bpf_xhdr");
        }
        if t == BPF_T_NONE {
            assert!(recs.iter().all(|r| r.sec == 0 && r.frac == 0), "BPF_T_NONE must give zeros");
            continue;
        }
        let ns: Vec<i128> = recs.iter().map(|r| ts_nanos(r, t)).collect();
        assert!(ns.windows(2).all(|w| w[0] <= w[1]), "{t:#x}: time went backwards: {ns:?}");
        if t & BPF_T_MONOTONIC != 0 {
            // Time since the simulated boot: small, and far from the epoch.
            assert!(ns.iter().all(|&n| (0..3_600_000_000_000).contains(&n)), "{t:#x}: {ns:?}");
        } else {
            let slack = 2_000_000_000;
            assert!(
                ns.iter().all(|&n| n >= wall_before - slack && n <= wall_after + slack),
                "{t:#x}: {ns:?} not within the wall clock [{wall_before}, {wall_after}]"
            );
        }
        got.insert(t, (recs, ns));
    }
    // Same quality, same clock reading: the formats agree exactly.
    for base in [0x000, 0x200] {
        let (bin, _) = &got[&(base | BPF_T_BINTIME)];
        let (micro, _) = &got[&(base | BPF_T_MICROTIME)];
        let (nano, _) = &got[&(base | BPF_T_NANOTIME)];
        for i in 0..3 {
            assert_eq!(micro[i].sec, bin[i].sec);
            assert_eq!(nano[i].sec, bin[i].sec);
            assert_eq!(
                micro[i].frac,
                (1_000_000u64 * (bin[i].frac >> 32)) >> 32,
                "{base:#x} µs of packet {i}"
            );
            assert_eq!(
                nano[i].frac,
                (1_000_000_000u64 * (bin[i].frac >> 32)) >> 32,
                "{base:#x} ns of packet {i}"
            );
        }
    }
    // Wall clock = monotonic + boot time, the same offset for every packet.
    let (wall, _) = &got[&BPF_T_BINTIME];
    let (mono, _) = &got[&(BPF_T_BINTIME | BPF_T_MONOTONIC)];
    let offset = |i: usize| {
        let w = (i128::from(wall[i].sec) << 64) + i128::from(wall[i].frac);
        let m = (i128::from(mono[i].sec) << 64) + i128::from(mono[i].frac);
        w - m
    };
    assert!(offset(0) > (1_000_000_000i128 << 64), "boot time is after 2001");
    assert_eq!(offset(0), offset(1));
    assert_eq!(offset(1), offset(2));
    // FAST (tick precision) is never later than NORMAL, and close to it.
    for (fast, normal) in [(0x101, 0x001), (0x301, 0x201), (0x100, 0x000), (0x302, 0x202)] {
        let (_, f) = &got[&fast];
        let (_, n) = &got[&normal];
        for i in 0..3 {
            assert!(
                f[i] <= n[i],
                "FAST {fast:#x} after NORMAL for packet {i}: {} > {}",
                f[i],
                n[i]
            );
            assert!(n[i] - f[i] < 1_000_000_000, "FAST {fast:#x} too far behind");
        }
    }
    // A change applies to the next packets, without a reset.
    set_u32(&sim, fds[0], BIOCSTSTAMP, BPF_T_NONE).expect("BIOCSTSTAMP");
    sim.receive(&eth, &frames[0]);
    let recs = records(&nonblock_read(&sim, fds[0]).expect("read"));
    assert_eq!((recs[0].sec, recs[0].frac), (0, 0));
}

/// BIOCSDIRECTION: IN sees received packets, OUT transmitted ones, INOUT
/// both; the filter sees only what the direction admits.
#[test]
fn direction() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let dirs = [BPF_D_IN, BPF_D_OUT, BPF_D_INOUT];
    let fds: Vec<i32> = dirs
        .iter()
        .map(|&d| {
            let fd = open_on(&sim, "eth0", 4096);
            set_u32(&sim, fd, BIOCSDIRECTION, d).expect("BIOCSDIRECTION");
            fd
        })
        .collect();
    let rx = frame(70, 1);
    let tx = frame(80, 2);
    sim.receive(&eth, &rx);
    sim.transmit(&eth, &tx);
    let seen = |fd| -> Vec<Vec<u8>> {
        records(&nonblock_read(&sim, fd).expect("read")).into_iter().map(|r| r.data).collect()
    };
    assert_eq!(seen(fds[0]), vec![rx.clone()]);
    assert_eq!(seen(fds[1]), vec![tx.clone()]);
    assert_eq!(seen(fds[2]), vec![rx.clone(), tx.clone()]);
    assert_eq!(stats(&sim, fds[0]), (1, 0));
    assert_eq!(stats(&sim, fds[1]), (1, 0));
    assert_eq!(stats(&sim, fds[2]), (2, 0));
    // Changed on the fly.
    set_u32(&sim, fds[0], BIOCSDIRECTION, BPF_D_OUT).expect("BIOCSDIRECTION");
    sim.receive(&eth, &rx);
    sim.transmit(&eth, &tx);
    assert_eq!(seen(fds[0]), vec![tx.clone()]);
    // A paired interface: what one sends, the other receives.
    let a = sim.add_iface(SimIface::ethernet("epair0a", HOST_MAC));
    let b = sim.add_iface(SimIface::ethernet("epair0b", PEER_MAC));
    SimIface::pair(&a, &b);
    let on_b = open_on(&sim, "epair0b", 4096);
    set_u32(&sim, on_b, BIOCSDIRECTION, BPF_D_IN).expect("BIOCSDIRECTION");
    sim.transmit(&a, &tx);
    assert_eq!(seen(on_b), vec![tx]);
}

/// poll(2): POLLIN once a buffer is held (or, in immediate mode, with any
/// data); POLLOUT always; everything requested on a detached descriptor.
/// With a read timeout, poll returns after the timeout when data is pending,
/// and the next read rotates at once.
#[test]
fn poll_readiness() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let idle = sim.open(2).expect("open");
    let all =
        PollEvents::POLLIN | PollEvents::POLLRDNORM | PollEvents::POLLOUT | PollEvents::POLLHUP;
    assert_eq!(poll1(&sim, idle, all | PollEvents::POLLPRI, 0), all, "not attached");

    let fd = open_on(&sim, "eth0", 128);
    assert_eq!(poll1(&sim, fd, PollEvents::POLLIN | PollEvents::POLLOUT, 0), PollEvents::POLLOUT);
    sim.receive(&eth, &frame(60, 1));
    assert_eq!(poll1(&sim, fd, PollEvents::POLLIN, 0), PollEvents::empty(), "store data only");
    let t0 = Instant::now();
    assert_eq!(poll1(&sim, fd, PollEvents::POLLIN, 60), PollEvents::empty());
    assert!(t0.elapsed() >= 50 * MS, "poll timed out early");
    sim.receive(&eth, &frame(60, 2));
    assert_eq!(
        poll1(&sim, fd, PollEvents::POLLIN | PollEvents::POLLRDNORM, 0),
        PollEvents::POLLIN | PollEvents::POLLRDNORM
    );
    read_once(&sim, fd).expect("read");
    assert_eq!(poll1(&sim, fd, PollEvents::POLLIN, 0), PollEvents::empty());

    // A sleeping poll is woken by the rotation.
    std::thread::scope(|s| {
        let poller = s.spawn(|| {
            let t0 = Instant::now();
            (poll1(&sim, fd, PollEvents::POLLIN, 5000), t0.elapsed())
        });
        std::thread::sleep(30 * MS);
        sim.receive(&eth, &frame(60, 3));
        let (ev, waited) = poller.join().expect("poller");
        assert_eq!(ev, PollEvents::POLLIN);
        assert!(waited < 2500 * MS, "poll was not woken ({waited:?})");
    });
    read_once(&sim, fd).expect("read");
    nonblock_read(&sim, fd).expect("drain");

    // Read timeout 600 ms: poll arms it; when it fires with data pending,
    // poll returns, and the next read returns that data without waiting.
    set_timeout(&sim, fd, 0, 600_000).expect("timeout");
    let f = frame(60, 4);
    sim.receive(&eth, &f);
    let t0 = Instant::now();
    assert_eq!(poll1(&sim, fd, PollEvents::POLLIN, 5000), PollEvents::POLLIN);
    let waited = t0.elapsed();
    assert!(waited >= 500 * MS && waited < 4000 * MS, "poll returned after {waited:?}");
    let t0 = Instant::now();
    // No ioctl in between: any ioctl would reset the timed-out state.
    let recs = records(&read_len(&sim, fd, 128).expect("read"));
    assert!(
        t0.elapsed() < 500 * MS,
        "the read after the timed-out poll waited ({:?})",
        t0.elapsed()
    );
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].data, f);
    // Without data the timer fires silently: poll runs to its own timeout.
    let t0 = Instant::now();
    assert_eq!(poll1(&sim, fd, PollEvents::POLLIN, 900), PollEvents::empty());
    assert!(t0.elapsed() >= 800 * MS);

    // Immediate mode: any stored packet makes the descriptor readable.
    set_u32(&sim, fd, BIOCIMMEDIATE, 1).expect("immediate");
    sim.receive(&eth, &frame(60, 5));
    assert_eq!(poll1(&sim, fd, PollEvents::POLLIN, 0), PollEvents::POLLIN);

    // The interface leaves: everything requested is reported.
    sim.remove_iface("eth0");
    assert_eq!(poll1(&sim, fd, all, 0), all);
}

/// SIGIO for asynchronous descriptors: FIOASYNC and an owner (FIOSETOWN, or
/// TIOCSPGRP for a process group); BIOCSRSIG picks the signal, 0 sends none.
#[test]
fn sigio_for_async_descriptors() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = open_on(&sim, "eth0", 128);
    let pid = std::process::id() as i32;
    let rotate = |tag: u8| {
        // Two packets of which the second does not fit: one rotation.
        sim.receive(&eth, &frame(60, tag));
        sim.receive(&eth, &frame(60, tag + 1));
        nonblock_read(&sim, fd).expect("read held");
        nonblock_read(&sim, fd).expect("read store");
    };
    let mut owner = pid;
    ioc(&sim, fd, FIOSETOWN, &mut owner).expect("FIOSETOWN");
    rotate(1);
    assert!(sim.signals().is_empty(), "no SIGIO without FIOASYNC");
    let mut on = 1i32;
    ioc(&sim, fd, FIOASYNC, &mut on).expect("FIOASYNC");
    rotate(3);
    assert_eq!(sim.signals(), vec![(pid, SIGIO)]);
    set_u32(&sim, fd, BIOCSRSIG, 30).expect("BIOCSRSIG");
    rotate(5);
    assert_eq!(sim.signals().last(), Some(&(pid, 30)));
    assert_eq!(sim.signals().len(), 2);
    // Immediate mode signals every packet.
    set_u32(&sim, fd, BIOCIMMEDIATE, 1).expect("immediate");
    sim.receive(&eth, &frame(60, 7));
    assert_eq!(sim.signals().len(), 3);
    nonblock_read(&sim, fd).expect("read");
    // Signal 0: none.
    set_u32(&sim, fd, BIOCSRSIG, 0).expect("BIOCSRSIG 0");
    sim.receive(&eth, &frame(60, 8));
    assert_eq!(sim.signals().len(), 3);
    nonblock_read(&sim, fd).expect("read");
    // A process group through TIOCSPGRP.
    set_u32(&sim, fd, BIOCSRSIG, SIGIO).expect("BIOCSRSIG");
    let mut pgrp = 4321i32;
    ioc(&sim, fd, TIOCSPGRP, &mut pgrp).expect("TIOCSPGRP");
    sim.receive(&eth, &frame(60, 9));
    assert_eq!(sim.signals().last(), Some(&(-4321, SIGIO)));
    nonblock_read(&sim, fd).expect("read");
    // FIOASYNC off: none.
    let mut off = 0i32;
    ioc(&sim, fd, FIOASYNC, &mut off).expect("FIOASYNC 0");
    sim.receive(&eth, &frame(60, 10));
    assert_eq!(sim.signals().len(), 4);
}

/// A signal interrupts a sleeping read with EINTR; the descriptor works
/// afterwards.
#[test]
fn signal_interrupts_a_sleeping_read() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = open_on(&sim, "eth0", 4096);
    for timeout_us in [0, 5_000_000] {
        set_timeout(&sim, fd, 0, 0).expect("timeout");
        if timeout_us != 0 {
            set_timeout(&sim, fd, timeout_us / 1_000_000, timeout_us % 1_000_000).expect("timeout");
        }
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let r = read_once(&sim, fd);
                done.store(true, Ordering::SeqCst);
                r
            });
            std::thread::sleep(50 * MS);
            assert!(!done.load(Ordering::SeqCst), "the read did not sleep");
            sim.interrupt(fd).expect("interrupt");
            assert_eq!(reader.join().expect("reader"), Err(Errno::EINTR));
        });
    }
    set_u32(&sim, fd, BIOCIMMEDIATE, 1).expect("immediate");
    let f = frame(60, 1);
    sim.receive(&eth, &f);
    assert_eq!(records(&read_once(&sim, fd).expect("read"))[0].data, f);
}
