"""The component's side of the contract: connects a handler to the bindings componentize-py
generates for `wit/handler.wit`. Imported only inside a component (the build's glue module)."""

from __future__ import annotations

import datetime
import logging

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config as _config
from wit_world.imports import log as _log
from wit_world.imports import types

import schedulezero as _sz

_LEVELS = {
    "trace": _log.Level.TRACE,
    "debug": _log.Level.DEBUG,
    "info": _log.Level.INFO,
    "warn": _log.Level.WARN,
    "error": _log.Level.ERROR,
}

_KINDS = {
    "invalid-params": types.HandlerError_InvalidParams,
    "unknown-method": types.HandlerError_UnknownMethod,
    "failed": types.HandlerError_Failed,
    "retryable": types.HandlerError_Retryable,
    "denied": types.HandlerError_Denied,
}


class _Imports:
    """The host's services through the contract's imports."""

    def config_get(self, key: str) -> str | None:
        return _config.get(key)

    def config_keys(self) -> list[str]:
        return _config.keys()

    def log(self, level: str, message: str) -> None:
        _log.log(_LEVELS[level], message)

    def send(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes | None) -> _sz.Response:
        try:
            from wit_world.imports import outbound
        except ImportError:
            raise _sz.Denied(
                f"{method} {url}: the handler asks for no HTTP destination (add Http(...) to its class)"
            ) from None
        try:
            r = outbound.send(outbound.Request(method=method, url=url, headers=headers, body=body))
        except Err as e:
            failure = e.value
            # A timeout or a broken connection may pass; a refusal, a request that is not
            # valid or a response too large will not.
            kind = {
                outbound.OutboundError_Denied: _sz.Denied,
                outbound.OutboundError_Invalid: _sz.Failed,
                outbound.OutboundError_Limit: _sz.Failed,
                outbound.OutboundError_Timeout: _sz.Retryable,
                outbound.OutboundError_Failed: _sz.Retryable,
            }.get(type(failure), _sz.Failed)
            raise kind(f"{method} {url}: {failure.value}") from None
        return _sz.Response(status=r.status, headers=list(r.headers), body=bytes(r.body))


class _ToHost(logging.Handler):
    """Python's logging, into the host's log."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            level = "error"
        elif record.levelno >= logging.WARNING:
            level = "warn"
        elif record.levelno >= logging.INFO:
            level = "info"
        else:
            level = "debug"
        try:
            _sz._host.log(level, self.format(record))
        except Exception:  # a record that cannot be formatted is not worth failing a call
            pass


def export() -> type:
    """The class componentize-py exports as the `handler` interface."""
    _sz._host = _Imports()
    root = logging.getLogger()
    root.addHandler(_ToHost())
    root.setLevel(logging.INFO)

    spec = _sz._the_handler()
    described = spec.info()
    # Built once, when the build pre-initialises the component: part of its memory image.
    info = types.HandlerInfo(
        name=described["name"],
        version=described["version"],
        description=described["description"],
        methods=[
            types.MethodInfo(name=m["name"], description=m["description"], params_schema=m["params_schema"])
            for m in described["methods"]
        ],
    )
    utc = datetime.timezone.utc

    class Handler(exports.Handler):
        def describe(self) -> types.HandlerInfo:
            return info

        def invoke(self, ctx: types.JobContext, method: str, params: str) -> str:
            at = ctx.scheduled_time
            when = datetime.datetime.fromtimestamp(at.seconds, utc) + datetime.timedelta(
                microseconds=at.nanoseconds // 1000
            )
            context = _sz.JobContext(ctx.job_id, ctx.run_id, ctx.attempt, when)
            try:
                return spec.invoke(context, method, params)
            except _sz.HandlerError as e:
                raise Err(_KINDS.get(e.kind, types.HandlerError_Failed)(e.message)) from None
            except MemoryError:
                # Out of memory: let the instance trap, so that the host reports the memory
                # limit and starts the next call on a fresh instance.
                raise
            except Exception as e:
                raise Err(types.HandlerError_Failed(_sz._failure_text(e))) from None

    return Handler
