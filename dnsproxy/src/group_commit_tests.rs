use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::GroupCommit;

#[tokio::test]
async fn a_lone_call_gets_the_result_of_applying_its_item() {
    let applied = Arc::new(Mutex::new(Vec::new()));
    let seen = applied.clone();
    let gc = GroupCommit::spawn("gc-test", move |items: Vec<u32>| {
        let mut a = seen.lock().unwrap();
        a.extend(items);
        a.len()
    });
    assert_eq!(gc.submit(7).await, Some(1));
    let blocking = std::thread::scope(|s| s.spawn(|| gc.submit_blocking(8)).join().unwrap());
    assert_eq!(blocking, Some(2));
    assert_eq!(*applied.lock().unwrap(), vec![7, 8]);
}

#[tokio::test]
async fn calls_queued_behind_a_slow_apply_share_one_apply_and_see_their_item_applied() {
    // (items applied, number of applies)
    let state = Arc::new(Mutex::new((Vec::<u32>::new(), 0usize)));
    let seen = state.clone();
    let gc = Arc::new(GroupCommit::spawn("gc-test", move |items: Vec<u32>| {
        std::thread::sleep(Duration::from_millis(50));
        let mut s = seen.lock().unwrap();
        s.0.extend(items);
        s.1 += 1;
        Ok::<(), String>(())
    }));
    let calls: Vec<_> = (0..20u32)
        .map(|i| {
            let (gc, state) = (gc.clone(), state.clone());
            tokio::spawn(async move {
                let r = gc.submit(i).await;
                // Answered only after an apply that held this item.
                (r, state.lock().unwrap().0.contains(&i))
            })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), (Some(Ok(())), true));
    }
    let s = state.lock().unwrap();
    let mut items = s.0.clone();
    items.sort();
    assert_eq!(
        items,
        (0..20).collect::<Vec<_>>(),
        "every item applied once"
    );
    assert!(
        s.1 < 20,
        "queued calls were batched: {} applies for 20 calls",
        s.1
    );
}

#[tokio::test]
async fn every_call_in_a_failed_batch_gets_the_error() {
    let gc = Arc::new(GroupCommit::spawn("gc-test", |_: Vec<u32>| {
        std::thread::sleep(Duration::from_millis(20));
        Err::<(), String>("map full".into())
    }));
    let calls: Vec<_> = (0..5u32)
        .map(|i| {
            let gc = gc.clone();
            tokio::spawn(async move { gc.submit(i).await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), Some(Err("map full".to_string())));
    }
}

#[tokio::test]
async fn a_panicking_apply_fails_its_batch_and_the_next_batch_is_applied() {
    let gc = GroupCommit::spawn("gc-test", |items: Vec<u32>| {
        assert!(items != [13], "unlucky");
        items.len()
    });
    assert_eq!(
        gc.submit(13).await,
        None,
        "the panicking batch's caller gets no result"
    );
    assert_eq!(gc.submit(1).await, Some(1), "the thread still applies");
}
