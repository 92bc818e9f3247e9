use std::time::Instant;

call_layer! {
    /// Records, through the `metrics` facade (install any recorder, e.g.
    /// `metrics-exporter-prometheus`, before building the server: the handles
    /// are registered once per route):
    ///
    /// - `eventbus_events_total{pubsub, topic, outcome}` (counter)
    /// - `eventbus_handler_duration_seconds{pubsub, topic}` (histogram, one
    ///   observation per handler call: per event, or per batch)
    /// - `eventbus_events_in_flight{pubsub, topic}` (gauge)
    /// - `eventbus_handler_panics_total{pubsub, topic}` (counter, from [`CatchPanicLayer`](super::CatchPanicLayer))
    /// - for service invocation, bindings and jobs:
    ///   `eventbus_calls_total{kind, name, outcome}` (`success`, `error`),
    ///   `eventbus_call_duration_seconds{kind, name}`,
    ///   `eventbus_calls_in_flight{kind, name}` and
    ///   `eventbus_call_panics_total{kind, name}`
    /// - `eventbus_build_info{version}` (gauge, 1)
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
