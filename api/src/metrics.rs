//! Prometheus metrics, served in the text format on the operator-only listener
//! `PARLO_METRICS_LISTEN` (never on the public one): request latency by matched route, open
//! answer streams, time to first token, chat turns by outcome, upstream errors by kind,
//! background job runs with their durations, and the depth of the durable queues. Each running app has its own registry (several
//! apps can share one test process). Labels are bounded sets chosen by the code — a route
//! template, a status class, a stable error code — never a path, a tenant or anything a
//! client sent.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const JOB_BUCKETS: &[f64] = &[0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];

/// The metrics of one running app; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

struct Inner {
    registry: Registry,
    requests: HistogramVec,
    open_streams: IntGauge,
    first_token: Histogram,
    turns: IntCounterVec,
    upstream_errors: IntCounterVec,
    job_runs: IntCounterVec,
    job_seconds: HistogramVec,
    queue_depth: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("parlo".into()), None).expect("valid prefix");
        let requests = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to the response head, by matched route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let open_streams =
            IntGauge::new("open_streams", "Answer streams (SSE) open right now").expect("valid");
        let first_token = Histogram::with_opts(
            HistogramOpts::new(
                "time_to_first_token_seconds",
                "From the start of a chat turn to the first piece of the answer",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let turns = IntCounterVec::new(
            Opts::new("chat_turns_total", "Chat turns, by how the answer ended"),
            &["outcome"],
        )
        .expect("valid metric");
        let upstream_errors = IntCounterVec::new(
            Opts::new("upstream_errors_total", "Failed upstream calls, by kind"),
            &["kind"],
        )
        .expect("valid metric");
        let job_runs = IntCounterVec::new(
            Opts::new("job_runs_total", "Background job runs, by job and outcome"),
            &["job", "outcome"],
        )
        .expect("valid metric");
        let job_seconds = HistogramVec::new(
            HistogramOpts::new("job_duration_seconds", "Background job run time, by job")
                .buckets(JOB_BUCKETS.to_vec()),
            &["job"],
        )
        .expect("valid metric");
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "queue_depth",
                "Work waiting in a durable queue (`knowledge` ingestion jobs, `mail` outbox)",
            ),
            &["queue"],
        )
        .expect("valid metric");
        for c in [
            Box::new(queue_depth.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(requests.clone()),
            Box::new(open_streams.clone()),
            Box::new(first_token.clone()),
            Box::new(turns.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(job_runs.clone()),
            Box::new(job_seconds.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics(Arc::new(Inner {
            registry,
            requests,
            open_streams,
            first_token,
            turns,
            upstream_errors,
            job_runs,
            job_seconds,
            queue_depth,
        }))
    }

    /// One answered request; `route` is the matched route template (`/api/widget/v1/messages`)
    /// or `unmatched`.
    pub fn request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.0
            .requests
            .with_label_values(&[method, route, class])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts an answer stream as open until the returned guard is dropped.
    pub fn stream_opened(&self) -> StreamGuard {
        self.0.open_streams.inc();
        StreamGuard(self.0.open_streams.clone())
    }

    pub fn first_token(&self, elapsed: Duration) {
        self.0.first_token.observe(elapsed.as_secs_f64());
    }

    /// A finished chat turn: `complete`, `interrupted`, `failed` or `client_gone`.
    pub fn turn(&self, outcome: &str) {
        self.0.turns.with_label_values(&[outcome]).inc();
    }

    /// A failed upstream call; `kind` is the error's stable code.
    pub fn upstream_error(&self, kind: &str) {
        self.0.upstream_errors.with_label_values(&[kind]).inc();
    }

    /// One run of a background job.
    pub fn job(&self, job: &str, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "failed" };
        self.0.job_runs.with_label_values(&[job, outcome]).inc();
        self.0
            .job_seconds
            .with_label_values(&[job])
            .observe(elapsed.as_secs_f64());
    }

    /// How much work waits in a durable queue (`knowledge`, `mail`).
    pub fn queue_depth(&self, queue: &str, depth: i64) {
        self.0.queue_depth.with_label_values(&[queue]).set(depth);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.0.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Times every routed request by its route template (a `route_layer`, so `MatchedPath` is
/// known and unrouted paths add no label values).
pub async fn track(
    axum::extract::State(metrics): axum::extract::State<Metrics>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    metrics.request(&method, &route, resp.status().as_u16(), started.elapsed());
    resp
}

/// The operator-only listener's router: `GET /metrics` and nothing else.
pub fn router(metrics: Metrics) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(async move || {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                metrics.render(),
            )
        }),
    )
}

/// Decrements the open-stream gauge when dropped.
pub struct StreamGuard(IntGauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counted_turns_and_routes() {
        let m = Metrics::new();
        m.turn("complete");
        m.request(
            "POST",
            "/api/widget/v1/messages",
            200,
            Duration::from_millis(3),
        );
        {
            let _s = m.stream_opened();
            assert!(m.render().contains("parlo_open_streams 1"));
        }
        let text = m.render();
        assert!(
            text.contains("parlo_chat_turns_total{outcome=\"complete\"} 1"),
            "{text}"
        );
        assert!(text.contains("route=\"/api/widget/v1/messages\""), "{text}");
        assert!(text.contains("parlo_open_streams 0"), "{text}");
    }
}
