//! Runs the proxy alone, for benchmarks and manual tests: `http_proxy SNAPSHOT.json [LISTEN]`.
//! Transparent listener (default `0.0.0.0:15001`); prints `listening on ADDR` once bound;
//! flow records go to stderr as JSON lines when `FLOWS=1`.

use palisade_proxy::{PolicySnapshot, Proxy, ProxyConfig};
use std::sync::Arc;

/// The allocator of the `palisade` binary, so the bench measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread, like the single nginx/HAProxy worker it is compared with.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: http_proxy SNAPSHOT.json [LISTEN]")?;
    let snapshot: PolicySnapshot = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let mut config = ProxyConfig::default();
    if let Some(listen) = args.next() {
        config.listen = listen.parse()?;
    }
    let (_snap_tx, snap_rx) = tokio::sync::watch::channel(Arc::new(snapshot));
    let (flow_tx, mut flow_rx) = tokio::sync::mpsc::channel(4096);
    let print = std::env::var("FLOWS").is_ok_and(|v| v == "1");
    tokio::spawn(async move {
        while let Some(rec) = flow_rx.recv().await {
            if print {
                eprintln!("{}", serde_json::to_string(&rec).unwrap_or_default());
            }
        }
    });
    let proxy = Proxy::bind(config)?;
    println!("listening on {}", proxy.local_addr());
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    proxy.serve(snap_rx, flow_tx, shutdown).await?;
    Ok(())
}
