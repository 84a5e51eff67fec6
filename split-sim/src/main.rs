//! `split-sim`: simulate splits offline, load-check a live gateway, mock an LLM API.

use clap::Parser;

fn main() {
    let cli = split_sim::cli::Cli::parse();
    match split_sim::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("split-sim: {e:#}");
            std::process::exit(1);
        }
    }
}
