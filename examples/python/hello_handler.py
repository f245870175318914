#!/usr/bin/env python3
"""A remote ScheduleZero handler in plain Python: pyzmq and the standard library, nothing else.

It speaks the same protocol as the Python ScheduleZero's handlers, so it works against either
host. Every message is one frame of JSON:

1. bind a REP socket (any free port) and read back the real endpoint;
2. send {"method": "ping"} and then {"method": "register", "params": {"handler_id", "address",
   "methods"}} to the host's registration endpoint, from a REQ socket;
3. answer requests {"method": <m>, "params": {...}} on the REP socket, one at a time, with
   {"success": true, ...result fields} or {"success": false, "error": "..."};
4. ping the host every 30 s and register again when a ping fails (the host restarted elsewhere,
   or was down);
5. on SIGTERM or SIGINT, send {"method": "report_status", "params": {"handler_id", "status":
   "offline"}} and exit.

Besides its own methods it answers `get_metrics` with its process's figures (resident memory,
CPU use since the previous ask, threads, uptime, calls served), which the host's fleet view and
the conductor show; a handler without it keeps working, shown as "not reported".

    pip install pyzmq
    SCHEDULEZERO_ZMQ=tcp://127.0.0.1:4242 python3 examples/python/hello_handler.py

Then schedule its methods like a plugin's: `schedulezero schedules add py-hello say_hello
--params '{"name": "Ada"}' --every 1m`.

With SCHEDULEZERO_SECRET set (the host's `server.remote_secret`), every message travels signed:
{"ts", "nonce", "sig", "body"}, where sig is the hex HMAC-SHA256 of "{ts}\n{nonce}\n{body}" under
the secret, ts within 60 s of the receiver's clock, and a nonce never seen twice.
"""

import hashlib
import hmac
import json
import os
import resource
import secrets
import signal
import threading
import time

import zmq

HOST = os.environ.get("SCHEDULEZERO_ZMQ", "tcp://127.0.0.1:4242")
HANDLER_ID = os.environ.get("HANDLER_ID", "py-hello")
BIND = os.environ.get("HANDLER_BIND", "tcp://127.0.0.1:*")
TIMEOUT_MS = 10_000
PING_EVERY_S = 30
SECRET = os.environ.get("SCHEDULEZERO_SECRET", "").encode()
WINDOW_S = 60
_seen_nonces = {}


def _signature(ts, nonce, body):
    return hmac.new(SECRET, f"{ts}\n{nonce}\n{body}".encode(), hashlib.sha256).hexdigest()


def seal(message):
    """The frame to send: the message's JSON, in a signed envelope when a secret is set."""
    body = json.dumps(message)
    if not SECRET:
        return body
    ts, nonce = int(time.time()), secrets.token_hex(16)
    return json.dumps({"ts": ts, "nonce": nonce, "sig": _signature(ts, nonce, body), "body": body})


def unseal(frame):
    """The message in a received frame; raises ValueError when a signed one does not check out."""
    if not SECRET:
        return json.loads(frame)
    envelope = json.loads(frame)
    if not isinstance(envelope, dict) or set(envelope) != {"ts", "nonce", "sig", "body"}:
        raise ValueError("Unsigned message refused")
    ts, nonce, body = envelope["ts"], envelope["nonce"], envelope["body"]
    if not hmac.compare_digest(_signature(ts, nonce, body), envelope["sig"]):
        raise ValueError("Invalid signature")
    now = time.time()
    if abs(now - ts) > WINDOW_S:
        raise ValueError("Message too old or from the future")
    for old, seen_at in list(_seen_nonces.items()):
        if seen_at < now - WINDOW_S:
            del _seen_nonces[old]
    if nonce in _seen_nonces:
        raise ValueError("Replayed message refused")
    _seen_nonces[nonce] = ts
    return json.loads(body)


def say_hello(params):
    return {"message": "hello " + str(params.get("name", "world"))}


def add(params):
    return {"result": params["a"] + params["b"]}


METHODS = {"say_hello": say_hello, "add": add}

STARTED = time.monotonic()
SERVED = {"calls": 0, "cpu": None}


def get_metrics():
    """The process's own figures, from the standard library and /proc where there is one."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    now = time.monotonic()
    percent = None
    if SERVED["cpu"] is not None and now > SERVED["cpu"][0]:
        percent = round((cpu - SERVED["cpu"][1]) / (now - SERVED["cpu"][0]) * 100, 1)
    SERVED["cpu"] = (now, cpu)
    rss = None
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        rss = usage.ru_maxrss * 1024  # the peak, in KiB on Linux: better than nothing
    return {"rss_bytes": rss, "cpu_percent": percent, "threads": threading.active_count(),
            "uptime_seconds": int(now - STARTED), "calls_served": SERVED["calls"],
            "pid": os.getpid(), "status": "ok"}


def ask_host(ctx, message, timeout_ms=TIMEOUT_MS):
    """One request to the host on a fresh REQ socket (a REQ socket is unusable after a timeout)."""
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
    sock.connect(HOST)
    try:
        sock.send_string(seal(message))
        return unseal(sock.recv_string())
    finally:
        sock.close()


def register(ctx, address, stop):
    message = {"method": "register",
               "params": {"handler_id": HANDLER_ID, "address": address, "methods": list(METHODS)}}
    for _ in range(5):
        try:
            reply = ask_host(ctx, message)
            if reply.get("success"):
                return reply
            print("registration refused:", reply.get("error"), flush=True)
        except zmq.ZMQError as e:
            print("cannot reach the host:", e, flush=True)
        if stop.wait(15):
            return None
    raise SystemExit("could not register with " + HOST)


def keep_registered(ctx, address, stop):
    while not stop.wait(PING_EVERY_S):
        try:
            if ask_host(ctx, {"method": "ping"}).get("success"):
                continue
        except zmq.ZMQError:
            pass
        register(ctx, address, stop)


def answer(request):
    method = request.get("method")
    params = request.get("params") or {}
    if method == "ping":
        return {"success": True, "message": "pong", "handler_id": HANDLER_ID}
    if method == "get_metrics":
        return {"success": True, **get_metrics()}
    if method not in METHODS:
        return {"success": False, "error": "Unknown method: " + str(method)}
    SERVED["calls"] += 1
    try:
        result = METHODS[method](params)
    except Exception as e:  # the handler's failure is the caller's answer, not a crash
        return {"success": False, "error": str(e)}
    if isinstance(result, dict):
        return {"success": True, **result}
    return {"success": True, "result": result}


def main():
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.bind(BIND)
    address = rep.getsockopt_string(zmq.LAST_ENDPOINT)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    ask_host(ctx, {"method": "ping"})
    register(ctx, address, stop)
    print(HANDLER_ID, "registered, listening on", address, flush=True)
    threading.Thread(target=keep_registered, args=(ctx, address, stop), daemon=True).start()

    poller = zmq.Poller()
    poller.register(rep, zmq.POLLIN)
    while not stop.is_set():
        if not dict(poller.poll(200)):
            continue
        frame = rep.recv_string()
        try:
            request = unseal(frame)
        except ValueError as e:
            # Plain JSON, so that a peer without the secret can read why.
            rep.send_string(json.dumps({"success": False, "error": str(e) or "Invalid JSON"}))
            continue
        if isinstance(request, dict):
            reply = answer(request)
        else:
            reply = {"success": False, "error": "Invalid JSON"}
        rep.send_string(seal(reply))

    try:
        ask_host(ctx, {"method": "report_status",
                       "params": {"handler_id": HANDLER_ID, "status": "offline"}}, timeout_ms=2000)
    except zmq.ZMQError:
        pass
    rep.close(linger=0)
    ctx.term()


if __name__ == "__main__":
    main()
