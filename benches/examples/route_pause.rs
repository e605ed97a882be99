//! How long 25,000 route adds and 25,000 deletes take in one batch, as an
//! `apply` from one file to another makes them (the forwarding pause).
//!
//!     cargo run --release -p patchbay-benches --example route_pause
use patchbay_dataplane::pipeline::{Switch, SwitchConfig};
use patchbay_dataplane::wire::ipv4net::Ipv4Net;
use std::net::Ipv4Addr;
use std::time::Instant;

fn net(first: u8, i: u32) -> Ipv4Net {
    Ipv4Net {
        addr: Ipv4Addr::new(first, (i / 256) as u8, (i % 256) as u8, 0),
        len: 24,
    }
}

fn main() {
    let mut sw = Switch::new(SwitchConfig::default(), None);
    sw.add_bridge("other").unwrap();
    sw.addr_add("other", "10.3.0.1/24".parse().unwrap())
        .unwrap();
    let gw = Some(Ipv4Addr::new(10, 3, 0, 2));
    let n = 25_000;
    sw.route_batch(|sw| {
        for i in 0..n {
            sw.route4_add(net(100, i), gw, Some("other")).unwrap();
        }
    });
    let mut times = Vec::new();
    for round in 0..20 {
        let (from, to) = if round % 2 == 0 {
            (100, 101)
        } else {
            (101, 100)
        };
        let start = Instant::now();
        sw.route_batch(|sw| {
            for i in 0..n {
                sw.route_del(net(from, i).into()).unwrap();
            }
            for i in 0..n {
                sw.route4_add(net(to, i), gw, Some("other")).unwrap();
            }
        });
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "25,000 route deletes and 25,000 adds in one batch: median {:.2} ms (min {:.2})",
        times[times.len() / 2],
        times[0]
    );
}
