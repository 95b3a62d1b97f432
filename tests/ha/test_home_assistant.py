"""The box with a real Home Assistant Core 2024.3.3 (`make test-ha`; `make test` skips these).

Everything runs on 127.0.0.1: a mosquitto, the box as the appliance runs it (`assistant run` with its
Wyoming services on, audio from a WAV instead of a microphone) and Home Assistant from .venv-ha,
onboarded and configured through its REST and websocket APIs only. Home Assistant adds the box by its
address (Wyoming) and the broker (MQTT), then runs Assist pipelines through the box's speech recogniser,
voice and wake word, and shows the box's own entities, its mute switch working both ways.

Home Assistant 2024.3's Wyoming integration offers speech to text, text to speech and wake words only
(homeassistant/components/wyoming/data.py makes no conversation platform), so the box's `intent` and
`handle` services are not used there: Home Assistant's own conversation agent understands the text and
switches the light it knows over MQTT.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paho.mqtt.publish as publish
import pytest
from conftest import ROOT
from hass import HomeAssistant

from assistant.audio.wav import load_pcm16k, write_wav
from assistant.broker import free_port, reachable
from assistant.mqtt_recorder import MqttRecorder
from assistant.samples import piper, utterance
from assistant.types import SAMPLE_RATE
from assistant.understand.fuzzy import words
from assistant.understand.rescore import flipped, verb

HA_PYTHON = os.environ.get("ASSISTANT_HA_PYTHON", "")
if not HA_PYTHON:
    pytest.skip("Home Assistant's own test: `make test-ha` runs it (it installs Home Assistant 2024.3.3 into "
                ".venv-ha first)", allow_module_level=True)

SITE = "demo"
BASE = f"assistant/{SITE}"
MUTE = f"switch.voice_assistant_{SITE}_mute"
STATE = f"sensor.voice_assistant_{SITE}_state"
KITCHEN_SET = "zigbee2mqtt/kitchen_light/set"
# the kitchen light, announced on the broker as a device announces itself: Home Assistant switches it, the
# box finds it too (its names are the hints and sentences the box listens for)
KITCHEN = {"name": "Kitchen light", "unique_id": "test_kitchen_light", "schema": "json",
           "command_topic": KITCHEN_SET, "state_topic": "zigbee2mqtt/kitchen_light"}
BOX_CONFIG = """\
site = "{site}"
[mqtt]
url = "{url}"
[audio]
input_device = "file:{wav}"
output_device = "none"
[wyoming]
enabled = true
listen = "127.0.0.1"
port = {port}
zeroconf = false
"""
# Phoned out or discovered on the network by Home Assistant's default_config; none is loaded here.
REACHING_OUT = {"cloud", "zeroconf", "ssdp", "dhcp", "bluetooth", "usb", "met", "google_translate", "radio_browser",
                "homeassistant_alerts", "mobile_app", "hassio", "updater", "sun", "stream"}


class Heard:
    """Everything on the broker, in order; waits for one message after a mark."""

    def __init__(self, url: str):
        self.rec = MqttRecorder(url)

    def mark(self) -> int:
        with self.rec.lock:
            return len(self.rec.messages)

    def wait(self, topic: str, payload, after: int = 0, timeout_s: float = 30) -> str:
        ok = payload if callable(payload) else (lambda p: p == payload)
        end = time.monotonic() + timeout_s
        while True:
            with self.rec.lock:
                found = [p for t, p in self.rec.messages[after:] if t == topic and ok(p)]
                seen = [p for t, p in self.rec.messages[after:] if t == topic]
            if found:
                return found[0]
            if time.monotonic() > end:
                raise AssertionError(f"nothing like {payload!r} on {topic} within {timeout_s:.0f} s; got {seen}")
            time.sleep(0.05)


class Box:
    """`assistant run` in a process of its own, as the appliance's service runs it."""

    def __init__(self, folder: Path, broker_url: str, wav: Path):
        self.folder, self.port = folder, free_port()
        self.config = folder / "home.toml"
        self.config.write_text(BOX_CONFIG.format(site=SITE, url=broker_url, wav=wav, port=self.port))
        self.proc: subprocess.Popen | None = None
        self.log = folder / "box.log"

    def start(self, heard: Heard, timeout_s: float = 180) -> None:
        mark = heard.mark()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", "run", "--config", str(self.config)], cwd=ROOT,
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
            env={**os.environ, "STATE_DIRECTORY": str(self.folder / "state")})
        end = time.monotonic() + timeout_s
        while not reachable("127.0.0.1", self.port, 0.2):  # the services start once the models are loaded
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"the box did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        heard.wait(f"{BASE}/availability", "online", after=mark)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@pytest.fixture(scope="module")
def heard(broker):
    h = Heard(broker.url)
    yield h
    h.rec.close()


@pytest.fixture(scope="module")
def box(broker, store, heard, tmp_path_factory):
    """The box, hearing its own command once at its start (then a long silence): "Hey Jarvis. Turn on the
    kitchen light." Its transcript and intent are what Home Assistant's sensors then show."""
    announce = "homeassistant/light/kitchen_light/config"
    publish.single(announce, json.dumps(KITCHEN), qos=1, retain=True, hostname="127.0.0.1", port=broker.port)
    folder = tmp_path_factory.mktemp("box")
    wav = folder / "heard.wav"
    write_wav(wav, utterance(1.0, piper(store, "Hey Jarvis."), 0.5, piper(store, "Turn on the kitchen light."),
                             1800.0), SAMPLE_RATE)
    b = Box(folder, broker.url, wav)
    try:
        b.start(heard)
        yield b
    finally:
        b.stop()
    publish.single(announce, "", qos=1, retain=True, hostname="127.0.0.1", port=broker.port)  # for later tests


@pytest.fixture(scope="module")
def hass(tmp_path_factory):
    python = Path(HA_PYTHON)
    if not python.exists():
        pytest.fail(f"{python} does not exist: tests/ha/install.sh installs Home Assistant there")
    ha = HomeAssistant(python, tmp_path_factory.mktemp("home-assistant"), free_port())
    t = time.monotonic()
    try:
        ha.start()
        ha.onboard()
        ha.wait_running()
        print(f"\nHome Assistant up and onboarded in {time.monotonic() - t:.1f} s; its log: {ha.log}")
        yield ha
    finally:
        ha.stop()


@pytest.fixture(scope="module")
def home(hass, box, broker):
    """Home Assistant with the box added as the frontend adds it: the Wyoming integration with its host and
    port, the MQTT integration with the broker. The two flows' results."""
    wyoming = hass.flow("wyoming", {"host": "127.0.0.1", "port": box.port})
    mqtt = hass.flow("mqtt", {"broker": "127.0.0.1", "port": broker.port})
    return {"wyoming": wyoming, "mqtt": mqtt}


@pytest.fixture(scope="module")
def pipeline(hass, home):
    """An Assist pipeline of the box's speech recogniser, voice and wake word, with Home Assistant's own
    conversation agent (the only one 2024.3 has)."""
    for entity in ("stt.assistant_asr", "tts.assistant_tts", "wake_word.assistant_wake"):
        hass.wait_state(entity, lambda s: True)
    with hass.socket() as ws:
        return ws.call("assist_pipeline/pipeline/create", name="The box", language="en",
                       conversation_engine="homeassistant", conversation_language="en",
                       stt_engine="stt.assistant_asr", stt_language="en",
                       tts_engine="tts.assistant_tts", tts_language="en", tts_voice="piper-joe-medium",
                       wake_word_entity="wake_word.assistant_wake", wake_word_id="hey_jarvis")


@pytest.fixture(scope="module")
def whisper(store):
    from assistant.engines.asr_faster_whisper import FasterWhisper

    return FasterWhisper(store, "whisper-tiny.en")


# events after which Home Assistant takes no more audio (the speech ended, or the run did)
HEARD_ENOUGH = {"stt-vad-end", "stt-end", "intent-start", "run-end", "error"}


def run_pipeline(hass, pipeline, start: str, pcm: np.ndarray | None = None, text: str | None = None,
                 **extra_input) -> dict[str, dict]:
    """assist_pipeline/run from `start` to tts, on text or on 16 kHz audio sent as the frontend sends it
    (binary messages behind the handler's id, an empty one at the end) and in real time: Home Assistant
    ends the wake word stage when the audio ends, and the speech to text stage where its VAD hears the
    command end. Each event's data by type."""
    with hass.socket() as ws:
        run = ws.send("assist_pipeline/run", pipeline=pipeline["id"], start_stage=start, end_stage="tts",
                      input={"text": text} if text is not None else {"sample_rate": SAMPLE_RATE, **extra_input})
        ws.result(run)
        events = ws.events(run, "run-start")
        if pcm is not None:
            handler = events[0]["data"]["runner_data"]["stt_binary_handler_id"]
            start_s = time.monotonic()
            for i in range(0, len(pcm), 1024):  # as fast as a microphone gives it
                if set(ws.arrived(run)) & HEARD_ENOUGH:
                    break  # Home Assistant closed the stream: the frontend's microphone stops here too
                time.sleep(max(0.0, start_s + i / SAMPLE_RATE - time.monotonic()))
                ws.send_bytes(bytes([handler]) + pcm[i:i + 1024].tobytes())
            else:
                ws.send_bytes(bytes([handler]))  # the end of the audio
        events += ws.events(run, "run-end", timeout_s=180)
    by_type = {e["type"]: e.get("data") or {} for e in events}
    assert "error" not in by_type, f"the pipeline failed: {by_type['error']}"
    return by_type


def check_spoken_reply(hass, whisper, events: dict[str, dict], tmp_path: Path, reply: str) -> None:
    """The reply's audio as Home Assistant serves it (the box's voice, made an mp3 by Home Assistant's
    FFmpeg), heard back and checked to say `reply`, an on/off one, rather than its opposite. Piper's voice
    differs from run to run, and the tiny recogniser once wrote "Turned on the light" as "turn it on the
    white": the state word is looked for in the transcript, and the audio must fit the reply better than
    its opposite."""
    output = events["tts-end"]["tts_output"]
    assert output["mime_type"] == "audio/mpeg", output
    mp3, wav = tmp_path / "reply.mp3", tmp_path / "reply.wav"
    mp3.write_bytes(hass.get(output["url"]).content)
    subprocess.run([hass.ffmpeg, "-v", "error", "-i", str(mp3), "-ar", "16000", "-ac", "1", str(wav)], check=True)
    pcm = load_pcm16k(wav)
    assert len(pcm) > 0.5 * SAMPLE_RATE, "the reply is (almost) silent"
    said, instead = whisper.transcribe(pcm), flipped(reply)
    fit, other = whisper.score(whisper.encode(pcm), [reply, instead])
    print(f"its audio says {said!r}; fits {reply!r} {fit:.2f}, {instead!r} {other:.2f}")
    assert verb(reply) in words(said) and fit > other, said


def test_home_assistant_adds_the_box_by_its_address_and_the_broker(hass, home):
    wyoming, mqtt = home["wyoming"], home["mqtt"]
    assert wyoming["type"] == "create_entry" and wyoming["title"] == "assistant-asr", wyoming
    assert mqtt["type"] == "create_entry", mqtt
    entries = {e["domain"]: e for e in hass.rest("GET", "/api/config/config_entries/entry")}
    assert entries["wyoming"]["state"] == "loaded" and entries["mqtt"]["state"] == "loaded"
    # speech to text, text to speech and the wake word, with the box's languages and models
    with hass.socket() as ws:
        stt = ws.call("stt/engine/list", language="en")["providers"]
        tts = ws.call("tts/engine/list", language="en")["providers"]
        wake = ws.call("wake_word/info", entity_id="wake_word.assistant_wake")["wake_words"]
        voices = ws.call("tts/engine/voices", engine_id="tts.assistant_tts", language="en")["voices"]
        agents = ws.call("conversation/agent/list")["agents"]
    assert {"engine_id": "stt.assistant_asr", "supported_languages": ["en"]} in stt
    assert any(p["engine_id"] == "tts.assistant_tts" for p in tts)
    assert voices == [{"voice_id": "piper-joe-medium", "name": "piper-joe-medium"}]
    assert wake == [{"id": "hey_jarvis", "name": "hey_jarvis", "phrase": "hey jarvis"}]
    # no conversation agent comes from Wyoming in 2024.3: only Home Assistant's own
    assert [a["id"] for a in agents] == ["homeassistant"]


def test_typed_command_through_assist_switches_the_light_and_the_box_speaks_the_reply(
        hass, pipeline, heard, whisper, tmp_path):
    hass.wait_state("light.kitchen_light", lambda s: True)
    mark = heard.mark()
    events = run_pipeline(hass, pipeline, "intent", text="turn on the kitchen light")
    response = events["intent-end"]["intent_output"]["response"]
    assert response["response_type"] == "action_done", response
    assert json.loads(heard.wait(KITCHEN_SET, lambda p: json.loads(p).get("state") == "ON", after=mark)) == {
        "state": "ON"}
    assert events["tts-start"]["engine"] == "tts.assistant_tts"
    print(f"\nHome Assistant answered {response['speech']['plain']['speech']!r}")
    check_spoken_reply(hass, whisper, events, tmp_path, "Turned on the light.")


def test_spoken_command_transcribed_by_the_box_switches_the_light(hass, pipeline, heard, store, whisper, tmp_path):
    pcm = utterance(0.5, piper(store, "Turn off the kitchen light."), 1.5)
    mark = heard.mark()
    events = run_pipeline(hass, pipeline, "stt", pcm=pcm)
    text = events["stt-end"]["stt_output"]["text"]
    print(f"\nthe box heard {text!r}")
    assert "kitchen light" in text.lower()
    assert events["intent-end"]["intent_output"]["response"]["response_type"] == "action_done"
    heard.wait(KITCHEN_SET, lambda p: json.loads(p) == {"state": "OFF"}, after=mark)
    check_spoken_reply(hass, whisper, events, tmp_path, "Turned off the light.")


def test_wake_word_then_command_through_the_whole_pipeline(hass, pipeline, heard, store):
    # a pause after the wake word: Home Assistant gives speech to text no audio from before the detection
    # reached it (audio_seconds_to_buffer is 0 unless asked for)
    pcm = utterance(0.5, piper(store, "Hey Jarvis."), 1.5, piper(store, "Turn on the kitchen light."), 1.5)
    mark = heard.mark()
    events = run_pipeline(hass, pipeline, "wake_word", pcm=pcm, timeout=30)
    assert events["wake_word-end"]["wake_word_output"].get("wake_word_id") == "hey_jarvis", events
    assert "kitchen light" in events["stt-end"]["stt_output"]["text"].lower()
    heard.wait(KITCHEN_SET, lambda p: json.loads(p) == {"state": "ON"}, after=mark)


def test_the_box_is_a_device_in_home_assistant_from_its_own_discovery(hass, home):
    with hass.socket() as ws:
        devices = ws.call("config/device_registry/list")
        entities = ws.call("config/entity_registry/list")
    box = [d for d in devices if d["name"] == f"Voice assistant {SITE}"]
    assert len(box) == 1 and box[0]["model"] == "Offline voice assistant", box
    ours = sorted(e["entity_id"] for e in entities if e["device_id"] == box[0]["id"])
    assert ours == [f"sensor.voice_assistant_{SITE}_{n}" for n in ("last_intent", "next_timer", "state",
                                                                  "transcript")] + [MUTE]
    # what the box heard itself at its start, and what it made of it
    hass.wait_state(f"sensor.voice_assistant_{SITE}_transcript", lambda s: "kitchen light" in s["state"].lower())
    intent = hass.wait_state(f"sensor.voice_assistant_{SITE}_last_intent", "HassTurnOn")
    assert intent["attributes"]["slots"] == {"name": "kitchen_light"}
    hass.wait_state(f"sensor.voice_assistant_{SITE}_next_timer", "none")
    hass.wait_state(STATE, "idle")


def test_mute_switch_works_both_ways(hass, home, heard, box, broker):
    def switch(service: str) -> None:
        with hass.socket() as ws:
            ws.call("call_service", domain="switch", service=service, target={"entity_id": MUTE})

    hass.wait_state(MUTE, "off")
    # switched in Home Assistant: the box mutes and says so; Home Assistant shows what the box says
    mark = heard.mark()
    switch("turn_on")
    assert heard.wait(f"{BASE}/mute/set", "ON", after=mark)  # Home Assistant's command
    heard.wait(f"{BASE}/mute", "ON", after=mark)  # the box's answer
    heard.wait(f"{BASE}/state", "muted", after=mark)
    hass.wait_state(MUTE, "on")
    hass.wait_state(STATE, "muted")
    # unmuted by another client on the broker (a button, an automation elsewhere): Home Assistant follows
    mark = heard.mark()
    publish.single(f"{BASE}/mute/set", "OFF", qos=1, hostname="127.0.0.1", port=broker.port)
    heard.wait(f"{BASE}/mute", "OFF", after=mark)
    hass.wait_state(MUTE, "off")
    hass.wait_state(STATE, "idle")
    switch("turn_on")
    hass.wait_state(MUTE, "on")
    # the box restarts: Home Assistant shows it unavailable while it is away (its last will), and unmuted
    # once it is back, as a restarted box starts
    box.stop()
    hass.wait_state(MUTE, "unavailable")
    box.start(heard)
    hass.wait_state(MUTE, "off")
    hass.wait_state(STATE, lambda s: s["state"] in ("idle", "listening", "thinking", "speaking"))


def test_nothing_reaches_out_and_home_assistant_logged_no_errors(hass, home):
    components = set(hass.rest("GET", "/api/config")["components"])
    assert not components & REACHING_OUT, components & REACHING_OUT
    with hass.socket() as ws:
        analytics = ws.call("analytics")
    assert not analytics["preferences"].get("base"), analytics  # never opted in: nothing is sent
    if os.environ.get("ASSISTANT_HA_ISOLATED"):  # `make test-ha` in a network namespace of its own
        assert [name for _, name in socket.if_nameindex()] == ["lo"]
    errors = hass.log_lines("ERROR")
    assert not errors, "\n".join(errors)
    assert not [w for w in hass.log_lines("WARNING") if "wyoming" in w or "assist_pipeline" in w]

