//! `cairn-operator run`: log in to the core, serve health and metrics,
//! campaign for leadership, and while leading run the controllers and the
//! pod-lease collector. Losing leadership stops the process (a standby may
//! already act); SIGTERM stops it gracefully and releases the Lease.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::config::RunArgs;
use crate::context::Context;
use crate::controllers::{dynamic_credential, pod_gc::PodGc, secret_policy};
use crate::core_session::{CoreSession, SessionConfig};
use crate::http::{serve, Health};
use crate::leader::Election;
use crate::metrics::Metrics;
use crate::templates::PathTemplates;

/// Runs the operator until SIGTERM / SIGINT.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let templates =
        PathTemplates::parse(&args.path_templates).context("invalid --path-templates")?;
    let kube = kube::Client::try_default()
        .await
        .context("failed to build the Kubernetes client")?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health {
        ready: false.into(),
        metrics: metrics.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tokio::spawn({
        let health = health.clone();
        let stop = stopped(stop_rx.clone());
        async move {
            if let Err(error) = serve(args.http_addr, health, stop).await {
                tracing::error!(error = %error, "health server failed");
            }
        }
    });
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    // Log in to the core, retrying while it is unreachable or sealed.
    let session_config = SessionConfig {
        addr: args.cairn_addr.clone(),
        ca_cert: args.cairn_ca_cert.clone(),
        mount: args.auth_mount.clone(),
        role: args.auth_role.clone(),
        token_file: args.token_file.clone(),
    };
    let mut attempt = 0;
    let (core, ttl) = loop {
        match CoreSession::open(session_config.clone()).await {
            Ok(opened) => break opened,
            Err(error) => {
                attempt += 1;
                tracing::warn!(error = %error, source = ?std::error::Error::source(&error).map(|s| s.to_string()), "failed to log in to the core; retrying");
                let wait = crate::error::backoff(attempt, Duration::from_secs(30));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped(stop_rx.clone()) => return Ok(()),
                }
            }
        }
    };
    tracing::info!("logged in to the core");
    tokio::spawn(core.clone().refresh_forever(ttl));
    health.ready.store(true, Ordering::Relaxed);

    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "cairn-operator".into());
        format!("{host}-{}", std::process::id())
    });
    let election = Election {
        namespace: args.leader_election_namespace.clone(),
        name: args.lease_name.clone(),
        identity,
        lease_duration: Duration::from_secs(u64::from(args.lease_duration_seconds.max(3))),
    };
    let (leader_tx, mut leader_rx) = watch::channel(false);
    let campaign = tokio::spawn(election.clone().run(kube.clone(), leader_tx));
    tokio::select! {
        r = leader_rx.wait_for(|l| *l) => { r.context("leader election stopped")?; }
        _ = stopped(stop_rx.clone()) => { campaign.abort(); return Ok(()); }
    }
    tracing::info!(identity = %election.identity, "leading");
    metrics.leader.set(1);

    // Work stops on SIGTERM or on loss of leadership.
    let (work_stop_tx, work_stop_rx) = watch::channel(false);
    let lost = {
        let mut rx = leader_rx.clone();
        async move { rx.wait_for(|l| !*l).await.is_ok() }
    };
    let policies = secret_policy::controller(kube.clone(), args.reconcile_concurrency);
    let ctx = Arc::new(Context::new(
        kube.clone(),
        core.clone(),
        templates,
        args.token_audience.clone(),
        metrics.clone(),
        policies.store(),
    ));
    let credentials = dynamic_credential::controller(kube.clone(), args.reconcile_concurrency);
    let gc = PodGc::new(core.clone(), metrics.clone());
    let sp = tokio::spawn(secret_policy::run(
        ctx.clone(),
        policies,
        stopped(work_stop_rx.clone()),
    ));
    let dc = tokio::spawn(dynamic_credential::run(
        ctx.clone(),
        credentials,
        stopped(work_stop_rx.clone()),
    ));
    let gc = tokio::spawn(gc.run(
        kube.clone(),
        Duration::from_secs(args.pod_gc_interval_seconds.max(1)),
        stopped(work_stop_rx.clone()),
    ));
    let lost_leadership = tokio::select! {
        l = lost => l,
        _ = stopped(stop_rx.clone()) => false,
    };
    let _ = work_stop_tx.send(true);
    let drain = async {
        let _ = sp.await;
        let _ = dc.await;
        let _ = gc.await;
    };
    if tokio::time::timeout(Duration::from_secs(20), drain)
        .await
        .is_err()
    {
        tracing::warn!("controllers did not stop in time");
    }
    campaign.abort();
    metrics.leader.set(0);
    if lost_leadership {
        anyhow::bail!(
            "lost leadership of Lease {}/{}",
            election.namespace,
            election.name
        );
    }
    election.release(kube).await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
