"""A TCP proxy on loopback that a test can cut: every connection through it is closed and new
ones are refused until it is restored (a database that went away, for spd's replicas)."""

from __future__ import annotations

import asyncio
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port` from a background thread."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.cut_off = False

    def start(self) -> TcpProxy:
        with socket.socket() as probe:  # a fixed free port, so that restore() listens on it again
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._thread.start()
        self._call(self._listen())
        return self

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)

    async def _cut(self) -> None:
        self.cut_off = True
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as when the database host goes away
        self._writers.clear()

    def cut(self) -> None:
        """Closes every connection through the proxy and refuses new ones."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accepts connections again."""
        self.cut_off = False
        self._call(self._listen())

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
