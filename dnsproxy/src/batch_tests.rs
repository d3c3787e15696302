//! Batched receive and send over loopback: counts, order, contents, truncation, addresses.

use std::net::SocketAddr;

use tokio::net::UdpSocket;

use super::*;

/// A sender (known writable: `send_now` never waits, so it needs the runtime to have seen that)
/// and a receiver.
async fn pair() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let b = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    a.writable().await.expect("writable");
    (a, b)
}

/// The payloads of the next `count` datagrams on `rx`, however the calls split them.
async fn recv_count(rx: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
    let mut batch = RecvBatch::new(16, false);
    let mut got = Vec::new();
    while got.len() < count {
        let n = batch.recv(rx).await.expect("recv");
        got.extend((0..n).map(|i| batch.get(i).0.to_vec()));
    }
    got
}

#[tokio::test]
async fn sends_and_receives_more_than_a_batch_in_order() {
    let (tx, rx) = pair().await;
    let to = rx.local_addr().expect("addr");
    let payloads: Vec<Vec<u8>> = (0..BATCH + 8).map(|i| vec![i as u8; 1 + i]).collect();
    let msgs: Vec<(&[u8], Option<SocketAddr>)> =
        payloads.iter().map(|p| (p.as_slice(), Some(to))).collect();
    assert_eq!(send_now(&tx, &msgs).expect("send"), msgs.len(), "all sent");

    let mut batch = RecvBatch::new(64, false);
    let mut got = Vec::new();
    while got.len() < payloads.len() {
        let n = batch.recv(&rx).await.expect("recv");
        assert!(n <= BATCH, "at most a batch per call");
        for i in 0..n {
            let (bytes, meta) = batch.get(i);
            assert_eq!(meta.len, bytes.len());
            assert_eq!(meta.orig_dst, None, "not asked for");
            got.push(bytes.to_vec());
        }
    }
    assert_eq!(got, payloads, "every datagram once, in order");
}

#[tokio::test]
async fn reports_the_sender_and_the_full_length_of_a_truncated_datagram() {
    let (tx, rx) = pair().await;
    let to = rx.local_addr().expect("addr");
    send_now(&tx, &[(&[7u8; 100][..], Some(to))]).expect("send");
    // A listener-style batch (addresses wanted) with 16-byte slots.
    let mut batch = RecvBatch::new(16, true);
    assert_eq!(batch.recv(&rx).await.expect("recv"), 1);
    let (bytes, meta) = batch.get(0);
    assert_eq!(meta.len, 100, "length as sent");
    assert_eq!(bytes, &[7u8; 16][..], "cut to the slot");
    assert_eq!(meta.src, Some(tx.local_addr().expect("addr")));
    batch.get_mut(0)[0] = 9;
    assert_eq!(batch.get(0).0[0], 9, "writable in place");
}

#[tokio::test]
async fn connected_socket_sends_without_addresses() {
    let (tx, rx) = pair().await;
    tx.connect(rx.local_addr().expect("addr"))
        .await
        .expect("connect");
    let msgs: Vec<(&[u8], Option<SocketAddr>)> = vec![(b"one", None), (b"two", None)];
    assert_eq!(send_now(&tx, &msgs).expect("send"), 2);
    let got = recv_count(&rx, 2).await;
    assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
}

#[tokio::test]
async fn a_failed_datagram_is_reported_with_its_index() {
    let (tx, rx) = pair().await;
    let to = rx.local_addr().expect("addr");
    let too_big = vec![0u8; 70_000]; // over the UDP maximum: EMSGSIZE
    let msgs: Vec<(&[u8], Option<SocketAddr>)> =
        vec![(b"ok", Some(to)), (&too_big, Some(to)), (b"late", Some(to))];
    let (index, err) = send_now(&tx, &msgs).expect_err("second fails");
    assert_eq!(index, 1, "the failing datagram's index");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EMSGSIZE));
    assert_eq!(send_now(&tx, &msgs[2..]).expect("rest"), 1);
    let got = recv_count(&rx, 2).await;
    assert_eq!(got, [b"ok".to_vec(), b"late".to_vec()]);
}
