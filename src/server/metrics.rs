//! The Prometheus endpoint (`metrics-port`, `metrics-bind`): `GET /metrics` answers the
//! server's metrics in the OpenMetrics text format, which Prometheus scrapes natively.
//!
//! # Crates
//! - `prometheus-client` (the Prometheus project's own Rust client) writes the text format:
//!   metric descriptors, `_total` counters, histogram buckets, `# EOF`, number formatting —
//!   details a hand-written writer gets subtly wrong and scrapers then reject. Its metric
//!   *types* are not used for recording: its histogram locks on every observation, and
//!   the values already live elsewhere (INFO's counters, the engine). Every series is made
//!   at scrape time by a [`Collector`] from the same sources of truth INFO reads.
//!   It does not escape label values (as of 0.23), so [`LabelText`] does.
//! - `hyper` (HTTP/1 server) parses requests: a malformed, oversized or slow request is its
//!   problem, answered or dropped without touching the data server. Each connection also
//!   has a deadline ([`CONNECTION_DEADLINE`]) and at most [`MAX_CONNECTIONS`] are served at
//!   once, so scrapers cannot pile up.
//!
//! # What it costs
//! Nothing on the command path beyond the atomics INFO already keeps (plus one bucket
//! increment per command for the latency histogram, see `crate::histogram`). A scrape
//! takes the keyspace lock once to read the streams ([`Keyspace::observe_streams`]): one
//! pass over the keys with a bounded heap, then the chosen streams' groups and consumers.
//! It runs on a blocking thread, not a runtime worker.
//!
//! # Cardinality
//! Per-stream series exist for at most `metrics-max-streams` streams (those matching
//! `metrics-streams` first, then the longest), and at most that many groups and that many
//! consumers in all (the most pending first); `rill_streams` and
//! `rill_metrics_streams_described` tell how many streams were left out. Per-command series
//! are bounded by the command table.
//!
//! [`Keyspace::observe_streams`]: crate::engine::keyspace::Keyspace::observe_streams

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, LabelValueEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::core::Shared;
use crate::engine::observe::{Selection, StreamsReading};
use crate::histogram::HistogramSnapshot;

/// Scrapes served at once; more connections wait in the accept backlog.
const MAX_CONNECTIONS: usize = 16;
/// A connection (all its requests) must be done within this.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds the endpoint if `metrics-port` is set. Called before loading, so a scrape shows
/// the loading progress.
pub async fn bind(shared: &Shared) -> std::io::Result<Option<TcpListener>> {
    let (port, bind) = {
        let cfg = shared.config.read();
        (cfg.metrics_port, cfg.metrics_bind.clone())
    };
    if port == 0 {
        return Ok(None);
    }
    let listener = TcpListener::bind((bind.as_str(), port))
        .await
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("Could not create the metrics listener on {bind}:{port}: {e}"),
            )
        })?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("Metrics endpoint on http://{}/metrics", addr);
    }
    Ok(Some(listener))
}

/// Serves the endpoint until the process ends.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let mut registry = Registry::with_prefix("rill");
    registry.register_collector(Box::new(RillCollector {
        shared: shared.clone(),
    }));
    let registry = Arc::new(registry);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: wait a little rather than spin.
                tracing::warn!("Metrics endpoint: accept failed: {}", e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(registry.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(64 * 1024)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
            drop(permit);
        });
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn answer(
    registry: Arc<Registry>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/metrics" {
        return Ok(plain(StatusCode::NOT_FOUND, "Not found: try /metrics\n"));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "Only GET /metrics\n");
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return Ok(r);
    }
    let text = tokio::task::spawn_blocking(move || {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &registry).map(|()| out)
    })
    .await;
    Ok(match text {
        Ok(Ok(text)) => {
            let mut r = Response::new(Full::new(Bytes::from(text)));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(CONTENT_TYPE),
            );
            r
        }
        _ => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The metrics could not be encoded\n",
        ),
    })
}

/// A label value escaped as the text format requires (`\\`, `\"`, `\n`); bytes that are
/// not UTF-8 become U+FFFD (two such names may then share a label value).
#[derive(Debug, Clone)]
struct LabelText(String);

impl LabelText {
    fn new(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw);
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        LabelText(out)
    }
}

impl EncodeLabelValue for LabelText {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, &self.0)
    }
}

type Labels = Vec<(&'static str, LabelText)>;

/// Everything a scrape reports, read at one moment.
struct Reading {
    uptime_s: u64,
    loading: bool,
    loading_total: u64,
    loading_done: u64,
    checkpoint_in_progress: bool,
    checkpoints: u64,
    last_checkpoint_unix: u64,
    last_checkpoint_usec: u64,
    compactions: u64,
    compaction_todo: u64,
    compaction_done: u64,
    compacted_entries: u64,
    connected_clients: u64,
    blocked_clients: u64,
    connections_received: u64,
    rejected_connections: u64,
    net_input_bytes: u64,
    net_output_bytes: u64,
    error_replies: u64,
    commands: Vec<(&'static str, crate::core::stats::CommandStat)>,
    latencies: Vec<(&'static str, HistogramSnapshot)>,
    cache: crate::engine::payload::PayloadStats,
    log: Option<LogReading>,
    streams: StreamsReading,
}

struct LogReading {
    written_bytes: u64,
    fsyncs: u64,
    poisoned: bool,
    fsync_usec: HistogramSnapshot,
    commit_records: HistogramSnapshot,
}

fn read(shared: &Shared) -> Reading {
    let (max_streams, always) = {
        let cfg = shared.config.read();
        (cfg.metrics_max_streams, cfg.metrics_streams.clone())
    };
    let sel = Selection {
        max_streams,
        always: &always,
        max_groups: max_streams,
    };
    let (streams, blocked_clients, cache) = {
        let state = shared.state.lock();
        (
            state.ks.observe_streams(&sel, crate::core::now_ms()),
            state.blocking.len() as u64,
            state.ks.payloads.stats(),
        )
    };
    let log = shared
        .log
        .get()
        .or_else(|| shared.raft.get().map(|r| r.raft_log().log()))
        .map(|log| {
            let (written_bytes, fsyncs) = log.counters();
            let (fsync_usec, commit_records) = log.histograms();
            LogReading {
                written_bytes,
                fsyncs,
                poisoned: log.is_poisoned(),
                fsync_usec,
                commit_records,
            }
        });
    let st = &shared.stats;
    let p = &st.progress;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    Reading {
        uptime_s: shared.started.elapsed().as_secs(),
        loading: shared.is_loading(),
        loading_total: load(&shared.loading_total),
        loading_done: load(&shared.loading_done),
        checkpoint_in_progress: shared.checkpoint_in_progress.load(Ordering::Relaxed),
        checkpoints: load(&p.checkpoints),
        last_checkpoint_unix: load(&p.last_checkpoint_unix),
        last_checkpoint_usec: load(&p.last_checkpoint_usec),
        compactions: load(&p.compactions),
        compaction_todo: load(&p.compaction_todo),
        compaction_done: load(&p.compaction_done),
        compacted_entries: load(&p.compacted_entries),
        connected_clients: shared.clients.len() as u64,
        blocked_clients,
        connections_received: load(&st.connections_received),
        rejected_connections: load(&st.rejected_connections),
        net_input_bytes: load(&st.net_input_bytes),
        net_output_bytes: load(&st.net_output_bytes),
        error_replies: load(&st.error_replies),
        commands: st.commands(),
        latencies: st.command_latencies(),
        cache,
        log,
        streams,
    }
}

/// Makes every series at scrape time from [`read`].
struct RillCollector {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RillCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RillCollector")
    }
}

/// Per-bucket counts in `unit`s per recorded unit (1e-6 for µs → s), the last +Inf.
fn buckets(h: &HistogramSnapshot, scale: f64) -> Vec<(f64, u64)> {
    h.buckets
        .iter()
        .map(|(bound, n)| (bound.map_or(f64::MAX, |b| b as f64 * scale), *n))
        .collect()
}

struct Out<'e, 'a> {
    enc: &'e mut DescriptorEncoder<'a>,
}

impl Out<'_, '_> {
    fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        v: V,
    ) -> std::fmt::Result {
        self.enc
            .encode_descriptor(name, help, None, MetricType::Gauge)?
            .encode_gauge(&v)
    }

    fn counter(&mut self, name: &str, help: &str, v: u64) -> std::fmt::Result {
        self.enc
            .encode_descriptor(name, help, None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, u64, u64>(&v, None)
    }

    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        h: &HistogramSnapshot,
        scale: f64,
    ) -> std::fmt::Result {
        self.enc
            .encode_descriptor(name, help, None, MetricType::Histogram)?
            .encode_histogram::<NoLabelSet>(h.sum as f64 * scale, h.count, &buckets(h, scale), None)
    }

    /// A gauge family: one series per `(labels, value)`.
    fn gauges<V: prometheus_client::encoding::EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (Labels, V)>,
    ) -> std::fmt::Result {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, v) in series {
            m.encode_family(&labels)?.encode_gauge(&v)?;
        }
        Ok(())
    }

    fn counters(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (Labels, u64)>,
    ) -> std::fmt::Result {
        let mut m = self
            .enc
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, v) in series {
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
        }
        Ok(())
    }
}

fn stream_labels(db: usize, key: &[u8]) -> Labels {
    vec![
        ("db", LabelText(db.to_string())),
        ("stream", LabelText::new(key)),
    ]
}

impl Collector for RillCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = read(&self.shared);
        let mut o = Out { enc: &mut enc };
        enc_server(&mut o, &r)?;
        enc_storage(&mut o, &r)?;
        enc_commands(&mut o, &r)?;
        enc_policies(&mut o, &self.shared)?;
        enc_streams(&mut o, &r)
    }
}

/// Broker policies (issue #16): what the retention and dead-letter sweeps did (INFO
/// policies has the same counters).
fn enc_policies(o: &mut Out<'_, '_>, sh: &Shared) -> std::fmt::Result {
    let st = &sh.stats;
    o.counter(
        "retention_sweeps",
        "Runs of the retention sweep (broker policies)",
        st.retention_sweeps.load(Ordering::Relaxed),
    )?;
    o.counter(
        "retention_trimmed_entries",
        "Entries the retention sweep trimmed",
        st.retention_trimmed.load(Ordering::Relaxed),
    )?;
    o.counter(
        "dead_lettered_entries",
        "Entries moved to a dead-letter stream (the sweep past MAXDELIVER, and XNACK FATAL)",
        st.dead_lettered.load(Ordering::Relaxed),
    )
}

fn enc_server(o: &mut Out<'_, '_>, r: &Reading) -> std::fmt::Result {
    {
        let mut m = o.enc.encode_descriptor(
            "build",
            "The running build: Rill's version, the commit it was built from",
            None,
            MetricType::Info,
        )?;
        let labels: Labels = vec![
            ("version", LabelText(env!("CARGO_PKG_VERSION").into())),
            ("git_sha1", LabelText(env!("RILL_GIT_SHA1").into())),
            ("build_id", LabelText(env!("RILL_BUILD_ID").into())),
        ];
        m.encode_info(&labels)?;
    }
    o.gauge(
        "uptime_seconds",
        "Seconds since the server started",
        r.uptime_s,
    )?;
    o.gauge(
        "connected_clients",
        "Client connections open now (INFO connected_clients)",
        r.connected_clients,
    )?;
    o.gauge(
        "blocked_clients",
        "Clients waiting in a blocking command (INFO blocked_clients)",
        r.blocked_clients,
    )?;
    o.counter(
        "connections_received",
        "Connections accepted since start",
        r.connections_received,
    )?;
    o.counter(
        "rejected_connections",
        "Connections refused because of maxclients",
        r.rejected_connections,
    )?;
    o.counter(
        "net_input_bytes",
        "Bytes read from clients",
        r.net_input_bytes,
    )?;
    o.counter(
        "net_output_bytes",
        "Bytes written to clients",
        r.net_output_bytes,
    )?;
    o.counter("error_replies", "Error replies sent", r.error_replies)
}

fn enc_storage(o: &mut Out<'_, '_>, r: &Reading) -> std::fmt::Result {
    o.gauge(
        "loading",
        "1 while the log is replayed at start-up (clients get -LOADING)",
        u64::from(r.loading),
    )?;
    o.gauge(
        "loading_records",
        "Log records to replay at start-up",
        r.loading_total,
    )?;
    o.gauge(
        "loading_loaded_records",
        "Log records replayed so far",
        r.loading_done,
    )?;
    o.gauge(
        "checkpoint_in_progress",
        "1 while a checkpoint is written",
        u64::from(r.checkpoint_in_progress),
    )?;
    o.counter(
        "checkpoints",
        "Checkpoints written since start",
        r.checkpoints,
    )?;
    o.gauge(
        "last_checkpoint_timestamp_seconds",
        "Unix time the last checkpoint finished (0: none yet)",
        r.last_checkpoint_unix,
    )?;
    o.gauge(
        "last_checkpoint_duration_seconds",
        "How long the last checkpoint took",
        r.last_checkpoint_usec as f64 / 1e6,
    )?;
    o.counter("compactions", "Compaction runs since start", r.compactions)?;
    o.gauge(
        "compaction_entries_todo",
        "Entries the compaction under way relocates (0: none runs)",
        r.compaction_todo,
    )?;
    o.gauge(
        "compaction_entries_done",
        "Entries the compaction under way has relocated",
        r.compaction_done,
    )?;
    o.counter(
        "compacted_entries",
        "Entries relocated by compaction since start",
        r.compacted_entries,
    )?;
    o.counter(
        "payload_cache_hits",
        "Entry payloads served from the payload cache",
        r.cache.hits,
    )?;
    o.counter(
        "payload_cache_misses",
        "Entry payloads read from the log files",
        r.cache.misses,
    )?;
    o.gauge(
        "payload_cache_bytes",
        "Bytes held by the payload cache",
        r.cache.cache_bytes,
    )?;
    if let Some(log) = &r.log {
        o.counter(
            "log_written_bytes",
            "Bytes written to the log since start",
            log.written_bytes,
        )?;
        o.counter("log_fsyncs", "fsyncs of the log since start", log.fsyncs)?;
        o.gauge(
            "log_poisoned",
            "1 once a log write or fsync failed: writes are refused until restart",
            u64::from(log.poisoned),
        )?;
        o.histogram(
            "log_fsync_duration_seconds",
            "Duration of each fsync of the log",
            &log.fsync_usec,
            1e-6,
        )?;
        o.histogram(
            "log_commit_batch_records",
            "Records (one per command batch) written by each group commit",
            &log.commit_records,
            1.0,
        )?;
    }
    Ok(())
}

fn enc_commands(o: &mut Out<'_, '_>, r: &Reading) -> std::fmt::Result {
    let cmd = |name: &str| -> Labels { vec![("cmd", LabelText::new(name.as_bytes()))] };
    o.counters(
        "commands",
        "Commands executed, per command (INFO commandstats calls)",
        r.commands.iter().map(|(n, s)| (cmd(n), s.calls)),
    )?;
    o.counters(
        "command_failures",
        "Commands that ran and answered an error (INFO commandstats failed_calls)",
        r.commands.iter().map(|(n, s)| (cmd(n), s.failed)),
    )?;
    o.counters(
        "command_rejections",
        "Commands refused before running (INFO commandstats rejected_calls)",
        r.commands.iter().map(|(n, s)| (cmd(n), s.rejected)),
    )?;
    let mut m = o.enc.encode_descriptor(
        "command_duration_seconds",
        "Execution time per command (as INFO commandstats usec, excluding I/O)",
        None,
        MetricType::Histogram,
    )?;
    for (name, h) in &r.latencies {
        m.encode_family(&cmd(name))?
            .encode_histogram::<NoLabelSet>(
                h.sum as f64 * 1e-6,
                h.count,
                &buckets(h, 1e-6),
                None,
            )?;
    }
    Ok(())
}

fn enc_streams(o: &mut Out<'_, '_>, r: &Reading) -> std::fmt::Result {
    let s = &r.streams;
    o.gauge(
        "streams",
        "Streams in the keyspace, all databases",
        s.total_streams,
    )?;
    o.gauge(
        "metrics_streams_described",
        "Streams with series of their own (bounded by metrics-max-streams)",
        s.streams.len() as u64,
    )?;
    o.gauges(
        "stream_length",
        "Entries in the stream (XLEN)",
        s.streams
            .iter()
            .map(|st| (stream_labels(st.db, &st.key), st.length)),
    )?;
    o.gauges(
        "stream_bytes",
        "Bytes of the stream's entries as Redis would hold them (listpack bytes)",
        s.streams
            .iter()
            .map(|st| (stream_labels(st.db, &st.key), st.bytes)),
    )?;
    let groups = || {
        s.streams.iter().flat_map(|st| {
            st.groups.iter().map(move |g| {
                let mut l = stream_labels(st.db, &st.key);
                l.push(("group", LabelText::new(&g.name)));
                (l, g)
            })
        })
    };
    o.gauges(
        "group_pending",
        "Entries delivered to the group and not acknowledged (XPENDING count)",
        groups().map(|(l, g)| (l, g.pending)),
    )?;
    o.gauges(
        "group_lag",
        "Entries not yet delivered to the group (XINFO GROUPS lag; absent when unknown)",
        groups().filter_map(|(l, g)| g.lag.map(|lag| (l, lag))),
    )?;
    o.gauges(
        "group_oldest_pending_age_seconds",
        "Seconds since the oldest pending entry was delivered (absent with none pending)",
        groups().filter_map(|(l, g)| g.oldest_pending_ms.map(|ms| (l, ms as f64 / 1e3))),
    )?;
    let consumers = || {
        groups().flat_map(|(l, g)| {
            g.consumers.iter().map(move |c| {
                let mut l = l.clone();
                l.push(("consumer", LabelText::new(&c.name)));
                (l, c)
            })
        })
    };
    o.gauges(
        "consumer_pending",
        "Entries the consumer owns in its group's PEL",
        consumers().map(|(l, c)| (l, c.pending)),
    )?;
    o.gauges(
        "consumer_idle_seconds",
        "Seconds since the consumer was last seen (XINFO CONSUMERS idle)",
        consumers().map(|(l, c)| (l, c.idle_ms as f64 / 1e3)),
    )
}
