//! The one place that wires the daemon together: index, tailer, API, signals, and a
//! shutdown that stops reading, commits what was read and exits within two seconds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::{info, warn};

use crate::api::{self, AppState};
use crate::config::Config;
use crate::index::{IndexError, Indexer, IndexerOptions, Timeline};
use crate::live::{Live, LiveLimits, RecordSink};
use crate::pm2;
use crate::rotate::{self, RotateMsg, RotationBoard, Rotator};
use crate::tail::{EarlyLines, Followed, GrowthHook, TailMsg, Tailer, TailerLinks, TailerOptions};

/// Batches in flight between the tailer and the index: the backpressure bound.
const CHANNEL_BATCHES: usize = 2;
/// Rotation requests waiting for the rotator; growth signals beyond it are dropped and
/// sent again a second later.
const ROTATE_QUEUE: usize = 64;
/// The live ring's byte budget, beside its record count (`api.live_buffer`): with lines
/// of up to `max_line_bytes` the count alone would not bound memory.
const LIVE_BYTES: usize = 64 << 20;

/// The file the daemon writes its bound address to, so tests and scripts can find a
/// daemon started on port 0.
pub fn addr_file(data_dir: &Path) -> PathBuf {
    data_dir.join("api.addr")
}

pub fn run(config: &Config) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(config));
    // `serve` has already waited its bounded time for the threads; whatever is still
    // running (an index merge, say) must not hold the exit. The next start resumes
    // from the last commit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

async fn serve(config: &Config) -> Result<()> {
    refuse_open_api(config)?;
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data_dir {}", data_dir.display()))?;
    let index_dir = data_dir.join("index");
    let timeline = Timeline::open(&index_dir)?;
    let indexer = Indexer::new(
        &timeline,
        IndexerOptions {
            commit_interval: config.index.commit_interval,
            retention: config.index.retention,
            writer_memory: config.index.writer_memory,
        },
    )
    .map_err(|e| match e {
        IndexError::Open {
            source: tantivy::TantivyError::LockFailure(..),
            ..
        } => anyhow::anyhow!(
            "another logagg daemon is already using {}",
            index_dir.display()
        ),
        e => e.into(),
    })?;
    let mut indexer = indexer;
    let metrics = crate::metrics::Metrics::default();
    indexer.set_metrics(metrics.clone());
    let early = EarlyLines::new(metrics.clone());
    let bus_watch = pm2::bus::BusWatch {
        metrics: metrics.clone(),
        status: Default::default(),
        early: Some(early.clone()),
    };
    let mut resume = indexer.checkpoints();
    let startup = rotate::prepare(config, &mut resume)
        .context("cannot recover the rotations of the previous run")?;
    indexer.replace_checkpoints(&resume);
    info!(
        files = resume.len(),
        "resuming from the index's checkpoints"
    );
    let committed = indexer.committed();

    let (index_tx, rx) = sync_channel(CHANNEL_BATCHES);
    let live = Live::new(LiveLimits {
        records: config.api.live_buffer as usize,
        bytes: LIVE_BYTES,
    });
    let tx = RecordSink::new(index_tx, live.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let bus_stop = pm2::bus::Stop::new(stop.clone());
    let index_thread = std::thread::Builder::new()
        .name("index".into())
        .spawn(move || indexer.run(rx))?;

    // A task, not a thread: see `pm2::bus`.
    let bus_task = config.pm2.bus.then(|| {
        let (home, tx, stop) = (config.pm2.home.clone(), tx.clone(), bus_stop.clone());
        tokio::spawn(pm2::bus::run(home, tx, stop, bus_watch.clone()))
    });

    let followed = Followed::default();
    let board = RotationBoard::default();
    let (rotate_tx, rotate_rx) = sync_channel::<RotateMsg>(ROTATE_QUEUE);
    let (inbox_tx, inbox) = std::sync::mpsc::channel::<TailMsg>();
    let growth = {
        let rotate_tx = rotate_tx.clone();
        let limits = config.clone();
        GrowthHook {
            notify: Box::new(move |key| rotate_tx.try_send(RotateMsg::Grew(key)).is_ok()),
            size_limit: Box::new(move |service| limits.policy_for(service).max_size),
        }
    };
    let tailer = Tailer::new(
        TailerOptions {
            globs: config.sources.paths.clone(),
            max_line_bytes: config.sources.max_line_bytes,
            rescan_interval: config.sources.rescan_interval,
            linger: config.sources.linger,
            archive_dirs: rotate::rotator::archive_dirs(config),
        },
        resume,
        tx,
        stop.clone(),
        TailerLinks {
            inbox_tx: inbox_tx.clone(),
            inbox,
            followed: followed.clone(),
            growth: Some(growth),
            early: config.pm2.bus.then_some(early),
        },
    );
    let tail_thread = std::thread::Builder::new()
        .name("tail".into())
        .spawn(move || tailer.run())?;
    let stop_tailer = inbox_tx.clone();
    let rotator = Rotator::new(
        config.clone(),
        startup,
        rotate_rx,
        inbox_tx,
        followed.clone(),
        committed,
        board.clone(),
        stop.clone(),
    )
    .with_metrics(metrics.clone());
    let rotate_thread = std::thread::Builder::new()
        .name("rotate".into())
        .spawn(move || {
            // Compression is the heavy part of rotating, and nobody waits for it.
            crate::priority::background();
            rotator.run()
        })?;

    let listener = tokio::net::TcpListener::bind(&config.api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.api.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let addr_path = addr_file(data_dir);
    write_atomically(&addr_path, &format!("{addr}\n"))?;
    let ready = Arc::new(AtomicBool::new(true));
    info!(%addr, "listening on http://{addr}");

    let state = AppState {
        timeline: timeline.clone(),
        ready,
        rotate: rotate_tx,
        followed,
        board,
        config: Arc::new(config.clone()),
        live: live.clone(),
        metrics,
        pm2_status: bus_watch.status,
    };
    // Live follows write one small event at a time: without TCP_NODELAY, Nagle's
    // algorithm holds an event back until the previous one is acknowledged, and with the
    // client's delayed ACK that is a stall of up to 40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Live follows never end by themselves; the server waits for every
            // connection to finish.
            live.close();
        })
        .await
        .context("the HTTP server failed")?;

    info!("stopping: finishing reads and committing");
    stop.store(true, Ordering::Relaxed);
    bus_stop.set();
    let _ = stop_tailer.send(TailMsg::Stop);
    let threads = tokio::task::spawn_blocking(move || {
        let _ = tail_thread.join();
        let _ = index_thread.join();
        let _ = rotate_thread.join();
    });
    let joined = async move {
        if let Some(bus) = bus_task {
            let _ = bus.await;
        }
        let _ = threads.await;
    };
    if tokio::time::timeout(Duration::from_millis(1800), joined)
        .await
        .is_err()
    {
        warn!("shutdown took too long; the next start resumes from the last commit");
    }
    let _ = std::fs::remove_file(&addr_path);
    Ok(())
}

/// Invariant: the API is reachable from other machines only behind a token.
fn refuse_open_api(config: &Config) -> Result<()> {
    let addr: SocketAddr = config
        .api
        .listen
        .parse()
        .with_context(|| format!("api.listen {:?} is not an address", config.api.listen))?;
    if !addr.ip().is_loopback() && config.api.token.is_none() {
        anyhow::bail!(
            "api.listen is {addr}, which other machines can reach: set api.token (or \
             LOGAGG_API_TOKEN) so the API asks for it, or listen on 127.0.0.1"
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
