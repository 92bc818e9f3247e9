use std::time::Instant;

/// Histogram buckets for the `*_seconds` metrics, 0.5 ms to 30 s.
///
/// `metrics-exporter-prometheus` renders a histogram as a *summary* unless
/// it is given buckets, and summaries cannot be aggregated across replicas
/// (no `histogram_quantile` over pods). Give it these, as the customer
/// worker does:
/// `PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)`.
///
/// ```
/// let buckets = eventbus::middleware::LATENCY_BUCKETS;
/// assert!(buckets.windows(2).all(|pair| pair[0] < pair[1]));
/// assert_eq!((buckets[0], buckets[buckets.len() - 1]), (0.0005, 30.0));
/// ```
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

call_layer! {
    /// Records, through the `metrics` facade (install any recorder, e.g.
    /// `metrics-exporter-prometheus` with [`LATENCY_BUCKETS`], before
    /// building the server: the handles are registered once per route):
    ///
    /// - `eventbus_handler_duration_seconds{pubsub, topic}` (histogram, one
    ///   observation per handler call: per event, or per batch)
    /// - `eventbus_events_in_flight{pubsub, topic}` (gauge)
    /// - `eventbus_handler_panics_total{pubsub, topic}` (counter, from [`CatchPanicLayer`](super::CatchPanicLayer))
    /// - for service invocation, bindings and jobs:
    ///   `eventbus_calls_total{kind, name, outcome}` (`success`, `error`),
    ///   `eventbus_call_duration_seconds{kind, name}`,
    ///   `eventbus_calls_in_flight{kind, name}` and
    ///   `eventbus_call_panics_total{kind, name}`
    ///
    /// The server itself counts every event it answers, whether a handler
    /// saw it or not (no route, no id, too large, unreadable, draining), in
    /// `eventbus_events_total{pubsub, topic, outcome, reason}` (outcome
    /// `success`, `retry`, `drop`; reason one of [`Reason`](crate::outcome::Reason)),
    /// and sets `eventbus_ready` (gauge: 1 when the last readiness check
    /// passed, else 0) and `eventbus_build_info{version}` (gauge, 1). Streaming
    /// subscriptions add `eventbus_stream_reconnects_total{pubsub, topic}` and
    /// `eventbus_stream_repeated_ids_total{pubsub, topic}`; the publisher
    /// `eventbus_publish_attempts_total{pubsub, topic, outcome}`.
    ///
    /// Each has HELP text (`describe_*`), registered when the server is built.
    MetricsLayer wraps in Metrics;

    fn call(inner, request) {
        // Handles registered with the route: no label allocation per call.
        let route = request.route.clone();
        let calls = request.events().len().max(1) as f64;
        route.metrics().in_flight.increment(calls);
        let started = Instant::now();
        let future = inner.call(request);
        Box::pin(async move {
            let result = future.await;
            let metrics = route.metrics();
            metrics.in_flight.decrement(calls);
            metrics.duration.record(started.elapsed().as_secs_f64());
            if let Ok(response) = &result {
                metrics.record(response);
            }
            result
        })
    }
}
