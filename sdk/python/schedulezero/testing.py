"""Runs a handler's methods natively, without a host: for a handler's own tests.

    from schedulezero import testing
    from app import Greeter

    def test_greets():
        testing.configure({"greeting": "Howdy"})
        assert testing.call(Greeter, "greet", {"name": "Ada"})["message"] == "Howdy, Ada!"

Params go through the same checks as in a component (a bad one raises `InvalidParams`), the
result through the same conversion to JSON; `config` and `log` read and write the values given
here. Unlike in a component, an unexpected exception is raised as it is, with its traceback.
"""

from __future__ import annotations

import json
from typing import Any

import schedulezero as _sz


def _spec(handler: Any) -> _sz._Spec:
    spec = getattr(handler, "__schedulezero__", handler)
    if not isinstance(spec, _sz._Spec):
        raise TypeError(f"{handler!r} is not a handler (a Handler subclass or schedulezero.handler(...))")
    return spec


def configure(values: dict[str, str] | None = None, *, http: Any = None) -> None:
    """The configuration values and secrets the handler sees (none by default), an empty log,
    and what answers its HTTP requests: `http(method, url, headers, body)` returning a
    `schedulezero.Response` (or raising, as the host would); without it, requests are denied."""
    host = _sz._host
    if not isinstance(host, _sz._Native):
        raise RuntimeError("testing runs natively, not inside a component")
    host.values = dict(values or {})
    host.records = []
    host.responder = http


def logs() -> list[tuple[str, str]]:
    """The records written since `configure`, as (level, message)."""
    return list(_sz._host.records)


def describe(handler: Any) -> dict[str, Any]:
    """What `describe` answers, with each params schema as a dict."""
    info = _spec(handler).info()
    for m in info["methods"]:
        if m["params_schema"] is not None:
            m["params_schema"] = json.loads(m["params_schema"])
    return info


def manifest(handler: Any) -> dict[str, Any]:
    """The manifest the build writes into the component."""
    return _spec(handler).manifest()


def call(handler: Any, method: str, params: Any = None, *, ctx: _sz.JobContext | None = None, fresh: bool = False) -> Any:
    """Calls `method` with `params` (JSON data) and returns its result as JSON data. The handler
    object is kept between calls, as in a hot instance; `fresh=True` starts a new one."""
    spec = _spec(handler)
    if fresh:
        spec._instance = None
    return json.loads(spec.invoke(ctx or _sz.JobContext.adhoc(), method, json.dumps(params)))
