//! Embedding sanhook: start an engine from a `Config`, add a webhook, submit events, shut down.
//!
//! Run with `cargo run --example embed -- http://127.0.0.1:9000/hook` (any URL that accepts POSTs).

use sanhook::webhook::Webhook;
use sanhook::{ActionEvent, Config, Engine};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:9000/hook".into());
    let dir = std::env::temp_dir().join(format!("sanhook-embed-{}", std::process::id()));
    // Actors need an actix System: the engine lives inside one.
    actix_rt::System::new().block_on(async move {
        let mut cfg = Config::from_toml_str("")?;
        cfg.storage.path = dir.join("sanhook.redb");
        let engine = Engine::start(cfg).await?;
        let wh = engine
            .create_webhook(Webhook {
                name: "embedded".into(),
                url,
                ..Default::default()
            })
            .await?;
        let event = ActionEvent {
            id: Some(1),
            object_type: "bug".into(),
            object_id: 12,
            product: vec![1],
            actor: "alice".into(),
            actor_name: Some("Alice".into()),
            action: "resolved".into(),
            date: "2026-01-05 18:35:21".into(),
            object_name: Some("Login fails".into()),
            ..Default::default()
        };
        let summary = engine.submit("embed", vec![event]).await?;
        println!(
            "webhook {} got {} deliveries queued",
            wh.id, summary.deliveries
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        for d in engine.deliveries(Default::default()).await? {
            println!("delivery {}: {:?}", d.id, d.state.status);
        }
        engine.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
