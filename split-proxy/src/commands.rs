//! The subcommands beside `serve`: `validate`, `dump`, `load`, `status`.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::settings::{read_gateway_config, Fatal};
use crate::{exit_fatal, standalone};

/// Runs a non-serve subcommand.
pub fn run(cli: &Cli, command: &Command) -> ExitCode {
    let global = &cli.global;
    let result = match command {
        Command::Validate { file } => validate(file),
        Command::Serve => Ok(()),
        Command::Status => return crate::status::run(cli),
        Command::Dump | Command::Load { .. } => crate::admin_host::store_command(global, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(fatal) => exit_fatal(&fatal),
    }
}

/// Top-level keys that mark a standalone (routes) document.
const STANDALONE_KEYS: [&str; 9] = [
    "routes",
    "upstreams",
    "services",
    "consumers",
    "global_rules",
    "plugin_configs",
    "ssls",
    "plugin_metadata",
    "stream_routes",
];

/// True when `text` looks like an apisix.yaml/JSON document rather than config.yaml.
pub fn is_standalone_document(path: &Path, text: &str) -> bool {
    if standalone::format_of(path) == split_core::config::standalone::Format::Json {
        return true;
    }
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        Ok(serde_yaml_ng::Value::Mapping(map)) => map
            .keys()
            .filter_map(|k| k.as_str())
            .any(|k| STANDALONE_KEYS.contains(&k)),
        _ => false,
    }
}

fn validate(file: &Path) -> Result<(), Fatal> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| Fatal::new(&shown, e.to_string()))?;
    if is_standalone_document(file, &text) {
        let snapshot = standalone::compile(&text, standalone::format_of(file))
            .map_err(|e| Fatal::new(&shown, e.to_string()))?;
        println!(
            "{shown}: ok (standalone document, {} routes, {} upstreams)",
            snapshot.routes.len(),
            snapshot.upstreams.len()
        );
    } else {
        let gateway = read_gateway_config(file)?;
        for w in &gateway.warnings {
            eprintln!("split-proxy: {shown}: {w}");
        }
        println!(
            "{shown}: ok (config.yaml, {} admin keys)",
            gateway.admin_keys.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_told_apart() {
        let yaml = Path::new("apisix.yaml");
        assert!(is_standalone_document(yaml, "routes:\n  - uri: /x\n#END\n"));
        assert!(!is_standalone_document(
            yaml,
            "apisix:\n  enable_admin: true\n"
        ));
        assert!(!is_standalone_document(yaml, "- not a map"));
        assert!(is_standalone_document(Path::new("a.json"), "{}"));
    }
}
