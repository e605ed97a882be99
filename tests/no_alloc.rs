//! The forwarding path allocates nothing per frame in steady state: a
//! counting global allocator watches the switch forward thousands of
//! batches of learned unicast, unknown unicast and broadcast frames, and
//! route batches of IPv4 and of IPv6 packets between two bridges.

use patchbay_dataplane::pipeline::{Switch, SwitchConfig, DEFAULT_BRIDGE};
use patchbay_dataplane::port::memory::{with_vnet_hdr, MemoryPort};
use patchbay_dataplane::wire::Mac;
use patchbay_dataplane::BATCH;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the thread under measurement only: the test harness's own
    /// threads allocate whenever they like.
    static MEASURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if MEASURING.try_with(|m| m.get()).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `f` with this thread's allocations counted; returns how many.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    f();
    MEASURING.with(|m| m.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counter is global: tests that read it take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(len, 0x5a);
    with_vnet_hdr(&f)
}

#[test]
fn forwarding_a_batch_allocates_nothing() {
    switches_without_allocating(false);
}

/// The same on an 802.1Q bridge: p1 an access port of VLAN 10, p2 and p3
/// trunks, so every frame leaves with a tag pushed.
#[test]
fn switching_with_vlan_tags_allocates_nothing() {
    switches_without_allocating(true);
}

fn switches_without_allocating(vlans: bool) {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let a = [2, 0, 0, 0, 0, 0xa];
    let b = [2, 0, 0, 0, 0, 0xb];
    let unknown = [2, 0, 0, 0, 0, 0xc];
    let mut sw = Switch::new(SwitchConfig::default(), None);
    let (p1, p2, p3) = (
        MemoryPort::new("p1"),
        MemoryPort::new("p2"),
        MemoryPort::new("p3"),
    );
    let (h1, h2, h3) = (p1.handle(), p2.handle(), p3.handle());
    let id1 = sw.add_port(Box::new(p1), Some(DEFAULT_BRIDGE)).unwrap();
    let id2 = sw.add_port(Box::new(p2), Some(DEFAULT_BRIDGE)).unwrap();
    sw.add_port(Box::new(p3), Some(DEFAULT_BRIDGE)).unwrap();
    if vlans {
        sw.set_vlan_filtering(DEFAULT_BRIDGE, true).unwrap();
        sw.vlan_add("p1", 10..=10, true, true).unwrap();
        for trunk in ["p2", "p3"] {
            sw.vlan_add(trunk, 10..=10, false, false).unwrap();
        }
    }

    // b speaks first, so the switch knows it is on p2 (in VLAN 10, tagged,
    // on the trunk).
    let mut hello = frame([0xff; 6], b, 60);
    if vlans {
        hello.splice(10 + 12..10 + 12, [0x81, 0x00, 0x00, 10]);
    }
    h2.inject([hello]);
    assert_eq!(sw.process_rx(id2), 1);

    // p1 then receives the same full batch again and again: known unicast to
    // b, broadcast, unknown unicast, in 64- and 1500-byte sizes.
    let batch: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| match i % 3 {
            0 => frame(b, a, if i % 2 == 0 { 60 } else { 1514 }),
            1 => frame([0xff; 6], a, 60),
            _ => frame(unknown, a, 60),
        })
        .collect();
    h1.replay(batch);
    // Warm up: learning a, first use of every queue.
    for _ in 0..10 {
        assert_eq!(sw.process_rx(id1), BATCH);
    }
    let sent_before = h2.sent_count() + h3.sent_count();
    const ROUNDS: u64 = 5_000;
    let allocations = allocations_in(|| {
        for _ in 0..ROUNDS {
            sw.process_rx(id1);
        }
    });
    let sent = h2.sent_count() + h3.sent_count() - sent_before;
    assert_eq!(
        allocations, 0,
        "{allocations} allocations while forwarding {ROUNDS} batches"
    );
    // Every frame went somewhere: unicast to p2; broadcast and unknown to p2 and p3.
    let per_batch = (BATCH / 3 + BATCH % 3) as u64 + 2 * (2 * (BATCH / 3)) as u64;
    assert_eq!(sent, ROUNDS * per_batch);
}

/// An IPv4 packet from 10.1.0.2 to 10.2.0.2 in a frame to `router`.
fn routed_frame(router: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&router);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0u8; 100];
    patchbay_dataplane::wire::ipv4::emit_header(
        &mut ip,
        100,
        1,
        255,
        patchbay_dataplane::wire::IpProtocol::Udp,
        "10.1.0.2".parse().unwrap(),
        "10.2.0.2".parse().unwrap(),
    );
    f.extend_from_slice(&ip);
    with_vnet_hdr(&f)
}

/// Routes batches of `frame(router MAC, host A's MAC)` from br0 (router
/// address `addrs[0]`) to host B behind br1 (`addrs[1]`, neighbour
/// `neighbour`), and checks that steady state allocates nothing.
fn routes_without_allocating(
    addrs: [&str; 2],
    neighbour: &str,
    frame_to: fn([u8; 6], [u8; 6]) -> Vec<u8>,
) {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let host_a = [2, 0, 0, 0, 1, 2];
    let host_b = [2, 0, 0, 0, 2, 2];
    let mut sw = Switch::new(SwitchConfig::default(), None);
    sw.add_bridge("br1").unwrap();
    let (p1, p2) = (MemoryPort::new("p1"), MemoryPort::new("p2"));
    let (h1, h2) = (p1.handle(), p2.handle());
    let id1 = sw.add_port(Box::new(p1), Some(DEFAULT_BRIDGE)).unwrap();
    let id2 = sw.add_port(Box::new(p2), Some("br1")).unwrap();
    sw.addr_add(DEFAULT_BRIDGE, addrs[0].parse().unwrap())
        .unwrap();
    sw.addr_add("br1", addrs[1].parse().unwrap()).unwrap();
    sw.neigh_add(neighbour.parse().unwrap(), Mac(host_b), "br1")
        .unwrap();
    // b speaks first, so the switch knows its port on br1.
    h2.inject([frame([0xff; 6], host_b, 60)]);
    sw.process_rx(id2);
    let router = sw.addrs()[0].mac.0;
    h1.replay((0..BATCH).map(|_| frame_to(router, host_a)).collect());
    for _ in 0..10 {
        assert_eq!(sw.process_rx(id1), BATCH);
    }
    let sent_before = h2.sent_count();
    // The replayed frames are rewritten in place (TTL or hop limit 255 - 1
    // each round), so stay well above 1.
    const ROUNDS: u64 = 200;
    let allocations = allocations_in(|| {
        for _ in 0..ROUNDS {
            sw.process_rx(id1);
        }
    });
    assert_eq!(
        allocations, 0,
        "{allocations} allocations while routing {ROUNDS} batches"
    );
    assert_eq!(
        h2.sent_count() - sent_before,
        ROUNDS * BATCH as u64,
        "{:?}",
        sw.ports()
    );
}

#[test]
fn routing_a_batch_allocates_nothing() {
    routes_without_allocating(["10.1.0.1/24", "10.2.0.1/24"], "10.2.0.2", routed_frame);
}

/// An IPv6/UDP packet from 2001:db8:1::2 to 2001:db8:2::2 in a frame to
/// `router`, hop limit 255.
fn routed_frame6(router: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&router);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x86, 0xdd]);
    let mut ip = vec![0u8; 40 + 60];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&60u16.to_be_bytes());
    ip[6] = 17;
    ip[7] = 255;
    let a: std::net::Ipv6Addr = "2001:db8:1::2".parse().unwrap();
    let b: std::net::Ipv6Addr = "2001:db8:2::2".parse().unwrap();
    ip[8..24].copy_from_slice(&a.octets());
    ip[24..40].copy_from_slice(&b.octets());
    f.extend_from_slice(&ip);
    with_vnet_hdr(&f)
}

#[test]
fn routing_ipv6_allocates_nothing() {
    routes_without_allocating(
        ["2001:db8:1::1/64", "2001:db8:2::1/64"],
        "2001:db8:2::2",
        routed_frame6,
    );
}
