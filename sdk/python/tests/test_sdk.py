"""The Python SDK, natively: schemas from type hints, params checked and converted, results,
error kinds, failure text, the manifest and the build's pieces. Run with
`python3 -m unittest discover -s sdk/python/tests` (the integration tests run it too)."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import pathlib
import unittest
from typing import Annotated, Any, Literal, NotRequired, Optional, TypedDict

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import schedulezero as sz  # noqa: E402
from schedulezero import build, testing  # noqa: E402


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Report:
    """A report to send."""

    title: str
    pages: int = 1
    tags: list[str] = dataclasses.field(default_factory=list)
    colour: Colour = Colour.RED


class Window(TypedDict, total=False):
    start: int
    end: Annotated[int, "Where it ends."]


class Shop(
    sz.Handler,
    name="shop",
    version="1.2.3",
    description="Sells things.",
    config=[sz.Setting("currency", "The currency."), sz.Secret("api_key", "The API key.")],
    http=[sz.Http("https://api.example.com", "Prices.")],
    directories=[sz.Directory.read_write("out", "Receipts.")],
):
    def __init__(self) -> None:
        self.sold = 0

    @sz.method
    def sell(self, ctx: sz.JobContext, item: str, count: int = 1, price: Optional[float] = None) -> dict:
        """Sells `count` of `item`.

        More words that are not the description."""
        self.sold += count
        return {"item": item, "count": count, "price": price, "sold": self.sold, "run": ctx.run_id}

    @sz.method(name="send-report", description="Sends a report.")
    def send(self, report: Report) -> Report:
        return report

    @sz.method
    def window(self, w: Window) -> dict:
        """Takes a TypedDict."""
        return dict(w)

    @sz.method
    def legacy(self, params):
        """Takes whatever came, as a handler of the Python ScheduleZero did."""
        return {"got": params}

    @sz.method
    def nothing(self) -> None:
        """Takes nothing."""

    @sz.method
    def pick(self, mode: Literal["a", "b"], colour: Colour = Colour.BLUE, pair: tuple[int, str] = (1, "x")) -> list:
        """Literal, enum and tuple params."""
        return [mode, colour, pair]

    @sz.method
    def secret(self) -> int:
        """Reads the secret."""
        return len(sz.config.secret("api_key"))

    @sz.method
    def boom(self) -> None:
        """Raises."""
        inner()

    @sz.method
    def retry(self) -> None:
        """Asks to be retried."""
        raise sz.Retryable("busy upstream")

    @sz.method
    def not_json(self) -> object:
        """Returns something that is not JSON."""
        return object()


def inner() -> None:
    raise KeyError("missing")


class Schemas(unittest.TestCase):
    def setUp(self) -> None:
        testing.configure()
        self.methods = {m["name"]: m for m in testing.describe(Shop)["methods"]}

    def test_describe(self) -> None:
        info = testing.describe(Shop)
        self.assertEqual((info["name"], info["version"], info["description"]), ("shop", "1.2.3", "Sells things."))
        self.assertEqual(list(self.methods), ["sell", "send-report", "window", "legacy", "nothing", "pick", "secret", "boom", "retry", "not_json"])
        self.assertEqual(self.methods["sell"]["description"], "Sells `count` of `item`.")
        self.assertEqual(self.methods["send-report"]["description"], "Sends a report.")

    def test_keyword_params(self) -> None:
        s = self.methods["sell"]["params_schema"]
        self.assertEqual(s["required"], ["item"])
        self.assertFalse(s["additionalProperties"])
        self.assertEqual(s["properties"]["item"], {"type": "string"})
        self.assertEqual(s["properties"]["count"], {"type": "integer", "default": 1})
        self.assertEqual(s["properties"]["price"]["anyOf"], [{"type": "number"}, {"type": "null"}])

    def test_dataclass_and_typeddict(self) -> None:
        s = self.methods["send-report"]["params_schema"]
        self.assertEqual(s["required"], ["title"])
        self.assertEqual(s["description"], "A report to send.")
        self.assertEqual(s["properties"]["tags"], {"type": "array", "items": {"type": "string"}})
        self.assertEqual(s["properties"]["colour"], {"enum": ["red", "blue"], "default": "red"})
        w = self.methods["window"]["params_schema"]
        self.assertNotIn("required", w)
        self.assertEqual(w["properties"]["end"], {"type": "integer", "description": "Where it ends."})

    def test_raw_and_none(self) -> None:
        self.assertIsNone(self.methods["legacy"]["params_schema"])
        self.assertIsNone(self.methods["nothing"]["params_schema"])

    def test_literal_enum_tuple(self) -> None:
        p = self.methods["pick"]["params_schema"]["properties"]
        self.assertEqual(p["mode"], {"enum": ["a", "b"]})
        self.assertEqual(p["pair"]["prefixItems"], [{"type": "integer"}, {"type": "string"}])

    def test_unsupported_hint_names_the_parameter(self) -> None:
        with self.assertRaisesRegex(TypeError, "parameter `when`"):
            sz._analyse(_takes_complex, "f", None, bound=False)


def _takes_complex(when: complex) -> None:
    pass


class Hints(unittest.TestCase):
    def test_required_and_not_required_keys(self) -> None:
        class Item(TypedDict):
            sku: str
            note: NotRequired[Annotated[str, "A note."]]

        self.assertEqual(sz._schema.schema_of(Item)["required"], ["sku"])
        self.assertEqual(sz._schema.schema_of(Item)["properties"]["note"], {"type": "string", "description": "A note."})
        self.assertEqual(sz._schema.convert(Item, {"sku": "a"}, ""), {"sku": "a"})
        with self.assertRaisesRegex(sz._schema.ParamsError, "^note: expected a string, got 3$"):
            sz._schema.convert(Item, {"sku": "a", "note": 3}, "")

    def test_enums_take_their_values_of_their_types(self) -> None:
        class Level(enum.Enum):
            ONE = 1
            TWO = 2

        self.assertIs(sz._schema.convert(Level, 1, "level"), Level.ONE)
        for wrong in [True, 1.0, "1"]:
            with self.assertRaisesRegex(sz._schema.ParamsError, "^level: expected one of"):
                sz._schema.convert(Level, wrong, "level")


class Calls(unittest.TestCase):
    def setUp(self) -> None:
        testing.configure({"currency": "EUR"})

    def call(self, method: str, params: Any = None) -> Any:
        return testing.call(Shop, method, params, fresh=True)

    def test_keyword_params_checked_and_converted(self) -> None:
        ctx = sz.JobContext.adhoc("run-7")
        got = testing.call(Shop, "sell", {"item": "pear", "count": 2.0}, ctx=ctx, fresh=True)
        self.assertEqual(got, {"item": "pear", "count": 2, "price": None, "sold": 2, "run": "run-7"})
        self.assertEqual(testing.call(Shop, "sell", {"item": "pear"})["sold"], 3, "the object lives on")
        self.assertEqual(testing.call(Shop, "sell", {"item": "pear"}, fresh=True)["sold"], 1)

    def test_bad_params_name_where(self) -> None:
        cases = [
            ({"item": 3}, "item: expected a string, got 3"),
            ({"item": "x", "count": True}, "count: expected an integer, got true"),
            ({"item": "x", "count": 1.5}, "count: expected an integer, got 1.5"),
            ({"item": "x", "price": "cheap"}, 'price: expected a number, got "cheap"'),
            ({"count": 1}, "missing field `item`"),
            ({"item": "x", "cuont": 1}, "unknown field `cuont` (expected: count, item, price)"),
            ([1], "expected an object of params, got [1]"),
        ]
        for params, message in cases:
            with self.subTest(params=params):
                with self.assertRaises(sz.InvalidParams) as e:
                    self.call("sell", params)
                self.assertEqual(str(e.exception), message)

    def test_dataclass_params(self) -> None:
        got = self.call("send-report", {"title": "Q3", "tags": ["a"], "colour": "blue"})
        self.assertEqual(got, {"title": "Q3", "pages": 1, "tags": ["a"], "colour": "blue"})
        with self.assertRaisesRegex(sz.InvalidParams, r"^tags\[1\]: expected a string, got 2$"):
            self.call("send-report", {"title": "Q3", "tags": ["a", 2]})
        with self.assertRaisesRegex(sz.InvalidParams, "^colour: expected one of"):
            self.call("send-report", {"title": "Q3", "colour": "green"})

    def test_typeddict_params(self) -> None:
        self.assertEqual(self.call("window", None), {})
        self.assertEqual(self.call("window", {"end": 4}), {"end": 4})
        with self.assertRaisesRegex(sz.InvalidParams, "unknown field `middle`"):
            self.call("window", {"middle": 2})

    def test_raw_and_none(self) -> None:
        self.assertEqual(self.call("legacy", [1, {"a": None}]), {"got": [1, {"a": None}]})
        self.assertIsNone(self.call("nothing"))
        self.assertIsNone(self.call("nothing", {}))
        with self.assertRaisesRegex(sz.InvalidParams, "takes no params"):
            self.call("nothing", {"a": 1})

    def test_literal_enum_tuple(self) -> None:
        self.assertEqual(self.call("pick", {"mode": "a"}), ["a", "blue", [1, "x"]])
        self.assertEqual(self.call("pick", {"mode": "b", "colour": "red", "pair": [2, "y"]}), ["b", "red", [2, "y"]])
        with self.assertRaisesRegex(sz.InvalidParams, "pair: expected 2 items, got 1"):
            self.call("pick", {"mode": "b", "pair": [2]})

    def test_unknown_method_and_bad_json(self) -> None:
        with self.assertRaisesRegex(sz.UnknownMethod, r"shop has no method `sel` \(it has: sell, "):
            self.call("sel")
        spec = Shop.__schedulezero__
        with self.assertRaisesRegex(sz.InvalidParams, "params are not JSON"):
            spec.invoke(sz.JobContext.adhoc(), "sell", "{nope")

    def test_error_kinds(self) -> None:
        with self.assertRaises(sz.Retryable) as e:
            self.call("retry")
        self.assertEqual((e.exception.kind, str(e.exception)), ("retryable", "busy upstream"))
        with self.assertRaises(sz.Denied) as e:
            self.call("secret")
        self.assertEqual(str(e.exception), "secret `api_key` is not granted")
        testing.configure({"api_key": "12345"})
        self.assertEqual(self.call("secret"), 5)

    def test_a_result_that_is_not_json_fails(self) -> None:
        with self.assertRaisesRegex(sz.Failed, "`not_json` returned a result that is not JSON"):
            self.call("not_json")

    def test_failure_text_starts_at_the_handlers_code(self) -> None:
        try:  # (assertRaises would drop the traceback)
            self.call("boom")
        except KeyError as e:
            text = sz._failure_text(e)
        else:
            self.fail("boom raises")
        first, _, trace = text.partition("\n\n")
        self.assertEqual(first, "KeyError: 'missing'")
        self.assertTrue(trace.startswith("Traceback (most recent call last):"), trace)
        self.assertIn("in boom", trace)
        self.assertIn("in inner", trace)
        self.assertNotIn("schedulezero/__init__.py", trace, "the SDK's frames are left out")

    def test_a_long_traceback_keeps_its_end(self) -> None:
        try:
            raise ValueError("x" * 20000 + " the end")
        except ValueError as e:
            text = sz._failure_text(e)
        head, _, trace = text.partition("\n\n")
        self.assertEqual(len(head), 1024)
        self.assertTrue(trace.startswith("...\n"), trace[:80])
        self.assertTrue(text.endswith("x the end"), text[-80:])
        self.assertLess(len(text), 18 * 1024)

    def test_logs_and_config(self) -> None:
        sz.log.info("hello")
        sz.log.warn("careful")
        self.assertEqual(testing.logs(), [("info", "hello"), ("warn", "careful")])
        self.assertEqual(sz.config.get("currency"), "EUR")
        self.assertEqual(sz.config.keys(), ["currency"])
        self.assertIsNone(sz.config.get("other"))
        with self.assertRaisesRegex(sz.Denied, "configuration value `other` is not granted"):
            sz.config.require("other")


class Http(unittest.TestCase):
    def test_requests_go_to_the_responder(self) -> None:
        seen = []

        def respond(method, url, headers, body):
            seen.append((method, url, headers, body))
            return sz.Response(200, [("Content-Type", "application/json")], b'{"ok": true}')

        testing.configure(http=respond)
        r = sz.http.post("https://api.example.com/v1", json={"a": 1}, headers={"x-key": "k"})
        self.assertEqual((r.status, r.json(), r.header("content-type")), (200, {"ok": True}, "application/json"))
        self.assertEqual(seen, [("POST", "https://api.example.com/v1",
                                 [("x-key", "k"), ("content-type", "application/json")], b'{"a": 1}')])
        self.assertIs(r.raise_for_status(), r)

    def test_statuses_and_no_responder(self) -> None:
        with self.assertRaisesRegex(sz.Retryable, "HTTP 503: busy"):
            sz.Response(503, [], b"busy").raise_for_status()
        with self.assertRaisesRegex(sz.Failed, "HTTP 404"):
            sz.Response(404, [], b"").raise_for_status()
        testing.configure()
        with self.assertRaisesRegex(sz.Denied, "no HTTP natively"):
            sz.http.get("https://api.example.com/")


class ModuleStyle(unittest.TestCase):
    def test_functions_registered_on_a_handler(self) -> None:
        h = sz.handler("tally", "0.1.0", "Adds up.", fleet="Watches.")

        @h.method
        def add(a: int, b: int = 0) -> int:
            """Adds."""
            return a + b

        self.assertEqual(testing.call(h, "add", {"a": 2, "b": 3}), 5)
        self.assertEqual(testing.describe(h)["methods"][0]["params_schema"]["required"], ["a"])
        self.assertEqual(testing.manifest(h)["fleet"], {"purpose": "Watches."})
        with self.assertRaisesRegex(ValueError, "two methods named `add`"):
            h.method(add)

    def test_bad_names_are_refused(self) -> None:
        for name in ["Tally", "1tally", "tal_ly", ""]:
            with self.assertRaisesRegex(ValueError, "is not a handler name"):
                sz.handler(name, "0.1.0", "")


class Build(unittest.TestCase):
    def test_manifest(self) -> None:
        m = testing.manifest(Shop)
        self.assertEqual(m["manifest_version"], 1)
        self.assertEqual(m["package"]["name"], "shop")
        self.assertEqual(m["config"], [
            {"key": "currency", "description": "The currency.", "secret": False},
            {"key": "api_key", "description": "The API key.", "secret": True},
        ])
        self.assertEqual(m["http"], [{"destination": "https://api.example.com", "purpose": "Prices."}])
        self.assertEqual(m["directories"], [{"name": "out", "access": "read-write", "purpose": "Receipts."}])
        self.assertNotIn("fleet", m)

    def test_world_imports_fleet_only_when_asked(self) -> None:
        plain = build.world(sz.handler("plain", "0.1.0", ""))
        self.assertIn("world schedulezero-app {\n    import log;\n    import config;\n    export handler;\n}", plain)
        app_world = lambda spec: build.world(spec).split("world schedulezero-app")[1]  # noqa: E731
        watcher = sz.handler("watcher", "0.1.0", "", fleet="Watches.")
        self.assertIn("    import fleet;\n", app_world(watcher))
        self.assertNotIn("outbound", app_world(watcher))
        self.assertIn("    import outbound;\n", app_world(Shop.__schedulezero__), "Shop asks for HTTP")

    def test_custom_section(self) -> None:
        data = b"x" * 300
        section = build.custom_section(b"schedulezero-manifest", data)
        self.assertEqual(section[0], 0)
        # 300 + 1 + 21 = 322 = 0b10_1000010: LEB128 0xC2 0x02.
        self.assertEqual(section[1:3], bytes([0xC2, 0x02]))
        self.assertEqual(section[3], 21)
        self.assertEqual(section[4:25], b"schedulezero-manifest")
        self.assertEqual(section[25:], data)

    def test_the_wit_copy_is_the_contract(self) -> None:
        root = pathlib.Path(__file__).resolve().parents[3]
        ours = pathlib.Path(sz.__file__).parent / "wit" / "handler.wit"
        self.assertEqual(ours.read_text(), (root / "wit" / "handler.wit").read_text(),
                         "copy wit/handler.wit to sdk/python/schedulezero/wit/")

    def test_an_app_without_a_handler_is_refused(self) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            pathlib.Path(d, "app.py").write_text("x = 1\n")
            saved = list(sz._registered)
            try:
                with self.assertRaisesRegex(build.BuildError, r"exactly one handler; found 0"):
                    build.load(pathlib.Path(d), "app")
                with self.assertRaisesRegex(build.BuildError, "has no module `other`"):
                    build.load(pathlib.Path(d), "other")
            finally:
                sz._registered[:] = saved


if __name__ == "__main__":
    unittest.main()
