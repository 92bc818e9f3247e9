use tracing::Instrument;

call_layer! {
    /// Runs each call inside a span named and described by the
    /// OpenTelemetry semantic conventions, so dashboards and alerts built
    /// on them match:
    ///
    /// | call | span name | kind | attributes |
    /// |---|---|---|---|
    /// | topic events | `process <topic>` | consumer | `messaging.system` (`dapr`), `messaging.operation.type` and `.name` (`process`), `messaging.destination.name` (the topic), `dapr.pubsub.name`; one event: `messaging.message.id` and `cloudevents.event_id`, `_source`, `_spec_version`, `_type`, `_subject`; a batch: `messaging.batch.message_count` |
    /// | service invocation | `invoke <method>` | server | `rpc.system` (`dapr`), `rpc.method` |
    /// | input binding | `binding <name>` | consumer | `dapr.binding.name` |
    /// | job | `job <name>` | consumer | `dapr.job.name` |
    ///
    /// All carry `eventbus.handler`. An event answered `RETRY` or `DROP`
    /// sets the span's status to error with `error.type`, the
    /// [`Reason`](crate::outcome::Reason) (`timeout`, `decode`, …); a failed
    /// invocation, binding or job sets it with its status code. A single
    /// event's span also records the W3C trace context that arrived
    /// (`trace_id`, `parent_id`, `tracestate`), so logs of one event
    /// correlate with the publisher's trace without OpenTelemetry. The
    /// answer is logged at debug level.
    ///
    /// With the `opentelemetry` feature and a `tracing-opentelemetry` layer
    /// installed, an event's span is a child of the incoming W3C trace
    /// context (a batch's span links to each entry's), so the trace
    /// continues through the app.
    TraceLayer wraps in Trace;

    fn call(inner, request) {
        let span = match request.kind() {
            super::Kind::Event => tracing::info_span!(
                "event",
                otel.name = %format_args!("process {}", request.topic()),
                otel.kind = "consumer",
                otel.status_code = tracing::field::Empty,
                otel.status_description = tracing::field::Empty,
                error.r#type = tracing::field::Empty,
                messaging.system = "dapr",
                messaging.operation.r#type = "process",
                messaging.operation.name = "process",
                messaging.destination.name = request.topic(),
                messaging.message.id = tracing::field::Empty,
                messaging.batch.message_count = tracing::field::Empty,
                dapr.pubsub.name = request.pubsub(),
                cloudevents.event_id = tracing::field::Empty,
                cloudevents.event_source = tracing::field::Empty,
                cloudevents.event_spec_version = tracing::field::Empty,
                cloudevents.event_type = tracing::field::Empty,
                cloudevents.event_subject = tracing::field::Empty,
                eventbus.handler = request.handler(),
                trace_id = tracing::field::Empty,
                parent_id = tracing::field::Empty,
                tracestate = tracing::field::Empty,
            ),
            super::Kind::Invocation => tracing::info_span!(
                "invocation",
                otel.name = %format_args!("invoke {}", request.name()),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                otel.status_description = tracing::field::Empty,
                error.r#type = tracing::field::Empty,
                rpc.system = "dapr",
                rpc.method = request.name(),
                eventbus.handler = request.handler(),
            ),
            super::Kind::Binding => tracing::info_span!(
                "binding",
                otel.name = %format_args!("binding {}", request.name()),
                otel.kind = "consumer",
                otel.status_code = tracing::field::Empty,
                otel.status_description = tracing::field::Empty,
                error.r#type = tracing::field::Empty,
                dapr.binding.name = request.name(),
                eventbus.handler = request.handler(),
            ),
            super::Kind::Job => tracing::info_span!(
                "job",
                otel.name = %format_args!("job {}", request.name()),
                otel.kind = "consumer",
                otel.status_code = tracing::field::Empty,
                otel.status_description = tracing::field::Empty,
                error.r#type = tracing::field::Empty,
                dapr.job.name = request.name(),
                eventbus.handler = request.handler(),
            ),
        };
        if span.is_disabled() {
            // No subscriber wants it: skip entering and leaving it on every poll.
            return Box::pin(inner.call(request));
        }
        if request.kind() == super::Kind::Event {
            // A batch's entries each carry their own trace context: only a single
            // event's is the span's. Parsed only for a span someone listens to.
            #[cfg(feature = "opentelemetry")]
            match request.events() {
                [envelope] => super::otel::continue_trace(&span, envelope),
                envelopes => super::otel::link_traces(&span, envelopes),
            }
            match request.events() {
                [envelope] => record_event(&span, envelope),
                envelopes => {
                    span.record("messaging.batch.message_count", envelopes.len());
                }
            }
        }
        let future = span.in_scope(|| inner.call(request));
        let recorded = span.clone();
        Box::pin(
            async move {
                let result = future.await;
                // Each event's outcome is logged where it is decided, once.
                if let Ok(response) = &result {
                    record_answer(&recorded, response);
                }
                result
            }
            .instrument(span),
        )
    }
}

/// A single event's id, CloudEvent attributes and incoming trace context.
fn record_event(span: &tracing::Span, envelope: &crate::event::Envelope) {
    span.record("messaging.message.id", envelope.id.as_str())
        .record("cloudevents.event_id", envelope.id.as_str())
        .record("cloudevents.event_source", envelope.source.as_str())
        .record("cloudevents.event_spec_version", envelope.spec_version.as_str())
        .record("cloudevents.event_type", envelope.event_type.as_str());
    if let Some(subject) = envelope.subject() {
        span.record("cloudevents.event_subject", subject);
    }
    if let Some((trace_id, parent_id)) = envelope.traceparent().and_then(parse_traceparent) {
        span.record("trace_id", trace_id).record("parent_id", parent_id);
    }
    if let Some(tracestate) = envelope.tracestate() {
        span.record("tracestate", tracestate);
    }
}

/// The error status of a call whose answer was not success: for events the
/// first failed event's outcome and reason, for the others the status.
fn record_answer(span: &tracing::Span, response: &super::Response) {
    let failed = match (response.outcomes(), response.reasons()) {
        (Some(outcomes), Some(reasons)) => outcomes
            .iter()
            .zip(reasons)
            .find(|(outcome, _)| **outcome != crate::Outcome::Success)
            .map(|(outcome, reason)| (reason.as_str(), format!("{outcome}: {reason}"))),
        _ => response.status().map(|status| (status.code().as_str(), status.message().to_owned())),
    };
    if let Some((error_type, description)) = failed {
        span.record("otel.status_code", "ERROR")
            .record("otel.status_description", description.as_str())
            .record("error.type", error_type);
    }
}

/// `(trace_id, parent_id)` of a W3C `traceparent` (`00-<trace>-<parent>-<flags>`).
pub(crate) fn parse_traceparent(traceparent: &str) -> Option<(&str, &str)> {
    let mut parts = traceparent.split('-');
    let (_version, trace_id, parent_id) = (parts.next()?, parts.next()?, parts.next()?);
    (trace_id.len() == 32 && parent_id.len() == 16).then_some((trace_id, parent_id))
}

#[cfg(test)]
mod tests {
    use super::parse_traceparent;

    #[test]
    fn traceparent_parts() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(parse_traceparent(tp), Some(("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")));
        assert_eq!(parse_traceparent("garbage"), None);
    }
}
