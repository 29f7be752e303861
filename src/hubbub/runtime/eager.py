"""Run a coroutine synchronously until it first waits; only then give it a Task.

Most message handlers (echo, broadcast, send) finish without ever waiting, so
they cost a function call instead of a Task and a trip through the event loop.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any


@types.coroutine
def resume(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Continue `coro` inside a Task, starting from the future it is blocked on."""
    while True:
        try:
            value = yield waiting_on
        except BaseException as exc:  # forwarded into the coroutine, as a Task would
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coro.send(value)
            except StopIteration as stop:
                return stop.value


def start_eagerly(coro: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
    """Run `coro` now; None if it finished, else the Task that carries on. Exceptions propagate."""
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    return loop.create_task(resume(coro, waiting_on))
