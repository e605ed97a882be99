//! `patchbay`: the command line client of patchbayd.

use patchbay_control::cli::{self, Parsed, USAGE};
use patchbay_control::client::Client;
use std::io::Write;
use std::process::ExitCode;

/// Writes to stdout; a reader that went away (`| head`, `tcpdump -c`) is
/// not an error.
fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inv = match cli::parse(&args) {
        Ok(Parsed::Help) => {
            out(USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::HelpOn(object)) => {
            out(&cli::usage_of(&object));
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            out(&format!("patchbay {}\n", env!("CARGO_PKG_VERSION")));
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(inv)) => inv,
        Err(e) => {
            eprintln!("patchbay: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&inv) {
        Ok(text) => {
            out(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("patchbay: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Carries out a parsed command line; returns what to print.
fn run(inv: &cli::Invocation) -> Result<String, String> {
    if let cli::Output::Top { interval_ms, once } = inv.output {
        let interval = std::time::Duration::from_millis(interval_ms);
        patchbay_control::top::run(&inv.socket, interval, once)?;
        return Ok(String::new());
    }
    let mut client = Client::connect(&inv.socket).map_err(|e| e.to_string())?;
    if let cli::Output::RouteLoad { path } = &inv.output {
        return cli::load_routes(&mut client, path);
    }
    if let cli::Output::Capture { path } = &inv.output {
        return cli::capture(client, inv.request.clone(), path);
    }
    let request = match &inv.output {
        cli::Output::Apply { path, dry_run } => cli::apply_request(path, *dry_run)?,
        _ => inv.request.clone(),
    };
    let mut result = client.call(request).map_err(|e| e.to_string())?;
    if inv.output == cli::Output::Version {
        result["client_version"] = env!("CARGO_PKG_VERSION").into();
    }
    if inv.json {
        let text = serde_json::to_string_pretty(&result).expect("JSON values serialize");
        return Ok(format!("{text}\n"));
    }
    cli::render(&inv.output, result)
}
