"""Fault hooks: what breaks clients in production, on demand.

``Faults.replies`` holds ambiguous replies to serve to the next /exchange
requests of a given action type, each *before* the exchange processes the
request (nothing happened) or *after* it (the action took effect, the reply
is lost or garbled): HTTP 429, 500, 502, a malformed JSON body, an HTML page
with status 200, and a timeout (the reply, or the processing itself, held
longer than a client waits).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

IP_WEIGHT_PER_MIN = 1200
REPLY_FAULTS = ("429", "500", "502", "malformed", "html", "timeout")
_HTML = ("<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
         "<p>The server is temporarily unable to service your request.</p></body></html>")


@dataclass
class ReplyFault:
    kind: str  # one of REPLY_FAULTS
    after: bool = True  # True: the exchange processed the request first
    delay_s: float = 2.0  # "timeout": how long the reply (after) or the processing (before) is held
    action: str = "order"  # the action type it applies to ("*" = any)

    def __post_init__(self) -> None:
        if self.kind not in REPLY_FAULTS:
            raise ValueError(f"unknown reply fault {self.kind!r}, expected one of {REPLY_FAULTS}")


@dataclass
class Faults:
    """Switches tests flip to reproduce production failures."""

    drop_next_order_reply: int = 0  # accept the next N order actions, then drop the HTTP reply
    reply_delay_s: float = 0.0
    fill_before_next_modify: bool = False  # a fill lands on the old oid while the modify is in flight
    weight_per_min: int = IP_WEIGHT_PER_MIN
    replies: list[ReplyFault] = field(default_factory=list)

    def add(self, kind: str, after: bool = True, delay_s: float = 2.0, action: str = "order",
            count: int = 1) -> None:
        self.replies.extend(ReplyFault(kind, after, delay_s, action) for _ in range(count))

    def take(self, action_type: str | None) -> ReplyFault | None:
        for i, f in enumerate(self.replies):
            if f.action in ("*", action_type):
                return self.replies.pop(i)
        return None


def fault_response(kind: str) -> web.Response:
    """The reply a client sees for a fault (``timeout`` is served by holding the reply)."""
    if kind == "429":
        return web.Response(status=429, text="null", content_type="application/json")
    if kind == "500":
        return web.Response(status=500, text="Internal Server Error", content_type="text/plain")
    if kind == "502":
        return web.Response(status=502, text=_HTML.format(title="502 Bad Gateway"), content_type="text/html")
    if kind == "malformed":
        return web.Response(status=200, text='{"status":"ok","response":{"type":"order","data":{"statuses":[{"rest',
                            content_type="application/json")
    if kind == "html":
        return web.Response(status=200, text=_HTML.format(title="Service Unavailable"), content_type="text/html")
    raise ValueError(f"no canned reply for fault {kind!r}")
