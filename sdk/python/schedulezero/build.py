"""Builds a Python handler into a ScheduleZero component.

    python -m schedulezero.build DIR [-o FILE] [--module NAME]

DIR holds the handler's code; its module (`app` by default: DIR/app.py) defines one handler (a
`Handler` subclass, or `schedulezero.handler(...)` with `@handler.method` functions). The build
imports it here to read its name and what it asks the operator for, makes the contract's world
with the imports it needs, runs componentize-py (which pre-initialises the interpreter with the
app imported, so a new instance starts from that memory image), and writes the manifest into
the component. The component is written to FILE, by default `<name>.wasm` in the current
directory (the host knows a handler by its file's name).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import schedulezero as sz

#: The world the component targets: the contract's imports that the handler uses.
_WORLD = "schedulezero-app"
#: The module componentize-py wraps.
_GLUE = "schedulezero_component"
#: The manifest's custom section (docs/capabilities.md).
_SECTION = b"schedulezero-manifest"


class BuildError(Exception):
    """The build cannot go on; the message says why."""


def load(app_dir: pathlib.Path, module: str) -> sz._Spec:
    """Imports the app's module natively and returns its handler."""
    if not (app_dir / f"{module}.py").is_file() and not (app_dir / module / "__init__.py").is_file():
        raise BuildError(f"{app_dir} has no module `{module}` ({module}.py)")
    sys.path.insert(0, str(app_dir))
    sz._registered.clear()
    # No `__pycache__` left in the app's folder.
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        importlib.import_module(module)
    except Exception as e:
        raise BuildError(f"importing `{module}` failed: {sz._failure_text(e)}") from None
    finally:
        sys.path.remove(str(app_dir))
        sys.dont_write_bytecode = writes
    try:
        return sz._the_handler()
    except RuntimeError as e:
        raise BuildError(str(e)) from None


def world(spec: sz._Spec) -> str:
    """The contract with a world of the imports `spec` uses (a component must not import the
    fleet view without asking for it)."""
    contract = (pathlib.Path(sz.__file__).parent / "wit" / "handler.wit").read_text()
    imports = ["log", "config"]
    imports += ["fleet"] if spec.fleet is not None else []
    imports += ["outbound"] if spec.http else []
    lines = [f"    import {i};" for i in imports] + ["    export handler;"]
    return contract + f"\nworld {_WORLD} {{\n" + "\n".join(lines) + "\n}\n"


def custom_section(name: bytes, data: bytes) -> bytes:
    """A WebAssembly custom section."""

    def leb(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    body = leb(len(name)) + name + data
    return b"\x00" + leb(len(body)) + body


def componentize_py() -> list[str]:
    """How to run componentize-py: beside this Python (a virtual environment's), else on PATH."""
    here = pathlib.Path(sys.executable).parent / "componentize-py"
    if here.is_file():
        return [str(here)]
    found = shutil.which("componentize-py")
    if found:
        return [found]
    raise BuildError("componentize-py is not installed: pip install 'componentize-py==0.25.1'")


def build(app_dir: pathlib.Path, out: pathlib.Path | None, module: str = "app") -> pathlib.Path:
    """Builds the component; returns where it was written."""
    app_dir = app_dir.resolve()
    spec = load(app_dir, module)
    out = out or pathlib.Path(f"{spec.name}.wasm")
    manifest = json.dumps(spec.manifest(), separators=(",", ":")).encode()
    sdk_parent = pathlib.Path(sz.__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="schedulezero-build-") as tmp:
        work = pathlib.Path(tmp)
        (work / "wit").mkdir()
        (work / "wit" / "handler.wit").write_text(world(spec))
        glue = work / "glue"
        glue.mkdir()
        (glue / f"{_GLUE}.py").write_text(
            f"import {module}  # noqa: F401 (defines the handler)\n"
            "from schedulezero import _guest\n\n"
            "Handler = _guest.export()\n"
        )
        # Copies of the app and the SDK: componentize-py compiles what it imports in place,
        # which would leave `__pycache__` folders in the sources.
        skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.wasm", ".*")

        def skip_app(folder: str, names: list[str]) -> set[str]:
            # A copy of the SDK that `plugins new` put beside the app is built in below.
            sdk_copy = {"schedulezero-sdk"} if pathlib.Path(folder).name == "vendor" else set()
            return skip(folder, names) | sdk_copy

        shutil.copytree(app_dir, work / "app", ignore=skip_app)
        shutil.copytree(sdk_parent / "schedulezero", work / "sdk" / "schedulezero", ignore=skip)
        built = work / "component.wasm"
        cmd = componentize_py() + [
            "--quiet",
            "--wit-path", str(work / "wit"),
            "--world", _WORLD,
            "componentize", _GLUE,
            "-p", str(glue), "-p", str(work / "app"), "-p", str(work / "sdk"),
            "-o", str(built),
        ]
        # Only the app, its folder and the SDK go in: not the packages of whichever virtual
        # environment runs the build.
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"componentize-py failed:\n{done.stderr.strip() or done.stdout.strip()}")
        wasm = built.read_bytes() + custom_section(_SECTION, manifest)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial")
        try:
            partial.write_bytes(wasm)
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m schedulezero.build",
        description="Builds a Python handler into a ScheduleZero component.",
    )
    parser.add_argument("dir", type=pathlib.Path, help="the handler's folder")
    parser.add_argument("-o", "--out", type=pathlib.Path, help="the component (default: ./NAME.wasm)")
    parser.add_argument("--module", default="app", help="the module defining the handler (default: app)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        out = build(args.dir, args.out, args.module)
    except BuildError as e:
        print(f"schedulezero.build: {e}", file=sys.stderr)
        return 1
    size = out.stat().st_size / (1024 * 1024)
    print(f"built {out} ({size:.1f} MiB) in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
