use eventbus::Event;

struct Orders;

#[eventbus::consumer]
impl Orders {
    #[subscribe("")]
    async fn empty(&self, _: Event<serde_json::Value>) {}

    #[subscribe("ok", unknown = 1)]
    async fn unknown(&self, _: Event<serde_json::Value>) {}

    #[subscribe("fine")]
    fn not_async(&self, _: Event<serde_json::Value>) {}
}

fn main() {}
