//! Simulated network interfaces: what the kernel's ifnets are to zbpf.
//!
//! An interface has a name, data-link types, an MTU, a MAC, an up flag and
//! a promiscuous count. Frames it "receives" or "sends" are handed to the
//! taps by the simulator, split into segment chains of random shapes as
//! mbuf chains are. Frames a descriptor writes are recorded on the wire and
//! passed to a peer, if the interface is one end of a pair (like epair(4)).

#![forbid(unsafe_code)]

use std::prelude::rust_2021::*;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::abi::{dlt, Errno, Result};
use crate::platform::{Cast, NetIf, Outgoing, TapCookie};

/// A frame a descriptor wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentFrame {
    /// The bytes as sent.
    pub bytes: Vec<u8>,
    /// BIOCSHDRCMPLT was set.
    pub hdrcmplt: bool,
    /// VLAN priority requested with BIOCSETVLANPCP (0 = none).
    pub pcp: u8,
    /// M_BCAST/M_MCAST as the engine decided them.
    pub cast: Cast,
}

/// What the simulator is told about traffic an interface originates.
pub enum Event<'a> {
    /// A frame sent by a descriptor's write.
    Sent {
        /// The frame.
        frame: &'a [u8],
        /// Marked M_PROMISC, as the kernel's output marks the original of a
        /// feedback write ([`Outgoing::hide_from_taps`]); the taps'
        /// verdict on it is the engine's
        /// ([`StackMarks::verdict`](crate::engine::StackMarks::verdict)).
        promisc: bool,
    },
    /// A frame injected as received (feedback).
    Injected(&'a [u8]),
}

type Hook = Arc<dyn Fn(&Arc<SimIface>, Event<'_>) + Send + Sync>;

/// How frames are cut into segments before the taps see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segmentation {
    /// One segment per frame.
    Contiguous,
    /// Up to this many segments, some empty, cut at random places.
    Random(usize),
}

/// One simulated interface.
pub struct SimIface {
    name: String,
    dlts: Vec<(u32, u32)>,
    mtu: u32,
    mac: Option<[u8; 6]>,
    up: AtomicBool,
    promisc: AtomicI32,
    tapped: AtomicBool,
    fail_promisc: AtomicBool,
    fail_taps: AtomicBool,
    wire: Mutex<Vec<SentFrame>>,
    peer: Mutex<Weak<SimIface>>,
    hook: Mutex<Option<Hook>>,
    me: Weak<SimIface>,
    rng: AtomicU64,
    /// The most segments a frame is cut into (1: contiguous); read per
    /// packet, so an atomic rather than a lock.
    max_segments: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimIface {
    /// An Ethernet interface (DLT_EN10MB, MTU 1500).
    pub fn ethernet(name: &str, mac: [u8; 6]) -> Arc<SimIface> {
        Self::build(name, vec![(dlt::DLT_EN10MB, 14)], 1500, Some(mac))
    }

    /// A loopback-style interface (DLT_NULL, MTU 16384).
    pub fn loopback(name: &str) -> Arc<SimIface> {
        Self::build(name, vec![(dlt::DLT_NULL, 4)], 16384, None)
    }

    /// Any interface: data-link types (primary first) with header lengths.
    pub fn build(
        name: &str,
        dlts: Vec<(u32, u32)>,
        mtu: u32,
        mac: Option<[u8; 6]>,
    ) -> Arc<SimIface> {
        let seed = name.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Arc::new_cyclic(|me| SimIface {
            name: name.to_owned(),
            dlts,
            mtu,
            mac,
            up: AtomicBool::new(true),
            promisc: AtomicI32::new(0),
            tapped: AtomicBool::new(false),
            fail_promisc: AtomicBool::new(false),
            fail_taps: AtomicBool::new(false),
            wire: Mutex::new(Vec::new()),
            peer: Mutex::new(Weak::new()),
            hook: Mutex::new(None),
            me: me.clone(),
            rng: AtomicU64::new(seed | 1),
            max_segments: AtomicUsize::new(6),
        })
    }

    /// Connects two interfaces back to back, as epair(4) does.
    pub fn pair(a: &Arc<SimIface>, b: &Arc<SimIface>) {
        *lock(&a.peer) = Arc::downgrade(b);
        *lock(&b.peer) = Arc::downgrade(a);
    }

    /// The other end of a pair.
    pub fn peer(&self) -> Option<Arc<SimIface>> {
        lock(&self.peer).upgrade()
    }

    /// Installs the simulator's traffic hook.
    pub(crate) fn set_hook(&self, hook: Hook) {
        *lock(&self.hook) = Some(hook);
    }

    /// Sets IFF_UP.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// How many descriptors asked for promiscuous mode.
    pub fn promisc_count(&self) -> i32 {
        self.promisc.load(Ordering::SeqCst)
    }

    /// Makes the next promiscuous-mode requests fail (driver error).
    pub fn fail_promisc(&self, fail: bool) {
        self.fail_promisc.store(fail, Ordering::SeqCst);
    }

    /// Makes the next requests for taps fail, as a kernel that cannot hook
    /// the interface does (ENOSPC).
    pub fn fail_taps(&self, fail: bool) {
        self.fail_taps.store(fail, Ordering::SeqCst);
    }

    /// Whether zbpf has asked for taps on this interface.
    pub fn is_tapped(&self) -> bool {
        self.tapped.load(Ordering::SeqCst)
    }

    /// Frames descriptors wrote, in order.
    pub fn wire(&self) -> Vec<SentFrame> {
        lock(&self.wire).clone()
    }

    /// Chooses how frames are segmented.
    pub fn set_segmentation(&self, s: Segmentation) {
        let max = match s {
            Segmentation::Contiguous => 1,
            Segmentation::Random(n) => n.clamp(1, 8),
        };
        self.max_segments.store(max, Ordering::Relaxed);
    }

    /// Whether frames reach the taps whole (one segment).
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.max_segments.load(Ordering::Relaxed) <= 1
    }

    /// Cuts `frame` into segments (at most 8) for one delivery.
    pub fn segment<'a>(&self, frame: &'a [u8], out: &mut [&'a [u8]; 8]) -> usize {
        let max = self.max_segments.load(Ordering::Relaxed);
        if max <= 1 {
            out[0] = frame;
            return 1;
        }
        let mut x = self.rng.load(Ordering::Relaxed);
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let count = 1 + (next() as usize % max);
        let mut cuts = [0usize; 8];
        for c in cuts.iter_mut().take(count - 1) {
            *c = next() as usize % (frame.len() + 1);
        }
        cuts[..count - 1].sort_unstable();
        let mut start = 0;
        for (i, slot) in out.iter_mut().enumerate().take(count) {
            let end = if i + 1 < count { cuts[i] } else { frame.len() };
            *slot = &frame[start..end.max(start)];
            start = end.max(start);
        }
        self.rng.store(x, Ordering::Relaxed);
        count
    }

    fn emit(&self, ev: Event<'_>) {
        let hook = lock(&self.hook).clone();
        if let (Some(hook), Some(me)) = (hook, self.me.upgrade()) {
            hook(&me, ev);
        }
    }
}

impl NetIf for Arc<SimIface> {
    fn name(&self) -> &str {
        &self.name
    }
    fn dlts(&self) -> &[(u32, u32)] {
        &self.dlts
    }
    fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }
    fn mtu(&self) -> u32 {
        self.mtu
    }
    fn lladdr(&self) -> Option<[u8; 6]> {
        self.mac
    }
    fn set_promisc(&self, on: bool) -> Result<()> {
        if on && self.fail_promisc.load(Ordering::SeqCst) {
            return Err(Errno::EIO);
        }
        self.promisc.fetch_add(if on { 1 } else { -1 }, Ordering::SeqCst);
        Ok(())
    }
    fn output(&self, out: &Outgoing<'_>) -> Result<()> {
        lock(&self.wire).push(SentFrame {
            bytes: out.frame.to_vec(),
            hdrcmplt: out.hdrcmplt,
            pcp: out.pcp,
            cast: out.cast,
        });
        self.emit(Event::Sent { frame: out.frame, promisc: out.hide_from_taps });
        Ok(())
    }
    fn input(&self, frame: &[u8]) -> Result<()> {
        self.emit(Event::Injected(frame));
        Ok(())
    }
    fn set_tapped(&self, tap: Option<TapCookie>) -> Result<()> {
        if tap.is_some() && self.fail_taps.load(Ordering::SeqCst) {
            return Err(Errno::ENOSPC);
        }
        self.tapped.store(tap.is_some(), Ordering::SeqCst);
        Ok(())
    }
}

/// The simulated machine's interfaces.
#[derive(Default)]
pub struct SimNet {
    ifaces: Mutex<Vec<Arc<SimIface>>>,
}

impl SimNet {
    /// Adds an interface.
    pub fn add(&self, iface: Arc<SimIface>) {
        lock(&self.ifaces).push(iface);
    }

    /// Looks an interface up by name (`ifunit`).
    pub fn find(&self, name: &str) -> Option<Arc<SimIface>> {
        lock(&self.ifaces).iter().find(|i| i.name == name).cloned()
    }

    /// Removes an interface (it departs).
    pub fn remove(&self, name: &str) -> Option<Arc<SimIface>> {
        let mut v = lock(&self.ifaces);
        let pos = v.iter().position(|i| i.name == name)?;
        Some(v.remove(pos))
    }
}
