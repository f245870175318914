"""misbehave-py: a Python handler that misbehaves on request, to show what the host contains.

Each method does one thing a handler should not (loop forever, allocate without end, raise) or
reaches for something the operator grants or withholds (a configuration value, a secret, a
directory); the tests call them to check that the host stops, refuses and reports each one.
"""

from __future__ import annotations

import os
import time
from typing import Literal

from schedulezero import (
    Denied,
    Directory,
    Failed,
    Handler,
    Http,
    InvalidParams,
    Retryable,
    Secret,
    Setting,
    config,
    dirs,
    http,
    method,
)

ERRORS = {"invalid_params": InvalidParams, "failed": Failed, "retryable": Retryable, "denied": Denied}


def check_reading(reading: float) -> float:
    if reading < 0:
        raise ValueError(f"a reading cannot be negative: {reading}")
    return reading


class Misbehave(
    Handler,
    name="misbehave-py",
    version="0.1.0",
    description="Misbehaves on request (loops, allocates, raises) and reaches for granted things, to show what the host contains.",
    config=[Setting("anything", "A plain value."), Secret("token", "A secret.")],
    http=[Http("*://*:*", "Whatever a test points it at, to prove what the host refuses.")],
    directories=[
        Directory.read_only("data", "Files it reads."),
        Directory.read_write("scratch", "Where it may write."),
    ],
):
    @method
    def ok(self) -> dict:
        """Answers at once."""
        return {"ok": True}

    @method
    def spin(self) -> None:
        """Loops forever (the call's timeout ends it)."""
        n = 0
        while True:
            n += 1

    @method
    def grow_memory(self, chunk_mib: int = 16) -> int:
        """Allocates memory without end (the memory limit ends it)."""
        held = []
        while True:
            held.append(bytearray(chunk_mib * 1024 * 1024))

    @method
    def raise_error(self, reading: float = -1.0) -> float:
        """Raises an exception two calls deep (the failure carries the traceback)."""
        return check_reading(reading)

    @method
    def fail(self, kind: Literal["invalid_params", "failed", "retryable", "denied"], message: str) -> None:
        """Fails with the given kind and message."""
        raise ERRORS[kind](message)

    @method
    def read_config(self, key: str) -> dict:
        """The configuration value `key` and the keys granted."""
        return {"value": config.get(key), "keys": config.keys()}

    @method
    def use_secret(self) -> dict:
        """Reads the secret `token` (refused when not granted) and says how long it is."""
        return {"length": len(config.secret("token"))}

    @method
    def read_file(self, path: str) -> dict:
        """Reads a file (inside the granted `data` directory, or an attempt outside it)."""
        try:
            with open(path, encoding="utf-8") as f:
                return {"text": f.read()}
        except OSError as e:
            raise Denied(f"cannot read {path}: {e.strerror}") from None

    @method
    def write_file(self, name: str, text: str) -> dict:
        """Writes a file in the granted `scratch` directory."""
        path = dirs.path("scratch") / name
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return {"written": str(path), "granted": dirs.is_granted("scratch")}

    @method
    def fetch(self, url: str) -> dict:
        """Fetches `url` (GET) and returns the status and the body's text."""
        r = http.get(url)
        return {"status": r.status, "body": r.text()}

    @method
    def read_env(self) -> dict:
        """The environment it sees (nothing, in the sandbox)."""
        return {"environ": dict(os.environ)}

    @method
    def sleep(self, ms: int) -> dict:
        """Sleeps, then answers."""
        time.sleep(ms / 1000)
        return {"slept_ms": ms}
