//! `patchbayd`: the patchbay daemon. It opens the ports, starts the
//! forwarding engine and serves the control socket.

use anyhow::Context;
use clap::Parser;
use patchbay_control::api::Request;
use patchbay_control::server::{self, Server, Services};
use patchbay_control::{apply, config};
use patchbay_dataplane::pipeline::{Engine, EngineHandle, SwitchConfig, DEFAULT_BRIDGE};
use patchbay_dataplane::port::{self, PortKind, PortOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// The daemon's command line.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "patchbayd: a userspace switch, IPv4 router and NAT for Linux labs.\n\
             Every --port and --tap joins the bridge br0; the `patchbay` command \
             (or --config) sets up the rest.",
    after_help = "Logging: RUST_LOG=debug|info|warn (default info)."
)]
struct Args {
    /// A config file (TOML) with the whole lab: ports, bridges, addresses,
    /// routes, neighbours, NAT rules, timeouts and table sizes. Re-read on
    /// SIGHUP and applied like `patchbay apply`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ports", "taps", "fdb_max", "ageing_time", "arp_max", "arp_reachable_secs", "arp_stale_secs", "nat_max", "max_routes", "nat_tcp_established_secs", "nat_tcp_transitory_secs", "nat_udp_secs", "nat_icmp_secs", "rx_ring_mib"])]
    config: Option<PathBuf>,
    /// An existing interface (veth end, NIC) to use as a port, via AF_PACKET.
    #[arg(long = "port", value_name = "IFNAME")]
    ports: Vec<String>,
    /// A TAP device to create (or open) and use as a port.
    #[arg(long = "tap", value_name = "TAPNAME")]
    taps: Vec<String>,
    /// The control socket.
    #[arg(long, value_name = "PATH", default_value = patchbay_control::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Let this group (name or number) use the control socket too (mode
    /// 0660 instead of 0600).
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// Where the DHCP servers keep their leases (written atomically, read
    /// at start; a corrupt file is reported and set aside).
    #[arg(long, value_name = "PATH", default_value = patchbay_control::dhcp::file::DEFAULT_PATH)]
    dhcp_leases: PathBuf,
    /// Most FDB entries (all bridges together); past it new MACs are flooded, not learned.
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    fdb_max: usize,
    /// FDB ageing time of new bridges, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    ageing_time: u32,
    /// Most ARP cache entries (all bridges together).
    #[arg(long, value_name = "N", default_value_t = 16_384, value_parser = clap::value_parser!(u32).range(1..))]
    arp_max: u32,
    /// Seconds an ARP entry stays reachable after a confirmation.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    arp_reachable_secs: u32,
    /// Seconds a stale ARP entry is kept (still used) before it is forgotten.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    arp_stale_secs: u32,
    /// Most NAT sessions; past it new flows are dropped and counted.
    #[arg(long, value_name = "N", default_value_t = 262_144, value_parser = clap::value_parser!(u32).range(1..))]
    nat_max: u32,
    /// Most routes (IPv4, connected ones too); past it `route add` and
    /// `route load` are refused with an error naming this limit. Memory is
    /// the only other limit: about 50 bytes a route.
    #[arg(long, value_name = "N", default_value_t = patchbay_dataplane::pipeline::DEFAULT_MAX_ROUTES, value_parser = parse_max_routes)]
    max_routes: usize,
    /// NAT timeout of an established TCP connection (RFC 5382: at least 7440).
    #[arg(long, value_name = "SECS", default_value_t = 7440)]
    nat_tcp_established_secs: u32,
    /// NAT timeout of TCP before the handshake completes or after FIN/RST.
    #[arg(long, value_name = "SECS", default_value_t = 240)]
    nat_tcp_transitory_secs: u32,
    /// NAT timeout of a UDP flow (RFC 4787: at least 120, 300 recommended).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    nat_udp_secs: u32,
    /// NAT timeout of an ICMP echo flow.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    nat_icmp_secs: u32,
    /// Receive ring of each AF_PACKET port, in MiB: 512 slots of 2 KiB per
    /// MiB, for frames up to 1,972 bytes. Bigger frames (GSO, jumbo) have a
    /// ring of their own, 8 times as big (at most 64 MiB), of 68 KiB slots.
    #[arg(long, value_name = "MIB", default_value_t = patchbay_dataplane::port::DEFAULT_RX_RING_MIB, value_parser = clap::value_parser!(u32).range(1..=1024))]
    rx_ring_mib: u32,
    /// Keep polling without sleeping for this long after the last frame, in
    /// microseconds (0: sleep as soon as the ports are drained). While
    /// spinning, ring ports are off epoll, which spares senders the kernel's
    /// per-frame wake-up work (64-byte frame rate +20% on a 2-core VM).
    /// Under steady traffic the engine never sleeps; idle, it costs nothing;
    /// 500 pings a second cost 3% of a core at 50 us, 10% at 200 us.
    #[arg(long, value_name = "USECS", default_value_t = 50)]
    busy_poll_us: u64,
    /// Serve counters in the Prometheus text format at http://ADDR/metrics
    /// (for example 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Pin the forwarding thread to this CPU.
    #[arg(long, value_name = "CPU")]
    cpu: Option<usize>,
}

/// `--max-routes`: at least 1.
fn parse_max_routes(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// The limits and timeouts the flags give.
fn switch_config(args: &Args) -> SwitchConfig {
    SwitchConfig {
        fdb_max: args.fdb_max,
        ageing_time: args.ageing_time,
        arp_max: args.arp_max as usize,
        nat_max: args.nat_max as usize,
        max_routes: args.max_routes,
        nat_timeouts: patchbay_dataplane::nat::Timeouts {
            tcp_established: args.nat_tcp_established_secs,
            tcp_transitory: args.nat_tcp_transitory_secs,
            udp: args.nat_udp_secs,
            icmp: args.nat_icmp_secs,
        },
        arp_reachable_secs: args.arp_reachable_secs,
        arp_stale_secs: args.arp_stale_secs,
        ..SwitchConfig::default()
    }
}

/// SIGHUP: re-reads the config file and applies it as `patchbay apply`
/// would; on an error nothing changes and the error is logged.
fn reload(path: Option<&std::path::Path>, engine: &EngineHandle, opts: &Services) {
    let Some(path) = path else {
        log::warn!("SIGHUP: patchbayd was started without --config; nothing to re-read");
        return;
    };
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            log::error!("SIGHUP: reading {file}: {e}; nothing changed");
            return;
        }
    };
    let request = Request::Apply {
        text,
        file: Some(file.clone()),
        dry_run: false,
    };
    match server::handle(request, engine, opts) {
        Ok(summary) => log::info!(
            "SIGHUP: {file}: {}",
            serde_json::from_value::<apply::Summary>(summary)
                .map(|s| s.to_string())
                .unwrap_or_default()
        ),
        Err(e) => log::error!("SIGHUP: {}; nothing changed", e.message),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("patchbayd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.fdb_max == 0 {
        anyhow::bail!("--fdb-max must be at least 1");
    }
    let (config, opts, lab) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let file = path.display().to_string();
            let lab = config::parse(&file, &text)?;
            let opts = PortOptions {
                rx_ring_mib: lab.rx_ring_mib as usize,
            };
            (lab.state.config.clone(), opts, Some((file, lab)))
        }
        None => (
            switch_config(&args),
            PortOptions {
                rx_ring_mib: args.rx_ring_mib as usize,
            },
            None,
        ),
    };
    // Signals are caught from before the socket answers: a SIGTERM while
    // ports open stops the daemon cleanly once it runs, its socket removed.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .context("installing signal handlers")?;
    // The socket first: a second patchbayd on it stops here, before it
    // touches any interface.
    let server = Server::bind(&args.socket, args.socket_group.as_deref())?;
    log::info!("control socket {}", args.socket.display());
    // Open every port before anything else, so a typo fails fast and whole.
    let mut ports = Vec::new();
    for (kind, names) in [
        (PortKind::Afpacket, &args.ports),
        (PortKind::Tap, &args.taps),
    ] {
        for name in names {
            ports.push(port::open(kind, name, &opts)?);
        }
    }
    let (engine, handle) = Engine::new(config).context("starting the engine")?;
    let mut engine = engine;
    // The DHCP thread, with its queue from the forwarding thread.
    let dhcp_service = patchbay_control::dhcp::service::Service::new(args.dhcp_leases.clone());
    let queue = engine.switch().dhcp_connect();
    dhcp_service
        .spawn(queue, handle.clone())
        .context("starting the DHCP thread")?;
    let mut engine = engine.with_busy_poll(std::time::Duration::from_micros(args.busy_poll_us));
    // Router MACs stay the same across restarts on the same socket.
    engine.switch().set_instance(&args.socket.to_string_lossy());
    for p in ports {
        engine
            .switch()
            .add_port(p, Some(DEFAULT_BRIDGE))
            .map_err(|rejected| rejected.error)?;
    }
    if let Some((file, lab)) = &lab {
        let running = engine.switch().running_state();
        let summary =
            apply::apply_parsed(file, lab, running, &opts, false, |steps, ports, before| {
                apply::execute(engine.switch(), steps, ports, &before)
            })?;
        log::info!("config {file}: {summary}");
        for pool in &lab.dhcp {
            let iface = engine.switch().dhcp_serve(&pool.bridge, true)?;
            dhcp_service.add(pool.clone(), iface);
        }
    }
    if let Some(addr) = args.metrics {
        let at = patchbay_control::metrics::serve(addr, handle.clone())
            .with_context(|| format!("--metrics {addr}"))?;
        log::info!("metrics at http://{at}/metrics");
    }
    // Removed when dropped, on the way out, if still ours.
    let svc = Services {
        opts: opts.clone(),
        dhcp: dhcp_service,
    };
    let _socket = server
        .spawn(handle.clone(), svc.clone())
        .context("starting the control thread")?;

    let stopper = handle.clone();
    let config_path = args.config.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == signal_hook::consts::SIGHUP {
                    reload(config_path.as_deref(), &stopper, &svc);
                    continue;
                }
                log::info!("signal {sig}: stopping");
                let _ = stopper.stop();
                break;
            }
        })?;

    let forwarding = std::thread::Builder::new()
        .name("forward".into())
        .spawn(move || {
            if let Some(cpu) = args.cpu {
                if let Err(e) = port::sys::pin_current_thread(cpu) {
                    log::warn!("cannot pin the forwarding thread to CPU {cpu}: {e}");
                }
            }
            engine.run()
        })?;
    let _switch = forwarding
        .join()
        .map_err(|_| anyhow::anyhow!("the forwarding thread panicked"))?;
    log::info!("stopped");
    Ok(())
}
