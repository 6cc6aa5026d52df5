"""A TCP proxy on 127.0.0.1 that delays traffic, to measure clients as if over a network.

Each chunk going from client to server waits ``latency`` seconds before it is
forwarded, so every request pays about one round trip of latency::

    with LatencyProxy("127.0.0.1", 9000, latency=0.02) as proxy:
        ...  # talk to http://127.0.0.1:{proxy.port}
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class LatencyProxy:
    """Forward ``127.0.0.1:<port>`` to ``host:port`` with ``latency`` seconds added per request."""

    def __init__(self, host: str, port: int, latency: float) -> None:
        self.target = (host, port)
        self.latency = latency
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(1 << 16):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        await asyncio.gather(
            self._pipe(client_r, server_w, self.latency), self._pipe(server_r, client_w, 0.0)
        )

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(timeout=5)
