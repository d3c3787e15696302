//! `GET /v1/monitor` over a real socket: events published on the agent's broadcast channel
//! stream to the client as NDJSON, filtered, until the client disconnects.

use std::time::Duration;

use palisade_api::*;

#[path = "harness/agent.rs"]
mod harness;

use harness::*;

fn flow(kind: FlowKind, verdict: &str, src: &str, summary: &str) -> FlowEvent {
    FlowEvent {
        time_unix_ms: 1,
        kind,
        verdict: verdict.into(),
        reason: "Policy denied".into(),
        direction: "ingress".into(),
        endpoint: "default/service".into(),
        src: src.into(),
        dst: "default/service:80".into(),
        src_identity: 258,
        dst_identity: 257,
        proto: "TCP".into(),
        summary: summary.into(),
        src_endpoint: String::new(),
        dst_endpoint: String::new(),
    }
}

#[tokio::test]
async fn monitor_streams_filtered_events_until_disconnect() {
    let h = Harness::start().await;
    let filter = MonitorFilter {
        endpoint: Some("default/client-dev".into()),
        verdict: None,
        kind: Some(FlowKind::Drop),
    };
    let mut stream = h.client().monitor(&filter).await.expect("monitor");
    // The server subscribed before answering, so nothing published from now on is missed.
    assert_eq!(h.flows.receiver_count(), 1, "one monitor subscriber");
    let wanted = flow(
        FlowKind::Drop,
        "DROPPED",
        "default/client-dev:4000",
        "first",
    );
    let events = [
        flow(
            FlowKind::Drop,
            "DROPPED",
            "default/client-prod:4000",
            "other src",
        ),
        flow(
            FlowKind::L7Http,
            "FORWARDED",
            "default/client-dev:4001",
            "other kind",
        ),
        wanted.clone(),
        flow(
            FlowKind::Drop,
            "DROPPED",
            "default/client-dev:4002",
            "second",
        ),
    ];
    for ev in &events {
        h.flows.send(ev.clone()).expect("publish");
    }
    let got = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("event within 5s")
        .expect("stream open")
        .expect("event decodes");
    assert_eq!(
        got, wanted,
        "the first matching event, nothing filtered out before it"
    );
    let got = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("event within 5s")
        .expect("stream open")
        .expect("event decodes");
    assert_eq!(got.summary, "second");

    // Disconnecting ends the server's forwarder even with no further events: hyper notices
    // the closed connection and drops the body, which closes the forwarder's channel.
    drop(stream);
    let mut gone = false;
    for _ in 0..100 {
        if h.flows.receiver_count() == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        gone,
        "monitor subscription must end when the client disconnects"
    );

    let (status, msg) = agent_error(
        h.client()
            .get::<serde_json::Value>("/v1/monitor?type=bogus")
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400);
    assert!(msg.contains("bogus"), "filter error names the value: {msg}");
}
