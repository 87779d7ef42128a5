"""A TCP proxy on loopback in front of a real server (QuestDB's HTTP port, Postgres, the local venue), to
take the server away from its clients and give it back without touching the server itself.

`cut()` is what a crashed server looks like from the client's side: every open connection is closed and
new ones are refused (the listening socket is closed, so a connect gets ECONNREFUSED). `restore()` listens
again on the same port. Other tests' servers behind the same real process are not affected.

    with TcpProxy("127.0.0.1", 9000) as proxy:
        store = QuestDBStore(host=proxy.host, http_port=proxy.port)
        proxy.cut()
        ...
        proxy.restore()
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class TcpProxy:
    """Forwards every connection made to (`host`, `port`) to (`target_host`, `target_port`), byte for byte,
    one thread per direction of each connection. `port` 0 picks a free port, kept across cut/restore."""

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.accepted = 0

    @property
    def addr(self) -> str:
        """`host:port` of the proxy, as QUESTDB_ADDR and the like take it."""
        return f"{self.host}:{self.port}"

    def start(self) -> TcpProxy:
        """Listen (again) and forward; a no-op while listening."""
        with self._lock:
            if self._listener is not None:
                return self
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(128)
            self.port = listener.getsockname()[1]
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="proxy-accept", daemon=True).start()
        return self

    def cut(self) -> None:
        """Close every open connection and refuse new ones until `restore()`."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            _close(listener)  # shutdown wakes the thread blocked in accept()
        for sock in sockets:
            _close(sock)

    def restore(self) -> None:
        """Accept and forward connections again, on the same port."""
        self.start()

    def close(self) -> None:
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def open_connections(self) -> int:
        """Client connections being forwarded now."""
        with self._lock:
            return len(self._sockets) // 2

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut: the listener was closed
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                _close(client)  # the server itself is away: the client sees its connection closed
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut while this one was connecting
                    _close(client)
                    _close(server)
                    return
                self._sockets.update((client, server))
                self.accepted += 1
            pair = _Pair(self, client, server)
            for source, sink in ((client, server), (server, client)):
                pump = threading.Thread(target=pair.pump, args=(source, sink), name="proxy-pump", daemon=True)
                pump.start()

    def _forget(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.difference_update(sockets)


class _Pair:
    """One forwarded connection: when both directions have ended, both sockets are closed."""

    def __init__(self, proxy: TcpProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.sockets = (client, server)
        self._ended = 0
        self._lock = threading.Lock()

    def pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            # A half-close travels on: the other direction may still carry the answer.
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
        except OSError:
            # A reset on either side (or a cut): the whole connection goes, as it would without the proxy.
            for sock in self.sockets:
                _close(sock)
        with self._lock:
            self._ended += 1
            done = self._ended == 2
        if done:
            self.proxy._forget(*self.sockets)
            for sock in self.sockets:
                _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
