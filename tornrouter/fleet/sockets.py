"""``SocketLink``: the workers of one ``--processes N`` parent, each told of
the others' entries over unix-domain sockets.

The parent makes a private directory (mode 0700) before it forks; worker
``i`` listens on ``<dir>/<i>.sock`` and keeps a connection open to each other
worker, made again whenever that worker is restarted.  Messages are framed
(a 4-byte length, then the bytes), so an entry of any size crosses whole.
Sending never waits: a frame goes into the connection's transport buffer,
and a peer whose buffer already holds ``MAX_BUFFERED`` bytes (it is not
reading: stuck, or gone) loses the frame, which is counted in ``dropped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from collections.abc import Callable

log = logging.getLogger("tornrouter")

MAX_BUFFERED = 8 * 1024 * 1024  # per peer: what may wait to be written before frames are dropped
MAX_FRAME = 64 * 1024 * 1024  # a larger length read is a broken peer: its connection is closed
RECONNECT_S = 0.1
_LENGTH = struct.Struct("!I")


class SocketLink:
    name = "sockets"

    def __init__(self, directory: str, me: int, count: int) -> None:
        self.directory = directory
        self.me = me
        self.peers = [worker for worker in range(count) if worker != me]
        self.writers: dict[int, asyncio.StreamWriter] = {}
        self.dropped = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._receive: Callable[[bytes], None] = lambda message: None

    def _path(self, worker: int) -> str:
        return os.path.join(self.directory, f"{worker}.sock")

    async def start(self, receive: Callable[[bytes], None]) -> None:
        self._receive = receive
        path = self._path(self.me)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by this worker's previous life
        self._server = await asyncio.start_unix_server(self._read_peer, path=path)
        for peer in self.peers:
            self._tasks.add(asyncio.ensure_future(self._stay_connected(peer)))

    def send(self, message: bytes) -> None:
        frame = _LENGTH.pack(len(message)) + message
        for writer in list(self.writers.values()):
            if writer.is_closing() or writer.transport.get_write_buffer_size() + len(frame) > MAX_BUFFERED:
                self.dropped += 1
                continue
            writer.write(frame)

    async def _stay_connected(self, peer: int) -> None:
        """A connection to ``peer`` whenever it listens.  The peer never writes
        on it: the read returns when the peer goes away."""
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self._path(peer))
            except OSError:  # not listening yet, or being restarted
                await asyncio.sleep(RECONNECT_S)
                continue
            self.writers[peer] = writer
            try:
                await reader.read()
            except OSError:
                pass
            finally:
                self.writers.pop(peer, None)
                writer.close()
            await asyncio.sleep(RECONNECT_S)

    async def _read_peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
                if length > MAX_FRAME:
                    log.error("fleet: a frame of %d bytes from another worker: closing its connection", length)
                    return
                self._receive(await reader.readexactly(length))
        except (asyncio.IncompleteReadError, OSError):
            pass  # the peer went away
        except asyncio.CancelledError:
            # The loop is ending (asyncio.run cancels what is left): end quietly, since
            # Python 3.11's start_unix_server logs a cancelled handler as an error.
            pass
        finally:
            writer.close()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self.writers.values():
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(self.me))
