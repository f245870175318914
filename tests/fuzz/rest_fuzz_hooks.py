"""A schemathesis check for the fault suite: a request refused with a 4xx changes nothing.

Before each call the host's state is read (the schedules with their last change, the handlers,
the size of the execution log); after a 4xx it is read again and must be the same, but for the
execution log, which scheduled runs may grow meanwhile and which must never shrink.
"""

import json
import os
import urllib.request

import schemathesis

BASE = os.environ["SZ_URL"]


def _get(path):
    with urllib.request.urlopen(BASE + path, timeout=10) as reply:
        return json.load(reply)


def _state():
    schedules = {
        s["id"]: (s["updated_at"], s["paused"], s["handler"], s["method"])
        for s in _get("/api/v1/schedules?limit=1000")["schedules"]
    }
    handlers = sorted(h["id"] for h in _get("/api/v1/handlers?limit=1000")["handlers"])
    executions = _get("/api/executions/stats")["total_executions"]
    return schedules, handlers, executions


_before = {}


@schemathesis.hook
def before_call(context, case, kwargs):
    _before["state"] = _state()


@schemathesis.check
def no_state_change_on_4xx(ctx, response, case):
    if not 400 <= response.status_code < 500 or "state" not in _before:
        return None
    schedules, handlers, executions = _before["state"]
    now_schedules, now_handlers, now_executions = _state()
    if now_schedules != schedules:
        changed = {
            k
            for k in set(schedules) | set(now_schedules)
            if schedules.get(k) != now_schedules.get(k)
        }
        raise AssertionError(f"a {response.status_code} changed schedules: {sorted(changed)}")
    if now_handlers != handlers:
        raise AssertionError(f"a {response.status_code} changed the handlers")
    if now_executions < executions:
        raise AssertionError(
            f"a {response.status_code} shrank the execution log ({executions} -> {now_executions})"
        )
    return None
