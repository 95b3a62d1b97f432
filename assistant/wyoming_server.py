"""The Wyoming server: Home Assistant's voice services on a TCP port, announced by zeroconf.

It carries events to and from wyoming_services.py and guards the box: events are read with their sizes
bounded (wyoming_events.py), a connection silent for `idle_timeout_s` is closed, and connections past
`max_clients` are refused. A bad request ends its own connection with an `error` event and nothing else.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import statistics
import time
from contextlib import asynccontextmanager

from wyoming.error import Error
from wyoming.event import Event, async_write_event

from .config import WyomingConfig
from .models import ModelStore
from .pipeline import Assistant
from .wyoming_events import MAX_LINE, BadEvent, Refused, ServeError, read_event
from .wyoming_services import Services

log = logging.getLogger(__name__)
SERVICE_TYPE = "_wyoming._tcp.local."


class WyomingServer:
    def __init__(self, assistant: Assistant, cfg: WyomingConfig, store: ModelStore):
        self.cfg = cfg
        self.services = Services(assistant, store)
        self.name = cfg.name or f"Voice assistant {assistant.cfg.site}"
        self.clients = 0
        self.server: asyncio.Server | None = None
        self.zeroconf = None

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose, when configured as 0)."""
        return self.server.sockets[0].getsockname()[1]

    @property
    def uri(self) -> str:
        return f"tcp://{self.cfg.listen}:{self.port}"

    async def start(self) -> None:
        where = f"tcp://{self.cfg.listen}:{self.cfg.port}"
        try:
            self.server = await asyncio.start_server(self._client, self.cfg.listen, self.cfg.port, limit=MAX_LINE)
        except OSError as e:
            why = ("the port is already in use (choose another with wyoming.port or --uri)"
                   if e.errno == errno.EADDRINUSE else e.strerror or str(e))
            raise ServeError(f"cannot serve Wyoming on {where}: {why}") from None
        if self.cfg.zeroconf:
            self.zeroconf = await announce(self.name, self.cfg.listen, self.port)
        log.info("Wyoming services on %s", self.uri)

    async def close(self) -> None:
        if self.zeroconf is not None:
            await self.zeroconf.async_unregister_all_services()
            await self.zeroconf.async_close()
        if self.server is not None:
            self.server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def write(event: Event) -> None:
            await async_write_event(event, writer)

        try:
            if self.clients >= self.cfg.max_clients:
                await write(Error(f"too many connections (at most {self.cfg.max_clients})", "busy").event())
                return
            self.clients += 1
            try:
                await self._serve(reader, self.services.connection(write))
            finally:
                self.clients -= 1
        except (BadEvent, Refused) as e:
            log.warning("a Wyoming client was refused: %s", e)
            await _quietly(write(Error(str(e), "refused").event()))
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or fell silent: its request is dropped
        except Exception as e:
            log.exception("a Wyoming request failed")
            await _quietly(write(Error(f"{type(e).__name__}: {e}", "failed").event()))
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, connection) -> None:
        while True:
            async with asyncio.timeout(self.cfg.idle_timeout_s):  # wait_for would lose a cancel (3.11)
                event = await read_event(reader)
            if event is None:
                return
            try:
                await connection.handle(event)
            except (KeyError, TypeError, AttributeError) as e:  # a field missing or of the wrong kind
                raise BadEvent(f"a malformed {event.type!r} event: {type(e).__name__} {e}") from None


async def _quietly(coro) -> None:
    """Tell a client what went wrong, if it is still there to hear it."""
    try:
        await coro
    except (ConnectionError, OSError):
        pass


async def announce(name: str, host: str, port: int):
    """The service announced by zeroconf on the interfaces it listens on, only those."""
    from zeroconf import InterfaceChoice
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    everywhere = host in ("0.0.0.0", "")
    addresses = _lan_addresses() if everywhere else [socket.gethostbyname(host)]
    zc = AsyncZeroconf(interfaces=InterfaceChoice.All if everywhere else addresses)
    info = AsyncServiceInfo(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}", parsed_addresses=addresses, port=port)
    await zc.async_register_service(info)  # the probing that follows runs in the background
    return zc


def _lan_addresses() -> list[str]:
    import ifaddr

    return [ip.ip for a in ifaddr.get_adapters() for ip in a.ips
            if isinstance(ip.ip, str) and not ip.ip.startswith("127.")]


async def latency(server: WyomingServer, pcm, repeat: int = 5) -> dict:
    """What the service adds to speech recognition: the same audio transcribed in-process and through the
    server by the wyoming package's client, the audio sent in 64 ms chunks."""
    from wyoming.asr import Transcribe
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient

    async def through_server() -> None:
        async with AsyncTcpClient("127.0.0.1" if server.cfg.listen in ("0.0.0.0", "") else server.cfg.listen,
                                  server.port) as c:
            await c.write_event(Transcribe().event())
            await c.write_event(AudioStart(16000, 2, 1).event())
            for i in range(0, len(pcm), 1024):
                await c.write_event(AudioChunk(16000, 2, 1, pcm[i:i + 1024].tobytes()).event())
            await c.write_event(AudioStop().event())
            while (e := await c.read_event()) is not None and e.type != "transcript":
                pass

    async def timed(call) -> float:
        t = time.perf_counter()
        await call()
        return (time.perf_counter() - t) * 1000

    inside, outside = [], []
    for _ in range(repeat):  # interleaved, so both see the same load on the machine
        inside.append(await timed(lambda: server.services.hear(pcm)))
        outside.append(await timed(through_server))
    # the fastest of each: on a busy machine, the run least slowed by others is closest to the true cost
    added = min(outside) - min(inside)
    text = (f"Wyoming adds {added:.0f} ms to transcribing {len(pcm) / 16000:.1f} s of speech (fastest of {repeat}: "
            f"in-process {min(inside):.0f} ms, through the server {min(outside):.0f} ms; medians "
            f"{statistics.median(inside):.0f} and {statistics.median(outside):.0f} ms)")
    return {"in_process_ms": round(min(inside)), "server_ms": round(min(outside)), "added_ms": round(added),
            "text": text}


async def bench_latency(assistant: Assistant, store: ModelStore, pcm) -> dict:
    """`latency` for `assistant bench`, on a server of its own on a free loopback port."""
    async with serving(assistant, WyomingConfig(port=0, zeroconf=False), store) as server:
        return await latency(server, pcm)


@asynccontextmanager
async def serving(assistant: Assistant, cfg: WyomingConfig, store: ModelStore):
    """The services running beside whatever the caller does meanwhile."""
    server = WyomingServer(assistant, cfg, store)
    await server.start()
    try:
        yield server
    finally:
        await server.close()
