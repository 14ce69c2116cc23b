"""A TCP forwarder between the daemon and a server that can turn into a black hole: the
connections open at that moment stay open on both sides, but nothing passes any more, as
when a NAT or a firewall forgets a flow (SCENARIOS I7). New connections pass again. Test
harness only: never shipped in the package."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from dataclasses import dataclass, field

from mailbot.mailworld import wait_for_port


@dataclass
class _Flow:
    client: socket.socket
    server: socket.socket
    dead: threading.Event = field(default_factory=threading.Event)


class TcpProxy:
    """127.0.0.1:`port` -> 127.0.0.1:`target`, one thread per connection."""

    def __init__(self, target: int) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._flows: list[_Flow] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def connections(self) -> int:
        """How many connections were accepted so far."""
        with self._lock:
            return len(self._flows)

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, name="tcpproxy-accept", daemon=True).start()
        wait_for_port(self.port)
        return self

    def blackhole(self) -> None:
        """From now on, every byte on the connections open now is read and dropped."""
        with self._lock:
            for flow in self._flows:
                flow.dead.set()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for flow in self._flows:
                for sock in (flow.client, flow.server):
                    with contextlib.suppress(OSError):
                        sock.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            flow = _Flow(client, server)
            with self._lock:
                self._flows.append(flow)
            threading.Thread(target=self._pump, args=(flow,), name="tcpproxy-flow",
                             daemon=True).start()

    def _pump(self, flow: _Flow) -> None:
        peer = {flow.client: flow.server, flow.server: flow.client}
        with selectors.DefaultSelector() as selector:
            for sock in peer:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.2):
                    source = key.fileobj
                    assert isinstance(source, socket.socket)
                    try:
                        data = source.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        return
                    if not data:  # one side closed: close the other (a live proxy does)
                        if not flow.dead.is_set():
                            with contextlib.suppress(OSError):
                                peer[source].close()
                        return
                    if not flow.dead.is_set():
                        peer[source].setblocking(True)
                        try:
                            peer[source].sendall(data)
                        except OSError:
                            return
                        finally:
                            with contextlib.suppress(OSError):
                                peer[source].setblocking(False)
