"""src/serving.py subclasses uvicorn's private httptools protocol: these tests fail, naming the name, when
an uvicorn upgrade removes or renames something it relies on (or adds a method it would shadow), so an
upgrade past the pin in setup.cfg is a test run, not a surprise in production."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http import httptools_impl
from uvicorn.server import ServerState

from src.serving import (
    UVICORN_CYCLE_ATTRIBUTES,
    UVICORN_HOOKS,
    UVICORN_PROTOCOL_ATTRIBUTES,
    CoalescingHttpToolsProtocol,
    EdgeHttpToolsProtocol,
)

UPGRADE = (
    f"uvicorn {uvicorn.__version__} changed what src/serving.py relies on in "
    "uvicorn.protocols.http.httptools_impl; adapt src/serving.py to it (and its UVICORN_* lists) "
    "before moving the uvicorn pin in setup.cfg"
)
OURS = (CoalescingHttpToolsProtocol, EdgeHttpToolsProtocol)


def _methods(cls: type) -> dict[str, Callable[..., object]]:
    return {name: value for name, value in vars(cls).items() if inspect.isfunction(value)}


def test_uvicorn_protocol_when_installed_has_every_overridden_method_with_its_signature() -> None:
    base = httptools_impl.HttpToolsProtocol
    for cls in OURS:
        for name, ours in _methods(cls).items():
            if name not in UVICORN_HOOKS:
                continue
            theirs = getattr(base, name, None)
            assert callable(theirs), f"{UPGRADE}: HttpToolsProtocol.{name} is gone ({cls.__name__} overrides it)"
            assert list(inspect.signature(theirs).parameters) == list(inspect.signature(ours).parameters), (
                f"{UPGRADE}: HttpToolsProtocol.{name}{inspect.signature(theirs)} no longer matches "
                f"{cls.__name__}.{name}{inspect.signature(ours)}"
            )
    overridden = {name for cls in OURS for name in _methods(cls)}
    assert set(UVICORN_HOOKS) <= overridden, "UVICORN_HOOKS lists a method src/serving.py no longer overrides"


def test_uvicorn_protocol_when_installed_has_no_method_our_helpers_would_shadow() -> None:
    base = httptools_impl.HttpToolsProtocol
    for cls in OURS:
        for name in _methods(cls):
            if name.startswith("__") or name in UVICORN_HOOKS:
                continue
            assert not hasattr(base, name), (
                f"{UPGRADE}: HttpToolsProtocol now has `{name}`, which {cls.__name__}.{name} silently replaces; "
                "rename ours or add it to UVICORN_HOOKS if overriding it is meant"
            )


def test_uvicorn_module_when_installed_has_the_status_lines_used_for_our_own_errors() -> None:
    status_line = getattr(httptools_impl, "STATUS_LINE", None)
    assert isinstance(status_line, dict), f"{UPGRADE}: STATUS_LINE is gone"
    assert status_line.get(400) == b"HTTP/1.1 400 Bad Request\r\n", f"{UPGRADE}: STATUS_LINE[400] changed"
    assert status_line.get(408) == b"HTTP/1.1 408 Request Timeout\r\n", f"{UPGRADE}: STATUS_LINE[408] changed"


@dataclass
class _Transport:
    """Enough of an asyncio transport for uvicorn's protocol to take a connection and answer on it."""

    writes: list[bytes] = field(default_factory=list)
    closed: bool = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        """Flow control: nothing to pause."""

    def resume_reading(self) -> None:
        """Flow control: nothing to resume."""


async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def test_uvicorn_protocol_when_serving_a_request_has_every_attribute_we_read() -> None:
    config = Config(app=_answer, lifespan="off", log_config=None)
    config.load()
    state = ServerState()
    protocol = httptools_impl.HttpToolsProtocol(config=config, server_state=state, app_state={})
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    for name in UVICORN_PROTOCOL_ATTRIBUTES:
        assert hasattr(protocol, name), f"{UPGRADE}: HttpToolsProtocol has no `{name}` any more"
    assert callable(protocol.timeout_keep_alive_handler), f"{UPGRADE}: timeout_keep_alive_handler is not a method"
    assert isinstance(state.default_headers, list), f"{UPGRADE}: ServerState.default_headers changed"
    cycle = protocol.cycle
    assert cycle is not None, f"{UPGRADE}: the protocol's `cycle` is not the request being answered"
    for name in UVICORN_CYCLE_ATTRIBUTES:
        assert hasattr(cycle, name), f"{UPGRADE}: RequestResponseCycle has no `{name}` any more"
    for _ in range(20):  # let the app's task answer
        if cycle.response_complete:
            break
        await asyncio.sleep(0)
    assert (cycle.response_complete, cycle.more_body, cycle.keep_alive) == (True, False, True)
    assert b"".join(transport.writes).startswith(b"HTTP/1.1 204 No Content\r\n")
    protocol.connection_lost(None)
