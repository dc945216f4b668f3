//! The transport over real sockets on 127.0.0.x, and its frame decoder under proptest.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use raft::eraftpb::{Entry, Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;

const CLUSTER: u64 = 0xC1;
const GROUP: GroupId = 7;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn config(node: RaftNodeId, host: u8, secret: &str) -> TransportConfig {
    let mut cfg = TransportConfig::new(
        node,
        CLUSTER,
        SharedSecret::new(secret),
        SocketAddr::new(ip(host), 0),
    );
    cfg.source = Some(ip(host));
    cfg.backoff_min = Duration::from_millis(10);
    cfg.backoff_max = Duration::from_millis(100);
    cfg.handshake_timeout = Duration::from_millis(500);
    cfg.write_timeout = Duration::from_millis(500);
    cfg
}

async fn start(cfg: TransportConfig) -> (Transport, mpsc::Receiver<Inbound>) {
    let (tx, rx) = mpsc::channel(DEFAULT_INBOX_FRAMES);
    let t = Transport::start(cfg, tx).await.expect("transport starts");
    (t, rx)
}

fn msg(from: RaftNodeId, to: RaftNodeId, index: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgAppend);
    m.from = from;
    m.to = to;
    m.term = 1;
    m.index = index;
    m
}

fn msg_with_payload(from: RaftNodeId, to: RaftNodeId, index: u64, bytes: usize) -> Message {
    let mut m = msg(from, to, index);
    let e = Entry {
        index,
        term: 1,
        data: vec![index as u8; bytes].into(),
        ..Default::default()
    };
    m.entries = vec![e].into();
    m
}

/// Receives until `n` messages arrived (or panics after 10 s).
async fn recv(rx: &mut mpsc::Receiver<Inbound>, n: usize) -> Vec<(RaftNodeId, GroupId, Message)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let batch = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} messages arrived", got.len()))
            .expect("inbox open");
        for m in batch.messages {
            got.push((batch.from, batch.group, m));
        }
    }
    got
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn nothing_arrives(rx: &mut mpsc::Receiver<Inbound>, wait: Duration) {
    if let Ok(Some(b)) = tokio::time::timeout(wait, rx.recv()).await {
        panic!("unexpected delivery: {b:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_transports_deliver_in_order() {
    let mut nodes = Vec::new();
    for id in 1..=3u64 {
        nodes.push(start(config(id, 10 + id as u8, "s3cret")).await);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|(t, _)| t.local_addr()).collect();
    for (i, (t, _)) in nodes.iter().enumerate() {
        for (j, addr) in addrs.iter().enumerate() {
            if i != j {
                t.add_peer(j as u64 + 1, *addr);
            }
        }
    }
    const N: u64 = 300;
    for k in 0..N {
        for (i, (t, _)) in nodes.iter().enumerate() {
            for j in 0..3u64 {
                if j != i as u64 {
                    t.send(GROUP, msg(i as u64 + 1, j + 1, k))
                        .expect("known peer");
                }
            }
        }
        if k % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    for (i, (_, rx)) in nodes.iter_mut().enumerate() {
        let got = recv(rx, 2 * N as usize).await;
        for sender in 1..=3u64 {
            if sender == i as u64 + 1 {
                continue;
            }
            let idx: Vec<u64> = got
                .iter()
                .filter(|(from, _, _)| *from == sender)
                .map(|(_, g, m)| {
                    assert_eq!(*g, GROUP);
                    assert_eq!(m.to, i as u64 + 1);
                    assert_eq!(m.from, sender);
                    m.index
                })
                .collect();
            assert_eq!(
                idx,
                (0..N).collect::<Vec<_>>(),
                "node {} from {sender}",
                i + 1
            );
        }
    }
    for (t, _) in &nodes {
        // A sender counts a batch once its write returned, which may be after the
        // receiver already handed the messages on.
        eventually("the senders' counters", || {
            t.stats().peers.iter().all(|p| p.sent_messages == N)
        })
        .await;
        let s = t.stats();
        assert_eq!(s.received_messages, 2 * N);
        for p in &s.peers {
            assert_eq!(p.sent_messages, N);
            assert_eq!(p.dropped_messages, 0);
            assert!(p.connected);
            assert_eq!(p.connects, 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_connections_bind_the_source_address() {
    // A listener that records where a connection comes from; the handshake need not succeed.
    let raw = TcpListener::bind((ip(21), 0)).await.expect("bind");
    let (a, _rx) = start(config(1, 22, "s")).await;
    a.add_peer(2, raw.local_addr().expect("addr"));
    let (_conn, from) = tokio::time::timeout(Duration::from_secs(5), raw.accept())
        .await
        .expect("A dials")
        .expect("accept");
    assert_eq!(from.ip(), ip(22));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_arrives_whole_and_in_frames() {
    let (mut cfg_a, cfg_b) = (config(1, 31, "s"), config(2, 32, "s"));
    cfg_a.queue_messages = 100_000;
    cfg_a.max_frame = 256 * 1024;
    let (a, _rx_a) = start(cfg_a).await;
    let (b, mut rx_b) = start(cfg_b).await;
    a.add_peer(2, b.local_addr());
    // Messages with 0..3 KiB of entry data: several frames per write, several writes.
    const N: u64 = 20_000;
    for k in 0..N {
        let size = (k as usize * 37) % 3000;
        a.send(GROUP + k % 2, msg_with_payload(1, 2, k, size))
            .expect("known peer");
    }
    let got = recv(&mut rx_b, N as usize).await;
    for (k, (_, g, m)) in got.iter().enumerate() {
        assert_eq!(m.index, k as u64);
        assert_eq!(*g, GROUP + k as u64 % 2);
        assert_eq!(m.entries[0].data.len(), (k * 37) % 3000);
    }
    // Counted once the write returned, possibly after the receiver had everything.
    eventually("the sender's counters", || {
        a.stats().peers[0].sent_messages == N
    })
    .await;
    let s = &a.stats().peers[0];
    assert_eq!(s.sent_messages, N);
    assert_eq!(s.dropped_messages, 0);
    // Batching happened: many messages per write. Groups alternate, so frames hold one
    // message each here; the bytes per write are what batching saves.
    assert!(s.sent_frames <= N);
    assert!(s.sent_bytes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_messages_of_one_group_share_frames() {
    let (mut cfg_a, cfg_b) = (config(1, 33, "s"), config(2, 34, "s"));
    cfg_a.queue_messages = 100_000;
    let (a, _rx_a) = start(cfg_a).await;
    let (b, mut rx_b) = start(cfg_b).await;
    // Queue everything before the link exists, so the first write carries a full batch.
    a.add_peer(2, b.local_addr());
    for k in 0..10_000 {
        a.send(GROUP, msg(1, 2, k)).expect("known peer");
    }
    let got = recv(&mut rx_b, 10_000).await;
    assert!(got
        .iter()
        .enumerate()
        .all(|(k, (_, _, m))| m.index == k as u64));
    // Counted once the write returned, possibly after the receiver had everything.
    eventually("the sender's counters", || {
        a.stats().peers[0].sent_messages == 10_000
    })
    .await;
    let s = &a.stats().peers[0];
    assert!(
        s.sent_frames * 10 < s.sent_messages,
        "{} frames for {} messages",
        s.sent_frames,
        s.sent_messages
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_is_reconnected_and_delivery_resumes() {
    let (a, _rx_a) = start(config(1, 41, "s")).await;
    let (b, mut rx_b) = start(config(2, 42, "s")).await;
    let b_addr = b.local_addr();
    a.add_peer(2, b_addr);
    for k in 0..10 {
        a.send(GROUP, msg(1, 2, k)).expect("known peer");
    }
    assert_eq!(recv(&mut rx_b, 10).await.len(), 10);
    b.shutdown().await;
    drop(rx_b);
    eventually("A to notice", || !a.stats().peers[0].connected).await;
    // Sent while B is down: queued (or lost with the dying connection; Raft retransmits).
    for k in 10..20 {
        a.send(GROUP, msg(1, 2, k)).expect("known peer");
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut cfg_b = config(2, 42, "s");
    cfg_b.listen = b_addr;
    let (_b2, mut rx_b2) = start(cfg_b).await;
    for k in 20..30 {
        a.send(GROUP, msg(1, 2, k)).expect("known peer");
    }
    let mut seen = Vec::new();
    while seen.last() != Some(&29) {
        seen.extend(
            recv(&mut rx_b2, 1)
                .await
                .into_iter()
                .map(|(_, _, m)| m.index),
        );
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
    assert!(
        seen.contains(&20),
        "nothing after the restart was lost: {seen:?}"
    );
    let s = &a.stats().peers[0];
    assert!(s.connects >= 2, "{s:?}");
    assert!(s.connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_or_cluster_is_refused() {
    let (b, mut rx_b) = start(config(2, 52, "right")).await;
    let (a, _rx_a) = start(config(1, 51, "wrong")).await;
    a.add_peer(2, b.local_addr());
    let mut other = config(3, 53, "right");
    other.cluster = CLUSTER + 1;
    let (c, _rx_c) = start(other).await;
    c.add_peer(2, b.local_addr());
    for k in 0..5 {
        a.send(GROUP, msg(1, 2, k)).expect("known peer");
        c.send(GROUP, msg(3, 2, k)).expect("known peer");
    }
    nothing_arrives(&mut rx_b, Duration::from_millis(400)).await;
    eventually("refusals", || {
        b.stats().handshakes_refused >= 2
            && a.stats().peers[0].connect_failures >= 1
            && c.stats().peers[0].connect_failures >= 1
    })
    .await;
    assert_eq!(b.stats().inbound_connections, 0);
    assert!(!a.stats().peers[0].connected);
    // Dialing a node under the wrong id is refused by the dialer itself.
    let (d, _rx_d) = start(config(4, 54, "right")).await;
    d.add_peer(9, b.local_addr());
    eventually("wrong node refused", || {
        d.stats().peers[0].connect_failures >= 1
    })
    .await;
    assert_eq!(b.stats().inbound_connections, 0);
}

/// Connects to `addr` as node `from` with the right secret and returns the connection.
async fn handshaken(addr: SocketAddr, from: RaftNodeId, to: RaftNodeId) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let cfg = config(from, 1, "s");
    dialer_handshake(&mut s, &cfg, to)
        .await
        .unwrap_or_else(|e| panic!("handshake: {e:?}"));
    s
}

/// Waits for the listener to close `s` (EOF or reset), sending nothing more.
async fn closed_by_peer(s: &mut TcpStream) {
    let mut buf = [0u8; 256];
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(r.is_ok(), "the listener kept the connection open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_close_only_their_connection() {
    let (b, mut rx_b) = start(config(2, 62, "s")).await;
    let addr = b.local_addr();

    // Garbage instead of a handshake.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let junk: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
    let _ = s.write_all(&junk).await;
    closed_by_peer(&mut s).await;

    // A frame claiming 4 GiB: refused on its length, before any body arrives.
    let mut s = handshaken(addr, 1, 2).await;
    s.write_all(&u32::MAX.to_le_bytes()).await.expect("write");
    closed_by_peer(&mut s).await;

    // A frame whose checksum is wrong.
    let mut s = handshaken(addr, 1, 2).await;
    let mut frame = Vec::new();
    encode_frame(GROUP, &[msg(1, 2, 0)], &mut frame).expect("encode");
    let last = frame.len() - 1;
    frame[last] ^= 0xff;
    s.write_all(&frame).await.expect("write");
    closed_by_peer(&mut s).await;

    // A valid frame with garbage for a message.
    let mut s = handshaken(addr, 1, 2).await;
    let mut body = Vec::new();
    body.extend_from_slice(&GROUP.to_le_bytes());
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&3u32.to_le_bytes());
    body.extend_from_slice(&[0xff, 0xff, 0xff]);
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    s.write_all(&frame).await.expect("write");
    closed_by_peer(&mut s).await;

    // A well-formed message for another node.
    let mut s = handshaken(addr, 1, 2).await;
    let mut frame = Vec::new();
    encode_frame(GROUP, &[msg(1, 3, 0)], &mut frame).expect("encode");
    s.write_all(&frame).await.expect("write");
    closed_by_peer(&mut s).await;

    let st = b.stats();
    assert_eq!(st.bad_frames, 4, "{st:?}");
    assert_eq!(st.handshakes_refused, 1, "{st:?}");
    assert_eq!(st.received_messages, 0);

    // The listener still serves: a real peer gets through.
    let (a, _rx_a) = start(config(1, 61, "s")).await;
    a.add_peer(2, addr);
    a.send(GROUP, msg(1, 2, 42)).expect("known peer");
    let got = recv(&mut rx_b, 1).await;
    assert_eq!(got[0].2.index, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_peer_keeps_the_queue_bounded() {
    // Accepts, never answers: the handshake times out, again and again.
    let hole = TcpListener::bind((ip(71), 0)).await.expect("bind");
    let hole_addr = hole.local_addr().expect("addr");
    let keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            held.push(s);
        }
    });
    let mut cfg = config(1, 72, "s");
    cfg.queue_messages = 100;
    let (a, _rx) = start(cfg).await;
    a.add_peer(2, hole_addr);
    for k in 0..10_000 {
        a.send(GROUP, msg(1, 2, k)).expect("known peer");
    }
    let s = &a.stats().peers[0];
    assert_eq!(s.queued_messages, 100);
    assert_eq!(s.dropped_messages, 9_900);
    assert_eq!(s.sent_messages, 0);
    eventually("a handshake timeout", || {
        a.stats().peers[0].connect_failures >= 1
    })
    .await;
    keep.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_keeps_the_queue_bounded() {
    // B completes the handshake but its inbox is never drained: once it is full B stops
    // reading, the socket buffers fill, and A's writes stall.
    let (tx, _rx_b) = mpsc::channel(1);
    let b = Transport::start(config(2, 82, "s"), tx).await.expect("B");
    let mut cfg = config(1, 81, "s");
    cfg.queue_bytes = 1 << 20;
    cfg.max_frame = 256 * 1024;
    let (a, _rx_a) = start(cfg).await;
    a.add_peer(2, b.local_addr());
    // 200 MiB offered in 64 KiB messages.
    const N: u64 = 3200;
    for k in 0..N {
        a.send(GROUP, msg_with_payload(1, 2, k, 64 * 1024))
            .expect("known peer");
        if k % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let s = &a.stats().peers[0];
        assert!(s.queued_bytes <= (1 << 20) + 70 * 1024, "{s:?}");
    }
    let s = &a.stats().peers[0];
    assert!(s.dropped_messages > N / 2, "{s:?}");
    // What B accepted is bounded by its inbox, a frame and the socket buffers, not by N.
    assert!(b.stats().received_bytes < 64 << 20, "{:?}", b.stats());
}

#[test]
fn a_lying_length_allocates_nothing() {
    let mut buf = BytesMut::from(&((16u32 << 20) - 1).to_le_bytes()[..]);
    buf.extend_from_slice(&[0u8; 100]);
    let cap = buf.capacity();
    assert_eq!(decode_frame(&mut buf, 16 << 20), Ok(None));
    assert_eq!(buf.capacity(), cap);
    let mut buf = BytesMut::from(&(u32::MAX).to_le_bytes()[..]);
    assert!(matches!(
        decode_frame(&mut buf, 16 << 20),
        Err(FrameError::TooLarge { .. })
    ));
    let mut buf = BytesMut::from(&[3u8, 0, 0, 0][..]);
    assert_eq!(decode_frame(&mut buf, 1024), Err(FrameError::Short(3)));
}

#[test]
fn a_frame_with_too_many_messages_is_refused() {
    let mut body = Vec::new();
    body.extend_from_slice(&GROUP.to_le_bytes());
    body.extend_from_slice(&(MAX_MESSAGES_PER_FRAME as u32 + 1).to_le_bytes());
    body.extend(std::iter::repeat_n(0u8, 4 * (MAX_MESSAGES_PER_FRAME + 1)));
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    let mut buf = BytesMut::from(&frame[..]);
    assert_eq!(
        decode_frame(&mut buf, 1 << 20),
        Err(FrameError::Malformed("too many messages"))
    );
}

#[tokio::test]
async fn handshake_peers_agree_and_refuse_mismatches() {
    let listener_cfg = config(2, 1, "k");
    for (dialer, to, want) in [
        (config(1, 1, "k"), 2, None),
        (config(1, 1, "x"), 2, Some(HandshakeError::BadProof)),
        (
            config(1, 1, "k"),
            3,
            Some(HandshakeError::WrongNode {
                expected: 3,
                theirs: 2,
            }),
        ),
    ] {
        let (mut l, mut d) = tokio::io::duplex(1024);
        let lc = listener_cfg.clone();
        let listen = tokio::spawn(async move { listener_handshake(&mut l, &lc).await });
        let dialed = dialer_handshake(&mut d, &dialer, to).await;
        drop(d);
        let listened = listen.await.expect("task");
        match want {
            None => {
                assert!(dialed.is_ok(), "{dialed:?}");
                assert_eq!(listened.ok(), Some((1, LinkKind::Messages)));
            }
            Some(HandshakeError::BadProof) => {
                assert!(matches!(
                    dialed,
                    Err(HandshakeFailure::Protocol(HandshakeError::Refused(_)))
                ));
                assert!(matches!(
                    listened,
                    Err(HandshakeFailure::Protocol(HandshakeError::BadProof))
                ));
            }
            Some(e) => {
                assert!(matches!(dialed, Err(HandshakeFailure::Protocol(ref got)) if *got == e));
                assert!(listened.is_err());
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        let mut buf = BytesMut::from(&bytes[..]);
        // Consume as long as frames decode; stop at the first error or shortage.
        while let Ok(Some(_)) = decode_frame(&mut buf, 4096) {}
    }

    #[test]
    fn decoding_corrupted_frames_never_panics(
        indices in proptest::collection::vec(0u64..1000, 0..20),
        flips in proptest::collection::vec((0usize..10_000, proptest::prelude::any::<u8>()), 1..4),
        fix_crc in proptest::prelude::any::<bool>(),
    ) {
        let msgs: Vec<Message> = indices.iter().map(|&i| msg_with_payload(1, 2, i, i as usize % 50)).collect();
        let mut frame = Vec::new();
        encode_frame(GROUP, &msgs, &mut frame).expect("encode");
        for (at, x) in flips {
            let at = at % frame.len();
            frame[at] ^= x;
        }
        if fix_crc && frame.len() >= 8 {
            // Forge a valid checksum, so the body's parsing is exercised too.
            let n = frame.len();
            let crc = crc32c::crc32c(&frame[4..n - 4]);
            frame[n - 4..].copy_from_slice(&crc.to_le_bytes());
        }
        let mut buf = BytesMut::from(&frame[..]);
        let _ = decode_frame(&mut buf, 1 << 20);
    }

    #[test]
    fn frames_round_trip_at_any_split(
        batches in proptest::collection::vec((0u64..4, proptest::collection::vec((0u64..1 << 40, 0usize..300), 0..8)), 1..6),
        cut in 0usize..4000,
    ) {
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for (group, ms) in &batches {
            let msgs: Vec<Message> = ms.iter().map(|&(i, n)| msg_with_payload(1, 2, i, n)).collect();
            encode_frame(*group, &msgs, &mut wire).expect("encode");
            want.push(Frame { group: *group, messages: msgs });
        }
        let cut = cut % (wire.len() + 1);
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut got = Vec::new();
        while let Some(f) = decode_frame(&mut buf, 1 << 20).expect("valid") {
            got.push(f);
        }
        buf.extend_from_slice(&wire[cut..]);
        while let Some(f) = decode_frame(&mut buf, 1 << 20).expect("valid") {
            got.push(f);
        }
        proptest::prop_assert!(buf.is_empty());
        proptest::prop_assert_eq!(got, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_message_keeps_its_from() {
    // raft-rs forwards MsgTransferLeader from a follower with the transferee as `from`.
    let (a, _rx_a) = start(config(1, 91, "s")).await;
    let (b, mut rx_b) = start(config(2, 92, "s")).await;
    a.add_peer(2, b.local_addr());
    let mut m = msg(3, 2, 5);
    m.set_msg_type(MessageType::MsgTransferLeader);
    a.send(GROUP, m.clone()).expect("known peer");
    let got = recv(&mut rx_b, 1).await;
    assert_eq!(got[0].0, 1, "the authenticated sender");
    assert_eq!(got[0].2, m);
    assert_eq!(b.stats().bad_frames, 0);
}

#[tokio::test]
async fn bad_configurations_are_refused() {
    let (tx, _rx) = mpsc::channel(1);
    let cfg = config(1, 1, "");
    assert!(matches!(
        Transport::start(cfg, tx.clone()).await,
        Err(TransportError::EmptySecret)
    ));
    let mut cfg = config(1, 1, "s");
    cfg.max_frame = MAX_FRAME_CEILING + 1;
    assert!(matches!(
        Transport::start(cfg, tx.clone()).await,
        Err(TransportError::FrameLimit(_))
    ));
    let (t, _rx) = start(config(1, 1, "s")).await;
    assert!(matches!(
        t.send(GROUP, msg(1, 2, 0)),
        Err(TransportError::UnknownPeer(2))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_a_frame_is_dropped_not_sent() {
    let mut cfg = config(1, 93, "s");
    cfg.max_frame = 4096;
    let (a, _rx_a) = start(cfg).await;
    let (b, mut rx_b) = start(config(2, 94, "s")).await;
    a.add_peer(2, b.local_addr());
    a.send(GROUP, msg_with_payload(1, 2, 0, 8192))
        .expect("known peer");
    a.send(GROUP, msg(1, 2, 1)).expect("known peer");
    let got = recv(&mut rx_b, 1).await;
    assert_eq!(got[0].2.index, 1);
    assert_eq!(a.stats().peers[0].dropped_messages, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connection_from_a_sender_replaces_its_old_one() {
    let (b, mut rx_b) = start(config(2, 95, "s")).await;
    let addr = b.local_addr();
    let mut first = handshaken(addr, 1, 2).await;
    let mut frame = Vec::new();
    encode_frame(GROUP, &[msg(1, 2, 0)], &mut frame).expect("encode");
    first.write_all(&frame).await.expect("write");
    assert_eq!(recv(&mut rx_b, 1).await[0].2.index, 0);
    // The sender reconnects (it thinks the first connection dead): the listener ends the
    // first one before the second delivers, so the sender's messages stay in order.
    let mut second = handshaken(addr, 1, 2).await;
    closed_by_peer(&mut first).await;
    let mut frame = Vec::new();
    encode_frame(GROUP, &[msg(1, 2, 1)], &mut frame).expect("encode");
    second.write_all(&frame).await.expect("write");
    assert_eq!(recv(&mut rx_b, 1).await[0].2.index, 1);
    // Another sender's connection is not affected.
    let mut third = handshaken(addr, 3, 2).await;
    let mut frame = Vec::new();
    encode_frame(GROUP, &[msg(3, 2, 9)], &mut frame).expect("encode");
    third.write_all(&frame).await.expect("write");
    assert_eq!(recv(&mut rx_b, 1).await[0].2.index, 9);
    let mut frame = Vec::new();
    encode_frame(GROUP, &[msg(1, 2, 2)], &mut frame).expect("encode");
    second.write_all(&frame).await.expect("write");
    assert_eq!(recv(&mut rx_b, 1).await[0].2.index, 2);
    assert_eq!(b.stats().inbound_connections, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_works_from_a_thread_outside_the_runtime() {
    // The driver runs in the log writer thread, not on the runtime.
    let (a, _rx_a) = start(config(1, 96, "s")).await;
    let (b, mut rx_b) = start(config(2, 97, "s")).await;
    let a = Arc::new(a);
    let writer = {
        let a = a.clone();
        let b_addr = b.local_addr();
        std::thread::spawn(move || {
            a.add_peer(2, b_addr);
            for k in 0..100 {
                a.send(GROUP, msg(1, 2, k)).expect("known peer");
            }
        })
    };
    let got = recv(&mut rx_b, 100).await;
    writer.join().expect("writer thread");
    assert!(got
        .iter()
        .enumerate()
        .all(|(k, (_, _, m))| m.index == k as u64));
}

/// The fuzz seeds (fuzz/corpus/raft_frame: byte 0 limit, bytes 1-8 chunking seed, then wire
/// bytes) are what their names say, and the fuzz target accepts them.
#[test]
fn fuzz_seeds_decode_as_named() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/raft_frame");
    let seed = |name: &str| std::fs::read(dir.join(name)).expect("seed")[9..].to_vec();
    let frames = |name: &str, max: usize| {
        let mut buf = BytesMut::from(&seed(name)[..]);
        let mut got = Vec::new();
        loop {
            match decode_frame(&mut buf, max) {
                Ok(Some(f)) => got.push(f),
                Ok(None) => return Ok(got),
                Err(e) => return Err(e),
            }
        }
    };
    let hb = frames("heartbeat", 4096).expect("valid");
    assert_eq!(hb.len(), 1);
    assert_eq!(hb[0].messages[0].get_msg_type(), MessageType::MsgHeartbeat);
    assert_eq!(hb[0].messages[0].commit, 10);
    let two = frames("append-two-groups", 4096).expect("valid");
    assert_eq!(two.iter().map(|f| f.group).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(two[0].messages[0].entries.len(), 2);
    assert_eq!(
        frames("empty-frame", 4096).expect("valid")[0]
            .messages
            .len(),
        0
    );
    assert!(matches!(
        frames("bad-crc", 4096),
        Err(FrameError::Checksum { .. })
    ));
    assert!(matches!(
        frames("too-large", 64),
        Err(FrameError::TooLarge { .. })
    ));
    #[cfg(feature = "fuzzing")]
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let path = entry.expect("entry").path();
        crate::fuzz::raft_frame_decoder(&std::fs::read(path).expect("seed"));
    }
}

/// A TCP proxy on `listen` to `target` whose live connections can be cut (the fault proxy of
/// design §4.2, in its simplest form).
struct Proxy {
    addr: SocketAddr,
    links: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(listen: IpAddr, target: SocketAddr) -> Proxy {
        let l = TcpListener::bind((listen, 0)).await.expect("bind proxy");
        let addr = l.local_addr().expect("addr");
        let links = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let held = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                let link = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                held.lock().push(link);
            }
        });
        Proxy {
            addr,
            links,
            accept,
        }
    }

    /// Closes every connection through the proxy; new ones are still forwarded.
    fn cut(&self) {
        for l in self.links.lock().drain(..) {
            l.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_is_noticed_and_restored() {
    let (a, _rx_a) = start(config(1, 101, "s")).await;
    let (b, mut rx_b) = start(config(2, 102, "s")).await;
    let proxy = Proxy::start(ip(103), b.local_addr()).await;
    a.add_peer(2, proxy.addr);
    for k in 0..10 {
        a.send(GROUP, msg(1, 2, k)).expect("known peer");
    }
    assert_eq!(recv(&mut rx_b, 10).await.len(), 10);
    // Cut while idle: A notices from its read half, before it has anything to send.
    proxy.cut();
    eventually("A to reconnect", || {
        let s = &a.stats().peers[0];
        s.connects >= 2 && s.connected
    })
    .await;
    for k in 10..20 {
        a.send(GROUP, msg(1, 2, k)).expect("known peer");
    }
    let got = recv(&mut rx_b, 10).await;
    assert!(got.iter().map(|(_, _, m)| m.index).eq(10..20));
    assert_eq!(b.stats().inbound_connections, 2);
}

// ---------------------------------------------------------------------------------------
// Snapshot file fetches (files.rs)

/// Serves `(snapshot, name) → (path, served length)` from a fixed table.
struct Table(HashMap<(u64, String), (std::path::PathBuf, u64)>);

impl FileSource for Table {
    fn open(&self, snapshot: u64, name: &str) -> Option<(std::path::PathBuf, u64)> {
        self.0.get(&(snapshot, name.to_owned())).cloned()
    }
}

/// Serves any name as `dir/name`, whole: only the server's name check stands between a
/// fetcher and the rest of the file system.
struct Anything(std::path::PathBuf);

impl FileSource for Anything {
    fn open(&self, _snapshot: u64, name: &str) -> Option<(std::path::PathBuf, u64)> {
        let path = self.0.join(name);
        let len = std::fs::metadata(&path).ok()?.len();
        Some((path, len))
    }
}

/// A fresh directory for one test, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("rill-fetch-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `len` bytes that differ at every position from their neighbours' pattern (no two 1 MiB
/// chunks alike, so a chunk written at the wrong offset shows).
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn fetch_err(r: Result<u64, TransportError>) -> TransportError {
    match r {
        Ok(n) => panic!("the fetch succeeded with {n} bytes"),
        Err(e) => e,
    }
}

fn refusal(r: Result<u64, TransportError>) -> FetchRefusal {
    match fetch_err(r) {
        TransportError::FetchRefused { reason, .. } => reason,
        e => panic!("not a refusal: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_mib_file_is_fetched_intact_up_to_its_served_length() {
    let dir = Scratch::new("intact");
    let whole = content((5 << 20) + 123, 1);
    std::fs::write(dir.path("seg-1.log"), &whole).expect("write");
    let checkpoint = content(3 << 20, 2);
    std::fs::write(dir.path("checkpoint"), &checkpoint).expect("write");
    let cut = (3 << 20) + 7;
    let (leader, _rx_l) = start(config(1, 151, "s")).await;
    let (follower, _rx_f) = start(config(2, 152, "s")).await;
    leader.set_file_source(Arc::new(Table(HashMap::from([
        (
            (5, "seg-1.log".to_string()),
            (dir.path("seg-1.log"), cut as u64),
        ),
        (
            (5, "checkpoint".to_string()),
            (dir.path("checkpoint"), checkpoint.len() as u64),
        ),
    ]))));
    let addr = leader.local_addr();
    let dest = dir.path("got-seg");
    let n = follower
        .fetch_file(addr, 1, 5, "seg-1.log", &dest)
        .await
        .expect("fetch");
    assert_eq!(n, cut as u64);
    let got = std::fs::read(&dest).expect("read");
    assert_eq!(got.len(), cut, "the served length caps the copy");
    assert!(got == whole[..cut], "the segment's bytes differ");
    let dest = dir.path("got-checkpoint");
    let n = follower
        .fetch_file(addr, 1, 5, "checkpoint", &dest)
        .await
        .expect("fetch");
    assert_eq!(n, checkpoint.len() as u64);
    assert!(std::fs::read(&dest).expect("read") == checkpoint);
    // Another snapshot number does not name these files.
    let r = follower
        .fetch_file(addr, 1, 6, "checkpoint", &dir.path("other"))
        .await;
    assert_eq!(refusal(r), FetchRefusal::NoSuchFile);
    // Fetches are not message links.
    assert_eq!(leader.stats().inbound_connections, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_resumes_after_the_bytes_the_destination_holds() {
    let dir = Scratch::new("resume");
    let source = content((2 << 20) + 999, 3);
    std::fs::write(dir.path("seg"), &source).expect("write");
    let (leader, _rx_l) = start(config(1, 153, "s")).await;
    let (follower, _rx_f) = start(config(2, 154, "s")).await;
    leader.set_file_source(Arc::new(Table(HashMap::from([(
        (9, "seg".to_string()),
        (dir.path("seg"), source.len() as u64),
    )]))));
    let addr = leader.local_addr();
    // A prefix that is *not* the source's: if the server sent from 0 (or the fetcher wrote
    // from 0), it would be overwritten.
    let kept = (1 << 20) + 5;
    let dest = dir.path("dest");
    std::fs::write(&dest, vec![0xEE; kept]).expect("write");
    let n = follower
        .fetch_file(addr, 1, 9, "seg", &dest)
        .await
        .expect("fetch");
    assert_eq!(n, source.len() as u64);
    let got = std::fs::read(&dest).expect("read");
    assert_eq!(got.len(), source.len());
    assert!(
        got[..kept].iter().all(|b| *b == 0xEE),
        "the prefix was rewritten"
    );
    assert!(got[kept..] == source[kept..], "the rest differs");
    // Complete already: nothing to copy, same answer.
    let n = follower
        .fetch_file(addr, 1, 9, "seg", &dest)
        .await
        .expect("fetch");
    assert_eq!(n, source.len() as u64);
    assert_eq!(std::fs::read(&dest).expect("read"), got);
    // Longer than the served file: refused, and the destination left alone.
    let long = dir.path("long");
    std::fs::write(&long, vec![1; source.len() + 1]).expect("write");
    let r = follower.fetch_file(addr, 1, 9, "seg", &long).await;
    assert_eq!(
        refusal(r),
        FetchRefusal::OffsetPastEnd {
            offset: source.len() as u64 + 1,
            length: source.len() as u64
        }
    );
    assert_eq!(
        std::fs::metadata(&long).expect("meta").len(),
        source.len() as u64 + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_cut_midway_resumes_where_it_stopped() {
    let dir = Scratch::new("cut");
    let source = content(24 << 20, 4);
    std::fs::write(dir.path("seg"), &source).expect("write");
    let (leader, _rx_l) = start(config(1, 155, "s")).await;
    let (follower, _rx_f) = start(config(2, 156, "s")).await;
    leader.set_file_source(Arc::new(Table(HashMap::from([(
        (1, "seg".to_string()),
        (dir.path("seg"), source.len() as u64),
    )]))));
    let proxy = Proxy::start(ip(157), leader.local_addr()).await;
    let dest = dir.path("dest");
    let fetching = follower.fetch_file(proxy.addr, 1, 1, "seg", &dest);
    tokio::pin!(fetching);
    // Cut once some but not all of the file has arrived.
    let cut = async {
        eventually("part of the file", || {
            std::fs::metadata(&dest).is_ok_and(|m| m.len() > 0)
        })
        .await;
        proxy.cut();
    };
    let (r, ()) = tokio::join!(&mut fetching, cut);
    let had = std::fs::metadata(&dest).expect("meta").len();
    if had < source.len() as u64 {
        assert!(matches!(fetch_err(r), TransportError::Io { .. }));
    }
    // Else every byte arrived before the cut (the end marker may or may not have): nothing
    // to resume, and the retry below must still answer the whole length.
    let n = follower
        .fetch_file(proxy.addr, 1, 1, "seg", &dest)
        .await
        .expect("the retry");
    assert_eq!(n, source.len() as u64);
    assert!(std::fs::read(&dest).expect("read") == source);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetcher_with_the_wrong_secret_is_refused_and_others_are_served() {
    let dir = Scratch::new("secret");
    std::fs::write(dir.path("f"), b"snapshot bytes").expect("write");
    let (leader, _rx_l) = start(config(1, 161, "right")).await;
    leader.set_file_source(Arc::new(Anything(dir.0.clone())));
    let (stranger, _rx_s) = start(config(2, 162, "wrong")).await;
    let r = stranger
        .fetch_file(leader.local_addr(), 1, 1, "f", &dir.path("stolen"))
        .await;
    assert!(
        matches!(
            fetch_err(r),
            TransportError::Handshake {
                source: HandshakeError::Refused(_),
                ..
            }
        ),
        "the stranger's fetch"
    );
    assert_eq!(
        std::fs::metadata(dir.path("stolen")).map(|m| m.len()).ok(),
        Some(0)
    );
    assert!(leader.stats().handshakes_refused >= 1);
    let (friend, _rx_f) = start(config(3, 163, "right")).await;
    let n = friend
        .fetch_file(leader.local_addr(), 1, 1, "f", &dir.path("mine"))
        .await
        .expect("fetch");
    assert_eq!(n, 14);
    assert_eq!(
        std::fs::read(dir.path("mine")).expect("read"),
        b"snapshot bytes"
    );
    // Dialing the leader under another node id is refused by the fetcher itself.
    let r = friend
        .fetch_file(leader.local_addr(), 7, 1, "f", &dir.path("x"))
        .await;
    assert!(matches!(
        fetch_err(r),
        TransportError::Handshake {
            source: HandshakeError::WrongNode { .. },
            ..
        }
    ));
}

#[tokio::test]
async fn a_proof_made_for_one_kind_of_connection_fails_for_the_other() {
    let listener_cfg = config(2, 1, "k");
    let dialer_cfg = config(1, 1, "k");
    let raft = (LinkKind::Messages.magic(), LinkKind::Messages.label());
    let snap = (LinkKind::Fetch.magic(), LinkKind::Fetch.label());
    for (magic, label, want) in [
        (raft.0, raft.1, Some(LinkKind::Messages)),
        (snap.0, snap.1, Some(LinkKind::Fetch)),
        // A message link's AUTH announced as a fetch, and a fetch's as a message link.
        (snap.0, raft.1, None),
        (raft.0, snap.1, None),
    ] {
        let (mut l, mut d) = tokio::io::duplex(1024);
        let lc = listener_cfg.clone();
        let listen = tokio::spawn(async move { listener_handshake(&mut l, &lc).await });
        let dialed = dialer_handshake_as(&mut d, &dialer_cfg, 2, magic, label).await;
        drop(d);
        let listened = listen.await.expect("task");
        match want {
            Some(kind) => {
                assert!(dialed.is_ok(), "{dialed:?}");
                assert_eq!(listened.ok(), Some((1, kind)));
            }
            None => {
                assert!(matches!(
                    listened,
                    Err(HandshakeFailure::Protocol(HandshakeError::BadProof))
                ));
                assert!(matches!(
                    dialed,
                    Err(HandshakeFailure::Protocol(HandshakeError::Refused(_)))
                ));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_outside_the_snapshot_are_refused_by_the_server() {
    let dir = Scratch::new("names");
    let served = dir.path("served");
    std::fs::create_dir_all(&served).expect("dir");
    std::fs::write(served.join("f"), b"ok").expect("write");
    std::fs::write(dir.path("secret"), b"not yours").expect("write");
    std::fs::create_dir_all(served.join("a")).expect("dir");
    std::fs::write(served.join("a").join("b"), b"nested").expect("write");
    let (leader, _rx_l) = start(config(1, 171, "s")).await;
    let (follower, _rx_f) = start(config(2, 172, "s")).await;
    let addr = leader.local_addr();
    // No file source yet.
    let r = follower.fetch_file(addr, 1, 1, "f", &dir.path("d0")).await;
    assert_eq!(refusal(r), FetchRefusal::NoSource);
    // A source that would resolve any name under `served`, `..` included.
    leader.set_file_source(Arc::new(Anything(served.clone())));
    for (i, bad) in ["../secret", "a/b", "", "..", ".", "f\0"]
        .into_iter()
        .enumerate()
    {
        let dest = dir.path(&format!("bad{i}"));
        // The fetcher's own check first …
        let r = follower.fetch_file(addr, 1, 1, bad, &dest).await;
        assert!(
            matches!(fetch_err(r), TransportError::BadFileName(ref n) if n == bad),
            "{bad:?}"
        );
        // … and the server's, which a fetcher without that check meets.
        let r = files::fetch(
            follower.shared.clone(),
            addr,
            1,
            1,
            bad.to_string(),
            dest.clone(),
        )
        .await;
        assert_eq!(refusal(r), FetchRefusal::BadName, "{bad:?}");
        assert_eq!(std::fs::metadata(&dest).expect("meta").len(), 0);
    }
    let r = follower
        .fetch_file(addr, 1, 1, "missing", &dir.path("d1"))
        .await;
    let e = fetch_err(r);
    assert!(
        matches!(
            e,
            TransportError::FetchRefused {
                reason: FetchRefusal::NoSuchFile,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("\"missing\""), "{e}");
    // The server still serves what it should.
    let n = follower
        .fetch_file(addr, 1, 1, "f", &dir.path("d2"))
        .await
        .expect("fetch");
    assert_eq!(n, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_the_fetch_out() {
    let dir = Scratch::new("silent");
    // Accepts and says nothing: no HELLO.
    let raw = TcpListener::bind((ip(181), 0)).await.expect("bind");
    let addr = raw.local_addr().expect("addr");
    let _held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = raw.accept().await {
            conns.push(c);
        }
    });
    let (follower, _rx) = start(config(2, 182, "s")).await;
    let started = Instant::now();
    let r = follower.fetch_file(addr, 1, 1, "f", &dir.path("d")).await;
    assert!(matches!(fetch_err(r), TransportError::Timeout { .. }));
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A CA and a certificate it signed, as a `TlsContext` with `tls-cluster yes`.
fn cluster_tls(dir: &std::path::Path) -> LinkTls {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("leaf");
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("dir");
    std::fs::write(certs.join("ca.crt"), ca.pem()).expect("write");
    std::fs::write(dir.join("node.crt"), leaf.pem()).expect("write");
    std::fs::write(dir.join("node.key"), key.serialize_pem()).expect("write");
    let path = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    let settings = crate::config::TlsSettings {
        cluster: true,
        cert_file: path(dir.join("node.crt")),
        key_file: path(dir.join("node.key")),
        ca_cert_dir: path(certs),
        ..Default::default()
    };
    let context = Arc::new(crate::tls::TlsContext::default());
    context.configure(&settings).expect("TLS configures");
    LinkTls(Arc::new(move || context.cluster_link()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_fetched_over_tls() {
    let dir = Scratch::new("tls");
    let tls = cluster_tls(&dir.0);
    let source = content((1 << 20) + 77, 5);
    std::fs::write(dir.path("seg"), &source).expect("write");
    let mut cfg_l = config(1, 191, "s");
    cfg_l.tls = Some(tls.clone());
    let mut cfg_f = config(2, 192, "s");
    cfg_f.tls = Some(tls);
    let (leader, _rx_l) = start(cfg_l).await;
    let (follower, _rx_f) = start(cfg_f).await;
    leader.set_file_source(Arc::new(Anything(dir.0.clone())));
    let n = follower
        .fetch_file(leader.local_addr(), 1, 1, "seg", &dir.path("dest"))
        .await
        .expect("fetch over TLS");
    assert_eq!(n, source.len() as u64);
    assert!(std::fs::read(dir.path("dest")).expect("read") == source);
    // A fetcher without TLS is refused by the TLS listener.
    let (plain, _rx_p) = start(config(3, 193, "s")).await;
    let r = plain
        .fetch_file(leader.local_addr(), 1, 1, "seg", &dir.path("plain"))
        .await;
    assert!(r.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_beyond_the_cap_are_refused_as_busy_until_one_ends() {
    let dir = Scratch::new("busy");
    // Larger than any loopback socket buffers: a fetcher that stops reading holds its fetch.
    std::fs::File::create(dir.path("big"))
        .and_then(|f| f.set_len(64 << 20))
        .expect("sparse file");
    let mut cfg_l = config(1, 201, "s");
    cfg_l.write_timeout = Duration::from_secs(20);
    let (leader, _rx_l) = start(cfg_l).await;
    leader.set_file_source(Arc::new(Anything(dir.0.clone())));
    let addr = leader.local_addr();
    let fetcher_cfg = config(2, 202, "s");
    let mut stalled = Vec::new();
    for _ in 0..files::MAX_CONCURRENT_FETCHES {
        let mut s = dial_as(&fetcher_cfg, addr, 1, LinkKind::Fetch)
            .await
            .expect("dial");
        s.write_all(&files::encode_request(1, 0, b"big"))
            .await
            .expect("request");
        // The answer's header comes after the server took its turn.
        let mut head = [0u8; 9];
        s.read_exact(&mut head).await.expect("answer");
        assert_eq!(head[0], 0, "accepted");
        stalled.push(s);
    }
    let (follower, _rx_f) = start(config(3, 203, "s")).await;
    let r = follower.fetch_file(addr, 1, 1, "big", &dir.path("d")).await;
    assert_eq!(refusal(r), FetchRefusal::Busy);
    // One stalled fetcher goes away: its turn is released once the server's write fails.
    drop(stalled.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    let n = loop {
        match follower.fetch_file(addr, 1, 1, "big", &dir.path("d")).await {
            Ok(n) => break n,
            Err(TransportError::FetchRefused {
                reason: FetchRefusal::Busy,
                ..
            }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(n, 64 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_promising_more_than_the_file_holds_is_refused() {
    let dir = Scratch::new("short");
    std::fs::write(dir.path("f"), b"12345").expect("write");
    let (leader, _rx_l) = start(config(1, 211, "s")).await;
    let (follower, _rx_f) = start(config(2, 212, "s")).await;
    leader.set_file_source(Arc::new(Table(HashMap::from([
        ((1, "f".to_string()), (dir.path("f"), 6)),
        ((1, "gone".to_string()), (dir.path("gone"), 1)),
    ]))));
    let r = follower
        .fetch_file(leader.local_addr(), 1, 1, "f", &dir.path("d"))
        .await;
    assert_eq!(refusal(r), FetchRefusal::Unreadable);
    // Named by the source but not on disk.
    let r = follower
        .fetch_file(leader.local_addr(), 1, 1, "gone", &dir.path("d"))
        .await;
    assert_eq!(refusal(r), FetchRefusal::NoSuchFile);
}

#[test]
fn fetch_works_from_a_thread_outside_the_transports_runtime() {
    let dir = Scratch::new("thread");
    std::fs::write(dir.path("f"), b"from elsewhere").expect("write");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (leader, follower) = rt.block_on(async {
        let (leader, _) = start(config(1, 221, "s")).await;
        let (follower, _) = start(config(2, 222, "s")).await;
        leader.set_file_source(Arc::new(Anything(dir.0.clone())));
        (leader, follower)
    });
    // Another runtime (the lead's caller may run its own), its future polled there: the
    // fetch's sockets belong to the transport's runtime.
    let other = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime without I/O");
    let n = std::thread::scope(|s| {
        s.spawn(|| {
            other.block_on(follower.fetch_file(leader.local_addr(), 1, 1, "f", &dir.path("d")))
        })
        .join()
        .expect("thread")
    })
    .expect("fetch");
    assert_eq!(n, 14);
    assert_eq!(
        std::fs::read(dir.path("d")).expect("read"),
        b"from elsewhere"
    );
    drop((leader, follower));
    drop(rt);
}
