//! The ZeroMQ registration channel of a real host, driven by a real ZeroMQ REQ peer as
//! ScheduleZero's handlers use it: ping, register, re-register, status reports, malformed
//! messages; the registry shown by the REST API and kept across a restart.

use serde_json::{Value, json};
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::host::TestHost;

/// One request on a fresh REQ socket, and its reply as JSON.
pub(crate) async fn request(endpoint: &str, frame: &[u8]) -> Value {
    let exchange = async {
        let mut socket = zeromq::ReqSocket::new();
        socket.connect(endpoint).await.expect("connect");
        socket
            .send(ZmqMessage::from(bytes::Bytes::copy_from_slice(frame)))
            .await
            .expect("send");
        socket.recv().await.expect("reply")
    };
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
        .await
        .expect("the host answers within 10 s");
    assert_eq!(reply.len(), 1, "one frame");
    serde_json::from_slice(reply.get(0).expect("frame")).expect("a JSON reply")
}

/// Starts a peer process (killed when dropped) and waits for its first line of output (it prints
/// one once it has registered).
async fn peer(
    program: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::io::BufReader::new(stdout)
        .lines()
        .next_line()
        .await
        .expect("read")
        .expect("the peer prints a line once it has registered");
    (child, line)
}

/// A Python peer (see tests/requirements.txt).
pub(crate) async fn python_peer(
    args: &[&str],
    env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    peer(std::path::Path::new("python3"), args, env).await
}

/// The Rust SDK's example handler (`sdk/remote/examples/hello_handler.rs`), which
/// `cargo test --workspace` builds beside this test binary.
pub(crate) async fn rust_peer(env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    peer(&rust_example(), &[], env).await
}

fn rust_example() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let example = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>")
        .join("examples/hello_handler");
    assert!(
        example.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        example.display()
    );
    example
}

/// The Rust example handler run to its end (it exits when it cannot register).
async fn rust_peer_exit(env: &[(&str, &str)]) -> std::process::Output {
    let example = rust_example();
    let run = tokio::process::Command::new(&example)
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("it gives up within 30 s")
        .expect("the example runs")
}

pub(crate) fn sigterm(child: &tokio::process::Child) {
    if let Some(pid) = child
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    }
}

pub(crate) async fn endpoint(host: &TestHost) -> String {
    let (_, info) = host.get("/api/v1/host").await;
    info["zmq_endpoint"]
        .as_str()
        .expect("zmq endpoint")
        .to_owned()
}

pub(crate) fn register(id: &str, port: u16) -> Vec<u8> {
    json!({"method": "register", "params": {"handler_id": id,
        "address": format!("tcp://127.0.0.1:{port}"), "methods": ["render", "status"]}})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn handlers_register_as_with_schedulezero_and_stay_registered_across_a_restart() {
    let mut host = TestHost::start();
    let zmq = endpoint(&host).await;
    assert!(zmq.starts_with("tcp://127.0.0.1:"), "{zmq}");

    assert_eq!(
        request(&zmq, br#"{"method": "ping"}"#).await,
        json!({"success": true, "message": "pong"})
    );
    let first = request(&zmq, &register("gpu", 5001)).await;
    assert_eq!(
        first,
        json!({"success": true, "handler_id": "gpu", "address": "tcp://127.0.0.1:5001",
               "status": "registered", "methods": ["render", "status"],
               "message": "Handler 'gpu' registered successfully"})
    );
    // A handler that comes back on another port is found there from now on.
    let again = request(&zmq, &register("gpu", 5002)).await;
    assert_eq!(again["status"], "re-registered");
    assert_eq!(again["message"], "Handler 'gpu' re-registered successfully");

    // A plugin's id is taken: calls to it must not go elsewhere.
    let taken = request(&zmq, &register("ding-dong", 5003)).await;
    assert_eq!(taken["success"], false, "{taken}");
    assert!(
        taken["error"]
            .as_str()
            .unwrap_or_default()
            .contains("is a plugin of this host"),
        "{taken}"
    );

    let unknown =
        br#"{"method": "report_status", "params": {"handler_id": "nobody", "status": "offline"}}"#;
    assert_eq!(
        request(&zmq, unknown).await,
        json!({"success": false, "error": "Handler not registered"})
    );
    assert_eq!(
        request(&zmq, br#"{"method": "dance"}"#).await,
        json!({"success": false, "error": "Unknown method: dance"})
    );
    assert_eq!(
        request(&zmq, b"{not json").await,
        json!({"success": false, "error": "Invalid JSON"})
    );
    let bad = request(
        &zmq,
        br#"{"method": "register", "params": {"handler_id": "x"}}"#,
    )
    .await;
    assert_eq!(bad["success"], false);
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid registration"),
        "{bad}"
    );

    let (status, h) = host.get("/api/v1/handlers/gpu").await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(
        (h["kind"].clone(), h["status"].clone(), h["address"].clone()),
        (
            json!("remote"),
            json!("online"),
            json!("tcp://127.0.0.1:5002")
        )
    );
    let offline =
        br#"{"method": "report_status", "params": {"handler_id": "gpu", "status": "offline"}}"#;
    assert_eq!(
        request(&zmq, offline).await,
        json!({"success": true, "handler_id": "gpu", "status": "offline"})
    );
    let (_, listed) = host.get("/api/handlers").await;
    let gpu = listed["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == "gpu")
        .cloned()
        .expect("gpu in /api/handlers");
    assert_eq!(gpu["status"], "offline");
    assert_eq!(gpu["methods"], json!(["render", "status"]));

    // Handlers do not re-register after a host restart: the registry is read back.
    assert!(
        host.terminate(),
        "a clean stop, the registration endpoint with it"
    );
    host.restart();
    let (_, info) = host.get("/api/v1/host").await;
    assert_eq!(info["remote_handlers"], 1);
    let (_, h) = host.get("/api/v1/handlers/gpu").await;
    assert_eq!(h["address"], "tcp://127.0.0.1:5002");
    let zmq = endpoint(&host).await;
    assert_eq!(
        request(&zmq, offline).await["success"],
        true,
        "known after the restart"
    );
}

/// How the Python peers below start, as ScheduleZero's handlers do: a REP socket bound to a free
/// port (`address`) and a REQ socket with a 10 s timeout for the host at `sys.argv[1]`.
macro_rules! python_peer_script {
    ($rest:literal) => {
        concat!(
            r#"
import json, sys, time, zmq
ctx = zmq.Context()
rep = ctx.socket(zmq.REP)
rep.bind("tcp://127.0.0.1:*")
address = rep.getsockopt_string(zmq.LAST_ENDPOINT)
req = ctx.socket(zmq.REQ)
req.setsockopt(zmq.RCVTIMEO, 10000)
req.connect(sys.argv[1])
"#,
            $rest
        )
    };
}

/// What a ScheduleZero handler does on start and stop, from Python through libzmq (pyzmq): bind
/// its own REP socket, read back its endpoint, ping and register from a REQ socket with a 10 s
/// timeout, then report `offline`.
const PYTHON_HANDLER: &str = python_peer_script!(
    r#"
replies = []
for message in ({"method": "ping"},
                {"method": "register", "params": {"handler_id": "py-handler", "address": address,
                                                  "methods": ["say_hello"]}},
                {"method": "report_status", "params": {"handler_id": "py-handler", "status": "offline"}}):
    req.send_string(json.dumps(message))
    replies.append(json.loads(req.recv_string()))
print(json.dumps({"address": address, "replies": replies}))
"#
);

#[tokio::test]
async fn a_python_handler_registers_through_libzmq() {
    let host = TestHost::start();
    let zmq = endpoint(&host).await;
    let out = tokio::process::Command::new("python3")
        .args(["-c", PYTHON_HANDLER, &zmq])
        .output()
        .await
        .expect("python3 (see tests/requirements.txt)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");
    let replies = &seen["replies"];
    assert_eq!(replies[0], json!({"success": true, "message": "pong"}));
    assert_eq!(replies[1]["status"], "registered");
    assert_eq!(replies[1]["address"], seen["address"]);
    assert_eq!(
        replies[2],
        json!({"success": true, "handler_id": "py-handler", "status": "offline"})
    );
    let (_, h) = host.get("/api/v1/handlers/py-handler").await;
    assert_eq!(
        (h["kind"].clone(), h["status"].clone()),
        (json!("remote"), json!("offline"))
    );
    assert_eq!(h["address"], seen["address"]);
}

/// A ScheduleZero-style handler in Python (pyzmq): binds a REP socket, registers, prints its
/// address, then serves one request at a time until killed.
pub(crate) const PYTHON_WORKER: &str = python_peer_script!(
    r#"
req.send_string(json.dumps({"method": "register", "params": {
    "handler_id": "py-worker", "address": address, "methods": ["say_hello", "add", "slow"]}}))
req.recv_string()
print(address, flush=True)
while True:
    request = json.loads(rep.recv_string())
    method, params = request.get("method"), request.get("params") or {}
    if method == "say_hello":
        reply = {"success": True, "message": "hello " + params.get("name", "?"),
                 "request_id": request.get("request_id")}
    elif method == "add":
        reply = {"success": True, "result": params["a"] + params["b"]}
    elif method == "slow":
        time.sleep(params.get("seconds", 5))
        reply = {"success": True, "slept": params.get("seconds", 5)}
    else:
        reply = {"success": False, "error": "Unknown method: " + str(method)}
    rep.send_string(json.dumps(reply))
"#
);

async fn schedule(host: &TestHost, id: &str, method: &str, params: Value, policy: Value) {
    schedule_on(host, "py-worker", id, method, params, policy).await;
}

/// ScheduleZero's synchronous run-now: the status and the reply.
async fn compat_run_now(
    host: &TestHost,
    handler: &str,
    method: &str,
    params: Value,
) -> (u16, Value) {
    host.post(
        "/api/run_now",
        &json!({"handler_id": handler, "job_method": method, "job_params": params}),
    )
    .await
}

/// The result of a schedule's first run, from ScheduleZero's execution log (an interval schedule
/// made with `/api/schedule` runs once at creation).
async fn first_result(host: &TestHost, job_id: &str) -> Value {
    host.wait_for(std::time::Duration::from_secs(20), || async {
        let (_, log) = host.get(&format!("/api/executions?job_id={job_id}")).await;
        let record = &log["records"][0];
        assert_ne!(record["status"], "error", "{log}");
        (record["status"] == "success").then(|| record["result"].clone())
    })
    .await
}

#[tokio::test]
async fn scheduled_jobs_run_on_a_python_handler() {
    let host = TestHost::start_with_config("[server]\nremote_ping_interval = \"300ms\"\n");
    let zmq = endpoint(&host).await;
    let (mut worker, address) = python_peer(&["-c", PYTHON_WORKER, zmq.as_str()], &[]).await;

    schedule(
        &host,
        "hello",
        "say_hello",
        json!({"name": "Ada"}),
        json!({}),
    )
    .await;
    let ran = host.run_schedule("hello").await;
    assert_eq!(ran["run"]["status"], "success", "{ran}");
    let record = &ran["executions"][0];
    assert_eq!(record["result"]["message"], "hello Ada");
    assert_eq!(
        record["result"]["request_id"], ran["run"]["id"],
        "the run id reaches the handler"
    );
    assert_eq!(record["instance"], format!("zmq:py-worker@{address}"));

    schedule(&host, "sum", "add", json!({"a": 2, "b": 3}), json!({})).await;
    assert_eq!(host.run_schedule("sum").await["executions"][0]["result"], 5);
    // Scheduled through ScheduleZero's own route, as its users do.
    let (status, created) = host
        .post(
            "/api/schedule",
            &json!({"handler_id": "py-worker", "job_method": "add", "job_params": {"a": 1, "b": 1},
                    "job_id": "compat-sum", "trigger": {"type": "interval", "seconds": 3600}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(first_result(&host, "compat-sum").await, 2);

    // A method the handler did not register is refused before anything is stored.
    let (status, refused) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": "nope", "handler": "py-worker", "method": "dance",
                    "trigger": {"type": "interval", "every_seconds": 60}}),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (400, json!("unknown_method"))
    );

    // Too slow for its timeout: an error of its own, and the next call gets a fresh socket.
    times_out_then_recovers(&host, "py-worker", "hello").await;

    // What the host saw of it, as JSON and for Prometheus.
    let (_, m) = host.get("/api/v1/metrics").await;
    let seen = &m["remote_handlers"]["py-worker"];
    assert_eq!(
        (seen["calls"].clone(), seen["errors"].clone()),
        (json!(5), json!(1)),
        "{m}"
    );
    assert!(seen["last_latency_ms"].as_f64().unwrap() > 0.0, "{m}");
    assert_eq!(seen["status"], "online");
    let (_, _, text) = host.get_text("/metrics").await;
    assert!(
        text.contains("schedulezero_remote_calls_total{handler=\"py-worker\"} 5"),
        "{text}"
    );
    assert!(text.contains("schedulezero_remote_up{handler=\"py-worker\"} 1"));

    kill_mid_call(&host, "py-worker", &mut worker).await;

    // Restarted on another port: it registers again and is called there.
    let (_worker, moved) = python_peer(&["-c", PYTHON_WORKER, zmq.as_str()], &[]).await;
    assert_ne!(moved, address, "a new port");
    runs_at(&host, "hello", "py-worker", &moved).await;
    let (_, h) = host.get("/api/v1/handlers/py-worker").await;
    assert_eq!(h["status"], "online", "{h}");
}

#[tokio::test]
async fn the_python_example_handler_runs_jobs_and_reports_offline() {
    let host = TestHost::start();
    let zmq = endpoint(&host).await;
    let example = crate::support::repo_root().join("examples/python/hello_handler.py");
    let (mut handler, line) = python_peer(
        &[example.to_str().unwrap()],
        &[
            ("SCHEDULEZERO_ZMQ", zmq.as_str()),
            ("HANDLER_ID", "py-hello"),
        ],
    )
    .await;
    assert!(
        line.starts_with("py-hello registered, listening on tcp://"),
        "{line}"
    );

    // Through the ScheduleZero route, synchronous as ScheduleZero's run_now is.
    let (status, ran) =
        compat_run_now(&host, "py-hello", "say_hello", json!({"name": "Ada"})).await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["result"]["message"], "hello Ada", "{ran}");
    let (status, ran) = compat_run_now(&host, "py-hello", "add", json!({"a": 2})).await;
    assert_eq!(status, 500, "a failing handler: {ran}");
    assert!(
        ran["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("'b'"),
        "{ran}"
    );

    // SIGTERM: it reports offline before it exits.
    sigterm(&handler);
    let exit = handler.wait().await.expect("the example exits");
    assert!(exit.success(), "{exit:?}");
    let (_, h) = host.get("/api/v1/handlers/py-hello").await;
    assert_eq!(h["status"], "offline", "{h}");
}

/// A peer that registers, takes requests and never answers them.
const PYTHON_BLACK_HOLE: &str = python_peer_script!(
    r#"
req.send_string(json.dumps({"method": "register", "params": {
    "handler_id": "black-hole", "address": address, "methods": ["wait"]}}))
req.recv_string()
print(address, flush=True)
rep.recv_string()
time.sleep(3600)
"#
);

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn timeouts_and_bad_peers_leave_no_sockets_behind_and_the_host_working() {
    use tokio::io::AsyncWriteExt;
    let host = TestHost::start();
    let zmq = endpoint(&host).await;
    let (_peer, _) = python_peer(&["-c", PYTHON_BLACK_HOLE, zmq.as_str()], &[]).await;
    schedule_on(
        &host,
        "black-hole",
        "waiting",
        "wait",
        json!({}),
        json!({"timeout": "150ms"}),
    )
    .await;

    let timed_out = |ran: Value| assert_eq!(ran["error"]["code"], "timeout", "{ran}");
    for _ in 0..3 {
        timed_out(host.run_schedule("waiting").await);
    }
    let before = open_fds(host.pid());
    for _ in 0..20 {
        timed_out(host.run_schedule("waiting").await);
    }
    // Each timed-out socket was dropped: its connection is closed, not kept.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let after = open_fds(host.pid());
    assert!(
        after <= before + 3,
        "open descriptors went from {before} to {after}"
    );

    // Not ZeroMQ at all, on the registration endpoint: that peer is dropped, others are served.
    let port = zmq.rsplit(':').next().unwrap();
    let mut junk = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\xff\xfe\x00garbage")
        .await
        .unwrap();
    // An oversized message drops its peer (faults::zmtp has the cases); others are served.
    assert_eq!(
        request(&zmq, br#"{"method": "ping"}"#).await["message"],
        "pong"
    );
    let (status, _) = host.get("/api/v1/health").await;
    assert_eq!(status, 200);
}

async fn schedule_on(
    host: &TestHost,
    handler: &str,
    id: &str,
    method: &str,
    params: Value,
    policy: Value,
) {
    let (status, s) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": id, "handler": handler, "method": method, "params": params,
                    "trigger": {"type": "interval", "every_seconds": 3600}, "paused": true,
                    "policy": policy}),
        )
        .await;
    assert_eq!(status, 201, "{s}");
}

#[tokio::test]
async fn with_a_shared_secret_only_signed_messages_pass() {
    const SECRET: &str = "a secret shared with the handlers";
    let host = TestHost::start_with_config(&format!("[server]\nremote_secret = \"{SECRET}\"\n"));
    let zmq = endpoint(&host).await;
    let now = || chrono::Utc::now().timestamp();

    // Unsigned, as the Python ScheduleZero's handlers send: refused, with the reason in plain JSON.
    let refused = request(&zmq, br#"{"method": "ping"}"#).await;
    assert_eq!(refused["success"], false);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .starts_with("Unsigned message refused"),
        "{refused}"
    );
    // Signed with another secret, or replayed: refused too.
    let stranger = schedulezero::bridge::Signer::new("not the host's secret at all");
    let forged = stranger.seal(r#"{"method": "ping"}"#, now());
    assert_eq!(
        request(&zmq, forged.as_bytes()).await["error"],
        "Invalid signature"
    );
    let signer = schedulezero::bridge::Signer::new(SECRET);
    let ping = signer.seal(r#"{"method": "ping"}"#, now());
    let reply = request(&zmq, ping.as_bytes()).await;
    let opened: Value =
        serde_json::from_str(&signer.open(reply.to_string().as_bytes(), now()).unwrap()).unwrap();
    assert_eq!(opened["message"], "pong", "the reply is signed too");
    assert_eq!(
        request(&zmq, ping.as_bytes()).await["error"],
        "Replayed message refused"
    );

    // The example handler with the secret: registers, and takes the host's signed requests.
    let example = crate::support::repo_root().join("examples/python/hello_handler.py");
    let (_handler, line) = python_peer(
        &[example.to_str().unwrap()],
        &[
            ("SCHEDULEZERO_ZMQ", zmq.as_str()),
            ("SCHEDULEZERO_SECRET", SECRET),
            ("HANDLER_ID", "py-signed"),
        ],
    )
    .await;
    assert!(line.starts_with("py-signed registered"), "{line}");
    let (status, ran) =
        compat_run_now(&host, "py-signed", "say_hello", json!({"name": "Bo"})).await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["result"]["message"], "hello Bo");

    // The Rust SDK's handler with the secret, too; without it, it cannot register.
    let (_native, line) = rust_peer(&[
        ("SCHEDULEZERO_ZMQ", zmq.as_str()),
        ("SCHEDULEZERO_SECRET", SECRET),
        ("HANDLER_ID", "rs-signed"),
    ])
    .await;
    assert!(line.starts_with("rs-signed registered"), "{line}");
    let (status, ran) = compat_run_now(&host, "rs-signed", "add", json!({"a": 1, "b": 2})).await;
    assert_eq!((status, ran["result"].clone()), (200, json!(3)), "{ran}");
    let unsigned = rust_peer_exit(&[
        ("SCHEDULEZERO_ZMQ", zmq.as_str()),
        ("HANDLER_ID", "rs-unsigned"),
    ])
    .await;
    assert!(!unsigned.status.success());
    let stderr = String::from_utf8_lossy(&unsigned.stderr);
    assert!(stderr.contains("Unsigned message refused"), "{stderr}");
}

/// Runs schedule `id` now and checks that it ran on `handler` at `address`.
async fn runs_at(host: &TestHost, id: &str, handler: &str, address: &str) {
    let ran = host.run_schedule(id).await;
    assert_eq!(ran["run"]["status"], "success", "{ran}");
    assert_eq!(
        ran["executions"][0]["instance"],
        format!("zmq:{handler}@{address}"),
        "{ran}"
    );
}

/// A call to `handler`'s `slow` that outlasts its schedule's timeout fails with `timeout`; then
/// schedule `next` runs (on a fresh socket) and its outcome is returned.
async fn times_out_then_recovers(host: &TestHost, handler: &str, next: &str) -> Value {
    let sleepy = format!("{handler}-sleepy");
    schedule_on(
        host,
        handler,
        &sleepy,
        "slow",
        json!({"seconds": 2}),
        json!({"timeout": "300ms"}),
    )
    .await;
    let ran = host.run_schedule(&sleepy).await;
    assert_eq!(ran["error"]["code"], "timeout", "{ran}");
    let ran = host.run_schedule(next).await;
    assert_eq!(ran["run"]["status"], "success", "after a timeout: {ran}");
    ran
}

/// Kills `handler`'s process in the middle of a call: the run fails clearly (the connection
/// breaks, or the call times out), the host keeps answering, and pings soon mark the handler
/// unreachable.
async fn kill_mid_call(host: &TestHost, handler: &str, process: &mut tokio::process::Child) {
    let doomed = format!("{handler}-doomed");
    schedule_on(
        host,
        handler,
        &doomed,
        "slow",
        json!({"seconds": 30}),
        json!({"timeout": "3s"}),
    )
    .await;
    let call = host.run_schedule(&doomed);
    let kill = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        process.kill().await.expect("kill the handler");
    };
    let (ran, ()) = tokio::join!(call, kill);
    let code = ran["error"]["code"].as_str().unwrap_or_default().to_owned();
    assert!(
        ["handler_unreachable", "timeout"].contains(&code.as_str()),
        "{ran}"
    );
    let (status, _) = host.get("/api/v1/health").await;
    assert_eq!(status, 200);
    host.wait_for(std::time::Duration::from_secs(20), || async {
        let (_, h) = host.get(&format!("/api/v1/handlers/{handler}")).await;
        (h["status"] == "unreachable").then_some(())
    })
    .await;
}

/// The Rust SDK's example handler, a process of its own: registered, scheduled through both APIs,
/// timed out, killed mid-call, restarted on another port, across a host restart, and offline on
/// SIGTERM.
#[tokio::test]
async fn a_rust_native_handler_serves_jobs_through_restarts_on_both_sides() {
    let mut host = TestHost::start_with_config("[server]\nremote_ping_interval = \"300ms\"\n");
    let zmq = endpoint(&host).await;
    let env = [
        ("SCHEDULEZERO_ZMQ", zmq.as_str()),
        ("HANDLER_ID", "rs-hello"),
    ];
    let (handler, line) = rust_peer(&env).await;
    let address = line
        .strip_prefix("rs-hello registered, listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    assert!(address.starts_with("tcp://127.0.0.1:"), "{address}");
    let (_, h) = host.get("/api/v1/handlers/rs-hello").await;
    let methods: Vec<_> = h["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .map(|m| m["name"].clone())
        .collect();
    assert_eq!(
        (h["kind"].clone(), h["status"].clone(), json!(methods)),
        (
            json!("remote"),
            json!("online"),
            json!(["say_hello", "add", "slow", "echo"])
        ),
        "{h}"
    );

    // ScheduleZero's routes: a job scheduled with /api/schedule, and the synchronous run_now.
    let (status, created) = host
        .post(
            "/api/schedule",
            &json!({"handler_id": "rs-hello", "job_method": "say_hello",
                    "job_params": {"name": "Ada"}, "job_id": "compat-hello",
                    "trigger": {"type": "interval", "seconds": 3600}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let result = first_result(&host, "compat-hello").await;
    assert_eq!(result["message"], "hello Ada", "{result}");
    let (status, ran) = compat_run_now(&host, "rs-hello", "add", json!({"a": 2, "b": 40})).await;
    assert_eq!((status, ran["result"].clone()), (200, json!(42)), "{ran}");
    // Params its method cannot take: the handler says why, and keeps serving.
    let (status, ran) = compat_run_now(&host, "rs-hello", "add", json!({"a": "two"})).await;
    assert_eq!(status, 500, "{ran}");
    assert!(
        ran["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Invalid params"),
        "{ran}"
    );

    // /api/v1: a timeout, then a call that works (a fresh socket, the handler still serving:
    // it finishes the call nobody waits for, then takes the next one).
    schedule_on(
        &host,
        "rs-hello",
        "hello",
        "say_hello",
        json!({}),
        json!({"timeout": "5s"}),
    )
    .await;
    let ran = times_out_then_recovers(&host, "rs-hello", "hello").await;
    let result = &ran["executions"][0]["result"];
    assert_eq!(result["message"], "hello world", "{ran}");
    assert_eq!(
        result["request_id"], ran["run"]["id"],
        "the run id reaches it"
    );

    // Sent again only as the schedule's policy says, each attempt recorded on its own.
    schedule_on(
        &host,
        "rs-hello",
        "retried",
        "slow",
        json!({"seconds": 1}),
        json!({"timeout": "300ms", "max_attempts": 2, "retry_backoff": "100ms"}),
    )
    .await;
    let ran = host.run_schedule("retried").await;
    let attempts: Vec<_> = ran["executions"]
        .as_array()
        .expect("executions")
        .iter()
        .map(|e| {
            (
                e["attempt"].clone(),
                e["status"].clone(),
                e["error_code"].clone(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [
            (json!(2), json!("error"), json!("timeout")),
            (json!(1), json!("retry"), json!("timeout"))
        ],
        "newest first: {ran}"
    );

    // Killed mid-call: a clear error, the host keeps going, and pings mark it unreachable.
    let mut handler = handler;
    kill_mid_call(&host, "rs-hello", &mut handler).await;

    // Back on another port: it registers again and is called there.
    let (handler, line) = rust_peer(&env).await;
    let moved = line
        .strip_prefix("rs-hello registered, listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    assert_ne!(moved, address, "a new port");
    runs_at(&host, "hello", "rs-hello", &moved).await;
    let (_, h) = host.get("/api/v1/handlers/rs-hello").await;
    assert_eq!(h["status"], "online", "{h}");
    // What the host saw of it, in its view beside the plugins'.
    assert!(h["calls"].as_u64() >= Some(6), "{h}");
    assert!(h["errors"].as_u64() >= Some(3), "{h}");
    assert!(h["last_latency_ms"].as_f64() > Some(0.0), "{h}");
    assert!(h["last_seen"].is_string(), "{h}");
    let (_, listed) = host.get("/api/v1/handlers").await;
    let kinds: Vec<_> = listed["handlers"]
        .as_array()
        .expect("handlers")
        .iter()
        .map(|h| (h["id"].clone(), h["kind"].clone()))
        .collect();
    assert!(
        kinds.contains(&(json!("rs-hello"), json!("remote"))),
        "{listed}"
    );
    // And from the command line.
    let data = tempfile::tempdir().unwrap();
    let out = crate::support::run_cli(data.path(), &["handlers", "--url", host.url.as_str()], &[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let line = table
        .lines()
        .find(|l| l.starts_with("rs-hello "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains("remote") && line.contains("online") && line.contains(&moved),
        "{line}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("ding-dong ") && l.contains("wasm")),
        "{table}"
    );
    assert!(
        kinds.contains(&(json!("ding-dong"), json!("wasm"))),
        "{listed}"
    );

    // The host restarts: the registry is read back, the handler is called without registering.
    assert!(host.terminate(), "a clean stop");
    host.restart();
    runs_at(&host, "hello", "rs-hello", &moved).await;

    // SIGTERM: it reports offline (to the host it registered with) and exits cleanly. Start
    // another one against the restarted host's endpoint, so that the report reaches it.
    let zmq = endpoint(&host).await;
    let env = [
        ("SCHEDULEZERO_ZMQ", zmq.as_str()),
        ("HANDLER_ID", "rs-hello"),
    ];
    let (mut last, line) = rust_peer(&env).await;
    assert!(line.starts_with("rs-hello registered"), "{line}");
    drop(handler);
    sigterm(&last);
    let exit = last.wait().await.expect("the handler exits");
    assert!(exit.success(), "{exit:?}");
    let (_, h) = host.get("/api/v1/handlers/rs-hello").await;
    assert_eq!(h["status"], "offline", "{h}");
}

/// Many short-lived peers at once, as handlers restarting and pinging do: every request is
/// answered (the `zeromq` crate's REP socket used to stall the endpoint for good when a peer left
/// while another connected, on a busy machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registration_endpoint_answers_many_coming_and_going_peers() {
    let host = TestHost::start();
    let zmq = endpoint(&host).await;
    let peers = (0..4).map(|_| {
        let zmq = zmq.clone();
        tokio::spawn(async move {
            let mut unanswered = 0;
            for _ in 0..500 {
                let exchange = async {
                    let mut socket = zeromq::ReqSocket::new();
                    socket.connect(&zmq).await.expect("connect");
                    socket
                        .send(ZmqMessage::from(r#"{"method":"ping"}"#.to_owned()))
                        .await
                        .expect("send");
                    socket.recv().await.expect("reply")
                };
                let limit = std::time::Duration::from_secs(5);
                if tokio::time::timeout(limit, exchange).await.is_err() {
                    unanswered += 1;
                    break;
                }
            }
            unanswered
        })
    });
    let unanswered: Vec<u32> = futures::future::join_all(peers)
        .await
        .into_iter()
        .map(|r| r.expect("peer task"))
        .collect();
    assert_eq!(unanswered, [0, 0, 0, 0], "pings left unanswered, by peer");
}

/// `bench remote` measures what it says: each handler answered every sample, with figures that
/// make sense (a remote call through loopback TCP costs more than a call to a hot plugin).
#[tokio::test]
async fn the_remote_benchmark_measures_all_three_handlers() {
    let f = crate::support::run_bench("remote", std::time::Duration::from_secs(120)).await;
    assert_eq!(f["samples"], 500, "{f}");
    assert!(f["python_skipped"].is_null(), "pyzmq is installed: {f}");
    for handler in ["wasm", "native", "python"] {
        let p50 = f[format!("{handler}_call_us_p50")].as_f64().unwrap_or(0.0);
        let p99 = f[format!("{handler}_call_us_p99")].as_f64().unwrap_or(0.0);
        let per_s = f[format!("{handler}_calls_per_s")].as_f64().unwrap_or(0.0);
        assert!(0.0 < p50 && p50 <= p99 && per_s > 0.0, "{handler}: {f}");
    }
    assert!(
        f["native_call_us_p50"].as_f64() > f["wasm_call_us_p50"].as_f64(),
        "{f}"
    );
}

#[tokio::test]
async fn dead_handlers_fail_fast_and_can_be_forgotten() {
    let host = TestHost::start();
    let zmq = endpoint(&host).await;
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_eq!(
        request(&zmq, &register("gone", closed)).await["success"],
        true
    );
    schedule_on(&host, "gone", "to-gone", "render", json!({}), json!({})).await;
    let started = std::time::Instant::now();
    let ran = host.run_schedule("to-gone").await;
    assert_eq!(ran["error"]["code"], "handler_unreachable", "{ran}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "not the call's whole 10 s: {:?}",
        started.elapsed()
    );

    // One that said it went offline is not called at all.
    let offline =
        br#"{"method": "report_status", "params": {"handler_id": "gone", "status": "offline"}}"#;
    assert_eq!(request(&zmq, offline).await["success"], true);
    let started = std::time::Instant::now();
    let ran = host.run_schedule("to-gone").await;
    assert_eq!(ran["error"]["code"], "handler_offline", "{ran}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));

    // Forgotten through the API: gone from the lists; a plugin cannot be forgotten so.
    let (status, gone) = host.delete("/api/v1/handlers/gone").await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(host.get("/api/v1/handlers/gone").await.0, 404);
    assert_eq!(host.delete("/api/v1/handlers/gone").await.0, 404);
    let (status, plugin) = host.delete("/api/v1/handlers/ding-dong").await;
    assert_eq!(
        (status, plugin["error"]["code"].clone()),
        (409, json!("handler_is_plugin"))
    );

    // Many handlers: the list comes a page at a time, and the CLI reads every page.
    for i in 0..30 {
        let r = request(&zmq, &register(&format!("h{i:02}"), 6000 + i)).await;
        assert_eq!(r["success"], true, "{r}");
    }
    let (_, first) = host.get("/api/v1/handlers?limit=10").await;
    let ids = |page: &Value| -> Vec<String> {
        page["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first).len(), 10);
    let next = first["next"].as_str().unwrap().to_owned();
    let (_, second) = host
        .get(&format!("/api/v1/handlers?limit=10&after={next}"))
        .await;
    assert!(ids(&second)[0] > next, "{second}");
    let out = crate::support::run_cli(
        host.data_dir(),
        &["handlers", "--url", &host.url, "--json"],
        &[],
    );
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, one_page) = host.get("/api/v1/handlers?limit=1000").await;
    assert_eq!(ids(&all), ids(&one_page));
    assert!(ids(&all).len() >= 31, "30 remote handlers and the plugins");
    let out = crate::support::run_cli(
        host.data_dir(),
        &["handlers", "forget", "h07", "--url", &host.url],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(host.get("/api/v1/handlers/h07").await.0, 404);
}
