//! Holds many idle keep-alive connections, each after one real request, so a proxy's
//! per-connection memory can be read from outside.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::args::Args;
use crate::{body, request};

/// Connections being opened at the same time.
const OPENING: usize = 200;
/// Upper bound for opening one connection and getting its answer.
const PER_CONNECTION: Duration = Duration::from_secs(20);

/// Opens `--conns` connections to `--addr`, prints `ready conns=… failed=…`, then holds
/// them for `--hold-secs` (the script kills it sooner).
pub fn run(args: &Args) -> Result<()> {
    let addr = args.required("addr")?.to_string();
    let path = args.get("path", "/chat/completions".to_string())?;
    let conns: usize = args.get("conns", 10_000)?;
    let hold = Duration::from_secs(args.get("hold-secs", 60)?);
    if conns == 0 {
        bail!("--conns must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("idle: build the tokio runtime")?;
    runtime.block_on(async move {
        let gate = Arc::new(Semaphore::new(OPENING));
        let mut opening = JoinSet::new();
        for _ in 0..conns {
            let (gate, addr, path) = (Arc::clone(&gate), addr.clone(), path.clone());
            opening.spawn(async move {
                // The semaphore is never closed, so acquire cannot fail; map it anyway.
                let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
                match tokio::time::timeout(PER_CONNECTION, open(&addr, &path)).await {
                    Ok(Ok(sender)) => Ok(sender),
                    Ok(Err(err)) => Err(format!("{err:#}")),
                    Err(_) => Err(format!("no answer within {PER_CONNECTION:?}")),
                }
            });
        }
        let mut held = Vec::with_capacity(conns);
        let mut failed = 0usize;
        let mut first_error = None;
        while let Some(result) = opening.join_next().await {
            match result {
                Ok(Ok(sender)) => held.push(sender),
                Ok(Err(err)) => {
                    failed += 1;
                    first_error.get_or_insert(err);
                }
                Err(err) => {
                    failed += 1;
                    first_error.get_or_insert(err.to_string());
                }
            }
        }
        println!("ready conns={} failed={failed}", held.len());
        if let Some(err) = first_error {
            eprintln!("idle: first failure: {err}");
        }
        tokio::time::sleep(hold).await;
        drop(held);
        anyhow::Ok(())
    })
}

/// One connection with one completed request; the returned sender keeps it open.
async fn open(
    addr: &str,
    path: &str,
) -> Result<hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>> {
    let mut sender = request::connect(addr).await?;
    let response = sender
        .send_request(request::post(addr, path, body::CHAT_REQUEST)?)
        .await
        .context("send request")?;
    let status = response.status();
    response.into_body().collect().await.context("read body")?;
    if !status.is_success() {
        bail!("status {status}");
    }
    Ok(sender)
}
