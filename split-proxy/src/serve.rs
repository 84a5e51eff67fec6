//! `split-proxy serve`: validate everything, bind, print the startup summary, serve until
//! SIGTERM/SIGINT, then drain.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::access_log::AccessLog;
use crate::cli::Cli;
use crate::live::{empty_snapshot, new_live};
use crate::log_control::LogControl;
use crate::logging::LevelHandle;
use crate::metrics::Metrics;
use crate::observe::Observer;
use crate::proxy::{handle, Gateway};
use crate::server::{bind, metrics_handler, pin_boxed, Handler, Lifecycle};
use crate::settings::{Fatal, Settings, Source};
use crate::tickets::Tickets;
use crate::upstream::connect::{ConnectTo, Connector};
use crate::upstream::pool::Pool;
use crate::workers::Affinity;
use crate::{exit_fatal, standalone, upstream};

/// Exit code when the gateway could not start for a reason other than bad config.
const EXIT_START_FAILED: u8 = 1;

/// Things prepared before the runtime starts (all validation done).
struct Prepared {
    settings: Settings,
    connector: Connector,
    access_log: Option<Arc<AccessLog>>,
    live: crate::live::Live,
    admin: split_admin::Admin,
    applied_text: Option<String>,
    grace: Duration,
    max_body: usize,
}

/// Runs `serve`.
pub fn run(cli: &Cli, log: LevelHandle) -> ExitCode {
    let prepared = match prepare(cli) {
        Ok(p) => p,
        Err(fatal) => return exit_fatal(&fatal),
    };
    let log = LogControl::new(log, cli.global.log_level.clone());
    if let Err(reason) = log.apply(prepared.settings.error_log_level) {
        eprintln!("split-proxy: {reason}");
    }
    let workers = prepared.settings.workers;
    let affinity = if prepared.settings.cpu_affinity {
        match Affinity::of_process() {
            Ok(affinity) => Some(Arc::new(affinity)),
            Err(reason) => {
                eprintln!("split-proxy: warning: CPU affinity not applied: {reason}");
                None
            }
        }
    } else {
        None
    };
    // nginx-style workers: one single-thread event loop each (see `crate::workers`).
    let runtime = match crate::workers::runtime(affinity.as_ref()) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("split-proxy: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_START_FAILED);
        }
    };
    let (extra, mut pinned) = match crate::workers::Extra::start(workers, affinity.as_ref()) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("split-proxy: {e}");
            return ExitCode::from(EXIT_START_FAILED);
        }
    };
    if let Some(affinity) = &affinity {
        // The main thread is worker 0; pinned after the others started, which set
        // their own.
        pinned.insert(0, (0, affinity.pin(0)));
        report_pinning(&pinned);
    }
    let served = runtime.block_on(serve(prepared, extra.handles(), log));
    extra.stop();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("split-proxy: {reason}");
            ExitCode::from(EXIT_START_FAILED)
        }
    }
}

/// One line for the workers' CPUs, or a warning per worker left unpinned.
fn report_pinning(pinned: &[crate::workers::Pinned]) {
    let mut cpus = Vec::new();
    for (index, outcome) in pinned {
        match outcome {
            Ok(cpu) => cpus.push(format!("worker {index} on CPU {cpu}")),
            Err(reason) => {
                eprintln!("split-proxy: warning: worker {index} not pinned to a CPU: {reason}")
            }
        }
    }
    if !cpus.is_empty() {
        eprintln!("split-proxy: CPU affinity: {}", cpus.join(", "));
    }
}

fn prepare(cli: &Cli) -> Result<Prepared, Fatal> {
    let settings = crate::settings::resolve(&cli.global, &cli.serve)?;
    let connect_to = cli
        .serve
        .connect_to
        .iter()
        .map(|s| ConnectTo::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| Fatal::new("--connect-to", reason))?;
    let tls = upstream::tls::client_config(cli.serve.ca_file.as_deref())
        .map_err(|reason| Fatal::new("--ca-file", reason))?;
    let access_log = match &cli.serve.access_log {
        Some(spec) => Some(Arc::new(
            AccessLog::open(spec).map_err(|reason| Fatal::new("--access-log", reason))?,
        )),
        None => None,
    };
    let (snapshot, applied_text) = match &settings.source {
        Source::Standalone(path) => {
            let (snapshot, text) = standalone::load(path)
                .map_err(|e| Fatal::new(path.display().to_string(), e.to_string()))?;
            (snapshot, Some(text))
        }
        Source::Embedded | Source::Etcd(_) => (empty_snapshot(), None),
    };
    let live = new_live(snapshot);
    // Opening the embedded store compiles and publishes what it holds.
    let admin = crate::admin_host::open(&settings, &live)?;
    Ok(Prepared {
        settings,
        connector: Connector::new(connect_to, tls),
        access_log,
        live,
        admin,
        applied_text,
        grace: cli.serve.grace,
        max_body: cli.serve.max_body_size,
    })
}

/// Serves on this worker and the `extra` ones (workers 1..N).
async fn serve(
    p: Prepared,
    extra: &[tokio::runtime::Handle],
    log: LogControl,
) -> Result<(), String> {
    let workers = extra.len() + 1;
    let Prepared {
        settings,
        connector,
        access_log,
        live,
        admin,
        applied_text,
        grace,
        max_body,
    } = p;
    let srm = Arc::new(crate::srm::SrmCounts::default());
    let pool = Pool::new(connector, workers);
    let health = crate::health::HealthChecks::new(Arc::clone(&pool));
    let tracer = crate::otel::Tracer::spawn(&settings.opentelemetry);
    let metrics = Metrics::with_collectors(vec![
        Box::new(crate::srm::SrmCollector::new(
            Arc::clone(&live),
            Arc::clone(&srm),
        )),
        Box::new(crate::health::HealthCollector::new(Arc::clone(&health))),
        Box::new(tracer.collector()),
    ]);
    let gateway = Arc::new(Gateway {
        live: Arc::clone(&live),
        rule_tickets: Tickets::default(),
        node_tickets: Tickets::default(),
        pool,
        observer: Observer {
            metrics: Arc::clone(&metrics),
            access_log: access_log.clone(),
            otel: Some(tracer),
        },
        max_body,
        plugins: crate::plugins::PluginState::default(),
        fallback: crate::fallback::FallbackState::default(),
        shared: crate::redis::SharedCounters::default(),
        llm: crate::llm_state::LlmState::new(Arc::clone(&metrics)),
        srm,
        health: Arc::clone(&health),
    });
    crate::guard_store::restore_when_ready(&gateway.llm, &settings, &live, admin.sync_state());

    let lifecycle = Lifecycle::new();
    let mut bound: Vec<(String, SocketAddr)> = Vec::new();
    for addr in &settings.listen {
        let listener = bind("proxy", *addr).await?;
        bound.push(("proxy".into(), local_addr(&listener, *addr)));
        let gw = Arc::clone(&gateway);
        let handler: Handler =
            Arc::new(move |req, peer| pin_boxed(|| handle(Arc::clone(&gw), req, peer)));
        lifecycle.serve_on_workers(extra, listener, handler);
    }
    if let Some(addr) = settings.admin_listen {
        let listener = bind("admin", addr).await?;
        bound.push(("admin API".into(), local_addr(&listener, addr)));
        lifecycle.serve(
            listener,
            crate::admin_host::handler(admin.clone(), Arc::clone(&gateway.llm)),
        );
    }
    let listener = bind("metrics", settings.metrics_listen).await?;
    bound.push((
        "metrics".into(),
        local_addr(&listener, settings.metrics_listen),
    ));
    let sync = admin.sync_state();
    tokio::spawn(crate::readiness::follow(Arc::clone(&metrics), sync.clone()));
    let metrics_and_health = crate::readiness::handler(metrics_handler(Arc::clone(&metrics)), sync);
    lifecycle.serve(listener, metrics_and_health);
    admin.spawn_sync();

    summary(&settings, &bound, workers);
    if let (Source::Standalone(path), Some(text)) = (&settings.source, applied_text) {
        tokio::spawn(standalone::watch(
            path.clone(),
            Arc::clone(&live),
            text,
            Duration::from_secs(1),
        ));
    }
    tokio::spawn(health.supervise(Arc::clone(&live), Duration::from_secs(1)));
    tokio::spawn(crate::live::prune_tickets(
        Arc::clone(&gateway),
        Duration::from_secs(1),
    ));

    crate::signals::wait_for_shutdown(&settings, &admin, &log).await;
    eprintln!("split-proxy: shutting down, draining in-flight requests (grace {grace:?})");
    let clean = lifecycle.drain(grace).await;
    if !clean {
        eprintln!("split-proxy: grace period over, closing remaining connections");
    }
    if let Some(log) = access_log {
        log.close();
        if log.dropped() > 0 {
            eprintln!(
                "split-proxy: {} access log lines were dropped (writer too slow)",
                log.dropped()
            );
        }
    }
    eprintln!("split-proxy: stopped");
    Ok(())
}

fn local_addr(listener: &tokio::net::TcpListener, fallback: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(fallback)
}

/// The startup summary on stderr (never prints keys, except a freshly generated one once).
fn summary(settings: &Settings, bound: &[(String, SocketAddr)], workers: usize) {
    eprintln!(
        "split-proxy {} starting ({workers} worker thread{})",
        env!("CARGO_PKG_VERSION"),
        if workers == 1 { "" } else { "s" }
    );
    for (what, addr) in bound {
        eprintln!("split-proxy: {what} listening on {addr}");
    }
    match &settings.source {
        Source::Embedded => eprintln!(
            "split-proxy: config source: embedded store {}",
            settings.data_dir.join("split.redb").display()
        ),
        Source::Standalone(path) => eprintln!(
            "split-proxy: config source: standalone file {} (polled every 1s; Admin API read-only)",
            path.display()
        ),
        Source::Etcd(etcd) => eprintln!(
            "split-proxy: config source: etcd {} prefix {} (watched; role {})",
            etcd.hosts.join(","),
            etcd.prefix,
            settings.role.as_str()
        ),
    }
    if let Some(path) = &settings.config_path {
        eprintln!("split-proxy: config.yaml: {}", path.display());
    }
    if settings.admin_listen.is_some() {
        let auth = &settings.auth;
        let allow: Vec<String> = auth.allow.iter().map(ToString::to_string).collect();
        eprintln!(
            "split-proxy: admin auth: {} ({} key{}), allow_admin: [{}]",
            if auth.required { "on" } else { "OFF" },
            auth.keys.len(),
            if auth.keys.len() == 1 { "" } else { "s" },
            allow.join(", ")
        );
    } else {
        eprintln!(
            "split-proxy: admin API disabled (enable_admin: false or deployment.role: {})",
            settings.role.as_str()
        );
    }
    if settings.listen.is_empty() {
        eprintln!("split-proxy: no proxy port (deployment.role: control_plane)");
    }
    if let Some(key) = &settings.generated_key {
        eprintln!(
            "split-proxy: generated admin key (shown once, stored in {}): {key}",
            crate::admin_key::path(&settings.data_dir).display()
        );
    }
    for w in &settings.warnings {
        eprintln!("split-proxy: {w}");
    }
}
