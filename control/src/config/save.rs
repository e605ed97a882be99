//! `save`: the running state as a config file, in the format `parse` reads,
//! so that `save` then `apply` changes nothing.

use super::*;

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Writes a state as a config file that [`parse`] reads back to the same
/// state.
pub fn to_toml(state: &RunningState, rx_ring_mib: u32) -> String {
    let c = &state.config;
    let t = &c.nat_timeouts;
    let mut out = String::with_capacity(256 + state.routes.len() * 64);
    let _ = write!(
        out,
        "# patchbay config (patchbay save); patchbay apply FILE makes a daemon match it.\n\
         \n\
         # Table sizes: set when patchbayd starts.\n\
         [limits]\n\
         fdb_max = {}\narp_max = {}\nnat_max = {}\nmax_routes = {}\nrx_ring_mib = {rx_ring_mib}\n\
         \n\
         [timeouts]\n\
         ageing_time = {}\narp_reachable_secs = {}\narp_stale_secs = {}\n\
         nat_tcp_established_secs = {}\nnat_tcp_transitory_secs = {}\n\
         nat_udp_secs = {}\nnat_icmp_secs = {}\n",
        c.fdb_max,
        c.arp_max,
        c.nat_max,
        c.max_routes,
        c.ageing_time,
        c.arp_reachable_secs,
        c.arp_stale_secs,
        t.tcp_established,
        t.tcp_transitory,
        t.udp,
        t.icmp,
    );
    for b in &state.bridges {
        bridge_toml(&mut out, b);
    }
    for p in &state.ports {
        let kind = match p.kind {
            PortKind::Tap | PortKind::Vxlan => p.kind.name(),
            _ => "afpacket",
        };
        let _ = write!(
            out,
            "\n[[port]]\nname = {}\nkind = \"{kind}\"\n",
            quoted(&p.name)
        );
        if let Some(v) = &p.vxlan {
            let c = &v.config;
            let _ = writeln!(out, "vni = {}\nlocal = \"{}\"", c.vni, c.local);
            if let Some(r) = c.remote {
                let _ = writeln!(out, "remote = \"{r}\"");
            }
            if c.dstport != patchbay_dataplane::wire::vxlan::VXLAN_PORT {
                let _ = writeln!(out, "dstport = {}", c.dstport);
            }
            if !v.flood.is_empty() {
                let f: Vec<String> = v.flood.iter().map(|a| format!("\"{a}\"")).collect();
                let _ = writeln!(out, "flood = [{}]", f.join(", "));
            }
            if !v.statics.is_empty() {
                let r: Vec<String> = v
                    .statics
                    .iter()
                    .map(|(m, d)| format!("{{ mac = \"{m}\", dst = \"{d}\" }}"))
                    .collect();
                let _ = writeln!(out, "remotes = [{}]", r.join(", "));
            }
        }
        if let Some(m) = &p.master {
            let _ = writeln!(out, "bridge = {}", quoted(m));
            let default: Vec<_> = PortVlans::default().iter().collect();
            if p.vlans != default {
                let v: Vec<String> = p
                    .vlans
                    .iter()
                    .map(|v| format!("\"{}\"", super::vlan_words(v)))
                    .collect();
                let _ = writeln!(out, "vlans = [{}]", v.join(", "));
            }
        }
    }
    for (mac, dev, vlan) in &state.fdb {
        let _ = write!(out, "\n[[fdb]]\nmac = \"{mac}\"\ndev = {}\n", quoted(dev));
        if let Some(v) = vlan {
            let _ = writeln!(out, "vlan = {v}");
        }
    }
    let v4 = state
        .routes
        .iter()
        .map(|(dst, via, dev)| (IpNet::V4(*dst), via.map(IpAddr::V4), dev));
    let v6 = state
        .routes6
        .iter()
        .map(|(dst, via, dev)| (IpNet::V6(*dst), via.map(IpAddr::V6), dev));
    for (dst, via, dev) in v4.chain(v6) {
        let _ = write!(out, "\n[[route]]\ndst = \"{dst}\"\n");
        if let Some(via) = via {
            let _ = writeln!(out, "via = \"{via}\"");
        }
        let _ = writeln!(out, "dev = {}", quoted(dev));
    }
    let v4 = state
        .neighbors
        .iter()
        .map(|(ip, m, d)| (IpAddr::V4(*ip), m, d));
    let v6 = state
        .neighbors6
        .iter()
        .map(|(ip, m, d)| (IpAddr::V6(*ip), m, d));
    for (ip, mac, dev) in v4.chain(v6) {
        let _ = write!(
            out,
            "\n[[neigh]]\nip = \"{ip}\"\nmac = \"{mac}\"\ndev = {}\n",
            quoted(dev)
        );
    }
    for r in &state.nat {
        out.push_str("\n[[nat]]\n");
        let src = r
            .src
            .map(|s| format!("src = \"{s}\"\n"))
            .unwrap_or_default();
        let snat_tail = format!(
            "ports = [{}, {}]\nfiltering = \"{}\"\n",
            r.ports.0,
            r.ports.1,
            r.filtering.name()
        );
        let _ = match &r.action {
            NatAction::Masquerade => write!(
                out,
                "kind = \"masquerade\"\n{src}out = {}\n{snat_tail}",
                quoted(&r.bridge)
            ),
            NatAction::Snat { first, last } => write!(
                out,
                "kind = \"snat\"\n{src}first = \"{first}\"\nlast = \"{last}\"\nout = {}\n{snat_tail}",
                quoted(&r.bridge)
            ),
            NatAction::Dnat {
                proto,
                dport,
                to_addr,
                to_port,
            } => write!(
                out,
                "kind = \"dnat\"\nproto = \"{}\"\nin = {}\ndport = {dport}\nto_addr = \"{to_addr}\"\nto_port = {to_port}\n",
                proto,
                quoted(&r.bridge)
            ),
        };
    }
    out
}

/// One `[[bridge]]` table: its settings, addresses of both families and
/// router advertisements, each only where it is not the default.
fn bridge_toml(out: &mut String, b: &BridgeState) {
    let _ = write!(out, "\n[[bridge]]\nname = {}\n", quoted(&b.name));
    match &b.vlan {
        Some((link, id)) => {
            let _ = writeln!(out, "link = {}\nid = {id}", quoted(link));
        }
        None => {
            let _ = writeln!(out, "ageing_time = {}", b.ageing_time);
        }
    }
    if !b.addrs.is_empty() || !b.addrs6.is_empty() {
        let v4 = b.addrs.iter().map(|a| format!("\"{a}\""));
        let v6 = b.addrs6.iter().map(|a| format!("\"{a}\""));
        let addrs: Vec<String> = v4.chain(v6).collect();
        let _ = writeln!(out, "addresses = [{}]", addrs.join(", "));
    }
    if b.vlan_filtering {
        let _ = writeln!(out, "vlan_filtering = true");
    }
    if b.group_fwd_mask != 0 {
        let _ = writeln!(out, "group_fwd_mask = {:#06x}", b.group_fwd_mask);
    }
    if let Some(mtu) = b.mtu {
        let _ = writeln!(out, "mtu = {mtu}");
    }
    if let Some(rp) = b.rp_filter.filter(|rp| *rp != RpFilter::default()) {
        let _ = writeln!(out, "rp_filter = \"{rp}\"");
    }
    if b.redirects == Some(false) {
        let _ = writeln!(out, "redirects = false");
    }
    if let Some(ra) = &b.ra {
        let d = Ra::default();
        if ra.on != d.on {
            let _ = writeln!(out, "ra = {}", ra.on);
        }
        if ra.lifetime != d.lifetime {
            let _ = writeln!(out, "ra_lifetime = {}", ra.lifetime);
        }
        if ra.valid_lft != d.valid_lft {
            let _ = writeln!(out, "ra_valid_lft = {}", ra.valid_lft);
        }
        if ra.preferred_lft != d.preferred_lft {
            let _ = writeln!(out, "ra_preferred_lft = {}", ra.preferred_lft);
        }
        if !ra.rdnss.is_empty() {
            let dns: Vec<String> = ra.rdnss.iter().map(|a| format!("\"{a}\"")).collect();
            let _ = writeln!(out, "rdnss = [{}]", dns.join(", "));
        }
    }
}

/// The DHCP servers as `[[dhcp]]` tables.
pub fn dhcp_toml(pools: &[crate::dhcp::Pool]) -> String {
    let mut out = String::new();
    for p in pools {
        let _ = write!(
            out,
            "\n[[dhcp]]\nbridge = {}\nrange = \"{}-{}\"\nlease = {}\n",
            quoted(&p.bridge),
            p.first,
            p.last,
            p.lease_secs
        );
        if let Some(r) = p.router {
            let _ = writeln!(out, "router = \"{r}\"");
        }
        if !p.dns.is_empty() {
            let dns: Vec<String> = p.dns.iter().map(|d| format!("\"{d}\"")).collect();
            let _ = writeln!(out, "dns = [{}]", dns.join(", "));
        }
        if let Some(d) = &p.domain {
            let _ = writeln!(out, "domain = {}", quoted(d));
        }
        if let Some(m) = p.mtu {
            let _ = writeln!(out, "mtu = {m}");
        }
        if !p.routes.is_empty() {
            let r: Vec<String> = p
                .routes
                .iter()
                .map(|(d, g)| format!("\"{d} via {g}\""))
                .collect();
            let _ = writeln!(out, "routes = [{}]", r.join(", "));
        }
        if !p.hosts.is_empty() {
            let h: Vec<String> = p
                .hosts
                .iter()
                .map(|h| match &h.name {
                    Some(n) => format!(
                        "{{ mac = \"{}\", ip = \"{}\", name = {} }}",
                        h.mac,
                        h.ip,
                        quoted(n)
                    ),
                    None => format!("{{ mac = \"{}\", ip = \"{}\" }}", h.mac, h.ip),
                })
                .collect();
            let _ = writeln!(out, "hosts = [{}]", h.join(", "));
        }
    }
    out
}
