"""systemd's service notification protocol: one datagram to $NOTIFY_SOCKET per message.

READY=1 once audio flows, STATUS= in words, WATCHDOG=1 from the frame loop only, so a stuck pipeline
or a silent audio device stops the pings and systemd restarts the service.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator


def notify(*fields: str, env: dict[str, str] | None = None) -> bool:
    """Send 'KEY=value' fields to the service manager; False when not run by one."""
    addr = (env if env is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not addr:
        return False
    if addr.startswith("@"):  # abstract namespace
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(addr)
        s.sendall("\n".join(fields).encode())
    return True


def watchdog_interval(env: dict[str, str] | None = None) -> float | None:
    """Seconds between pings (half the timeout), or None when no watchdog is asked for this process."""
    env = env if env is not None else os.environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


class Watched:
    """Wraps an audio source: the first frame says READY=1, then every frame may feed the watchdog.

    The pings happen when the pipeline takes a frame, so they stop both when the device goes quiet and
    when the pipeline hangs.
    """

    def __init__(self, source, status: str = "listening", env: dict[str, str] | None = None,
                 clock=time.monotonic):
        self.source = source
        self.status = status
        self.env = env if env is not None else dict(os.environ)
        self.interval = watchdog_interval(self.env)
        self.clock = clock
        self.pings = 0
        self._next = 0.0

    def __getattr__(self, name):
        return getattr(self.source, name)

    async def frames(self) -> AsyncIterator:
        first = True
        async for frame in self.source.frames():
            if first:
                notify("READY=1", f"STATUS={self.status}", env=self.env)
                first = False
            now = self.clock()
            if self.interval is not None and now >= self._next:
                notify("WATCHDOG=1", env=self.env)
                self.pings += 1
                self._next = now + self.interval
            yield frame
