use tracing::Instrument;

call_layer! {
    /// Runs each call inside a span: `event` for topic events, with the
    /// topic, pubsub, handler and number of entries, and for a single event
    /// its id, type and the W3C trace context that arrived (`trace_id`,
    /// `parent_id` from `traceparent`, and `tracestate`), so logs of one
    /// event correlate with the publisher's trace; `invocation` (with the
    /// method), `binding` or `job` (with the name) for the others. The
    /// answer is logged at debug level.
    ///
    /// With the `opentelemetry` feature and a `tracing-opentelemetry` layer
    /// installed, an event's span is a child of the incoming W3C trace context (a batch's
    /// span links to each entry's), so the trace continues through the app.
    TraceLayer wraps in Trace;

    fn call(inner, request) {
        let span = match request.kind() {
            super::Kind::Event => tracing::info_span!(
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
            ),
            super::Kind::Invocation => tracing::info_span!("invocation", method = request.name(), handler = request.handler()),
            super::Kind::Binding => tracing::info_span!("binding", binding = request.name(), handler = request.handler()),
            super::Kind::Job => tracing::info_span!("job", job = request.name(), handler = request.handler()),
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
            if let [envelope] = request.events() {
                span.record("event.type", envelope.event_type.as_str());
                if let Some((trace_id, parent_id)) = envelope.traceparent().and_then(parse_traceparent) {
                    span.record("trace_id", trace_id).record("parent_id", parent_id);
                }
                if let Some(tracestate) = envelope.tracestate() {
                    span.record("tracestate", tracestate);
                }
            }
        }
        let future = span.in_scope(|| inner.call(request));
        Box::pin(
            async move {
                let result = future.await;
                if let Ok(response) = &result {
                    tracing::debug!(?response, "handled");
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
