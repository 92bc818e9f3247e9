//! [`Metadata`]: what the sidecar sent beside an event.

use std::sync::Arc;

/// The metadata of a delivery: the gRPC metadata or HTTP headers the sidecar
/// sent with it (broker metadata such as a Kafka key, `traceparent`, …), in
/// order, names in lower case. Binary gRPC values (`…-bin`) are left out.
/// Cheap to clone; the entries of one bulk delivery share it.
///
/// ```
/// use eventbus::event::Metadata;
///
/// let metadata: Metadata = [("kafka-key", "k1"), ("Accept", "a"), ("accept", "b")].into_iter().collect();
/// assert_eq!(metadata.get("kafka-key"), Some("k1"));
/// assert_eq!(metadata.get_all("ACCEPT").collect::<Vec<_>>(), ["a", "b"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata(Arc<http::HeaderMap>);

impl Metadata {
    /// The first value of `name` (any case), when it is text.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)?.to_str().ok()
    }

    /// Every text value of `name` (any case), in order.
    pub fn get_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.get_all(name).into_iter().filter_map(|value| value.to_str().ok())
    }

    /// Every `(name, value)` whose value is text.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
    }

    /// Adds a value of `name` (kept beside earlier ones); `false`, and
    /// nothing added, when either is not a valid header name or value.
    pub fn append(&mut self, name: &str, value: &str) -> bool {
        let (Ok(name), Ok(value)) = (http::HeaderName::try_from(name), http::HeaderValue::try_from(value)) else {
            return false;
        };
        Arc::make_mut(&mut self.0).append(name, value);
        true
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Entries that are not a valid header name or value are left out.
impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut metadata = Metadata::default();
        for (name, value) in entries {
            metadata.append(name.as_ref(), value.as_ref());
        }
        metadata
    }
}

/// The metadata of a gRPC call (or HTTP headers), without copying it.
pub(crate) fn from_grpc(metadata: tonic::metadata::MetadataMap) -> Metadata {
    Metadata(Arc::new(metadata.into_headers()))
}
