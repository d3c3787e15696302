//! Which answers join a running learner call.

use super::*;

fn update(names: &[&str], addrs: &[&str]) -> LearnedAnswer {
    LearnedAnswer {
        endpoint: "default/pod".into(),
        source: "10.0.1.5".parse().expect("ip"),
        qname: names[0].into(),
        names: names.iter().map(|n| n.to_string()).collect(),
        addrs: addrs.iter().map(|a| (a.parse().expect("ip"), 30)).collect(),
    }
}

#[tokio::test]
async fn covered_answers_follow_and_see_the_result() {
    let f = InFlight::default();
    let both = update(&["a.com."], &["10.0.0.1", "10.0.0.2"]);
    let Join::Lead(lead) = f.join(&both) else {
        panic!("first call leads");
    };
    let Join::Follow(mut rx) = f.join(&update(&["a.com."], &["10.0.0.2"])) else {
        panic!("a subset of a running call's addresses follows");
    };
    assert!(
        matches!(f.join(&update(&["a.com."], &["10.0.0.3"])), Join::Lead(_)),
        "a new address leads its own call"
    );
    assert!(
        matches!(
            f.join(&update(&["a.com.", "b.com."], &["10.0.0.1"])),
            Join::Lead(_)
        ),
        "another CNAME chain leads its own call"
    );
    lead.finish(Ended::Failed);
    let ended = *rx.wait_for(Option::is_some).await.expect("result");
    assert_eq!(
        ended,
        Some(Ended::Failed),
        "followers see the leader's result"
    );
    assert!(
        matches!(f.join(&both), Join::Lead(_)),
        "after the call ended, the next answer leads again"
    );
}

#[tokio::test]
async fn abandoned_lead_releases_followers_as_timed_out() {
    let f = InFlight::default();
    let u = update(&["a.com."], &["10.0.0.1"]);
    let lead = f.join(&u);
    let Join::Follow(mut rx) = f.join(&u) else {
        panic!("follows");
    };
    drop(lead);
    let ended = *rx.wait_for(Option::is_some).await.expect("result");
    assert_eq!(
        ended,
        Some(Ended::TimedOut),
        "a dropped leader never strands followers"
    );
}
