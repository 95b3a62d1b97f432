"""A private mosquitto on loopback, for the demo when no broker is configured, and for the tests."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class BrokerError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class LocalBroker:
    """mosquitto on 127.0.0.1 at a free port; `extra` lines are added to its config (TLS, passwords)."""

    def __init__(self, port: int | None = None, extra: str = ""):
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="assistant-broker-"))

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "LocalBroker":
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if exe is None:
            raise BrokerError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        conf = self.dir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        f"log_dest stderr\n{self.extra}\n")
        with open(self.dir / "log", "wb") as log:  # the broker writes to its own copy
            self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 5
        while not reachable("127.0.0.1", self.port, 0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BrokerError(f"mosquitto did not start: {(self.dir / 'log').read_text()[-500:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None

    # Faults, for the soak run: the broker dies, hangs, or goes away and comes back on the same port.

    def kill(self) -> None:
        """SIGKILL: gone at once, with no goodbye to its clients."""
        self.proc.kill()
        self.proc.wait(5)
        self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: connections stay open but nothing is read or answered until thaw()."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """SIGTERM, then a fresh start: retained messages and sessions are lost (no persistence)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stopped for good: its config and log go too (stop() keeps them for a start on the same port)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "LocalBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
