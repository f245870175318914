//! Hostile peers on the ZeroMQ registration endpoint: malformed ZMTP streams by the thousand, the
//! length claim that once aborted the host, connections that never finish the handshake. The
//! host must stay up, keep answering `ping` and `register`, and give back what it took.

use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::host::TestHost;

/// A valid ZMTP 3.0 greeting with the NULL mechanism, as a client sends it.
fn greeting(mechanism: &[u8]) -> Vec<u8> {
    let mut g = vec![0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[12..12 + mechanism.len()].copy_from_slice(mechanism);
    g
}

/// The READY command of a REQ socket, completing the NULL handshake.
fn ready() -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&3u32.to_be_bytes());
    body.extend_from_slice(b"REQ");
    let mut frame = vec![0x04, u8::try_from(body.len()).unwrap()];
    frame.extend_from_slice(&body);
    frame
}

fn long_frame_header(flags: u8, len: u64) -> Vec<u8> {
    let mut h = vec![flags | 0x02];
    h.extend_from_slice(&len.to_be_bytes());
    h
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let n = rng.random_range(1..=max);
    (0..n).map(|_| rng.random::<u8>()).collect()
}

/// One malformed stream of kind `kind`.
fn hostile_stream(kind: usize, rng: &mut StdRng) -> Vec<u8> {
    let huge = || 1u64 << 20..u64::MAX;
    match kind {
        // Random bytes after a valid greeting.
        0 => [greeting(b"NULL"), random_bytes(rng, 400)].concat(),
        // A huge length claim instead of the handshake (a command or a message frame).
        1 => {
            let flags = if rng.random::<bool>() { 0x04 } else { 0x00 };
            [
                greeting(b"NULL"),
                long_frame_header(flags, rng.random_range(huge())),
            ]
            .concat()
        }
        // A complete handshake, then a message whose frames claim far more than the limit.
        2 => [
            greeting(b"NULL"),
            ready(),
            long_frame_header(0x01, 0),
            long_frame_header(0x00, rng.random_range(huge())),
        ]
        .concat(),
        // Truncated claims: a frame that says more than is sent, then the connection ends.
        3 => {
            let mut s = [greeting(b"NULL"), ready()].concat();
            let claim = rng.random_range(300u64..60_000);
            s.extend_from_slice(&long_frame_header(0x00, claim));
            s.extend(random_bytes(rng, 200));
            s
        }
        // A mechanism the endpoint does not speak, or none at all.
        4 => {
            let mechanisms: [&[u8]; 4] = [b"CURVE", b"PLAIN", b"GSSAPI", b"\x01\x02NUL"];
            let mut g = greeting(mechanisms[rng.random_range(0..mechanisms.len())]);
            g[10] = rng.random_range(0..5);
            [g, ready()].concat()
        }
        // A greeting cut short.
        5 => greeting(b"NULL")[..rng.random_range(1..64)].to_vec(),
        // No ZMTP at all.
        _ => random_bytes(rng, 300),
    }
}

/// Sends `bytes` and, when `wait_close`, reads until the host closes the connection. Returns
/// whether it was closed by the host within the time allowed.
async fn send(port: u16, bytes: Vec<u8>, wait_close: bool) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    // The host may close first, so a failed write is fine.
    let _ = s.write_all(&bytes).await;
    if !wait_close {
        return true;
    }
    let mut sink = vec![0u8; 4096];
    let closed = async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .is_ok()
}

pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn zmq_request(endpoint: &str, body: &Value) -> Value {
    let exchange = async {
        let mut socket = zeromq::ReqSocket::new();
        socket.connect(endpoint).await.expect("connect");
        socket
            .send(ZmqMessage::from(body.to_string()))
            .await
            .expect("send");
        socket.recv().await.expect("reply")
    };
    let reply = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("the host answers within 10 s");
    serde_json::from_slice(reply.get(0).expect("frame")).expect("a JSON reply")
}

async fn endpoint(host: &TestHost) -> (String, u16) {
    let (_, info) = host.get("/api/v1/host").await;
    let endpoint = info["zmq_endpoint"].as_str().expect("endpoint").to_owned();
    let port = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    (endpoint, port)
}

async fn answers_ping_and_register(endpoint: &str, id: &str) {
    let pong = zmq_request(endpoint, &json!({"method": "ping"})).await;
    assert_eq!(pong["message"], "pong", "{pong}");
    let registered = zmq_request(
        endpoint,
        &json!({"method": "register", "params": {"handler_id": id,
            "address": "tcp://127.0.0.1:5999", "methods": ["work"]}}),
    )
    .await;
    assert_eq!(registered["success"], true, "{registered}");
}

#[tokio::test]
async fn a_two_to_the_62_length_claim_disconnects_the_peer_and_the_host_goes_on() {
    let host = TestHost::start();
    let (zmq, port) = endpoint(&host).await;
    // The probe's repro: a greeting, then a long-frame header claiming 2^62 bytes.
    let repro = [greeting(b"NULL"), long_frame_header(0x00, 1 << 62)].concat();
    assert!(send(port, repro, true).await, "the host drops the peer");
    // The same claim after a complete handshake, and with a shared secret it changes nothing.
    let after_handshake = [greeting(b"NULL"), ready(), long_frame_header(0x00, 1 << 62)].concat();
    assert!(
        send(port, after_handshake, true).await,
        "the host drops the peer"
    );
    // A message over the limit (64 KiB by default) is refused the same way.
    let mut big = [greeting(b"NULL"), ready(), long_frame_header(0x01, 0)].concat();
    big.extend_from_slice(&long_frame_header(0x00, 100_000));
    big.extend(std::iter::repeat_n(b' ', 100_000));
    assert!(send(port, big, true).await, "the host drops the peer");

    answers_ping_and_register(&zmq, "survivor").await;
    let (status, health) = host.get("/api/v1/health").await;
    assert_eq!(status, 200, "{health}");
}

#[tokio::test]
async fn ten_thousand_malformed_streams_leave_the_endpoint_answering_and_nothing_behind() {
    let host = TestHost::start_with_config("[server]\nremote_handshake_timeout = \"1s\"\n");
    let (zmq, port) = endpoint(&host).await;
    answers_ping_and_register(&zmq, "before").await;
    let pid = host.pid();
    let (fds_before, rss_before) = (open_fds(pid), rss_kib(pid));

    const STREAMS: usize = 10_500;
    const KINDS: usize = 7;
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let streams: Vec<(usize, Vec<u8>)> = (0..STREAMS)
        .map(|i| (i, hostile_stream(i % KINDS, &mut rng)))
        .collect();
    // Every 50th stream waits to see the host close the connection by itself.
    let results: Vec<(usize, bool, bool)> = futures::stream::iter(streams)
        .map(|(i, bytes)| async move {
            let wait = i % 50 == 0 && i % KINDS != 5 && i % KINDS != 3;
            (i, wait, send(port, bytes, wait).await)
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let failed: Vec<usize> = results
        .iter()
        .filter(|(_, _, ok)| !ok)
        .map(|(i, _, _)| *i)
        .collect();
    assert!(
        failed.is_empty(),
        "streams not accepted or not closed by the host: {failed:?}"
    );
    assert!(results.iter().filter(|(_, wait, _)| *wait).count() >= 140);

    // Half-open: connections that stop in the middle of the handshake and stay open. They do
    // not hold up anyone else, and the host lets go of them after the handshake timeout.
    let mut half_open = Vec::new();
    for i in 0..100 {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let partial = if i % 2 == 0 {
            greeting(b"NULL")[..10].to_vec()
        } else {
            greeting(b"NULL")
        };
        s.write_all(&partial).await.expect("write");
        half_open.push(s);
    }
    answers_ping_and_register(&zmq, "during").await;
    let mut buf = [0u8; 256];
    for s in &mut half_open {
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a half-open peer is dropped by the host");
    }

    answers_ping_and_register(&zmq, "after").await;
    let fds_after = host
        .wait_for(Duration::from_secs(5), || async {
            let n = open_fds(pid);
            (n <= fds_before + 8).then_some(n)
        })
        .await;
    let rss_after = rss_kib(pid);
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS went from {rss_before} KiB to {rss_after} KiB"
    );
    eprintln!(
        "zmtp fuzz: {STREAMS} streams; descriptors {fds_before} -> {fds_after}; RSS {rss_before} -> {rss_after} KiB"
    );
    drop(half_open);
}
