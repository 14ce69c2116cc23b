"""uvicorn in a thread beside the daemon's sweep loop, or alone for `mailbot web`.

The socket is bound here, before uvicorn starts, so a taken port is one clear error for the
caller (uvicorn itself would log it and call sys.exit in its thread).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailbot.errors import MailbotError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

log = logging.getLogger(__name__)

LISTEN_KEY = "web.listen"
STOP_WAIT_SECONDS = 10.0


class ListenError(MailbotError):
    """The address in `[web] listen` cannot be bound (taken, not this host's, not allowed)."""


@dataclass(frozen=True)
class Listen:
    """`[web] listen` read: host and TCP port."""

    host: str
    port: int

    @classmethod
    def parse(cls, value: str) -> Listen:
        """"HOST:PORT" or "[IPv6]:PORT" (e.g. "127.0.0.1:8025", "[::1]:8025"; port 0: any
        free port), HOST a plain host name (RFC 1123 2.1 labels), an IPv4 address or an IPv6
        address in brackets (RFC 3986 3.2.2): no scheme, no path, so a URL pasted in is an
        error at config load, not at bind time. Raises ValueError naming what is wrong."""
        host, sep, port = value.strip().rpartition(":")
        if (not sep or not port.isascii() or not port.isdigit()
                or not 0 <= int(port) < 65536 or not _plain_host(host)):
            raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8025; no "
                             "http://, no path)")
        return cls(host.strip("[]"), int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _plain_host(host: str) -> bool:
    """`host` is "[IPv6]", an IPv4 address or a host name of RFC 1123 labels."""
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        # an all-digit last label is a mistyped IPv4 address, never a name (RFC 1123 2.1)
        return (0 < len(host) <= 253 and not host.rpartition(".")[2].isdigit()
                and all(_LABEL.fullmatch(label) for label in host.split(".")))
    return True


def bind(listen: Listen) -> socket.socket:
    """A listening TCP socket on `listen`. Raises ListenError (the port is taken, the address
    is not this host's)."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listen.host, listen.port))
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise ListenError(f"cannot listen on {listen}: {err.strerror or err}") from err
    sock.set_inheritable(True)
    return sock


class WebServer:
    """uvicorn serving `app` on an already bound socket, in a daemon thread."""

    def __init__(self, app: ASGIApp, sock: socket.socket) -> None:
        # here, not at the top: config validation parses `[web] listen` with Listen, and
        # every command loads the config
        import uvicorn

        self.sock = sock
        # proxy_headers off: uvicorn would otherwise replace the peer address by
        # X-Forwarded-For from 127.0.0.1, and `[web] auth = "proxy"` must judge the real peer
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                server_header=False, proxy_headers=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="web", daemon=True)

    @property
    def address(self) -> str:
        """"http://HOST:PORT" as bound (the real port when 0 was asked)."""
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        self.thread.start()

    def serve_forever(self) -> None:
        """In the calling thread until stop() (or Ctrl-C, which uvicorn handles)."""
        self._serve()

    def _serve(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except Exception:  # the web view must never take the daemon down
            log.exception("event=web_failed the web endpoints stopped")

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(STOP_WAIT_SECONDS)
        self.sock.close()
