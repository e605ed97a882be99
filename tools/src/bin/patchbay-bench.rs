//! `patchbay-bench`: the kernel and patchbay doing the same job on the same
//! veth topology, measured in one run.
//!
//! ```text
//! gen (eth0 10.1.0.1) --veth-- [in0  DUT  out0] --veth-- sink (eth0 10.1.0.2)
//! ```
//!
//! The DUT namespace holds either a kernel bridge or patchbayd (with a core
//! of its own, `--cpu 1`). For each it measures iperf3 TCP (1 and 4 streams
//! with default offloads, 1 stream with offloads off), the 64-byte frame
//! rate (same generator, pinned to CPU 0), ping RTT, and the CPU time the
//! whole machine spent per million frames delivered, then prints each
//! figure with the ratio patchbay/kernel.
//!
//! `--mode trunk` compares patchbay with itself: the frames cross two
//! bridges of one patchbayd joined by a veth pair (`in0 [br0] ta==tb [br1]
//! out0`), untagged in one run, and in the other as a VLAN trunk between
//! access ports of VLAN 10 (the tag pushed into `ta`, popped out of `tb`).

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use patchbay_dataplane::counters::PortCounters;
use patchbay_dataplane::port::afpacket::AfPacketPort;
use patchbay_dataplane::port::{sys, Port, PortOptions, TxFrame};
use patchbay_dataplane::wire::ethernet::{ETHERNET_MIN_LEN, ETHERTYPE_IPV4};
use patchbay_dataplane::wire::ipv4::IpProtocol;
use patchbay_dataplane::wire::udp::UdpPacket;
use patchbay_dataplane::wire::{EthernetFrame, Ipv4Packet, Mac, ETHERNET_HDR_LEN, VNET_HDR_LEN};
use patchbay_dataplane::BATCH;
use patchbay_tools::{wait_for, Bins, Daemon, Netns};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Benchmark patchbay against the kernel on the same veth topology")]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Seconds per traffic measurement.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Measure everything this many times and report medians.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// What the DUT does: `bridge` (kernel bridge vs patchbay's L2 switch),
    /// `router` (kernel IPv4 forwarding vs patchbay's router), `router6`
    /// (the same over IPv6), `nat`, `trunk` (patchbay across a VLAN trunk
    /// vs the same path untagged), `vxlan` (a kernel VTEP vs patchbay's
    /// VXLAN port, each to a kernel VTEP at a far site), `vxlan-pair`
    /// (kernel VTEPs at both sites vs patchbay at both), or `vxlan-soft`
    /// (as `vxlan`, the kernel's underlay without tunnel segmentation
    /// offload, so that it segments in software as patchbay does).
    #[arg(long, default_value = "bridge")]
    mode: String,
    /// Measure only one side: `kernel` or `patchbay`.
    #[arg(long)]
    only: Option<String>,
    /// An extra option for patchbayd (repeatable), e.g.
    /// `--daemon-arg=--busy-poll-us=5000`.
    #[arg(long = "daemon-arg", value_name = "ARG", allow_hyphen_values = true)]
    daemon_args: Vec<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// (internal) Send 64-byte frames out of DEV as fast as possible.
    Gen {
        #[arg(long)]
        dev: String,
        #[arg(long)]
        dst: String,
        #[arg(long)]
        secs: u64,
        #[arg(long, default_value_t = 0)]
        cpu: usize,
        /// Send IPv4/UDP from SRC to DST (as SRC,DST) instead of a raw
        /// EtherType: the frames a router forwards. IPv6 addresses send
        /// IPv6/UDP (62-byte frames: the least an IPv6/UDP frame is).
        #[arg(long)]
        udp: Option<String>,
        /// With --udp: every frame a new flow (new ports), for NAT and
        /// connection tracking.
        #[arg(long)]
        new_flows: bool,
    },
}

/// The device under test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dut {
    KernelBridge,
    Patchbay,
    KernelRouter,
    PatchbayRouter,
    KernelNat,
    PatchbayNat,
    KernelRouter6,
    PatchbayRouter6,
    /// Two patchbay bridges joined by a veth pair, untagged.
    PatchbayUntagged,
    /// The same, the pair a VLAN trunk between access ports of VLAN 10.
    PatchbayTrunk,
    /// A VTEP (VNI 42) in a kernel bridge, to a kernel VTEP at the far site.
    KernelVxlan,
    /// The same over an underlay that does not segment tunnel packets
    /// (`tx-udp_tnl-segmentation off`, as a NIC without VXLAN TSO): the
    /// kernel segments in software, and the far site receives datagrams of
    /// one segment each, as patchbay sends them.
    KernelVxlanSoft,
    /// patchbay's VXLAN port, to the same kernel VTEP.
    PatchbayVxlan,
    /// patchbay's VXLAN port at both sites (the far one's patchbayd on
    /// CPU 0).
    PatchbayVxlanPair,
}

impl Dut {
    fn name(self) -> &'static str {
        match self {
            Dut::KernelBridge => "kernel-bridge",
            Dut::Patchbay => "patchbay",
            Dut::KernelRouter => "kernel-router",
            Dut::PatchbayRouter => "patchbay-router",
            Dut::KernelNat => "kernel-nat",
            Dut::PatchbayNat => "patchbay-nat",
            Dut::KernelRouter6 => "kernel-router6",
            Dut::PatchbayRouter6 => "patchbay-router6",
            Dut::PatchbayUntagged => "patchbay-untagged",
            Dut::PatchbayTrunk => "patchbay-trunk",
            Dut::KernelVxlan => "kernel-vxlan",
            Dut::KernelVxlanSoft => "kernel-vxlan-soft",
            Dut::PatchbayVxlan => "patchbay-vxlan",
            Dut::PatchbayVxlanPair => "patchbay-vxlan-pair",
        }
    }

    /// The sink is at a far site, behind a kernel VTEP (or patchbay's, in
    /// the pair): the DUT's VTEP reaches it over an underlay veth pair.
    fn vxlan(self) -> bool {
        matches!(
            self,
            Dut::KernelVxlan | Dut::KernelVxlanSoft | Dut::PatchbayVxlan | Dut::PatchbayVxlanPair
        )
    }

    /// The two bridges joined by a veth pair (`ta`, `tb`).
    fn two_bridges(self) -> bool {
        matches!(self, Dut::PatchbayUntagged | Dut::PatchbayTrunk)
    }

    fn v6(self) -> bool {
        matches!(self, Dut::KernelRouter6 | Dut::PatchbayRouter6)
    }

    fn routed(self) -> bool {
        !matches!(self, Dut::KernelBridge | Dut::Patchbay) && !self.two_bridges() && !self.vxlan()
    }

    fn natted(self) -> bool {
        matches!(self, Dut::KernelNat | Dut::PatchbayNat)
    }
}

/// The figures, in table order: key and label.
const FIGURES: &[(&str, &str)] = &[
    ("tcp1_gbps", "TCP 1 stream, default offloads (Gbit/s)"),
    ("tcp4_gbps", "TCP 4 streams, default offloads (Gbit/s)"),
    ("tcp1_nooffload_gbps", "TCP 1 stream, offloads off (Gbit/s)"),
    ("frames64_delivered_mpps", "64-byte frames delivered (Mpps)"),
    ("frames64_generated_mpps", "64-byte frames generated (Mpps)"),
    ("frames64_loss_pct", "64-byte frame loss (%)"),
    ("new_flows_mps", "new flows per second, NAT (M/s)"),
    ("rtt_p50_us", "ping RTT p50 (us)"),
    ("rtt_p99_us", "ping RTT p99 (us)"),
    ("rtt_cpu1_p50_us", "ping RTT p50, ping on CPU 1 (us)"),
    ("rtt_cpu1_p99_us", "ping RTT p99, ping on CPU 1 (us)"),
    (
        "cpu_s_per_mframes",
        "CPU seconds per million frames delivered",
    ),
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Cmd::Gen {
        dev,
        dst,
        secs,
        cpu,
        udp,
        new_flows,
    }) = &args.cmd
    {
        return generate(dev, dst, *secs, *cpu, udp.as_deref(), *new_flows);
    }
    let pair = match args.mode.as_str() {
        "bridge" => [Dut::KernelBridge, Dut::Patchbay],
        "router" => [Dut::KernelRouter, Dut::PatchbayRouter],
        "nat" => [Dut::KernelNat, Dut::PatchbayNat],
        "router6" => [Dut::KernelRouter6, Dut::PatchbayRouter6],
        "trunk" => [Dut::PatchbayUntagged, Dut::PatchbayTrunk],
        "vxlan" => [Dut::KernelVxlan, Dut::PatchbayVxlan],
        "vxlan-pair" => [Dut::KernelVxlan, Dut::PatchbayVxlanPair],
        "vxlan-soft" => [Dut::KernelVxlanSoft, Dut::PatchbayVxlan],
        other => {
            bail!("unknown mode '{other}' (bridge, router, router6, nat, trunk, vxlan, vxlan-pair, vxlan-soft)")
        }
    };
    let duts: Vec<Dut> = match args.only.as_deref() {
        None => pair.to_vec(),
        Some("kernel") => vec![pair[0]],
        Some("patchbay") => vec![pair[1]],
        Some(other) => bail!("--only takes kernel or patchbay, not '{other}'"),
    };
    let bins = Bins::beside_current_exe();
    if !bins.patchbayd.exists() {
        bail!(
            "{} not found: build with 'cargo build --release'",
            bins.patchbayd.display()
        );
    }
    let mut samples: BTreeMap<&str, BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    for run in 1..=args.runs {
        for &dut in &duts {
            progress(&format!("run {run}/{}: {}", args.runs, dut.name()));
            let figures = measure(dut, &bins, args.secs, &args.daemon_args)?;
            for (k, v) in figures {
                samples
                    .entry(dut.name())
                    .or_default()
                    .entry(k)
                    .or_default()
                    .push(v);
            }
        }
    }
    let medians: BTreeMap<&str, BTreeMap<&str, f64>> = samples
        .iter()
        .map(|(dut, figs)| (*dut, figs.iter().map(|(k, v)| (*k, median(v))).collect()))
        .collect();
    report(&medians, &args, pair[0].name(), pair[1].name())
}

fn progress(msg: &str) {
    eprintln!("[patchbay-bench] {msg}");
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn report(
    medians: &BTreeMap<&str, BTreeMap<&str, f64>>,
    args: &Args,
    kernel: &str,
    patchbay: &str,
) -> anyhow::Result<()> {
    let get = |dut: &str, k: &str| medians.get(dut).and_then(|m| m.get(k)).copied();
    let ratio = |k: &str| match (get(patchbay, k), get(kernel, k)) {
        (Some(p), Some(b)) if b != 0.0 => Some(p / b),
        _ => None,
    };
    if args.json {
        let mut out = json!({
            "secs": args.secs,
            "runs": args.runs,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        });
        for (dut, m) in medians {
            out[*dut] = json!(m);
        }
        out["ratio_patchbay_to_kernel"] = json!(FIGURES
            .iter()
            .filter_map(|(k, _)| ratio(k).map(|r| (k.to_string(), r)))
            .collect::<BTreeMap<_, _>>());
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let ratio_name = if args.mode == "trunk" {
        "trunk/untagged"
    } else {
        "patchbay/kernel"
    };
    println!(
        "{:<42} {:>17} {:>17} {:>16}",
        "figure (median of {runs} run(s), {secs} s each)"
            .replace("{runs}", &args.runs.to_string())
            .replace("{secs}", &args.secs.to_string()),
        kernel,
        patchbay,
        ratio_name
    );
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for (k, label) in FIGURES {
        println!(
            "{:<42} {:>17} {:>17} {:>16}",
            label,
            cell(get(kernel, k)),
            cell(get(patchbay, k)),
            ratio(k).map_or("-".to_string(), |r| format!("{r:.2}x"))
        );
    }
    Ok(())
}

/// The underlay between the DUT's site (10.200.0.1) and the far one
/// (10.200.0.2, MTU 1600 so hosts keep 1500), and the far site's VTEP in a
/// bridge with the sink's port: the kernel's, or patchbay's on CPU 0.
fn vxlan_sites(
    dut: &Netns,
    far: &Netns,
    kind: Dut,
    bins: &Bins,
    tag: &str,
) -> anyhow::Result<Option<Daemon>> {
    patchbay_tools::lab::vxlan_underlay(dut, far);
    if kind != Dut::PatchbayVxlanPair {
        patchbay_tools::lab::kernel_vtep(far, "10.200.0.2", "10.200.0.1", &["out0"]);
        return Ok(None);
    }
    let mut daemon = patchbay_tools::lab::start_daemon(
        far,
        bins,
        &format!("{tag}f"),
        &["--port", "out0", "--cpu", "0"],
    );
    if !daemon.alive() {
        bail!("far patchbayd exited: {}", daemon.log());
    }
    sh(Command::new(&bins.patchbay)
        .arg("--socket")
        .arg(&daemon.socket)
        .args(patchbay_tools::lab::vx0_args("10.200.0.2", "10.200.0.1")))?;
    Ok(Some(daemon))
}

/// The three namespaces and, for patchbay, the daemon.
struct Topology {
    daemon: Option<Daemon>,
    gen: Netns,
    sink: Netns,
    dut: Netns,
    /// The far site of a VXLAN run (the sink's side), and its patchbayd
    /// in the pair.
    far: Option<Netns>,
    _far_daemon: Option<Daemon>,
    kind: Dut,
    sink_ip: &'static str,
}

const GEN_IP: &str = "10.1.0.1";
const GEN_IP6: &str = "2001:db8:1::1";

/// Turns IPv6 on in `ns` (the lab turns it off), without duplicate address
/// detection.
fn ipv6_on(ns: &Netns, forwarding: bool) -> anyhow::Result<()> {
    for key in ["accept_dad=0", "disable_ipv6=0"] {
        for scope in ["all", "default", "eth0", "in0", "out0"] {
            let _ = ns.run(&["sysctl", "-qw", &format!("net.ipv6.conf.{scope}.{key}")]);
        }
    }
    if forwarding {
        sh(&mut ns.command(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]))?;
    }
    Ok(())
}

fn sh(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Topology {
    fn new(dut_kind: Dut, bins: &Bins, extra: &[String]) -> anyhow::Result<Topology> {
        let tag = format!("pbb{}{}", std::process::id(), &dut_kind.name()[..1]);
        let (gen, dut, sink) = (
            Netns::new(&format!("{tag}-gen")),
            Netns::new(&format!("{tag}-dut")),
            Netns::new(&format!("{tag}-sink")),
        );
        // Routed: gen and sink on two subnets with the DUT as their gateway.
        let (gen_ip, sink_ip, gws) = if dut_kind.v6() {
            (
                GEN_IP6,
                "2001:db8:2::2",
                Some(("2001:db8:1::fe", "2001:db8:2::fe")),
            )
        } else if dut_kind.routed() {
            (GEN_IP, "10.2.0.2", Some(("10.1.0.254", "10.2.0.254")))
        } else {
            (GEN_IP, "10.1.0.2", None)
        };
        let plen = if dut_kind.v6() { 64 } else { 24 };
        let far = dut_kind.vxlan().then(|| Netns::new(&format!("{tag}-far")));
        for (host, port, ip) in [(&gen, "in0", gen_ip), (&sink, "out0", sink_ip)] {
            let side = match &far {
                Some(far) if port == "out0" => far,
                _ => &dut,
            };
            sh(Command::new("ip").args([
                "link", "add", "eth0", "netns", &host.name, "type", "veth", "peer", "name", port,
                "netns", &side.name,
            ]))?;
            if dut_kind.v6() {
                ipv6_on(host, false)?;
            }
            sh(&mut host.command(&["ip", "addr", "add", &format!("{ip}/{plen}"), "dev", "eth0"]))?;
            sh(&mut host.command(&["ip", "link", "set", "eth0", "up"]))?;
            sh(&mut side.command(&["ip", "link", "set", port, "up"]))?;
        }
        let far_daemon = match &far {
            Some(far) => vxlan_sites(&dut, far, dut_kind, bins, &tag)?,
            None => None,
        };
        if let Some((g1, g2)) = gws {
            let family = if dut_kind.v6() { "-6" } else { "-4" };
            sh(&mut gen.command(&["ip", family, "route", "add", "default", "via", g1]))?;
            sh(&mut sink.command(&["ip", family, "route", "add", "default", "via", g2]))?;
        }
        let daemon = match dut_kind {
            Dut::KernelVxlan | Dut::KernelVxlanSoft => {
                patchbay_tools::lab::kernel_vtep(&dut, "10.200.0.1", "10.200.0.2", &["in0"]);
                if dut_kind == Dut::KernelVxlanSoft {
                    sh(&mut dut.command(&[
                        "ethtool",
                        "-K",
                        "und",
                        "tx-udp_tnl-segmentation",
                        "off",
                        "tx-udp_tnl-csum-segmentation",
                        "off",
                    ]))?;
                }
                None
            }
            Dut::KernelBridge => {
                sh(&mut dut.command(&["ip", "link", "add", "br0", "type", "bridge"]))?;
                for p in ["in0", "out0"] {
                    sh(&mut dut.command(&["ip", "link", "set", p, "master", "br0"]))?;
                }
                sh(&mut dut.command(&["ip", "link", "set", "br0", "up"]))?;
                None
            }
            Dut::KernelRouter6 => {
                ipv6_on(&dut, true)?;
                sh(&mut dut.command(&["ip", "addr", "add", "2001:db8:1::fe/64", "dev", "in0"]))?;
                sh(&mut dut.command(&["ip", "addr", "add", "2001:db8:2::fe/64", "dev", "out0"]))?;
                None
            }
            Dut::KernelRouter | Dut::KernelNat => {
                sh(&mut dut.command(&["ip", "addr", "add", "10.1.0.254/24", "dev", "in0"]))?;
                sh(&mut dut.command(&["ip", "addr", "add", "10.2.0.254/24", "dev", "out0"]))?;
                sh(&mut dut.command(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]))?;
                if dut_kind.natted() {
                    sh(&mut dut.command(&[
                        "iptables",
                        "-t",
                        "nat",
                        "-A",
                        "POSTROUTING",
                        "-s",
                        "10.1.0.0/24",
                        "-o",
                        "out0",
                        "-j",
                        "MASQUERADE",
                    ]))?;
                }
                None
            }
            Dut::Patchbay
            | Dut::PatchbayRouter
            | Dut::PatchbayNat
            | Dut::PatchbayRouter6
            | Dut::PatchbayUntagged
            | Dut::PatchbayTrunk
            | Dut::PatchbayVxlan
            | Dut::PatchbayVxlanPair => {
                let trunk_ports: &[&str] = if dut_kind.two_bridges() {
                    sh(&mut dut.command(&[
                        "ip", "link", "add", "ta", "type", "veth", "peer", "name", "tb",
                    ]))?;
                    &["--port", "ta", "--port", "tb"]
                } else {
                    &[]
                };
                let mut lab_daemon = patchbay_tools::lab::start_daemon(
                    &dut,
                    bins,
                    &tag,
                    // The kernel's conntrack holds 262,144 entries here:
                    // give patchbay's session table room for the
                    // new-flows run too, so both measure rate, not size.
                    &["--port", "in0"]
                        .into_iter()
                        .chain(
                            (!dut_kind.vxlan())
                                .then_some(["--port", "out0"])
                                .into_iter()
                                .flatten(),
                        )
                        .chain(["--cpu", "1", "--nat-max", "2000000"])
                        .chain(trunk_ports.iter().copied())
                        .chain(extra.iter().map(String::as_str))
                        .collect::<Vec<_>>(),
                );
                if !lab_daemon.alive() {
                    bail!("patchbayd exited: {}", lab_daemon.log());
                }
                let pb = |args: &[&str]| {
                    sh(Command::new(&bins.patchbay)
                        .arg("--socket")
                        .arg(&lab_daemon.socket)
                        .args(args))
                };
                if dut_kind.two_bridges() {
                    pb(&["link", "add", "br1", "type", "bridge"])?;
                    pb(&["link", "set", "tb", "master", "br1"])?;
                    pb(&["link", "set", "out0", "master", "br1"])?;
                }
                if dut_kind.vxlan() {
                    pb(&patchbay_tools::lab::vx0_args("10.200.0.1", "10.200.0.2"))?;
                }
                if dut_kind == Dut::PatchbayTrunk {
                    for br in ["br0", "br1"] {
                        pb(&["link", "set", br, "vlan_filtering", "1"])?;
                    }
                    for p in ["in0", "ta", "tb", "out0"] {
                        pb(&["vlan", "del", "dev", p, "vid", "1"])?;
                    }
                    for access in ["in0", "out0"] {
                        pb(&[
                            "vlan", "add", "dev", access, "vid", "10", "pvid", "untagged",
                        ])?;
                    }
                    for trunk in ["ta", "tb"] {
                        pb(&["vlan", "add", "dev", trunk, "vid", "10"])?;
                    }
                }
                if dut_kind.routed() {
                    pb(&["link", "add", "br1", "type", "bridge"])?;
                    pb(&["link", "set", "out0", "master", "br1"])?;
                    if dut_kind.v6() {
                        pb(&["addr", "add", "2001:db8:1::fe/64", "dev", "br0"])?;
                        pb(&["addr", "add", "2001:db8:2::fe/64", "dev", "br1"])?;
                    } else {
                        pb(&["addr", "add", "10.1.0.254/24", "dev", "br0"])?;
                        pb(&["addr", "add", "10.2.0.254/24", "dev", "br1"])?;
                    }
                    if dut_kind.natted() {
                        pb(&[
                            "nat",
                            "add",
                            "masquerade",
                            "src",
                            "10.1.0.0/24",
                            "out",
                            "br1",
                        ])?;
                    }
                }
                Some(lab_daemon)
            }
        };
        let topo = Topology {
            daemon,
            gen,
            sink,
            dut,
            far,
            _far_daemon: far_daemon,
            kind: dut_kind,
            sink_ip,
        };
        // The kernel bridge starts forwarding after its ports pass through
        // listening/learning; wait until the path works both ways.
        let ok = wait_for(Duration::from_secs(30), || {
            topo.gen
                .run(&["ping", "-c", "1", "-W", "1", topo.sink_ip])
                .status
                .success()
        });
        if !ok {
            bail!("{}: gen cannot reach sink", dut_kind.name());
        }
        Ok(topo)
    }

    fn set_offloads(&self, on: bool) -> anyhow::Result<()> {
        let v = if on { "on" } else { "off" };
        let trunk = [(&self.dut, "ta"), (&self.dut, "tb")];
        let trunk = if self.kind.two_bridges() {
            &trunk[..]
        } else {
            &[]
        };
        let out0 = (self.far.as_ref().unwrap_or(&self.dut), "out0");
        for &(ns, dev) in [
            (&self.gen, "eth0"),
            (&self.sink, "eth0"),
            (&self.dut, "in0"),
            out0,
        ]
        .iter()
        .chain(trunk)
        {
            sh(&mut ns.command(&["ethtool", "-K", dev, "tx", v, "tso", v, "gso", v, "gro", v]))?;
        }
        Ok(())
    }

    fn iperf3(&self, streams: u32, secs: u64) -> anyhow::Result<f64> {
        let port = "5299";
        sh(&mut self.sink.command(&["iperf3", "-s", "-1", "-D", "-p", port]))?;
        std::thread::sleep(Duration::from_millis(300));
        let out = sh(&mut self.gen.command(&[
            "iperf3",
            "-c",
            self.sink_ip,
            "-p",
            port,
            "-t",
            &secs.to_string(),
            "-P",
            &streams.to_string(),
            "-J",
        ]))?;
        let report: Value = serde_json::from_str(&out).context("iperf3 JSON")?;
        Ok(report["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e9)
    }

    /// Ping RTT percentiles, with ping free to run anywhere or pinned to
    /// `cpu` (the core patchbayd is pinned to).
    fn rtt(&self, cpu: Option<&str>) -> anyhow::Result<(f64, f64)> {
        let ping = ["ping", "-c", "500", "-i", "0.002", "-W", "1", self.sink_ip];
        let mut args: Vec<&str> = match cpu {
            Some(c) => vec!["taskset", "-c", c],
            None => vec![],
        };
        args.extend(ping);
        let out = sh(&mut self.gen.command(&args))?;
        let mut times: Vec<f64> = out
            .lines()
            .filter_map(|l| l.split("time=").nth(1))
            .filter_map(|t| t.split_whitespace().next()?.parse::<f64>().ok())
            .map(|ms| ms * 1000.0)
            .collect();
        if times.is_empty() {
            bail!("ping returned no times");
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
        Ok((pct(0.50), pct(0.99)))
    }

    fn sink_rx_packets(&self) -> anyhow::Result<u64> {
        let s = sh(&mut self
            .sink
            .command(&["cat", "/sys/class/net/eth0/statistics/rx_packets"]))?;
        Ok(s.trim().parse()?)
    }

    /// Returns (generated Mpps, delivered Mpps, loss %, CPU s per M frames).
    fn frames64(&self, secs: u64, new_flows: bool) -> anyhow::Result<(f64, f64, f64, f64)> {
        // Bridged: to the sink's MAC. Routed: to the router's MAC on gen's
        // side, as IPv4/UDP to the sink.
        let dst = match (self.kind, &self.daemon) {
            (Dut::PatchbayRouter | Dut::PatchbayNat | Dut::PatchbayRouter6, Some(d)) => {
                let bins = Bins::beside_current_exe();
                let out = sh(Command::new(&bins.patchbay)
                    .arg("--socket")
                    .arg(&d.socket)
                    .args(["-j", "addr", "show"]))?;
                let addrs: Value = serde_json::from_str(&out)?;
                addrs[0]["mac"].as_str().context("router MAC")?.to_string()
            }
            (Dut::KernelRouter | Dut::KernelNat | Dut::KernelRouter6, _) => {
                sh(&mut self.dut.command(&["cat", "/sys/class/net/in0/address"]))?
            }
            _ => sh(&mut self.sink.command(&["cat", "/sys/class/net/eth0/address"]))?,
        };
        let gen_ip = if self.kind.v6() { GEN_IP6 } else { GEN_IP };
        let udp = format!("{gen_ip},{}", self.sink_ip);
        let exe = std::env::current_exe()?;
        let rx0 = self.sink_rx_packets()?;
        let cpu0 = busy_cpu_secs()?;
        let secs_s = secs.to_string();
        let mut gen_args = vec![
            exe.to_str().context("utf-8 path")?,
            "gen",
            "--dev",
            "eth0",
            "--dst",
            dst.trim(),
            "--secs",
            &secs_s,
            "--cpu",
            "0",
            "--udp",
            if self.kind.routed() { &udp } else { "" },
        ];
        if new_flows {
            gen_args.push("--new-flows");
        }
        let out = sh(&mut self.gen.command(&gen_args))?;
        // Let the last frames drain through the DUT.
        std::thread::sleep(Duration::from_millis(300));
        let cpu = busy_cpu_secs()? - cpu0;
        let delivered = (self.sink_rx_packets()? - rx0) as f64;
        let sent: Value = serde_json::from_str(&out)?;
        let generated = sent["sent"].as_f64().unwrap_or(0.0);
        let loss = if generated > 0.0 {
            100.0 * (1.0 - delivered / generated).max(0.0)
        } else {
            0.0
        };
        let per_m = if delivered > 0.0 {
            cpu / (delivered / 1e6)
        } else {
            f64::NAN
        };
        Ok((
            generated / secs as f64 / 1e6,
            delivered / secs as f64 / 1e6,
            loss,
            per_m,
        ))
    }
}

/// CPU time every core spent not idle, from /proc/stat.
fn busy_cpu_secs() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat")?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v.get(7).copied().unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(busy / hz)
}

fn measure(
    dut: Dut,
    bins: &Bins,
    secs: u64,
    extra: &[String],
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let topo = Topology::new(dut, bins, extra)?;
    let mut figs = Vec::new();
    progress(&format!(
        "{}: iperf3 TCP, 1 stream, default offloads",
        dut.name()
    ));
    figs.push(("tcp1_gbps", topo.iperf3(1, secs)?));
    progress(&format!(
        "{}: iperf3 TCP, 4 streams, default offloads",
        dut.name()
    ));
    figs.push(("tcp4_gbps", topo.iperf3(4, secs)?));
    progress(&format!(
        "{}: ping RTT (500 pings, then 500 on CPU 1)",
        dut.name()
    ));
    let (p50, p99) = topo.rtt(None)?;
    figs.push(("rtt_p50_us", p50));
    figs.push(("rtt_p99_us", p99));
    let (p50, p99) = topo.rtt(Some("1"))?;
    figs.push(("rtt_cpu1_p50_us", p50));
    figs.push(("rtt_cpu1_p99_us", p99));
    progress(&format!(
        "{}: 64-byte frames, generator pinned to CPU 0",
        dut.name()
    ));
    let (gen, delivered, loss, cpu) = topo.frames64(secs, false)?;
    figs.push(("frames64_generated_mpps", gen));
    figs.push(("frames64_delivered_mpps", delivered));
    figs.push(("frames64_loss_pct", loss));
    figs.push(("cpu_s_per_mframes", cpu));
    if dut.natted() {
        progress(&format!(
            "{}: new flows (every frame a new UDP flow), 2 s",
            dut.name()
        ));
        let (_, flows, _, _) = topo.frames64(2, true)?;
        figs.push(("new_flows_mps", flows));
    }
    progress(&format!(
        "{}: iperf3 TCP, 1 stream, offloads off",
        dut.name()
    ));
    topo.set_offloads(false)?;
    figs.push(("tcp1_nooffload_gbps", topo.iperf3(1, secs)?));
    Ok(figs)
}

/// IEEE 802's local experimental EtherType 1: frames nobody takes for
/// anything but frames.
const ETHERTYPE_EXPERIMENTAL: u16 = 0x88b5;

/// The generator: 60-byte frames (64 on the wire with the FCS) of an
/// experimental EtherType, from DEV to `dst`, in batches through the same
/// AF_PACKET port code patchbay uses.
fn generate(
    dev: &str,
    dst: &str,
    secs: u64,
    cpu: usize,
    udp: Option<&str>,
    new_flows: bool,
) -> anyhow::Result<()> {
    sys::pin_current_thread(cpu).context("pinning the generator")?;
    let dst: Mac = dst.parse()?;
    let src: Mac = std::fs::read_to_string(format!("/sys/class/net/{dev}/address"))?
        .trim()
        .parse()?;
    if let Some((a, b)) = udp
        .filter(|u| u.contains(':'))
        .and_then(|u| u.split_once(','))
    {
        let (a, b): (Ipv6Addr, Ipv6Addr) = (a.parse()?, b.parse()?);
        if new_flows {
            bail!("--new-flows is for NAT, which is IPv4's");
        }
        return generate6(dev, dst, src, secs, a, b);
    }
    let udp = match udp.filter(|u| !u.is_empty()) {
        Some(pair) => {
            let (a, b) = pair.split_once(',').context("--udp SRC,DST")?;
            let (a, b): (Ipv4Addr, Ipv4Addr) = (a.parse()?, b.parse()?);
            Some((a, b))
        }
        None if new_flows => bail!("--new-flows needs --udp SRC,DST: its flows are UDP ports"),
        None => None,
    };
    let mut frame = vec![0u8; VNET_HDR_LEN + ETHERNET_MIN_LEN];
    let ethertype = if udp.is_some() {
        ETHERTYPE_IPV4
    } else {
        ETHERTYPE_EXPERIMENTAL
    };
    EthernetFrame::new_unchecked(&mut frame[VNET_HDR_LEN..]).emit(dst, src, ethertype);
    if let Some((a, b)) = udp {
        // 46 bytes of IPv4: 20 of header, 8 of UDP (to the discard port),
        // 18 of payload; UDP checksum 0 (none).
        let ip = &mut frame[VNET_HDR_LEN + ETHERNET_HDR_LEN..];
        patchbay_dataplane::wire::ipv4::emit_header(ip, 46, 1, 64, IpProtocol::Udp, a, b);
        UdpPacket::new_unchecked(Ipv4Packet::new_unchecked(ip).payload_mut()).emit(9999, 9, 26);
    }
    send_for(dev, secs, &frame, new_flows)
}

/// The generator over IPv6: 62-byte IPv6/UDP frames (the least there is:
/// 14 + 40 + 8) from `a` to `b`, to the discard port, with the UDP
/// checksum IPv6 requires.
fn generate6(
    dev: &str,
    dst: Mac,
    src: Mac,
    secs: u64,
    a: Ipv6Addr,
    b: Ipv6Addr,
) -> anyhow::Result<()> {
    use patchbay_dataplane::wire::checksum;
    use patchbay_dataplane::wire::ethernet::ETHERTYPE_IPV6;
    let mut frame = [0u8; VNET_HDR_LEN + ETHERNET_HDR_LEN + 48];
    EthernetFrame::new_unchecked(&mut frame[VNET_HDR_LEN..]).emit(dst, src, ETHERTYPE_IPV6);
    let ip = &mut frame[VNET_HDR_LEN + ETHERNET_HDR_LEN..];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&8u16.to_be_bytes());
    ip[6] = 17;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&a.octets());
    ip[24..40].copy_from_slice(&b.octets());
    ip[40..42].copy_from_slice(&9999u16.to_be_bytes());
    ip[42..44].copy_from_slice(&9u16.to_be_bytes());
    ip[44..46].copy_from_slice(&8u16.to_be_bytes());
    let sum = checksum::add(0, &ip[8..40]);
    let sum = checksum::add(sum, &[0, 0, 0, 8, 0, 0, 0, 17]);
    let sum = checksum::add(sum, &ip[40..48]);
    ip[46..48].copy_from_slice(&checksum::finish(sum).to_be_bytes());
    send_for(dev, secs, &frame, false)
}

/// Sends `frame` out of `dev` in batches for `secs` seconds (with
/// `new_flows`, each frame of a batch a new UDP flow first), through the
/// same AF_PACKET port code patchbay uses; prints how many went.
fn send_for(dev: &str, secs: u64, frame: &[u8], new_flows: bool) -> anyhow::Result<()> {
    let mut port = AfPacketPort::open(dev, &PortOptions { rx_ring_mib: 1 })?;
    let mut counters = PortCounters::default();
    let deadline = Instant::now() + Duration::from_secs(secs);
    if new_flows {
        // A batch of distinct frames, renumbered each round: 16 source ports
        // (16 NAT mappings) times 65,535 destination ports, 1M flows.
        let mut batch: Vec<Vec<u8>> = (0..BATCH).map(|_| frame.to_vec()).collect();
        let mut flow: u32 = 0;
        while Instant::now() < deadline {
            for f in &mut batch {
                flow = flow.wrapping_add(1);
                let mut ip = Ipv4Packet::new_unchecked(&mut f[VNET_HDR_LEN + ETHERNET_HDR_LEN..]);
                let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
                udp.set_src_port(40000 + (flow & 15) as u16);
                udp.set_dst_port(1 + ((flow >> 4) % 65535) as u16);
            }
            port.send(&mut batch.iter().map(|f| TxFrame::plain(f)), &mut counters);
        }
    }
    while Instant::now() < deadline {
        for _ in 0..64 {
            port.send(
                &mut std::iter::repeat_n(TxFrame::plain(frame), BATCH),
                &mut counters,
            );
        }
    }
    println!(
        "{}",
        json!({"sent": counters.tx_packets, "dropped": counters.total_drops()})
    );
    Ok(())
}
