"""A TCP proxy on 127.0.0.1 that injects network faults, for tests and benchmarks.

Put it between a client and a loopback server (point the client's endpoint at
``proxy.url``) and turn the knobs while a test runs:

* ``latency`` — seconds of delay before each forwarded chunk;
* ``bandwidth`` — bytes per second across all connections and both directions;
* ``reset_after`` — reset (TCP RST) every connection once it has carried this many bytes;
* ``reset_every`` — reset whichever connection carries the next ``reset_every`` bytes
  of the total traffic (a flaky network: one reset every few MB, retries can succeed);
* ``refuse`` — accept new connections and reset them at once;
* ``stall`` — a server that stops answering: new connections are accepted and then
  hear nothing, and open ones stop carrying bytes (both ways) until ``stall`` is
  cleared. Clients see nothing but silence: only their own timeouts end the wait.
* ``stall_after`` — set ``stall`` before forwarding the chunk that would take the bytes
  forwarded past this many: freezes a transfer at a point set in bytes, not in seconds.

It runs its own asyncio loop in a daemon thread, so it dies with the test process;
:meth:`close` (or leaving the ``with`` block) stops it earlier.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from typing import Any


class FaultProxy:
    """A fault-injecting TCP proxy from ``127.0.0.1:<port>`` to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int, chunk_size: int = 64 * 1024) -> None:
        if target_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy only forwards to loopback addresses")
        self.target = (target_host, target_port)
        self.chunk_size = chunk_size
        self.latency = 0.0
        self.bandwidth: float | None = None
        self.reset_after: int | None = None
        self.reset_every: int | None = None
        self._total = 0
        self.refuse = False
        self.stall = False
        self.stall_after: int | None = None
        self.resets = 0
        self.connections = 0
        self.bytes_forwarded = 0
        self._next_slot = 0.0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="faultproxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        assert self._server is not None, "the fault proxy did not start"
        self.port: int = self._server.sockets[0].getsockname()[1]

    @classmethod
    def for_url(cls, url: str, **kwargs: Any) -> FaultProxy:
        """A proxy in front of the server at ``http://127.0.0.1:PORT``."""
        host, _, port = url.split("://", 1)[1].rstrip("/").partition(":")
        return cls(host, int(port), **kwargs)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

        self._loop.run_until_complete(start())
        ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.refuse:
            _reset(writer)
            return
        try:
            await self._while_stalled()
        except asyncio.CancelledError:  # the proxy is closing
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        state = {"bytes": 0, "dead": False}
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, state, (writer, up_writer)),
                self._pipe(up_reader, writer, state, (writer, up_writer)),
            )
        except asyncio.CancelledError:  # the proxy is closing
            _reset(writer)
            _reset(up_writer)

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, state: dict[str, Any], both: tuple[Any, Any]
    ) -> None:
        try:
            while not state["dead"]:
                data = await src.read(self.chunk_size)
                if not data:
                    break
                await self._while_stalled()
                if self.latency:
                    await asyncio.sleep(self.latency)
                if self.bandwidth:
                    await self._throttle(len(data))
                if self.stall_after is not None and self.bytes_forwarded + len(data) > self.stall_after:
                    self.stall = True
                    await self._while_stalled()
                state["bytes"] += len(data)
                before, self._total = self._total, self._total + len(data)
                crossed = self.reset_every is not None and before // self.reset_every != self._total // self.reset_every
                if crossed or (self.reset_after is not None and state["bytes"] > self.reset_after):
                    state["dead"] = True
                    self.resets += 1
                    for w in both:
                        _reset(w)
                    return
                dst.write(data)
                await dst.drain()
                self.bytes_forwarded += len(data)
            if not state["dead"] and dst.can_write_eof():
                dst.write_eof()
        except (ConnectionError, OSError):
            state["dead"] = True
            for w in both:
                _reset(w)

    async def _while_stalled(self) -> None:
        """Hold on while ``stall`` is set (what a client sends waits, unread, in the socket)."""
        while self.stall:
            await asyncio.sleep(0.05)

    async def _throttle(self, n: int) -> None:
        assert self.bandwidth
        now = time.monotonic()
        start = max(now, self._next_slot)
        self._next_slot = start + n / self.bandwidth
        if self._next_slot > now:
            await asyncio.sleep(self._next_slot - now)

    def close(self) -> None:
        if self._loop.is_closed():
            return

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a failing network or middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
