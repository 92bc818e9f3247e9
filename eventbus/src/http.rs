//! Interop with axum: the HTTP app channel as a router, to mount in an axum
//! server of your own (feature `http`). [`Server::serve`](crate::Server::serve)
//! with [`Transport::http`](crate::server::Transport::http) serves it for you,
//! with graceful shutdown.

/// The HTTP app channel of `server` (`--app-protocol http`) as an axum router.
///
/// ```
/// let server = eventbus::Server::builder().build().unwrap();
/// let app = axum::Router::new().merge(eventbus::http::router(&server));
/// # drop(app);
/// ```
pub fn router(server: &crate::Server) -> axum::Router {
    crate::transport::http::router(server.pipeline(), server.default_pubsub().to_owned())
}
