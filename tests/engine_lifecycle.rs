//! A descriptor's life (bpf-facts.md §1, §6, §8; `bpf_attachd`,
//! `bpf_detachd`, `bpfdetach`, `bpf_setdlt`, `bpfwrite`, `bpf_movein`,
//! `bpf_check_upgrade`, `bpf_stats_sysctl`): open, attach, detach, close
//! and interface departure without leaks; promiscuous mode reference
//! counting; several data-link types; the write path; writer-only
//! descriptors; `net.bpf.stats`.

mod engine_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use engine_support::*;
use zbpf::abi::ioctl::*;
use zbpf::abi::*;
use zbpf::hosted::net::SimIface;
use zbpf::hosted::sim::{oflags, PollFd, Sim};

const MS: Duration = Duration::from_millis(1);
/// IEEE 802.11 (a second DLT for an interface).
const DLT_IEEE802_11: u32 = 105;
/// DLT_ENC: bpf cannot write it (EIO), in FreeBSD as in zbpf.
const DLT_ENC: u32 = 109;

fn write(sim: &Sim, fd: i32, bytes: &[u8]) -> Result<usize> {
    sim.write(fd, bytes.as_ptr(), bytes.len())
}

fn nonblock_read(sim: &Sim, fd: i32) -> Result<Vec<u8>> {
    sim.set_nonblock(fd, true).expect("nonblock");
    let r = read_once(sim, fd);
    sim.set_nonblock(fd, false).expect("block");
    r
}

/// What a descriptor has captured (non-blocking), as frames.
fn captured(sim: &Sim, fd: i32) -> Vec<Vec<u8>> {
    match nonblock_read(sim, fd) {
        Ok(buf) => records(&buf).into_iter().map(|r| r.data).collect(),
        Err(Errno::EWOULDBLOCK) => Vec::new(),
        Err(e) => panic!("read: {e:?}"),
    }
}

fn weak_of(sim: &Sim, fd: i32) -> Weak<zbpf::hosted::sim::SimDescriptor> {
    Arc::downgrade(&sim.descriptor(fd).expect("descriptor"))
}

fn xbpf_for(sim: &Sim, pred: impl Fn(&XbpfD) -> bool) -> Vec<XbpfD> {
    sim.bpf().stats().into_iter().filter(|x| pred(x)).collect()
}

/// Attach, detach (by moving), close: the tap is asked for while a reader
/// listens, every reference to the descriptor goes at close, and the
/// interface is no longer referenced by bpf afterwards.
#[test]
fn open_attach_detach_close_leaves_nothing() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let other = ether(&sim, "eth1");
    let base = Arc::strong_count(&eth);
    assert!(!eth.is_tapped());

    let a = open_on(&sim, "eth0", 4096);
    assert!(eth.is_tapped());
    let b = open_on(&sim, "eth0", 4096);
    let (wa, wb) = (weak_of(&sim, a), weak_of(&sim, b));
    assert_eq!(sim.bpf().open_count(), 2);
    assert!(Arc::strong_count(&eth) > base, "the tap references the interface");

    sim.close(a).expect("close a");
    assert!(wa.upgrade().is_none(), "descriptor a outlived its close");
    assert!(eth.is_tapped(), "b still listens");
    // b moves to eth1: eth0 is no longer tapped, and not referenced.
    attach(&sim, b, "eth1").expect("move");
    assert!(!eth.is_tapped());
    assert!(other.is_tapped());
    assert_eq!(Arc::strong_count(&eth), base, "a detached tap still holds eth0");
    let f = frame(60, 1);
    sim.receive(&eth, &f);
    assert_eq!(captured(&sim, b), Vec::<Vec<u8>>::new());
    sim.receive(&other, &f);
    assert_eq!(captured(&sim, b), vec![f]);

    sim.close(b).expect("close b");
    assert!(wb.upgrade().is_none(), "descriptor b outlived its close");
    assert!(!other.is_tapped());
    assert_eq!(sim.bpf().open_count(), 0);
    assert!(sim.bpf().stats().is_empty());
    assert_eq!(sim.close(b), Err(Errno::EBADF));
    // A descriptor never attached also goes away.
    let c = sim.open(2).expect("open");
    let wc = weak_of(&sim, c);
    sim.close(c).expect("close c");
    assert!(wc.upgrade().is_none());
}

/// The interface leaves while a reader sleeps: the reader wakes with ENXIO,
/// later reads and writes are ENXIO, the listener lists let go of the
/// descriptor and of the interface.
#[test]
fn departure_wakes_the_reader_with_enxio() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = open_on(&sim, "eth0", 4096);
    let writer = sim.open(oflags::O_WRONLY).expect("open");
    attach(&sim, writer, "eth0").expect("attach writer");
    ioc0(&sim, fd, BIOCPROMISC).expect("promisc");
    assert_eq!(eth.promisc_count(), 1);
    let desc = sim.descriptor(fd).expect("descriptor");
    let attached_refs = Arc::strong_count(&desc);
    // Asynchronous too: the departure's wakeup sends SIGIO.
    let pid = std::process::id() as i32;
    let (mut owner, mut on) = (pid, 1i32);
    ioc(&sim, fd, FIOSETOWN, &mut owner).expect("FIOSETOWN");
    ioc(&sim, fd, FIOASYNC, &mut on).expect("FIOASYNC");
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let r = read_once(&sim, fd);
            done.store(true, Ordering::SeqCst);
            r
        });
        // A second descriptor sleeps in poll(2).
        let poller = s.spawn(|| {
            let mut p = [PollFd { fd, events: PollEvents::POLLIN, ..Default::default() }];
            let t0 = std::time::Instant::now();
            (sim.poll(&mut p, 10_000), p[0].revents, t0.elapsed())
        });
        std::thread::sleep(50 * MS);
        assert!(!done.load(Ordering::SeqCst), "the read did not sleep");
        assert!(sim.signals().is_empty());
        sim.remove_iface("eth0");
        assert_eq!(reader.join().expect("reader"), Err(Errno::ENXIO));
        let (n, revents, waited) = poller.join().expect("poller");
        assert_eq!((n, revents), (Ok(1), PollEvents::POLLIN));
        assert!(waited < 5000 * MS, "poll was not woken by the departure ({waited:?})");
    });
    assert_eq!(sim.signals(), vec![(pid, SIGIO)]);
    assert_eq!(read_once(&sim, fd), Err(Errno::ENXIO));
    assert_eq!(nonblock_read(&sim, fd), Err(Errno::ENXIO), "ENXIO comes before EWOULDBLOCK");
    assert_eq!(write(&sim, fd, &frame(60, 1)), Err(Errno::ENXIO));
    assert_eq!(write(&sim, writer, &frame(60, 1)), Err(Errno::ENXIO), "writer-only");
    assert_eq!(get_u32(&sim, fd, BIOCGDLT), Err(Errno::EINVAL));
    // Promiscuous mode is left alone on an interface that is going away
    // (departure_leaves_promiscuous_mode_alone).
    assert!(!eth.is_tapped());
    // Only the open file and this test hold the descriptor now; only this
    // test holds the interface.
    assert!(attached_refs > 2);
    assert_eq!(Arc::strong_count(&desc), 2);
    assert_eq!(Arc::strong_count(&eth), 1);
    assert!(sim.bpf().stats().is_empty());
    // The descriptor can attach elsewhere, even to a new eth0.
    assert_eq!(attach(&sim, fd, "eth0"), Err(Errno::ENXIO));
    let eth_again = ether(&sim, "eth0");
    attach(&sim, fd, "eth0").expect("attach to the new eth0");
    let f = frame(70, 2);
    sim.receive(&eth_again, &f);
    assert_eq!(captured(&sim, fd), vec![f]);
    let weak = Arc::downgrade(&desc);
    drop(desc);
    sim.close(fd).expect("close");
    assert!(weak.upgrade().is_none());
}

/// Data stored when the interface leaves: a blocking read without
/// immediate mode gets ENXIO, a non-blocking (or immediate) read still gets
/// the data first (bpfread checks for pending data before the interface).
#[test]
fn departure_with_data_pending() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let blocking = open_on(&sim, "eth0", 4096);
    let nonblocking = open_on(&sim, "eth0", 4096);
    let immediate = open_on(&sim, "eth0", 4096);
    set_u32(&sim, immediate, BIOCIMMEDIATE, 1).expect("immediate");
    let f = frame(60, 7);
    sim.receive(&eth, &f);
    sim.remove_iface("eth0");
    assert_eq!(read_once(&sim, blocking), Err(Errno::ENXIO));
    assert_eq!(captured(&sim, nonblocking), vec![f.clone()]);
    assert_eq!(nonblock_read(&sim, nonblocking), Err(Errno::ENXIO));
    assert_eq!(records(&read_once(&sim, immediate).expect("read"))[0].data, f);
    assert_eq!(read_once(&sim, immediate), Err(Errno::ENXIO));
    // Poll reports everything asked for on a detached descriptor.
    let mut p = [PollFd {
        fd: blocking,
        events: PollEvents::POLLIN | PollEvents::POLLHUP,
        ..Default::default()
    }];
    assert_eq!(sim.poll(&mut p, 0), Ok(1));
    assert_eq!(p[0].revents, PollEvents::POLLIN | PollEvents::POLLHUP);
}

/// BIOCPROMISC is counted once per descriptor, undone at close, at detach
/// (moving to another interface) and re-applied by BIOCSDLT; a driver error
/// is returned and leaves nothing to undo.
#[test]
fn promiscuous_mode_reference_counting() {
    let sim = Sim::new();
    let wlan = sim.add_iface(SimIface::build(
        "wlan0",
        vec![(dlt::DLT_EN10MB, 14), (DLT_IEEE802_11, 24)],
        1500,
        Some(HOST_MAC),
    ));
    let eth = ether(&sim, "eth0");
    let a = open_on(&sim, "wlan0", 4096);
    let b = open_on(&sim, "wlan0", 4096);
    assert_eq!(wlan.promisc_count(), 0);
    ioc0(&sim, a, BIOCPROMISC).expect("promisc a");
    ioc0(&sim, a, BIOCPROMISC).expect("promisc a again");
    assert_eq!(wlan.promisc_count(), 1, "counted once per descriptor");
    ioc0(&sim, b, BIOCPROMISC).expect("promisc b");
    assert_eq!(wlan.promisc_count(), 2);
    let promisc_of = |name: &str| xbpf_for(&sim, |x| x.bd_ifname.starts_with(name.as_bytes()));
    assert!(promisc_of("wlan0").iter().all(|x| x.bd_promisc == 1));
    sim.close(a).expect("close a");
    assert_eq!(wlan.promisc_count(), 1, "close undoes it");
    // BIOCSDLT detaches (off) and re-applies (on).
    set_u32(&sim, b, BIOCSDLT, DLT_IEEE802_11).expect("BIOCSDLT");
    assert_eq!(wlan.promisc_count(), 1);
    assert_eq!(promisc_of("wlan0")[0].bd_promisc, 1);
    // Moving to another interface leaves promiscuous mode behind.
    attach(&sim, b, "eth0").expect("move");
    assert_eq!(wlan.promisc_count(), 0);
    assert_eq!(eth.promisc_count(), 0, "not re-applied on the new interface");
    sim.close(b).expect("close b");
    assert_eq!((wlan.promisc_count(), eth.promisc_count()), (0, 0));
    // A driver that refuses.
    let c = open_on(&sim, "eth0", 4096);
    eth.fail_promisc(true);
    assert_eq!(ioc0(&sim, c, BIOCPROMISC), Err(Errno::EIO));
    assert_eq!(eth.promisc_count(), 0);
    assert_eq!(promisc_of("eth0")[0].bd_promisc, 0);
    eth.fail_promisc(false);
    sim.close(c).expect("close c");
    assert_eq!(eth.promisc_count(), 0, "a failed BIOCPROMISC was undone at close");
}

/// An interface the platform cannot tap: BIOCSETIF returns the platform's
/// error and leaves the descriptor unattached; a writer-only descriptor's
/// upgrade by BIOCSETF fails the same way and it stays a writer. Once the
/// interface can be tapped, both work.
#[test]
fn an_interface_that_cannot_be_tapped() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    eth.fail_taps(true);
    let fd = sim.open(2).expect("open");
    assert_eq!(attach(&sim, fd, "eth0"), Err(Errno::ENOSPC));
    assert!(!eth.is_tapped());
    assert_eq!(get_u32(&sim, fd, BIOCGDLT), Err(Errno::EINVAL), "not attached");
    assert!(xbpf_for(&sim, |_| true).is_empty(), "no tap entry left behind");
    eth.fail_taps(false);
    attach(&sim, fd, "eth0").expect("BIOCSETIF once the interface can be tapped");
    assert!(eth.is_tapped());
    sim.receive(&eth, &frame(60, 1));
    assert_eq!(captured(&sim, fd).len(), 1);
    sim.close(fd).expect("close");

    // A writer-only descriptor upgraded by BIOCSETF stays a writer.
    let w = sim.open(oflags::O_WRONLY).expect("open");
    attach(&sim, w, "eth0").expect("attach as a writer");
    eth.fail_taps(true);
    assert_eq!(set_prog(&sim, w, BIOCSETF, &ipv4_only()), Err(Errno::ENOSPC));
    assert!(!eth.is_tapped());
    sim.receive(&eth, &frame(60, 1));
    assert_eq!(stats(&sim, w).0, 0, "a writer receives nothing");
    eth.fail_taps(false);
    set_prog(&sim, w, BIOCSETF, &ipv4_only()).expect("BIOCSETF once it can be tapped");
    assert!(eth.is_tapped());
    sim.receive(&eth, &frame(60, 1));
    assert_eq!(stats(&sim, w).0, 1);
    sim.close(w).expect("close");
}

/// A departing interface is not asked to leave promiscuous mode: it is in
/// the middle of its own detach (bpf skips ifpromisc for it too).
#[test]
fn departure_leaves_promiscuous_mode_alone() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = open_on(&sim, "eth0", 4096);
    ioc0(&sim, fd, BIOCPROMISC).expect("BIOCPROMISC");
    assert_eq!(eth.promisc_count(), 1);
    sim.remove_iface("eth0");
    assert_eq!(eth.promisc_count(), 1, "ifpromisc was called on the departing interface");
    sim.close(fd).expect("close");
    assert_eq!(eth.promisc_count(), 1, "nor at close");
}

/// An interface with two data-link types: BIOCGDLTLIST lists both,
/// BIOCSDLT moves between them (resetting the descriptor), BIOCSETIF goes
/// back to the first.
#[test]
fn two_data_link_types() {
    let sim = Sim::new();
    let wlan = sim.add_iface(SimIface::build(
        "wlan0",
        vec![(dlt::DLT_EN10MB, 14), (DLT_IEEE802_11, 24)],
        1500,
        Some(HOST_MAC),
    ));
    let fd = open_on(&sim, "wlan0", 4096);
    let watcher = open_on(&sim, "wlan0", 4096);
    assert_eq!(get_u32(&sim, fd, BIOCGDLT), Ok(dlt::DLT_EN10MB));
    let mut list = BpfDltList::default();
    ioc(&sim, fd, BIOCGDLTLIST, &mut list).expect("count");
    assert_eq!(list.bfl_len, 2);
    let mut dlts = [0u32; 4];
    let mut list = BpfDltList { bfl_len: 4, bfl_list: UserAddr(dlts.as_mut_ptr() as u64) };
    ioc(&sim, fd, BIOCGDLTLIST, &mut list).expect("list");
    assert_eq!(list.bfl_len, 2);
    let mut got = dlts[..2].to_vec();
    got.sort_unstable();
    assert_eq!(got, vec![dlt::DLT_EN10MB, DLT_IEEE802_11]);
    assert_eq!(dlts[2..], [0, 0]);

    // Captured data and counters are reset by the switch.
    sim.receive(&wlan, &frame(60, 1));
    assert_eq!(stats(&sim, fd), (1, 0));
    set_u32(&sim, fd, BIOCSDLT, DLT_IEEE802_11).expect("BIOCSDLT");
    assert_eq!(get_u32(&sim, fd, BIOCGDLT), Ok(DLT_IEEE802_11));
    assert_eq!(fionread(&sim, fd), 0);
    assert_eq!(stats(&sim, fd), (0, 0));
    assert_eq!(set_u32(&sim, fd, BIOCSDLT, 999), Err(Errno::EINVAL));
    assert_eq!(get_u32(&sim, fd, BIOCGDLT), Ok(DLT_IEEE802_11));
    // The simulated driver taps only its Ethernet DLT: the watcher sees the
    // frame, the 802.11 descriptor does not.
    let f = frame(60, 2);
    sim.receive(&wlan, &f);
    assert_eq!(captured(&sim, watcher).last(), Some(&f));
    assert_eq!(stats(&sim, fd), (0, 0));
    assert!(wlan.is_tapped());
    let listed = xbpf_for(&sim, |x| x.bd_ifname.starts_with(b"wlan0\0"));
    assert_eq!(listed.len(), 2, "both descriptors are listed under wlan0");
    // BIOCSETIF goes back to the interface's first DLT.
    attach(&sim, fd, "wlan0").expect("BIOCSETIF");
    assert_eq!(get_u32(&sim, fd, BIOCGDLT), Ok(dlt::DLT_EN10MB));
    sim.receive(&wlan, &f);
    assert_eq!(captured(&sim, fd), vec![f]);
}

/// A write on one end of a pair arrives on the other byte for byte, with
/// the source MAC replaced by the interface's unless BIOCSHDRCMPLT.
#[test]
fn injection_on_a_pair() {
    let sim = Sim::new();
    let a = sim.add_iface(SimIface::ethernet("epair0a", HOST_MAC));
    let b = sim.add_iface(SimIface::ethernet("epair0b", PEER_MAC));
    SimIface::pair(&a, &b);
    let w = open_on(&sim, "epair0a", 4096);
    let r = open_on(&sim, "epair0b", 4096);
    set_u32(&sim, r, BIOCSDIRECTION, BPF_D_IN).expect("direction");

    let mut f = frame(300, 0x42);
    f[6..12].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]);
    assert_eq!(write(&sim, w, &f), Ok(300));
    let mut expected = f.clone();
    expected[6..12].copy_from_slice(&HOST_MAC);
    let wire = a.wire();
    assert_eq!(wire.len(), 1);
    assert_eq!(wire[0].bytes, expected, "source MAC not overwritten");
    assert!(!wire[0].hdrcmplt);
    assert_eq!(wire[0].pcp, 0);
    assert_eq!(captured(&sim, r), vec![expected.clone()]);
    // The writer (INOUT) sees its own frame going out.
    assert_eq!(captured(&sim, w), vec![expected]);

    set_u32(&sim, w, BIOCSHDRCMPLT, 1).expect("BIOCSHDRCMPLT");
    assert_eq!(write(&sim, w, &f), Ok(300));
    let wire = a.wire();
    assert_eq!(wire[1].bytes, f, "header-complete frame was changed");
    assert!(wire[1].hdrcmplt);
    assert_eq!(captured(&sim, r), vec![f.clone()]);

    // BIOCSETVLANPCP is recorded with the frame.
    set_u32(&sim, w, BIOCSETVLANPCP, 5).expect("pcp");
    write(&sim, w, &f).expect("write");
    assert_eq!(a.wire()[2].pcp, 5);
    set_u32(&sim, w, BIOCSETVLANPCP, 0).expect("pcp 0");
    write(&sim, w, &f).expect("write");
    assert_eq!(a.wire()[3].pcp, 0);
    assert!(b.wire().is_empty(), "the peer sent nothing");
}

/// The write path's errors, in bpfwrite's order, and its counters.
#[test]
fn write_errors() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let lo = sim.add_iface(SimIface::loopback("lo0"));
    let enc = sim.add_iface(SimIface::build("enc0", vec![(DLT_ENC, 12)], 1500, None));
    let f = frame(100, 1);

    // Not attached.
    let fd = sim.open(2).expect("open");
    assert_eq!(write(&sim, fd, &f), Err(Errno::ENXIO));
    attach(&sim, fd, "eth0").expect("attach");

    // Sizes: the link header at least, at most MTU bytes after it.
    assert_eq!(write(&sim, fd, &f[..13]), Err(Errno::EMSGSIZE));
    assert_eq!(write(&sim, fd, &frame(1515, 1)), Err(Errno::EMSGSIZE));
    assert_eq!(write(&sim, fd, &f[..14]), Ok(14));
    assert_eq!(write(&sim, fd, &frame(1514, 1)), Ok(1514));
    // Zero bytes: nothing sent, 0 returned.
    assert_eq!(write(&sim, fd, &[]), Ok(0));
    assert_eq!(eth.wire().len(), 2);
    // A bad user pointer.
    assert_eq!(sim.write(fd, LOW_ADDR as *const u8, 100), Err(Errno::EFAULT));

    // The interface is down: ENETDOWN, before the size and zero checks.
    eth.set_up(false);
    assert_eq!(write(&sim, fd, &f), Err(Errno::ENETDOWN));
    assert_eq!(write(&sim, fd, &[]), Err(Errno::ENETDOWN));
    assert_eq!(write(&sim, fd, &f[..5]), Err(Errno::ENETDOWN));
    eth.set_up(true);

    // The write filter: rejected frames are EPERM.
    set_prog(&sim, fd, BIOCSETWF, &ipv4_only()).expect("BIOCSETWF");
    let mut arp = f.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(write(&sim, fd, &arp), Err(Errno::EPERM));
    assert_eq!(write(&sim, fd, &f), Ok(100));
    set_prog(&sim, fd, BIOCSETWF, &ret(0)).expect("BIOCSETWF");
    assert_eq!(write(&sim, fd, &f), Err(Errno::EPERM));
    set_prog(&sim, fd, BIOCSETWF, &[]).expect("no write filter");
    assert_eq!(write(&sim, fd, &arp), Ok(100));
    assert_eq!(eth.wire().len(), 4);
    assert_eq!(eth.wire()[3].bytes[12..14], [0x08, 0x06]);

    // Counters since BIOCSETIF reset them: 13 writes, 4 through the
    // filter, 9 dropped (the errors and the empty write).
    let x = xbpf_for(&sim, |x| x.bd_ifname.starts_with(b"eth0\0"));
    assert_eq!(x.len(), 1);
    assert_eq!((x[0].bd_wcount, x[0].bd_wfcount, x[0].bd_wdcount), (13, 4, 9));

    // A DLT bpf cannot write: EIO (after the zero-length check).
    let e = open_on(&sim, "enc0", 4096);
    assert_eq!(write(&sim, e, &f), Err(Errno::EIO));
    assert_eq!(write(&sim, e, &[]), Ok(0));
    assert!(enc.wire().is_empty());

    // DLT_NULL: a 4-byte header; MTU 16384; at most a 16 KiB cluster.
    let l = open_on(&sim, "lo0", 4096);
    let big = vec![0x45u8; 16_388];
    assert_eq!(write(&sim, l, &big[..3]), Err(Errno::EMSGSIZE));
    assert_eq!(write(&sim, l, &big[..4]), Ok(4));
    assert_eq!(write(&sim, l, &big[..16_384]), Ok(16_384));
    assert_eq!(write(&sim, l, &big), Err(Errno::EIO), "more than MJUM16BYTES");
    let bigger = vec![0u8; 16_389];
    assert_eq!(write(&sim, l, &bigger), Err(Errno::EMSGSIZE));
    assert_eq!(lo.wire().len(), 2);
    assert_eq!(lo.wire()[1].bytes, big[..16_384]);
}

/// M_BCAST/M_MCAST come from the written Ethernet destination, as
/// bpf_movein sets them; a link type without Ethernet addresses has neither.
#[test]
fn written_frames_carry_the_destinations_cast() {
    use zbpf::platform::Cast;
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let lo = sim.add_iface(SimIface::loopback("lo0"));
    let fd = open_on(&sim, "eth0", 4096);
    let to = |dst: [u8; 6]| {
        let mut f = frame(100, 1);
        f[..6].copy_from_slice(&dst);
        f
    };
    for dst in
        [[0xff; 6], [0x01, 0x00, 0x5e, 0, 0, 1], [0x33, 0x33, 0, 0, 0, 1], [2, 0, 0, 0, 0, 9]]
    {
        write(&sim, fd, &to(dst)).expect("write");
    }
    let casts: Vec<Cast> = eth.wire().iter().map(|s| s.cast).collect();
    assert_eq!(casts, [Cast::Broadcast, Cast::Multicast, Cast::Multicast, Cast::Unicast]);
    // DLT_NULL: the first bytes are an address family, not a destination.
    let l = open_on(&sim, "lo0", 4096);
    write(&sim, l, &[0xff; 20]).expect("write");
    assert_eq!(lo.wire()[0].cast, Cast::Unicast);
}

/// BIOCFEEDBACK: the written frame is also injected as received. With
/// direction INOUT the outgoing copy is hidden from every tap of the
/// interface (so nobody sees it twice); otherwise both copies are seen.
#[test]
fn feedback() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let w = open_on(&sim, "eth0", 8192);
    let readers: Vec<i32> = [BPF_D_INOUT, BPF_D_IN, BPF_D_OUT]
        .iter()
        .map(|&d| {
            let fd = open_on(&sim, "eth0", 8192);
            set_u32(&sim, fd, BIOCSDIRECTION, d).expect("direction");
            fd
        })
        .collect();
    let count = |fd| captured(&sim, fd).len();
    let f = frame(100, 3);
    let mut sent = f.clone();
    sent[6..12].copy_from_slice(&HOST_MAC);

    // No feedback: only the outgoing copy.
    write(&sim, w, &f).expect("write");
    assert_eq!(readers.iter().map(|&r| count(r)).collect::<Vec<_>>(), vec![1, 0, 1]);
    assert_eq!(count(w), 1);

    // Feedback with the writer INOUT: only the injected (incoming) copy.
    set_u32(&sim, w, BIOCFEEDBACK, 1).expect("feedback");
    write(&sim, w, &f).expect("write");
    let inout = captured(&sim, readers[0]);
    assert_eq!(inout, vec![sent.clone()], "the frame as sent, once");
    assert_eq!(count(readers[1]), 1);
    assert_eq!(count(readers[2]), 0, "the outgoing copy was not hidden");
    assert_eq!(count(w), 1);

    // Feedback with the writer IN: both copies reach the taps.
    set_u32(&sim, w, BIOCSDIRECTION, BPF_D_IN).expect("direction");
    write(&sim, w, &f).expect("write");
    assert_eq!(readers.iter().map(|&r| count(r)).collect::<Vec<_>>(), vec![2, 1, 1]);
    assert_eq!(count(w), 1, "the writer (IN) sees the injected copy");
    assert_eq!(eth.wire().len(), 3);
}

/// A descriptor opened write-only (or any, with net.bpf.optimize_writers)
/// receives nothing until it sets a real read filter; libpcap's first
/// "ret #snaplen" BIOCSETF only counts down, the second upgrades.
#[test]
fn writer_only_descriptors() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let f = frame(60, 1);
    let recv = |fd| stats(&sim, fd).0;

    let w = sim.open(oflags::O_WRONLY).expect("open");
    attach(&sim, w, "eth0").expect("attach");
    assert!(!eth.is_tapped(), "a writer-only descriptor asked for the tap");
    sim.receive(&eth, &f);
    assert_eq!(recv(w), 0);
    assert_eq!(write(&sim, w, &f), Ok(60), "writer-only descriptors write");
    // Filters that do not upgrade: write filters, empty read filters.
    set_prog(&sim, w, BIOCSETWF, &ipv4_only()).expect("BIOCSETWF");
    set_prog(&sim, w, BIOCSETF, &[]).expect("empty BIOCSETF");
    sim.receive(&eth, &f);
    assert_eq!(recv(w), 0);
    // The first snaplen filter counts down...
    set_prog(&sim, w, BIOCSETF, &ret(262_144)).expect("snaplen 1");
    sim.receive(&eth, &f);
    assert_eq!(recv(w), 0, "upgraded by the first ret #snaplen");
    // ...the second upgrades.
    set_prog(&sim, w, BIOCSETF, &ret(262_144)).expect("snaplen 2");
    assert!(eth.is_tapped());
    sim.receive(&eth, &f);
    assert_eq!(recv(w), 1);

    // Any other program upgrades at once; so does BIOCSETFNR with ret #k.
    for (cmd, prog) in [(BIOCSETF, ipv4_only()), (BIOCSETFNR, ret(96))] {
        let d = sim.open(oflags::O_WRONLY).expect("open");
        attach(&sim, d, "eth0").expect("attach");
        set_prog(&sim, d, cmd, &prog).expect("filter");
        sim.receive(&eth, &f);
        assert_eq!(recv(d), 1);
        sim.close(d).expect("close");
    }

    // A countdown before attach does not carry over: attach resets it.
    let d = sim.open(oflags::O_WRONLY).expect("open");
    set_prog(&sim, d, BIOCSETF, &ret(96)).expect("snaplen before attach");
    attach(&sim, d, "eth0").expect("attach");
    set_prog(&sim, d, BIOCSETF, &ret(96)).expect("snaplen 1");
    sim.receive(&eth, &f);
    assert_eq!(recv(d), 0);
    set_prog(&sim, d, BIOCSETF, &ret(96)).expect("snaplen 2");
    sim.receive(&eth, &f);
    assert_eq!(recv(d), 1);
    // Two before attach upgrade it before it ever attaches.
    let e = sim.open(oflags::O_WRONLY).expect("open");
    set_prog(&sim, e, BIOCSETF, &ret(96)).expect("snaplen 1");
    set_prog(&sim, e, BIOCSETF, &ret(96)).expect("snaplen 2");
    attach(&sim, e, "eth0").expect("attach");
    sim.receive(&eth, &f);
    assert_eq!(recv(e), 1);

    // net.bpf.optimize_writers: every new attachment starts writer-only.
    sim.bpf().config.optimize_writers.store(true, Ordering::SeqCst);
    let o = open_on(&sim, "eth0", 4096);
    sim.receive(&eth, &f);
    assert_eq!(recv(o), 0);
    set_prog(&sim, o, BIOCSETF, &ipv4_only()).expect("filter");
    sim.receive(&eth, &f);
    assert_eq!(recv(o), 1);
}

/// `net.bpf.stats`: one `xbpf_d` per attached descriptor, writer-only ones
/// first; a write of one all-zero record zeroes the readers' counters
/// (except the write-drop count); anything else is EINVAL.
#[test]
fn net_bpf_stats() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let pid = std::process::id() as i32;
    let r = open_on(&sim, "eth0", 256);
    set_u32(&sim, r, BIOCIMMEDIATE, 1).expect("immediate");
    set_u32(&sim, r, BIOCSDIRECTION, BPF_D_IN).expect("direction");
    set_u32(&sim, r, BIOCSHDRCMPLT, 1).expect("hdrcmplt");
    set_u32(&sim, r, BIOCFEEDBACK, 1).expect("feedback");
    set_u32(&sim, r, BIOCSRSIG, 30).expect("sig");
    let mut on = 1i32;
    ioc(&sim, r, FIOASYNC, &mut on).expect("async");
    ioc0(&sim, r, BIOCPROMISC).expect("promisc");
    set_prog(&sim, r, BIOCSETFNR, &ipv4_only()).expect("filter");
    let w = sim.open(oflags::O_WRONLY).expect("open");
    attach(&sim, w, "eth0").expect("attach");
    let unattached = sim.open(2).expect("open");

    let mut arp = frame(60, 1);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    for i in 0..5 {
        sim.receive(&eth, &frame(100, i));
    }
    sim.receive(&eth, &arp);
    write(&sim, w, &frame(60, 2)).expect("write");
    assert_eq!(write(&sim, w, &[]), Ok(0));
    write(&sim, r, &frame(60, 3)).expect("write");
    assert_eq!(write(&sim, r, &[0u8; 10]), Err(Errno::EMSGSIZE));

    let all = sim.bpf().stats();
    assert_eq!(all.len(), 2, "only attached descriptors are listed: {all:?}");
    let (xw, xr) = (&all[0], &all[1]);
    assert_eq!(xw.bd_direction, BPF_D_INOUT as i32, "the writer-only descriptor comes first");
    for x in &all {
        assert_eq!(x.bd_structsize, 168);
        assert_eq!(&x.bd_ifname[..5], b"eth0\0");
        assert_eq!(x.bd_pid, pid);
        assert_eq!(x.bd_bufmode, 1);
        assert_eq!(x.bd_locked, 0);
    }
    assert_eq!((xw.bd_rcount, xw.bd_wcount, xw.bd_wfcount, xw.bd_wdcount), (0, 2, 1, 1));
    assert_eq!(
        (xr.bd_promisc, xr.bd_immediate, xr.bd_hdrcmplt, xr.bd_feedback, xr.bd_async),
        (1, 1, 1, 1, 1)
    );
    assert_eq!((xr.bd_direction, xr.bd_sig), (BPF_D_IN as i32, 30));
    // 6 received, 5 matched; one record held, up to 256-byte buffers.
    assert_eq!((xr.bd_rcount, xr.bd_fcount), (7, 6), "the feedback copy is received too");
    assert_eq!(xr.bd_bufsize, 256);
    assert_eq!(i64::from(xr.bd_slen) + i64::from(xr.bd_hlen), i64::from(fionread(&sim, r)));
    assert!(xr.bd_dcount > 0, "five 126-byte records do not fit two 256-byte buffers");
    assert_eq!(xr.bd_dcount, u64::from(stats(&sim, r).1));
    assert_eq!((xr.bd_wcount, xr.bd_wfcount, xr.bd_wdcount), (2, 1, 1));

    // Bad writes change nothing.
    for bad in [vec![0u8; 167], vec![0u8; 169], Vec::new(), {
        let mut v = vec![0u8; 168];
        v[100] = 1;
        v
    }] {
        assert_eq!(sim.bpf().stats_write(&bad), Err(Errno::EINVAL), "{} bytes", bad.len());
    }
    assert_eq!(sim.bpf().stats()[1].bd_rcount, 7);
    // One zero record zeroes the readers' counters, not the write drops,
    // and leaves writer-only descriptors alone.
    sim.bpf().stats_write(&[0u8; 168]).expect("zero");
    let all = sim.bpf().stats();
    let (xw, xr) = (&all[0], &all[1]);
    assert_eq!(
        (xr.bd_rcount, xr.bd_dcount, xr.bd_fcount, xr.bd_wcount, xr.bd_wfcount, xr.bd_wdcount),
        (0, 0, 0, 0, 0, 1)
    );
    assert_eq!((xw.bd_wcount, xw.bd_wfcount, xw.bd_wdcount), (2, 1, 1));
    assert_eq!(stats(&sim, r), (0, 0));
    sim.close(unattached).expect("close");
    sim.close(r).expect("close");
    sim.close(w).expect("close");
    assert!(sim.bpf().stats().is_empty());
}

/// close(2) while another thread sleeps in read(2) on the same descriptor:
/// as in FreeBSD (cdevpriv destructor at the last file reference), the
/// descriptor is torn down when that read returns, not leaked.
#[test]
fn close_while_a_read_sleeps() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = open_on(&sim, "eth0", 4096);
    set_timeout(&sim, fd, 0, 100_000).expect("timeout");
    let weak = weak_of(&sim, fd);
    std::thread::scope(|s| {
        let reader = s.spawn(|| read_once(&sim, fd));
        std::thread::sleep(30 * MS);
        sim.close(fd).expect("close");
        assert_eq!(sim.close(fd), Err(Errno::EBADF));
        assert_eq!(reader.join().expect("reader").map(|b| b.len()), Ok(0));
    });
    assert!(weak.upgrade().is_none(), "the descriptor outlived its last reference");
    assert!(!eth.is_tapped());
    assert_eq!(sim.bpf().open_count(), 0);
    assert!(sim.bpf().stats().is_empty());
}

/// close(2) of an asynchronous descriptor sends no signal: bpf_dtor drops
/// the owner (funsetown) before detaching. (With BIOCSRSIG set to a fatal
/// signal, a spurious one at close would kill the process.) Attaching, on
/// the other hand, wakes the descriptor.
#[test]
fn close_sends_no_signal() {
    let sim = Sim::new();
    let eth = ether(&sim, "eth0");
    let fd = open_on(&sim, "eth0", 4096);
    let pid = std::process::id() as i32;
    let (mut owner, mut on) = (pid, 1i32);
    ioc(&sim, fd, FIOSETOWN, &mut owner).expect("FIOSETOWN");
    ioc(&sim, fd, FIOASYNC, &mut on).expect("FIOASYNC");
    set_u32(&sim, fd, BIOCSRSIG, 30).expect("BIOCSRSIG");
    set_u32(&sim, fd, BIOCIMMEDIATE, 1).expect("immediate");
    sim.receive(&eth, &frame(60, 1));
    assert_eq!(sim.signals(), vec![(pid, 30)], "the packet signals");
    // Attaching does signal: bpf_attachd ends with bpf_wakeup (for
    // EVFILT_WRITE, which is ready once attached); re-attaching to the same
    // interface only resets.
    ether(&sim, "eth1");
    attach(&sim, fd, "eth1").expect("move");
    assert_eq!(sim.signals().len(), 2, "bpf_attachd's wakeup");
    attach(&sim, fd, "eth1").expect("same interface");
    assert_eq!(sim.signals().len(), 2, "a reset is not a wakeup");
    sim.close(fd).expect("close");
    assert_eq!(sim.signals().len(), 2, "close sent a signal: {:?}", sim.signals());
}
