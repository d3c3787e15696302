//! Letting queries in flight finish when the proxy stops: on an upgrade the listeners go to a new
//! process, and the queries this one already forwarded must still get their answers.

use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::DnsProxyConfig;

/// Longest a query can stay in flight: the resolver's timeout plus the learner's wait.
pub(crate) fn bound(config: &DnsProxyConfig) -> Duration {
    config.upstream_timeout + config.learn_timeout + Duration::from_millis(100)
}

/// Waits until every in-flight permit of `limit` is back, or `within` passed; true when all
/// queries finished.
pub(crate) async fn in_flight_done(limit: &Semaphore, max: usize, within: Duration) -> bool {
    let all_back = async {
        // Polling, not `acquire_many`: a queued waiter for every permit would starve the
        // connections still finishing their queries.
        while limit.available_permits() < max {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(within, all_back).await.is_ok()
}
