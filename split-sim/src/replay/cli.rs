//! Flags of `split-sim replay`.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;

use super::{render_text, replay, Baseline};
use crate::run::{compile, input};

/// `split-sim replay`: replay an access log through a candidate configuration.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("against").required(true).args(["config", "diff"])))]
pub struct ReplayArgs {
    /// Access log (JSON lines); `-` reads standard input.
    pub log: PathBuf,
    /// Candidate configuration, compared with the placements in the log.
    #[arg(long, value_name = "NEW")]
    pub config: Option<PathBuf>,
    /// Two configurations to compare on the logged requests.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
    pub diff: Option<Vec<PathBuf>>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `split-sim replay`.
pub fn run(args: &ReplayArgs) -> anyhow::Result<i32> {
    let mut text = String::new();
    if args.log.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(&args.log)
            .with_context(|| format!("cannot read {}", args.log.display()))?;
    }
    let report = match (&args.config, &args.diff) {
        (_, Some(pair)) if pair.len() == 2 => {
            let old = compile(input::load_any(&pair[0])?).context("OLD")?;
            let new = compile(input::load_any(&pair[1])?).context("NEW")?;
            replay(&text, &Baseline::Config(&old), &new)
        }
        (Some(path), _) => {
            let new = compile(input::load_any(path)?)?;
            replay(&text, &Baseline::Logged, &new)
        }
        _ => anyhow::bail!("give --config NEW or --diff OLD NEW"),
    };
    if args.json {
        crate::cli::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        crate::cli::emit(&render_text(&report))?;
    }
    Ok(0)
}
