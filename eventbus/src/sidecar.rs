//! Where the Dapr sidecar is, and the tokens each side shows the other.

/// The header daprd sends the app token in.
pub const TOKEN_HEADER: &str = "dapr-api-token";
/// The environment variable daprd and the app share the token through.
pub const TOKEN_ENV: &str = "APP_API_TOKEN";

/// Where daprd's gRPC API is, for publishing, streaming
/// subscriptions and redrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaprEndpoint {
    address: String,
    token: Option<String>,
}

impl DaprEndpoint {
    /// An endpoint such as `http://127.0.0.1:50001`, without a token.
    pub fn new(address: impl Into<String>) -> Self {
        DaprEndpoint { address: address.into(), token: None }
    }

    /// The endpoint the Dapr SDKs use: `DAPR_GRPC_ENDPOINT`, else
    /// `http://127.0.0.1:$DAPR_GRPC_PORT` (default port 50001), with the
    /// `DAPR_API_TOKEN` when it is set.
    pub fn from_env() -> Self {
        let address = std::env::var("DAPR_GRPC_ENDPOINT").ok().filter(|e| !e.is_empty()).unwrap_or_else(|| {
            let port = std::env::var("DAPR_GRPC_PORT").ok().filter(|p| !p.is_empty());
            format!("http://127.0.0.1:{}", port.as_deref().unwrap_or("50001"))
        });
        let address = if address.contains("://") { address } else { format!("http://{address}") };
        DaprEndpoint { address, token: std::env::var("DAPR_API_TOKEN").ok().filter(|t| !t.is_empty()) }
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

    /// The address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The `dapr-api-token`, if any.
    pub fn api_token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_token_is_no_token() {
        let endpoint = DaprEndpoint::new("http://127.0.0.1:1234").token(String::new());
        assert_eq!(endpoint.address(), "http://127.0.0.1:1234");
        assert_eq!(endpoint.api_token(), None);
    }
}
