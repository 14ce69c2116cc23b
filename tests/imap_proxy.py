"""A TCP relay between the bot and Dovecot that breaks one FETCH response on the wire: the
line announcing the body of one chosen UID gets a token no IMAP parser knows, as the server
in Zammad #2754 sent ("unknown token"; SCENARIOS I10). Everything else passes unchanged.
Test harness only: a real network-level fault, not a mock of imaplib or imapclient."""

from __future__ import annotations

import re
import socket
import threading
from contextlib import suppress

from mailbot.mailworld import free_port

_FETCH_LINE = re.compile(rb"^\* \d+ FETCH \(UID (\d+) ")


class CorruptingProxy:
    """Listens on 127.0.0.1:`port` and relays to 127.0.0.1:`upstream`. While `broken_uid`
    is set, a FETCH response line for that UID that carries its body (BODY[]) gets a stray,
    unterminated quoted string: imaplib reads the response whole, imapclient cannot parse it
    (ProtocolError), and the connection stays usable."""

    def __init__(self, upstream: int, broken_uid: int | None = None) -> None:
        self.upstream = upstream
        self.broken_uid = broken_uid
        self.corrupted = 0  # how many responses were broken so far
        self.port = free_port()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []

    def start(self) -> CorruptingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with suppress(OSError):
            self._server.close()
        for sock in self._sockets:
            with suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self._sockets += [client, server]
            threading.Thread(target=self._upstream, args=(client, server), daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client),
                             daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket) -> None:
        with suppress(OSError):
            while data := client.recv(65536):
                server.sendall(data)
        with suppress(OSError):
            server.shutdown(socket.SHUT_WR)

    def _downstream(self, server: socket.socket, client: socket.socket) -> None:
        reader = server.makefile("rb")
        with suppress(OSError, ValueError):
            while line := reader.readline():
                client.sendall(self._rewrite(line))
        with suppress(OSError):
            client.shutdown(socket.SHUT_WR)

    def _rewrite(self, line: bytes) -> bytes:
        match = _FETCH_LINE.match(line)
        if (match is None or self.broken_uid is None or int(match.group(1)) != self.broken_uid
                or b"BODY[]" not in line):
            return line
        self.corrupted += 1
        head = match.group(0)
        return head + b'X-UNKNOWN "unterminated ' + line[len(head):]
