//! Where the Dapr sidecar is, and the tokens each side shows the other.

/// The header daprd sends the app token in.
pub const TOKEN_HEADER: &str = "dapr-api-token";
/// The environment variable daprd and the app share the token through.
pub const TOKEN_ENV: &str = "APP_API_TOKEN";

/// Where daprd's gRPC API is, for publishing, streaming subscriptions and
/// redrive, read as the Dapr SDKs read `DAPR_GRPC_ENDPOINT`:
///
/// | address | dialled | TLS |
/// |---|---|---|
/// | `http://host:port` | `host:port` (port 80 when left out) | no |
/// | `https://host:port` | `host:port` (port 443 when left out) | yes |
/// | `host:port` | `host:port` (port 443 when left out) | no |
/// | `host:port?tls=true` | `host:port` | yes |
///
/// `?tls=` beside an `http(s)://` scheme, another scheme (`unix://`,
/// `dns://`) or another query parameter is refused when connecting. A TLS
/// endpoint is verified against the system's roots, or the CA of
/// [`ca_file`](DaprEndpoint::ca_file), and needs the `tls` feature: without
/// it, connecting fails; an `https` endpoint is never dialled in cleartext.
///
/// ```
/// use eventbus::sidecar::DaprEndpoint;
///
/// assert!(!DaprEndpoint::new("http://127.0.0.1:50001").is_tls());
/// assert!(DaprEndpoint::new("https://dapr.example.com").is_tls());
/// assert!(DaprEndpoint::new("dapr.example.com:50001?tls=true").is_tls());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaprEndpoint {
    address: String,
    token: Option<String>,
    ca_file: Option<std::path::PathBuf>,
}

impl DaprEndpoint {
    /// An endpoint such as `http://127.0.0.1:50001`, without a token.
    pub fn new(address: impl Into<String>) -> Self {
        DaprEndpoint { address: address.into(), token: None, ca_file: None }
    }

    /// The endpoint the Dapr SDKs use: `DAPR_GRPC_ENDPOINT`, else
    /// `http://127.0.0.1:$DAPR_GRPC_PORT` (default port 50001), with the
    /// `DAPR_API_TOKEN` when it is set.
    pub fn from_env() -> Self {
        let address = std::env::var("DAPR_GRPC_ENDPOINT").ok().filter(|e| !e.is_empty()).unwrap_or_else(|| {
            let port = std::env::var("DAPR_GRPC_PORT").ok().filter(|p| !p.is_empty());
            format!("http://127.0.0.1:{}", port.as_deref().unwrap_or("50001"))
        });
        DaprEndpoint::new(address).token(std::env::var("DAPR_API_TOKEN").ok())
    }

    /// The same token, another address.
    #[must_use]
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// The `dapr-api-token` to send (`None` for none).
    #[must_use]
    pub fn token(mut self, token: impl Into<Option<String>>) -> Self {
        self.token = token.into().filter(|t| !t.is_empty());
        self
    }

    /// Verifies a TLS endpoint against the CA certificates (PEM) in `path`
    /// instead of the system's roots.
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// The address, as given.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The `dapr-api-token`, if any.
    pub fn api_token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether it is dialled over TLS (see the table above).
    pub fn is_tls(&self) -> bool {
        self.target().is_ok_and(|target| target.tls)
    }

    /// Host, port and TLS, as the table above reads the address.
    fn target(&self) -> Result<Target, String> {
        let refuse = |why: &str| Err(format!("invalid Dapr gRPC endpoint {:?}: {why}", self.address));
        let (rest, scheme) = match self.address.split_once("://") {
            Some((scheme, rest)) => (rest, Some(scheme.to_ascii_lowercase())),
            None => (self.address.as_str(), None),
        };
        let (authority, query) = match rest.split_once('?') {
            Some((authority, query)) => (authority.trim_end_matches('/'), Some(query)),
            None => (rest.trim_end_matches('/'), None),
        };
        let tls_parameter = match query {
            None => None,
            Some("tls=true") => Some(true),
            Some("tls=false") => Some(false),
            Some(other) => return refuse(&format!("unknown query {other:?} (only tls=true or tls=false)")),
        };
        let (tls, default_port) = match (scheme.as_deref(), tls_parameter) {
            (Some("http" | "https"), Some(_)) => return refuse("the tls parameter goes with no scheme"),
            (Some("http"), None) => (false, 80),
            (Some("https"), None) => (true, 443),
            (Some(other), _) => return refuse(&format!("scheme {other:?} is not supported (http or https)")),
            (None, tls) => (tls.unwrap_or(false), 443),
        };
        if authority.is_empty() || authority.contains('/') {
            return refuse("no host");
        }
        // `[::1]:50001`, `host:50001`, `host`.
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => match port.parse::<u16>() {
                Ok(port) => (host, port),
                Err(_) => return refuse(&format!("port {port:?} is not a number")),
            },
            _ => (authority, default_port),
        };
        Ok(Target { host: host.to_owned(), port, tls })
    }

    /// The tonic endpoint to connect to, with TLS set up when the address
    /// asks for it. The one place a channel to the sidecar is configured.
    #[cfg(feature = "client")]
    pub(crate) fn channel(&self) -> Result<tonic::transport::Endpoint, String> {
        let target = self.target()?;
        let scheme = if target.tls { "https" } else { "http" };
        let uri = format!("{scheme}://{}:{}", target.host, target.port);
        let endpoint = tonic::transport::Endpoint::from_shared(uri.clone()).map_err(|e| format!("{uri}: {e}"))?;
        if !target.tls {
            return Ok(endpoint);
        }
        self.with_tls(endpoint, &target)
    }

    #[cfg(all(feature = "client", feature = "tls"))]
    fn with_tls(
        &self,
        endpoint: tonic::transport::Endpoint,
        target: &Target,
    ) -> Result<tonic::transport::Endpoint, String> {
        use tonic::transport::{Certificate, ClientTlsConfig};
        let domain = target.host.trim_start_matches('[').trim_end_matches(']');
        let config = ClientTlsConfig::new().domain_name(domain);
        let config = match &self.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("CA file {}: {e}", path.display()))?;
                config.ca_certificate(Certificate::from_pem(pem))
            }
            None => config.with_native_roots(),
        };
        endpoint.tls_config(config).map_err(|e| format!("TLS for {}: {e}", self.address))
    }

    #[cfg(all(feature = "client", not(feature = "tls")))]
    fn with_tls(&self, _: tonic::transport::Endpoint, _: &Target) -> Result<tonic::transport::Endpoint, String> {
        Err(format!("{} asks for TLS: enable eventbus' `tls` feature (it is never dialled in cleartext)", self.address))
    }
}

impl From<&str> for DaprEndpoint {
    fn from(address: &str) -> Self {
        DaprEndpoint::new(address)
    }
}

impl From<String> for DaprEndpoint {
    fn from(address: String) -> Self {
        DaprEndpoint::new(address)
    }
}

/// What an address names.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    tls: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(address: &str) -> Result<(String, u16, bool), String> {
        DaprEndpoint::new(address).target().map(|t| (t.host, t.port, t.tls))
    }

    #[test]
    fn addresses_read_as_the_dapr_sdks_read_them() {
        let ok = |host: &str, port, tls| Ok((host.to_owned(), port, tls));
        assert_eq!(target("http://127.0.0.1:50001"), ok("127.0.0.1", 50001, false));
        assert_eq!(target("http://localhost"), ok("localhost", 80, false));
        assert_eq!(target("https://dapr.example.com"), ok("dapr.example.com", 443, true));
        assert_eq!(target("https://dapr.example.com:8443/"), ok("dapr.example.com", 8443, true));
        assert_eq!(target("localhost:50001"), ok("localhost", 50001, false));
        assert_eq!(target("localhost"), ok("localhost", 443, false));
        assert_eq!(target("localhost:50001?tls=true"), ok("localhost", 50001, true));
        assert_eq!(target("localhost?tls=false"), ok("localhost", 443, false));
        assert_eq!(target("[::1]:50001"), ok("[::1]", 50001, false));
        assert_eq!(target("HTTPS://Dapr:1"), ok("Dapr", 1, true));
        for bad in [
            "https://host?tls=false",
            "http://host?tls=true",
            "unix:///tmp/dapr.sock",
            "host?secure=1",
            "host:http",
            "",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_token_is_no_token() {
        let endpoint = DaprEndpoint::new("http://127.0.0.1:1234").token(String::new());
        assert_eq!(endpoint.address(), "http://127.0.0.1:1234");
        assert_eq!(endpoint.api_token(), None);
    }
}
