"""A real SMTP server (aiosmtpd) on loopback for interop tests."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

__all__ = ["Handler", "Server", "StartServer", "free_port", "start_server"]


def free_port() -> int:
    """A loopback port that was free a moment ago (aiosmtpd refuses port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Handler:
    """Accepts mail unless told to defer or refuse it; the switches flip at run time."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.data_reply: str | None = None
        self.refused_recipients: dict[str, str] = {}

    async def handle_RCPT(  # noqa: N802 - the name aiosmtpd looks up
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        refusal = self.refused_recipients.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - the name aiosmtpd looks up
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        if self.data_reply is not None:
            return self.data_reply
        self.received.append(envelope)
        return "250 Message accepted for delivery"


@attrs.frozen
class Server:
    handler: Handler
    port: int


StartServer = Callable[..., Server]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start aiosmtpd servers on loopback; every one is stopped after the test."""
    controllers: list[Any] = []

    def start(**smtp_options: Any) -> Server:
        handler = Handler()
        port = free_port()
        controller = aiosmtpd_controller.Controller(
            handler, hostname="127.0.0.1", port=port, **smtp_options
        )
        controller.start()
        controllers.append(controller)
        return Server(handler, port)

    yield start
    for controller in controllers:
        controller.stop()
