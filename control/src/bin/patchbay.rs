//! `patchbay`: the command line client of patchbayd.

use patchbay_control::cli::{self, Parsed, USAGE};
use patchbay_control::client::Client;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inv = match cli::parse(&args) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(inv)) => inv,
        Err(e) => {
            eprintln!("patchbay: {e}");
            return ExitCode::from(2);
        }
    };
    if let cli::Output::RouteLoad { path } = &inv.output {
        let done = Client::connect(&inv.socket)
            .map_err(|e| e.to_string())
            .and_then(|mut c| cli::load_routes(&mut c, path));
        return match done {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("patchbay: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = Client::connect(&inv.socket).and_then(|mut c| c.call(inv.request.clone()));
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("patchbay: {e}");
            return ExitCode::FAILURE;
        }
    };
    if inv.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).expect("JSON values serialize")
        );
        return ExitCode::SUCCESS;
    }
    match cli::render(&inv.output, result) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("patchbay: {e}");
            ExitCode::FAILURE
        }
    }
}
