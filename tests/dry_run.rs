//! `trace packet` runs a made-up packet through the same stage code as a
//! real one, deciding without committing. For each kind of packet the trace
//! tests look at, the made-up packet and a real packet with the same bytes,
//! in on the same port in the same state, take the same decisions: the
//! same events, stage by stage, but for what a dry run leaves out
//! (learning the source MAC).

use patchbay_dataplane::fuzzing::lab::{
    Lab, LabPort, INSIDE_HOST, INSIDE_HOST_MAC, OUTSIDE_HOST, OUTSIDE_HOST_MAC, PUBLISHED_TCP,
    PUBLISHED_UDP, ROUTER_INSIDE, ROUTER_OUTSIDE, SILENT_GATEWAY,
};
use patchbay_dataplane::trace::{Event, Filter, Learned, PacketSpec};
use patchbay_dataplane::wire::Mac;
use std::net::Ipv4Addr;

fn spec(src: Ipv4Addr, dst: Ipv4Addr, proto: &str) -> PacketSpec {
    PacketSpec {
        src: src.into(),
        dst: dst.into(),
        proto: Some(proto.into()),
        sport: None,
        dport: None,
        ttl: None,
        len: None,
        smac: None,
        dmac: None,
    }
}

/// The events of one packet, learning left out.
fn decisions(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .map(|e| match *e {
            Event::Learn { mac, port, .. } => Event::Learn {
                mac,
                port,
                learned: Learned::NotLearned,
            },
            e => e,
        })
        .collect()
}

/// Runs `frame` in on `port` made up, then for real; returns both traces.
fn both(lab: &mut Lab, port: LabPort, frame: &[u8]) -> (Vec<Event>, Vec<Event>) {
    let dry = lab
        .switch
        .trace_packet(port.name(), &mut frame.to_vec())
        .expect("a dry run");
    let any = Filter::parse("").expect("the empty filter");
    lab.switch
        .trace_start(1, Some(port.name()), any)
        .expect("trace");
    lab.feed(port, frame.to_vec(), false);
    let (_, _, packets) = lab.switch.trace_read();
    lab.switch.trace_stop();
    let real = packets.first().expect("the real packet was traced");
    (decisions(&dry.events), decisions(&real.events))
}

#[test]
fn made_up_and_real_packets_take_the_same_decisions() {
    let mut lab = Lab::new();
    let [inside_router, outside_router] = lab.router_macs;
    let from_inside = |s: PacketSpec, dmac: Mac| s.build(INSIDE_HOST_MAC, dmac).expect("a frame");
    let from_outside = |s: PacketSpec, dmac: Mac| s.build(OUTSIDE_HOST_MAC, dmac).expect("a frame");
    let neighbour = Ipv4Addr::new(192, 168, 15, 77);
    let mut cases: Vec<(&str, LabPort, Vec<u8>)> = Vec::new();
    // ARP: a request for the router's address, answered.
    cases.push((
        "arp request for the router",
        LabPort::Inside,
        from_inside(spec(INSIDE_HOST, ROUTER_INSIDE, "arp"), Mac::BROADCAST),
    ));
    // Routed and masqueraded: a ping and a UDP flow, the first packet
    // (a new session) and the next (a known one).
    for proto in ["icmp", "udp", "tcp"] {
        for n in ["first", "second"] {
            let name = format!("{proto} out through NAT, {n} packet");
            let frame = from_inside(spec(INSIDE_HOST, OUTSIDE_HOST, proto), inside_router);
            cases.push((name.leak(), LabPort::Inside, frame));
        }
    }
    // The answer to the UDP flow, translated back.
    let mut answer = spec(OUTSIDE_HOST, ROUTER_OUTSIDE, "udp");
    answer.sport = Some(53);
    answer.dport = Some(40000);
    cases.push((
        "the answer to a masqueraded flow",
        LabPort::Outside,
        from_outside(answer, outside_router),
    ));
    // Time exceeded, no route, and an echo to the router itself.
    let mut ttl1 = spec(INSIDE_HOST, OUTSIDE_HOST, "udp");
    ttl1.ttl = Some(1);
    cases.push(("ttl 1", LabPort::Inside, from_inside(ttl1, inside_router)));
    let nowhere = Ipv4Addr::new(10, 9, 9, 9);
    cases.push((
        "no route",
        LabPort::Inside,
        from_inside(spec(INSIDE_HOST, nowhere, "icmp"), inside_router),
    ));
    cases.push((
        "echo to the router",
        LabPort::Inside,
        from_inside(spec(INSIDE_HOST, ROUTER_INSIDE, "icmp"), inside_router),
    ));
    // Published ports: from outside, and from inside (hairpin).
    let mut published = spec(OUTSIDE_HOST, ROUTER_OUTSIDE, "udp");
    published.dport = Some(PUBLISHED_UDP);
    cases.push((
        "a published port from outside",
        LabPort::Outside,
        from_outside(published, outside_router),
    ));
    let mut hairpin = spec(INSIDE_HOST, ROUTER_OUTSIDE, "tcp");
    hairpin.dport = Some(PUBLISHED_TCP);
    hairpin.sport = Some(41000);
    cases.push((
        "a published port from inside (hairpin)",
        LabPort::Inside,
        from_inside(hairpin, inside_router),
    ));
    // Too big for br1's MTU of 600: fragmented (the spec sets no DF).
    let mut big = spec(INSIDE_HOST, OUTSIDE_HOST, "udp");
    big.len = Some(1000);
    cases.push((
        "bigger than the egress MTU",
        LabPort::Inside,
        from_inside(big, inside_router),
    ));
    // To a gateway that never answers ARP: queued.
    cases.push((
        "via a gateway not resolved",
        LabPort::Inside,
        from_inside(
            spec(INSIDE_HOST, Ipv4Addr::new(198, 51, 100, 7), "udp"),
            inside_router,
        ),
    ));
    let _ = SILENT_GATEWAY;
    // Bridged: to a station not learned yet (flooded), and back into the
    // bridge it came from through the router.
    cases.push((
        "bridged to an unknown station",
        LabPort::Inside,
        from_inside(spec(INSIDE_HOST, neighbour, "udp"), Mac([2, 0, 0, 0, 3, 7])),
    ));
    cases.push((
        "routed back into its own bridge",
        LabPort::Inside,
        from_inside(spec(INSIDE_HOST, neighbour, "udp"), inside_router),
    ));
    for (name, port, frame) in cases {
        let (dry, real) = both(&mut lab, port, &frame);
        assert!(
            dry.len() > 1,
            "{name}: the dry run decided nothing: {dry:#?}"
        );
        assert_eq!(dry, real, "{name}: made up (left) and real (right)");
    }
}
