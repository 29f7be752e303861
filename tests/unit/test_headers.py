"""Request headers: case-insensitive lookup, repeated headers, and compaction for long-lived connections."""

from __future__ import annotations

from hubbub.web.request import Headers


def test_lookup_is_case_insensitive_and_repeats_are_kept() -> None:
    headers = Headers(items=[("host", "x"), ("cookie", "a=1"), ("cookie", "b=2")])
    assert headers["Host"] == "x"
    assert headers["cookie"] == "a=1, b=2"
    assert headers.getlist("COOKIE") == ["a=1", "b=2"]
    assert "HOST" in headers and "missing" not in headers


def test_compacted_headers_read_the_same_again() -> None:
    items = [("host", "127.0.0.1:8000"), ("sec-websocket-protocol", "hubbub.v1.json, bearer.abc"), ("x-a", "")]
    headers = Headers(items=items)
    assert headers["host"] == "127.0.0.1:8000"
    headers.compact()
    assert headers._items is None and headers._index is None
    assert headers.raw() == items
    assert headers["sec-websocket-protocol"] == "hubbub.v1.json, bearer.abc"
    assert dict(headers) == {name: value for name, value in items}


def test_compacting_twice_or_before_use_is_harmless() -> None:
    headers = Headers(items=[("a", "1")])
    headers.compact()
    headers.compact()
    assert headers["a"] == "1"
