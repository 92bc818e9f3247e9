use newcomer::{Db, server};

#[tokio::main]
async fn main() -> Result<(), eventbus::Error> {
    server(Db::default())?.serve(eventbus::Transport::grpc(([0, 0, 0, 0], 5005).into())).await // drains on SIGTERM
}
