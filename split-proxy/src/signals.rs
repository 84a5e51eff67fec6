//! Process signals: SIGTERM/SIGINT end `serve` (the caller drains); SIGHUP re-reads
//! config.yaml and swaps the admin auth policy and the log level without dropping
//! connections (a bad file is refused and the old settings kept).

use tokio::signal::unix::{signal, SignalKind};

use crate::log_control::{Applied, LogControl};
use crate::settings::{auth_warnings, read_gateway_config, Settings};
use split_admin::Admin;

/// Returns on SIGTERM or SIGINT; handles SIGHUP in between.
pub async fn wait_for_shutdown(settings: &Settings, admin: &Admin, log: &LogControl) {
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; use Ctrl-C or kill -9 to stop");
        std::future::pending::<()>().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => reload(settings, admin, log),
        }
    }
}

fn reload(settings: &Settings, admin: &Admin, log: &LogControl) {
    let Some(path) = &settings.config_path else {
        tracing::info!("SIGHUP: no config.yaml to re-read");
        return;
    };
    let gateway = match read_gateway_config(path) {
        Ok(g) => g,
        Err(fatal) => {
            tracing::error!(reason = %fatal, "SIGHUP: config.yaml refused; keeping the current settings");
            return;
        }
    };
    for w in &gateway.warnings {
        tracing::warn!("{w}");
    }
    let auth = match crate::settings::auth_from(Some(&gateway), &settings.data_dir, true) {
        Ok((auth, _)) => auth,
        Err(fatal) => {
            tracing::error!(reason = %fatal, "SIGHUP: admin keys refused; keeping the current settings");
            return;
        }
    };
    for w in auth_warnings(&auth, settings.admin_listen) {
        tracing::warn!("{w}");
    }
    let keys = auth.keys.len();
    admin.set_auth(auth);
    let level = match log.apply(gateway.error_log_level) {
        Ok(Applied::Filter(filter)) => filter,
        Ok(Applied::CommandLine(flag)) => format!("{flag} (--log-level wins)"),
        Err(reason) => {
            tracing::error!(%reason, "SIGHUP: log level unchanged");
            "unchanged".to_owned()
        }
    };
    tracing::info!(keys, file = %path.display(), log_level = %level, "SIGHUP: config.yaml reloaded (admin keys, allow_admin, log level)");
}
