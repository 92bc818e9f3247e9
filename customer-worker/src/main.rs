//! `customer-worker --conf configs/config.yaml --mode all` (the Go worker's
//! `-conf … -mode …` work too)
//!
//! Also: `replay <file>` (CloudEvents, one a line, through the consumers),
//! `redrive` (dead letters back to their topics, listed first),
//! `customer <id>` (a customer's figures), `run-job <segments|stats|cleanup>`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    customer_worker::cli::run(std::env::args_os()).await
}
