"""A real Home Assistant Core for the tests: started from .venv-ha in a config folder of its own, on 127.0.0.1,
onboarded and configured only through its REST and websocket APIs, as its frontend does."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import requests

# Only what the test needs: the HTTP API and onboarding, config flows, and Assist (pipelines, the
# conversation agent, intents, speech to text, text to speech, wake words; media_source, through which a
# pipeline hands out the reply's audio; ffmpeg, which makes that audio the mp3 it is served as). No
# default_config: nothing that discovers (zeroconf, ssdp, dhcp, bluetooth) or reaches the internet (cloud,
# met; analytics is loaded by onboarding but never opted in) is loaded.
CONFIGURATION = """\
homeassistant:
  name: Test home
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL
  language: en
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
onboarding:
config:
assist_pipeline:
conversation:
intent:
stt:
wake_word:
media_source:
ffmpeg:
  ffmpeg_bin: {ffmpeg}
logger:
  default: warning
  logs:
    homeassistant.components.wyoming: debug
    homeassistant.components.assist_pipeline: debug
"""


class HassError(Exception):
    pass


class HomeAssistant:
    """`python -m homeassistant` on a free port of 127.0.0.1; `stop()` ends it."""

    def __init__(self, python: str | Path, config_dir: Path, port: int):
        self.python, self.dir, self.port = str(python), config_dir, port
        self.url = f"http://127.0.0.1:{port}"
        self.client_id = f"{self.url}/"
        self.token: str | None = None
        self.proc: subprocess.Popen | None = None
        self.log = config_dir / "home-assistant.log"
        # FFmpeg as the imageio-ffmpeg wheel carries it (tests/ha/install.sh); Home Assistant's images ship one
        where = "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"
        self.ffmpeg = subprocess.run([self.python, "-c", where], capture_output=True, text=True,
                                     check=True).stdout.strip()

    # -- the process -------------------------------------------------------------------------------------

    def start(self, timeout_s: float = 180) -> HomeAssistant:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port, ffmpeg=self.ffmpeg))
        # --skip-pip: every requirement is installed beforehand (tests/ha/install.sh); a missing one fails
        # the integration's set-up instead of being fetched
        self.proc = subprocess.Popen(
            [self.python, "-m", "homeassistant", "--config", str(self.dir), "--skip-pip", "--log-file", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "stderr.log", "wb"), start_new_session=True)
        end = time.monotonic() + timeout_s
        while True:  # the HTTP server answers once Home Assistant has started
            self._alive()
            try:
                if requests.get(f"{self.url}/api/onboarding", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:  # not listening yet, or too busy starting to answer
                pass
            if time.monotonic() > end:
                raise HassError(f"Home Assistant did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(0.5)

    def _alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise HassError(f"Home Assistant is not running (exit {self.proc and self.proc.returncode}):\n"
                            f"{self.log_tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def log_tail(self, lines: int = 60) -> str:
        text = ""
        for f in (self.log, self.dir / "stderr.log"):
            if f.exists():
                text += "\n".join(f.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def log_lines(self, level: str) -> list[str]:
        """The log's lines at a level (WARNING, ERROR), with what follows each (tracebacks)."""
        out: list[str] = []
        keep = False
        for line in self.log.read_text(errors="replace").splitlines():
            if line[:4].isdigit():  # a new record: "2024-03-20 10:00:00.000 ERROR (MainThread) [...]"
                if f" {level} (" in line:
                    out.append(line)
                    keep = True
                else:
                    keep = False
            elif out and keep:
                out[-1] += "\n" + line
        return out

    # -- onboarding and REST -----------------------------------------------------------------------------

    def onboard(self, name: str = "Test", username: str = "test", password: str = "test-password") -> str:
        """The onboarding's first step (the owner's account), then the token its authorization code is
        exchanged for. The other steps are left undone: finishing the core-config step sets up met,
        google_translate and radio_browser, which reach the internet."""
        r = requests.post(f"{self.url}/api/onboarding/users", timeout=30, json={
            "client_id": self.client_id, "name": name, "username": username, "password": password,
            "language": "en"})
        _check(r)
        r = requests.post(f"{self.url}/auth/token", timeout=30, data={
            "grant_type": "authorization_code", "code": r.json()["auth_code"], "client_id": self.client_id})
        _check(r)
        self.token = r.json()["access_token"]
        return self.token

    def rest(self, method: str, path: str, body: dict | None = None) -> dict | list:
        r = requests.request(method, f"{self.url}{path}", json=body, timeout=60,
                             headers={"Authorization": f"Bearer {self.token}"})
        _check(r)
        return r.json() if r.content else {}

    def get(self, path: str) -> requests.Response:
        r = requests.get(f"{self.url}{path}", timeout=60, headers={"Authorization": f"Bearer {self.token}"})
        _check(r)
        return r

    def wait_running(self, timeout_s: float = 120) -> dict:
        end = time.monotonic() + timeout_s
        while (config := self.rest("GET", "/api/config"))["state"] != "RUNNING":
            self._alive()
            if time.monotonic() > end:
                raise HassError(f"Home Assistant is still {config['state']}")
            time.sleep(0.5)
        return config

    def flow(self, handler: str, answers: dict) -> dict:
        """A config flow as the frontend goes through it: started, its form answered. The result."""
        form = self.rest("POST", "/api/config/config_entries/flow", {"handler": handler})
        if form.get("type") != "form":
            raise HassError(f"the {handler} flow did not ask for anything: {form}")
        return self.rest("POST", f"/api/config/config_entries/flow/{form['flow_id']}", answers)

    def state(self, entity_id: str) -> dict | None:
        r = requests.get(f"{self.url}/api/states/{entity_id}", timeout=30,
                         headers={"Authorization": f"Bearer {self.token}"})
        if r.status_code == 404:
            return None
        _check(r)
        return r.json()

    def wait_state(self, entity_id: str, want, timeout_s: float = 30) -> dict:
        """The entity's state once `want` (a state, or a test of the state dict) holds."""
        ok = want if callable(want) else (lambda s: s["state"] == want)
        end = time.monotonic() + timeout_s
        while not ((s := self.state(entity_id)) and ok(s)):
            self._alive()
            if time.monotonic() > end:
                raise HassError(f"{entity_id} is {s and s['state']!r} after {timeout_s:.0f} s, not {want!r}")
            time.sleep(0.2)
        return s

    def socket(self) -> Socket:
        return Socket(f"ws://127.0.0.1:{self.port}/api/websocket", self.token)


def _check(r: requests.Response) -> None:
    if r.status_code >= 400:
        raise HassError(f"{r.request.method} {r.url}: {r.status_code} {r.text[:500]}")


class Socket:
    """Home Assistant's websocket API: commands with their results, and the events of a subscription."""

    def __init__(self, url: str, token: str):
        from websockets.sync.client import (
            connect,  # a test dependency: only `make test-ha` needs it
        )

        self.stack = ExitStack()
        self.ws = self.stack.enter_context(connect(url, max_size=None, open_timeout=30))
        self.ids = itertools.count(1)
        self.pending: dict[int, list[dict]] = {}  # messages that came for an id not being waited for
        if self._recv(30)["type"] != "auth_required":
            raise HassError("no auth_required")
        self.ws.send(json.dumps({"type": "auth", "access_token": token}))
        if (answer := self._recv(30))["type"] != "auth_ok":
            raise HassError(f"websocket authentication failed: {answer}")

    def _recv(self, timeout_s: float) -> dict:
        return json.loads(self.ws.recv(timeout=timeout_s))

    def send(self, type_: str, **data) -> int:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "type": type_, **data}))
        return msg_id

    def send_bytes(self, data: bytes) -> None:
        self.ws.send(data)

    def next(self, msg_id: int, timeout_s: float = 60) -> dict:
        """The next message for this id."""
        if self.pending.get(msg_id):
            return self.pending[msg_id].pop(0)
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise HassError(f"nothing for message {msg_id} within {timeout_s:.0f} s")
            try:
                msg = self._recv(left)
            except TimeoutError:
                continue
            if msg.get("id") == msg_id:
                return msg
            self.pending.setdefault(msg.get("id"), []).append(msg)

    def arrived(self, msg_id: int) -> list[str]:
        """The types of the events for this id that have arrived and not been read yet, without waiting."""
        while True:
            try:
                msg = self._recv(0)
            except TimeoutError:
                break
            self.pending.setdefault(msg.get("id"), []).append(msg)
        return [m["event"]["type"] for m in self.pending.get(msg_id, []) if m["type"] == "event"]

    def result(self, msg_id: int, timeout_s: float = 60):
        msg = self.next(msg_id, timeout_s)
        if msg["type"] != "result":
            raise HassError(f"expected the result of {msg_id}, got {msg}")
        if not msg["success"]:
            raise HassError(f"command {msg_id} failed: {msg['error']}")
        return msg["result"]

    def call(self, type_: str, timeout_s: float = 60, **data):
        return self.result(self.send(type_, **data), timeout_s)

    def events(self, msg_id: int, last: str, timeout_s: float = 120) -> list[dict]:
        """A subscription's events up to one of type `last` (or `error`)."""
        out: list[dict] = []
        end = time.monotonic() + timeout_s
        while True:
            event = self.next(msg_id, max(0.1, end - time.monotonic()))["event"]
            out.append(event)
            if event.get("type") in (last, "error"):
                return out

    def close(self) -> None:
        self.stack.close()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
