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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(Arc<Vec<(String, String)>>);

impl Metadata {
    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// Every value of `name` (any case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// Every `(name, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// Adds a value of `name` (kept beside earlier ones).
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        Arc::make_mut(&mut self.0).push((name.into().to_ascii_lowercase(), value.into()));
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

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let entries = entries.into_iter().map(|(key, value)| (key.into().to_ascii_lowercase(), value.into()));
        Metadata(Arc::new(entries.collect()))
    }
}

/// The text entries of gRPC metadata (or HTTP headers, through
/// `MetadataMap::from_headers`).
pub(crate) fn from_grpc(metadata: &tonic::metadata::MetadataMap) -> Metadata {
    metadata
        .iter()
        .filter_map(|entry| match entry {
            tonic::metadata::KeyAndValueRef::Ascii(key, value) => {
                Some((key.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            }
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        })
        .collect()
}
