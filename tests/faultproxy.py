"""A fault-injecting TCP proxy for tests: the app talks to PostgreSQL through it, and the
test cuts the line, stalls it, and restores it, without touching the shared server.

- ``cut()``: every open connection is closed at once and new ones are closed on arrival
  (the server went away, a network partition with resets);
- ``stall()``: nothing is forwarded, in either direction, on old or new connections (a
  black hole: the bytes wait in the proxy);
- ``restore()``: back to forwarding (stalled bytes and connections go on).
"""

from __future__ import annotations

import contextlib
import socket
import threading


class FaultProxy:
    """Listens on 127.0.0.1 (an ephemeral port) and forwards to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._cut = False
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    # --- faults ---------------------------------------------------------------------------

    def cut(self) -> None:
        """Close every connection now, and each new one as it comes."""
        with self._lock:
            self._cut = True
            doomed, self._sockets = self._sockets, set()
        self._flowing.set()  # stalled pumps wake up to find their sockets closed
        for sock in doomed:
            _close(sock)

    def stall(self) -> None:
        """Stop forwarding anything (connections stay open)."""
        self._flowing.clear()

    def restore(self) -> None:
        """Forward again."""
        with self._lock:
            self._cut = False
        self._flowing.set()

    def close(self) -> None:
        """Stop listening and close everything."""
        self._closed = True
        self.cut()
        _close(self.listener)

    # --- plumbing -------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._link, args=(client,), daemon=True).start()

    def _link(self, client: socket.socket) -> None:
        self._flowing.wait()  # a stalled proxy does not even reach the server
        with self._lock:
            if self._cut or self._closed:
                _close(client)
                return
        try:
            server = socket.create_connection(self.target, timeout=5)
            server.settimeout(None)
        except OSError:
            _close(client)
            return
        with self._lock:
            if self._cut:
                _close(client)
                _close(server)
                return
            self._sockets |= {client, server}
        for source, sink in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            self._flowing.wait()
            if not data:
                break
            try:
                sink.sendall(data)
            except OSError:
                break
        with self._lock:
            self._sockets -= {source, sink}
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
