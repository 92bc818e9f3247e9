use tracing::Instrument;

event_layer! {
    /// Runs each handler call inside an `event` span with its topic, pubsub,
    /// handler and number of entries; for a single event also its id, type and
    /// the W3C trace context that arrived (`trace_id`, `parent_id` from
    /// `traceparent`, and `tracestate`), so logs of one event correlate with the
    /// publisher's trace. The outcomes are logged at debug level.
    ///
    /// With the `opentelemetry` feature and a `tracing-opentelemetry` layer
    /// installed, the span is a child of the incoming W3C trace context (a batch's
    /// span links to each entry's), so the trace continues through the app.
    TraceLayer wraps in Trace;

    fn call(inner, request) {
        let span = tracing::info_span!(
            "event",
            event.id = %request.ids(),
            event.r#type = tracing::field::Empty,
            topic = request.topic(),
            pubsub = request.pubsub(),
            handler = request.handler(),
            entries = request.events().len(),
            trace_id = tracing::field::Empty,
            parent_id = tracing::field::Empty,
            tracestate = tracing::field::Empty,
        );
        if span.is_disabled() {
            // No subscriber wants it: skip entering and leaving it on every poll.
            return Box::pin(inner.call(request));
        }
        // A batch's entries each carry their own trace context: only a single
        // event's is the span's. Parsed only for a span someone listens to.
        #[cfg(feature = "opentelemetry")]
        match request.events() {
            [envelope] => super::otel::continue_trace(&span, envelope),
            envelopes => super::otel::link_traces(&span, envelopes),
        }
        if let [envelope] = request.events() {
            span.record("event.type", envelope.event_type.as_str());
            if let Some((trace_id, parent_id)) = envelope.traceparent().and_then(parse_traceparent) {
                span.record("trace_id", trace_id).record("parent_id", parent_id);
            }
            if let Some(tracestate) = envelope.tracestate() {
                span.record("tracestate", tracestate);
            }
        }
        let future = span.in_scope(|| inner.call(request));
        Box::pin(
            async move {
                let result = future.await;
                if let Ok(outcomes) = &result {
                    tracing::debug!(?outcomes, "handled");
                }
                result
            }
            .instrument(span),
        )
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
