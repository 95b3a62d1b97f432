"""Shared fixtures: a real mosquitto on loopback, the real models, and a listener on the broker."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from assistant import config, devset
from assistant.audio.io import MemorySink
from assistant.broker import LocalBroker
from assistant.engines.load import Engines
from assistant.events import EventBus
from assistant.models import ModelStore
from assistant.mqtt_link import MqttLink
from assistant.mqtt_recorder import MqttRecorder
from assistant.pipeline import Assistant
from assistant.startup import load_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "home.toml"
DEVSET = devset.root()
needs_devset = pytest.mark.skipif(
    not DEVSET.is_dir(), reason=f"not run: no development audio at {DEVSET} (set $ASSISTANT_DEVSET to its "
                                f"folder). {devset.SOURCES}")

# Fixtures that start mosquitto or load models (a test's fixture names include its fixtures' own):
# every test using one is `slow`, left out of `make test-fast`.
SLOW_FIXTURES = {"broker", "store", "engines", "make_assistant", "spy", "home_broker", "tls_broker",
                 "openai_server", "trust_broker", "fuzzed", "sound_server"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    """Timers and the volume a test sets are its own, never the user's (config.state_dir's fallback)."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture(scope="session")
def broker():
    with LocalBroker() as b:
        yield b


@pytest.fixture(scope="session")
def store():
    s = ModelStore()
    for name in ("whisper-tiny.en", "piper-joe-medium", "silero-vad", "openwakeword-features", "hey_jarvis"):
        s.dir(name)  # fails loudly, naming the fetch command, when the set-up did not fetch the models
    return s


@pytest.fixture(scope="session")
def example_cfg():
    return config.load(EXAMPLE)


@pytest.fixture(scope="session")
def engines(example_cfg, store):
    return Engines.load(example_cfg, store)


@pytest.fixture
def spy(broker):
    with MqttRecorder(broker.url) as s:
        yield s


@pytest.fixture
def make_assistant(example_cfg, engines, broker):
    """An assistant on the example home wired to the test broker; returns (assistant, sink, events)."""
    made = []

    def make(cfg=None, url=None, with_engines=None, paced=False, sink=None):
        """`paced`: the sink takes as long as its audio lasts, like a speaker; `sink`: another sink (a
        speaker) instead of the one in memory."""
        cfg = cfg or config.load(EXAMPLE)
        cfg.mqtt.url = url or broker.url
        link = MqttLink.from_config(cfg.mqtt, f"assistant/{cfg.site}/availability")
        link.start()
        link.wait_connected(3)
        events = []
        bus = EventBus()
        bus.subscribe(events.append)
        sink = sink or MemorySink(paced=paced)
        a = Assistant(cfg, with_engines or engines, link, sink, bus)
        made.append((a, link))
        link.wait_subscribed(5)  # so that what a test publishes next reaches it
        return a, sink, events

    yield make
    for a, link in made:
        a.close()
        link.stop()


@pytest.fixture
def sound_server(monkeypatch):
    """A real PulseAudio sound server with a virtual microphone and speaker (tests/sound_server.py), its
    own, stopped at the end; this process reaches it through PortAudio and ALSA as a box does. Skipped,
    saying why, where its Debian packages are missing."""
    import sounddevice as sd
    from sound_server import SoundServer, missing

    from assistant.audio import io

    if (why := missing()) is not None:
        if os.environ.get("CI"):  # CI installs the sound server (setup.sh --test): missing, it is a failure
            pytest.fail(f"the sound server is missing: {why}")
        pytest.skip(f"not run: {why}")
    root = Path(tempfile.mkdtemp(prefix="sound-", dir="/tmp"))  # a socket's path must stay short
    server = SoundServer(root)
    try:
        with monkeypatch.context() as m:
            for key, value in server.env.items():
                m.setenv(key, value)
            server.start()
            io.rescan(sd)  # PortAudio lists the server's devices
            yield server
    finally:
        server.stop()
        io.rescan(sd)  # and forgets them
        shutil.rmtree(root, ignore_errors=True)


def run(coro):
    return asyncio.run(coro)


def home_file(tmp_path: Path, text: str) -> Path:
    """`text` as a home's config file in tmp_path."""
    p = tmp_path / "home.toml"
    p.write_text(text)
    return p


def home_config(tmp_path: Path, extra_toml: str = "", base: str | None = None) -> config.Config:
    """The example home (or the config text `base`) with `extra_toml` added, written to tmp_path and loaded
    as the app loads it (custom intents checked too)."""
    return load_config(home_file(tmp_path, (EXAMPLE.read_text() if base is None else base) + extra_toml))


def with_front_door_lock(tmp_path: Path) -> config.Config:
    """The example home with a lock, a device of the domains that are always confirmed."""
    return home_config(tmp_path, '\n[[device]]\nname = "front door"\narea = "hall"\n'
                                 'domain = "lock"\nfriendly_name = "front_door"\n')
