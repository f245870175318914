"""Write ScheduleZero handlers in Python.

A handler is a class (or a module of functions) whose methods take JSON params and return JSON
results. Build it into a WebAssembly component with `python -m schedulezero.build DIR`; the host
runs it sandboxed, on a schedule or on demand, exactly like a handler written in Rust.

    from schedulezero import Handler, JobContext, Setting, config, log, method

    class Greeter(Handler, name="greeter", version="0.1.0",
                  description="Greets people.",
                  config=[Setting("greeting", "The word to greet with.")]):
        def __init__(self):
            self.calls = 0              # state lives while the host keeps the instance hot

        @method
        def greet(self, ctx: JobContext, name: str, times: int = 1) -> dict:
            \"\"\"Greets someone, `times` times.\"\"\"
            if not 1 <= times <= 10:
                raise InvalidParams("`times` is 1 to 10")
            self.calls += 1
            word = config.get("greeting") or "Hello"
            return {"message": " ".join([f"{word}, {name}!"] * times), "run_id": ctx.run_id}

A method's params schema comes from its signature (keyword parameters, or one dataclass or
TypedDict parameter); the params are checked against it before the method runs. A method may
take the call's `JobContext` as its first parameter (named `ctx`, or typed `JobContext`), and a
parameter named `params` with no other typed ones receives the raw params as they came (the
style of handlers written for the Python ScheduleZero). Raise `InvalidParams`, `Failed`,
`Retryable` or `Denied` to fail a call with that kind; any other exception fails it with its
traceback in the message.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import json
import traceback
import typing
from typing import Any, Callable, Literal

from . import _schema
from ._schema import ParamsError

__all__ = [
    "Denied",
    "Directory",
    "Failed",
    "Handler",
    "HandlerError",
    "Http",
    "InvalidParams",
    "JobContext",
    "Retryable",
    "Secret",
    "Setting",
    "UnknownMethod",
    "config",
    "dirs",
    "handler",
    "http",
    "log",
    "method",
    "Response",
]


# ---------------------------------------------------------------------------------------------
# Errors


class HandlerError(Exception):
    """A call's failure of a kind the host knows. Raise one of its subclasses."""

    kind = "failed"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidParams(HandlerError):
    """The params are not valid for the method: retrying the same call cannot succeed."""

    kind = "invalid-params"


class UnknownMethod(HandlerError):
    """The handler has no method of that name (the SDK raises it)."""

    kind = "unknown-method"


class Failed(HandlerError):
    """The call failed; the host does not retry it."""

    kind = "failed"


class Retryable(HandlerError):
    """The call failed for a reason that may pass; the job's retry policy may run it again."""

    kind = "retryable"


class Denied(HandlerError):
    """The call needed something the operator did not grant (it fails with
    `capability_denied`)."""

    kind = "denied"


# ---------------------------------------------------------------------------------------------
# What a handler asks the operator for (written into the component's manifest)


@dataclasses.dataclass(frozen=True)
class Setting:
    """A configuration value the handler reads with `config.get(key)`."""

    key: str
    description: str

    def _manifest(self) -> dict[str, Any]:
        return {"key": self.key, "description": self.description, "secret": False}


@dataclasses.dataclass(frozen=True)
class Secret:
    """A secret the handler reads with `config.secret(key)`; the operator grants it by
    reference (an environment variable or a file of the host) and it is never shown."""

    key: str
    description: str

    def _manifest(self) -> dict[str, Any]:
        return {"key": self.key, "description": self.description, "secret": True}


@dataclasses.dataclass(frozen=True)
class Http:
    """Outbound HTTP to the destinations of one allow-list entry (`https://api.example.com`,
    `https://*.example.com:8443`, `*://*:*` to leave the hosts to the operator)."""

    destination: str
    purpose: str

    def _manifest(self) -> dict[str, Any]:
        return {"destination": self.destination, "purpose": self.purpose}


@dataclasses.dataclass(frozen=True)
class Directory:
    """A directory the handler uses, appearing to it as `/<name>` when granted."""

    name: str
    purpose: str
    access: Literal["read-only", "read-write"] = "read-only"

    @classmethod
    def read_only(cls, name: str, purpose: str) -> Directory:
        return cls(name, purpose, "read-only")

    @classmethod
    def read_write(cls, name: str, purpose: str) -> Directory:
        return cls(name, purpose, "read-write")

    def _manifest(self) -> dict[str, Any]:
        return {"name": self.name, "access": self.access, "purpose": self.purpose}


# ---------------------------------------------------------------------------------------------
# The call


@dataclasses.dataclass(frozen=True)
class JobContext:
    """What the host tells a method about the call it runs."""

    #: The job (schedule) this run belongs to; `adhoc` for a call made by hand.
    job_id: str
    #: This run's id; retries keep it, so it serves as an idempotency key.
    run_id: str
    #: 1 for the first try, then 2, 3, ... on retries.
    attempt: int
    #: When the run was scheduled to fire (UTC), not when it started.
    scheduled_time: datetime.datetime

    @classmethod
    def adhoc(cls, run_id: str = "adhoc-run") -> JobContext:
        """A context for a call made by hand (and for tests)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        return cls("adhoc", run_id, 1, now)


# ---------------------------------------------------------------------------------------------
# The host's services. Inside a component they are the contract's imports; run natively (tests,
# the build) they are the values `schedulezero.testing` sets.


class _Native:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.records: list[tuple[str, str]] = []
        self.responder: Callable | None = None

    def send(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes | None) -> Response:
        if self.responder is None:
            raise Denied(f"{method} {url}: no HTTP natively (give testing.configure an `http` responder)")
        return self.responder(method, url, headers, body)

    def config_get(self, key: str) -> str | None:
        return self.values.get(key)

    def config_keys(self) -> list[str]:
        return sorted(self.values)

    def log(self, level: str, message: str) -> None:
        self.records.append((level, message))


_host: Any = _Native()


class _Config:
    """Configuration values and secrets the operator granted this handler, by the keys it asked
    for (`Setting`, `Secret`)."""

    def get(self, key: str) -> str | None:
        """The value of `key`, or None when the operator did not set it."""
        return _host.config_get(key)

    def keys(self) -> list[str]:
        """The keys the operator set for this handler, sorted."""
        return _host.config_keys()

    def secret(self, key: str) -> str:
        """The secret `key`; raises `Denied` (the call fails with `capability_denied`) when it
        was not granted or the host could not resolve its reference."""
        value = _host.config_get(key)
        if value is None:
            raise Denied(f"secret `{key}` is not granted")
        return value

    def require(self, key: str) -> str:
        """The configuration value `key`; raises `Denied` when the operator did not set it."""
        value = _host.config_get(key)
        if value is None:
            raise Denied(f"configuration value `{key}` is not granted")
        return value


class _Log:
    """Records in the host's log, tagged with the handler, the job and the run. Python's
    `logging` records reach it too (the root logger sends them here inside a component), and so
    does whatever the handler prints."""

    def trace(self, message: str) -> None:
        _host.log("trace", str(message))

    def debug(self, message: str) -> None:
        _host.log("debug", str(message))

    def info(self, message: str) -> None:
        _host.log("info", str(message))

    def warn(self, message: str) -> None:
        _host.log("warn", str(message))

    warning = warn

    def error(self, message: str) -> None:
        _host.log("error", str(message))


class _Dirs:
    """Directories the operator granted, each at `/<name>`, confined to the host directory it
    maps to; read-only unless granted read-write. Use them with `open` and `pathlib`."""

    def path(self, name: str) -> Any:
        import pathlib

        return pathlib.PurePosixPath("/") / name

    def is_granted(self, name: str) -> bool:
        import os

        return os.path.isdir(f"/{name}")


@dataclasses.dataclass(frozen=True)
class Response:
    """An HTTP response, its body read to the end."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def text(self) -> str:
        """The body as text (UTF-8)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def raise_for_status(self) -> Response:
        """Raises `Retryable` for a 5xx or 429 status, `Failed` for another 4xx; returns the
        response otherwise."""
        if self.status >= 500 or self.status == 429:
            raise Retryable(f"HTTP {self.status}: {self.text()[:200]}")
        if self.status >= 400:
            raise Failed(f"HTTP {self.status}: {self.text()[:200]}")
        return self


class _Http:
    """Outbound HTTP to the destinations the handler asked for (`Http`) and the operator granted.
    A destination not granted raises `Denied` (the call fails with `capability_denied`, naming
    it); a timeout or a failed connection raises `Retryable`; a request that is not valid or a
    response over the host's size limit raises `Failed`. The host's limits on requests per call, sizes and timeouts apply."""

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
        body: bytes | str | None = None,
        json: Any = None,
    ) -> Response:
        """Sends one request and returns the whole response (any status)."""
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        if json is not None:
            import json as _json

            body = _json.dumps(json)
            if not any(k.lower() == "content-type" for k, _ in pairs):
                pairs.append(("content-type", "application/json"))
        data = body.encode() if isinstance(body, str) else body
        return _host.send(method.upper(), url, pairs, data)

    def get(self, url: str, **kwargs: Any) -> Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Response:
        return self.request("DELETE", url, **kwargs)


config = _Config()
log = _Log()
dirs = _Dirs()
http = _Http()


# ---------------------------------------------------------------------------------------------
# Methods


_METHOD_MARK = "__schedulezero_method__"


def method(fn: Callable | None = None, *, name: str | None = None, description: str | None = None):
    """Marks a function as a method of its handler. The method's name is the function's (or
    `name`), its description the docstring's first paragraph (or `description`)."""

    def mark(f: Callable) -> Callable:
        setattr(f, _METHOD_MARK, (name or f.__name__, description))
        return f

    return mark(fn) if fn is not None else mark


def _describe_text(fn: Callable, given: str | None) -> str:
    if given is not None:
        return given
    doc = inspect.getdoc(fn) or ""
    return " ".join(doc.split("\n\n")[0].split())


@dataclasses.dataclass
class _Method:
    name: str
    description: str
    fn: Callable
    bound: bool
    takes_ctx: bool
    # "none": no params; "raw": the params as they came; "one": one dataclass or TypedDict;
    # "kwargs": each keyword parameter a property.
    style: str
    hints: dict[str, Any]
    required: set[str]
    open_ended: bool
    schema: dict[str, Any] | None

    def call(self, instance: Any, ctx: JobContext, params: Any) -> Any:
        args: list[Any] = [instance] if self.bound else []
        if self.takes_ctx:
            args.append(ctx)
        if self.style == "none":
            if params not in (None, {}):
                raise ParamsError(f"`{self.name}` takes no params")
            return self.fn(*args)
        if self.style == "raw":
            return self.fn(*args, params)
        if self.style == "one":
            (hint,) = self.hints.values()
            return self.fn(*args, _schema.convert(hint, {} if params is None else params, ""))
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ParamsError(f"expected an object of params, got {_schema._show(params)}")
        unknown = sorted(set(params) - set(self.hints))
        if unknown and not self.open_ended:
            expected = ", ".join(sorted(self.hints)) or "none"
            raise ParamsError(f"unknown field `{unknown[0]}` (expected: {expected})")
        missing = sorted(self.required - set(params))
        if missing:
            raise ParamsError(f"missing field `{missing[0]}`")
        kwargs = {
            k: _schema.convert(self.hints[k], v, k) if k in self.hints else v
            for k, v in params.items()
        }
        return self.fn(*args, **kwargs)


def _is_whole(hint: Any) -> bool:
    hint, _ = _schema._unwrap(hint)
    return (dataclasses.is_dataclass(hint) and isinstance(hint, type)) or _schema._is_typeddict(hint)


def _analyse(fn: Callable, name: str, description: str | None, bound: bool) -> _Method:
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    params = list(sig.parameters.values())
    if bound:
        params = params[1:]
    takes_ctx = bool(params) and (
        params[0].name in ("ctx", "context") or hints.get(params[0].name) is JobContext
    )
    if takes_ctx:
        params = params[1:]
    where = f"method `{name}` ({fn.__qualname__})"
    for p in params:
        if p.kind is p.POSITIONAL_ONLY or p.kind is p.VAR_POSITIONAL:
            raise TypeError(f"{where}: parameter `{p.name}` must be passable by keyword")
    named = [p for p in params if p.kind is not p.VAR_KEYWORD]
    open_ended = len(named) != len(params)
    text = _describe_text(fn, description)
    if not params:
        return _Method(name, text, fn, bound, takes_ctx, "none", {}, set(), False, None)
    if len(named) == 1 and not open_ended:
        only = named[0]
        hint = hints.get(only.name)
        if only.name == "params" and hint in (None, Any, dict, dict[str, Any], typing.Dict[str, Any]):
            return _Method(name, text, fn, bound, takes_ctx, "raw", {}, set(), True, None)
        if hint is not None and _is_whole(hint):
            schema = _schema.schema_of(hint)
            return _Method(name, text, fn, bound, takes_ctx, "one", {only.name: hint}, set(), False, schema)
    kinds = {p.name: hints.get(p.name, Any) for p in named}
    required = {p.name for p in named if p.default is inspect.Parameter.empty}
    props = {}
    for p in named:
        try:
            s = _schema.schema_of(kinds[p.name])
        except TypeError as e:
            raise TypeError(f"{where}: parameter `{p.name}`: {e}") from None
        if p.default is not inspect.Parameter.empty:
            s = _schema._with_default(s, p.default)
        props[p.name] = s
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if not open_ended:
        schema["additionalProperties"] = False
    if required:
        schema["required"] = sorted(required)
    return _Method(name, text, fn, bound, takes_ctx, "kwargs", kinds, required, open_ended, schema)


# ---------------------------------------------------------------------------------------------
# Handlers


_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


class _Spec:
    """A handler's name, version, description, capabilities and methods."""

    def __init__(
        self,
        name: str,
        version: str,
        description: str,
        *,
        config: typing.Sequence[Setting | Secret] = (),
        http: typing.Sequence[Http] = (),
        directories: typing.Sequence[Directory] = (),
        fleet: str | None = None,
        vendor: str = "",
        license: str = "",
        source: str = "",
        factory: Callable[[], Any] | None = None,
    ) -> None:
        if not name or not name[0].isalpha() or not set(name) <= _NAME_CHARS:
            raise ValueError(f"`{name}` is not a handler name: lowercase letters, digits and `-`, starting with a letter")
        self.name = name
        self.version = version
        self.description = description
        self.config = list(config)
        self.http = list(http)
        self.directories = list(directories)
        self.fleet = fleet
        self.package = {
            "name": name,
            "version": version,
            "description": description,
            "vendor": vendor,
            "license": license,
            "source": source,
        }
        self.factory = factory
        self.methods: dict[str, _Method] = {}
        self._instance: Any = None

    def add(self, fn: Callable, name: str, description: str | None, bound: bool) -> None:
        if name in self.methods:
            raise ValueError(f"handler `{self.name}` has two methods named `{name}`")
        self.methods[name] = _analyse(fn, name, description, bound)

    def manifest(self) -> dict[str, Any]:
        """The manifest the build writes into the component (docs/capabilities.md)."""
        out: dict[str, Any] = {
            "manifest_version": 1,
            "package": self.package,
            "http": [h._manifest() for h in self.http],
            "directories": [d._manifest() for d in self.directories],
            "config": [c._manifest() for c in self.config],
        }
        if self.fleet is not None:
            out["fleet"] = {"purpose": self.fleet}
        return out

    def info(self) -> dict[str, Any]:
        """What `describe` answers."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "methods": [
                {
                    "name": m.name,
                    "description": m.description,
                    "params_schema": None if m.schema is None else json.dumps(m.schema, sort_keys=True),
                }
                for m in self.methods.values()
            ],
        }

    def invoke(self, ctx: JobContext, method_name: str, params: str) -> str:
        """Runs one call: the result as JSON text, or a `HandlerError`."""
        m = self.methods.get(method_name)
        if m is None:
            have = ", ".join(self.methods) or "none"
            raise UnknownMethod(f"{self.name} has no method `{method_name}` (it has: {have})")
        try:
            value = json.loads(params) if params.strip() else None
        except ValueError as e:
            raise InvalidParams(f"params are not JSON: {e}") from None
        if m.bound and self._instance is None:
            self._instance = (self.factory or object)()
        try:
            result = m.call(self._instance, ctx, value)
        except ParamsError as e:
            raise InvalidParams(str(e)) from None
        try:
            return json.dumps(_schema.jsonable(result), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise Failed(f"`{method_name}` returned a result that is not JSON: {e}") from None

    # Module style: `handler = schedulezero.handler(...)`, then `@handler.method`.
    def method(self, fn: Callable | None = None, *, name: str | None = None, description: str | None = None):
        """Registers a function as a method of this handler (module style)."""

        def add(f: Callable) -> Callable:
            self.add(f, name or f.__name__, description, bound=False)
            return f

        return add(fn) if fn is not None else add


_registered: list[_Spec] = []


def handler(name: str, version: str, description: str, **capabilities: Any) -> _Spec:
    """A handler made of module-level functions, registered with `@handler.method`. Takes the
    same keyword arguments as a `Handler` subclass: `config`, `http`, `directories`, `fleet`,
    `vendor`, `license`, `source`."""
    spec = _Spec(name, version, description, **capabilities)
    _registered.append(spec)
    return spec


class Handler:
    """The base of a handler class. The class statement names it:

        class DingDong(Handler, name="ding-dong-py", version="0.1.0",
                       description="A clock that chimes.",
                       config=[Setting("location", "Where the clock stands.")]):
            @method
            def ping(self) -> dict: ...

    The host creates one object per instance (with no arguments) and keeps it while the
    instance is hot, so attributes carry state across calls; it may drop an instance at any
    time, and the next call starts with a fresh object.
    """

    __schedulezero__: _Spec

    def __init_subclass__(cls, *, name: str, version: str, description: str = "", **capabilities: Any) -> None:
        super().__init_subclass__()
        spec = _Spec(name, version, description or inspect.getdoc(cls) or "", factory=cls, **capabilities)
        for attr, value in cls.__dict__.items():
            mark = getattr(value, _METHOD_MARK, None)
            if mark is not None:
                spec.add(value, mark[0], mark[1], bound=True)
        cls.__schedulezero__ = spec
        _registered.append(spec)


def _the_handler() -> _Spec:
    """The one handler its app defines."""
    if len(_registered) != 1:
        names = ", ".join(s.name for s in _registered) or "none"
        raise RuntimeError(f"an app defines exactly one handler; found {len(_registered)} ({names})")
    return _registered[0]


def _failure_text(e: BaseException) -> str:
    """An unexpected exception as a failure message: what it was, then its traceback."""
    # The traceback from the method's own frame on: the frames that called it say nothing.
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code is not _Method.call.__code__:
        tb = tb.tb_next
    lines = traceback.format_exception(type(e), e, tb.tb_next if tb is not None else e.__traceback__)
    head = traceback.format_exception_only(e)[-1].strip()
    trace = "".join(lines).rstrip()
    # A long traceback keeps its end: the most recent frames, where it failed.
    limit = 16 * 1024
    if len(trace) > limit:
        trace = "...\n" + trace[-limit:]
    return head[:1024] + "\n\n" + trace
