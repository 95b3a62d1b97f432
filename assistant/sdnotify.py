"""systemd's service notification protocol: one datagram to $NOTIFY_SOCKET per message.

READY=1 once audio flows, STATUS= in words, WATCHDOG=1 from a heartbeat thread that pings only while
the box shows it is alive (the event loop answers, audio frames are taken or a turn moves on, no model
call hangs, the MQTT link's thread runs), so a stuck pipeline, a source that hangs or a dead link
stops the pings and systemd restarts the service, while a long reply does not. A microphone that stops
is not a hung source: the source opens it again by itself and gives silence meanwhile (audio/io.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable

log = logging.getLogger(__name__)

failed = 0  # messages the service manager was not there to take (its socket gone, refusing or full)


def notify(*fields: str, env: dict[str, str] | None = None) -> bool:
    """Send 'KEY=value' fields to the service manager; False when not run by one, or when it cannot take
    the message now. Such a message is dropped and counted, never raised: it is called from the audio
    path and the watchdog's thread, and a missed ping is the watchdog's to judge. Never waits either."""
    global failed
    addr = (env if env is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not addr:
        return False
    if addr.startswith("@"):  # abstract namespace
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as s:
            s.connect(addr)
            s.send("\n".join(fields).encode())
    except OSError as e:
        failed += 1
        if failed == 1 or failed % 100 == 0:
            log.warning("the service manager could not be told %s (%s; %d messages lost so far)",
                        fields[0].split("=")[0], e.strerror or e, failed)
        return False
    return True


def watchdog_interval(env: dict[str, str] | None = None) -> float | None:
    """Seconds between pings (half the timeout), or None when no watchdog is asked for this process."""
    env = env if env is not None else os.environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


class Watched:
    """Wraps an audio source: the first frame says READY=1 (the models are loaded and audio flows)."""

    def __init__(self, source, status: str = "listening", env: dict[str, str] | None = None):
        self.source = source
        self.status = status
        self.env = env if env is not None else dict(os.environ)

    def __getattr__(self, name):
        return getattr(self.source, name)

    async def frames(self) -> AsyncIterator:
        first = True
        async for frame in self.source.frames():
            if first:
                notify("READY=1", f"STATUS={self.status}", env=self.env)
                first = False
            yield frame


class Heartbeat:
    """Feeds systemd's watchdog from a thread of its own, and only while the box is alive: the event loop
    answers between two pings and every check returns None. A check returns why the box is not alive
    ("no audio frames for 12 s"); the first such reason goes to STATUS=, where `systemctl status` shows
    it, and the pings stop until it clears."""

    def __init__(self, checks: list[Callable[[], str | None]], env: dict[str, str] | None = None):
        self.checks = checks
        self.env = env if env is not None else dict(os.environ)
        self.interval = watchdog_interval(self.env)
        self.pings = 0  # delivered
        self.why: str | None = None  # why it last did not ping
        self._answered = threading.Event()
        self._answered.set()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Pings at half the watchdog timeout; nothing when systemd asked for no watchdog."""
        self._loop = loop
        if self.interval is not None:
            threading.Thread(target=self._run, name="watchdog", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def beat(self) -> None:
        """One check, and a ping if it passes."""
        why = "the event loop does not answer" if not self._answered.is_set() else None
        why = why or next((w for c in self.checks if (w := c()) is not None), None)
        if why is None:
            if notify("WATCHDOG=1", *(["STATUS=listening"] if self.why else []), env=self.env):
                self.pings += 1
        elif why != self.why:
            notify(f"STATUS={why}", env=self.env)
        self.why = why
        self._answered.clear()  # the loop must answer before the next beat
        self._loop.call_soon_threadsafe(self._answered.set)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except RuntimeError:  # the loop has closed: the process is ending
                return
