"""Home Assistant's voice services over the Wyoming protocol, spoken to by the wyoming package's own client:
real models, a real broker, the server on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import numpy as np
import pytest
from conftest import EXAMPLE, home_file, run
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.handle import Handled
from wyoming.info import Describe, Info
from wyoming.intent import Entity, Intent, NotRecognized, Recognize
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop
from wyoming.wake import Detect, Detection

from assistant.audio.io import FileSource
from assistant.audio.wav import to_pcm16k, write_wav
from assistant.cli import main
from assistant.config import WyomingConfig
from assistant.samples import piper, utterance
from assistant.types import SAMPLE_RATE
from assistant.wyoming_events import MAX_PAYLOAD, ServeError
from assistant.wyoming_server import WyomingServer, bench_latency, serving

KITCHEN = "zigbee2mqtt/kitchen_light/set"
BEDROOM = "zigbee2mqtt/bedroom_light/set"


@pytest.fixture
def serve(make_assistant, store):
    """(assistant, the server's context) on a free loopback port, zeroconf off unless asked for."""

    def make(**settings):
        a, _, _ = make_assistant()
        cfg = WyomingConfig(**{"port": 0, "zeroconf": False, **settings})
        return a, serving(a, cfg, store)

    return make


async def client(server) -> AsyncTcpClient:
    c = AsyncTcpClient("127.0.0.1", server.port, read_timeout=60)
    await c.connect()
    return c


async def ask(server, *events: Event, until: str | tuple[str, ...]) -> list[Event]:
    """Sends the events on a new connection; the events that come back up to one of the types `until`."""
    c = await client(server)
    try:
        for e in events:
            await c.write_event(e)
        got = []
        while (e := await c.read_event()) is not None:
            got.append(e)
            if e.type in (until if isinstance(until, tuple) else (until,)) or e.type == "error":
                return got
        return got
    finally:
        await c.disconnect()


def audio_events(pcm: np.ndarray, rate: int = SAMPLE_RATE, chunk: int = 2048) -> list[Event]:
    events = [AudioStart(rate, 2, 1).event()]
    events += [AudioChunk(rate, 2, 1, pcm[i:i + chunk].tobytes()).event() for i in range(0, len(pcm), chunk)]
    return events + [AudioStop().event()]


def heard(engines, events: list[Event]) -> str:
    """What our own recogniser hears in the audio events that came back."""
    chunks = [AudioChunk.from_event(e) for e in events if AudioChunk.is_type(e.type)]
    pcm = np.frombuffer(b"".join(c.audio for c in chunks), np.int16).astype(np.float32) / 32768
    return engines.asr.transcribe(to_pcm16k(pcm, chunks[0].rate)).lower()


def test_describe_names_every_service_with_its_model_and_licence(serve, store):
    async def go():
        async with serve()[1] as server:
            return Info.from_event((await ask(server, Describe().event(), until="info"))[-1])

    info = run(go())
    assert [p.name for p in info.asr + info.tts + info.intent + info.handle + info.wake] == [
        "assistant-asr", "assistant-tts", "assistant-intent", "assistant-handle", "assistant-wake"]
    whisper = info.asr[0].models[0]
    assert whisper.name == "whisper-tiny.en" and whisper.languages == ["en"]
    assert whisper.attribution.name == store.model("whisper-tiny.en").license and whisper.version
    # what Home Assistant shows as the voice's and the wake word's names
    assert (info.tts[0].voices[0].description, info.wake[0].models[0].description) == ("piper-joe-medium", "hey_jarvis")
    assert info.tts[0].supports_synthesize_streaming and info.tts[0].voices[0].name == "piper-joe-medium"
    assert info.wake[0].models[0].phrase == "hey jarvis" and info.handle[0].supports_home_control


def test_spoken_wav_becomes_its_transcript(serve, store):
    pcm = utterance(0.3, piper(store, "Turn on the kitchen light."), 0.3)

    async def go():
        async with serve()[1] as server:
            return await ask(server, Transcribe(language="en").event(), *audio_events(pcm), until="transcript")

    text = Transcript.from_event(run(go())[-1]).text.lower()
    assert "kitchen light" in text


def test_text_comes_back_as_speech_whole_and_streamed(serve, engines):
    streamed = [SynthesizeStart().event(), SynthesizeChunk("Turn off the ").event(),
                SynthesizeChunk("bedroom light. The porch").event(), SynthesizeChunk(" light is on.").event(),
                Synthesize("Turn off the bedroom light. The porch light is on.").event(),  # as Home Assistant sends too
                SynthesizeStop().event()]

    async def go():
        async with serve()[1] as server:
            whole = await ask(server, Synthesize("Turn off the bedroom light.").event(), until="audio-stop")
            return whole, await ask(server, *streamed, until="synthesize-stopped")

    whole, stream = run(go())
    assert whole[0].type == "audio-start" and "bedroom li" in heard(engines, whole)
    assert [e.type for e in stream if e.type != "audio-chunk"] == ["audio-start", "audio-stop", "synthesize-stopped"]
    said = heard(engines, stream)
    # each sentence said once (Whisper tiny hears piper's "bedroom light" as "bedroom like" now and then)
    assert "bedroom li" in said and "porch li" in said and said.count("bedroom") == 1


def test_recognize_gives_the_intent_and_its_entities(serve):
    async def go():
        async with serve()[1] as server:
            return [(await ask(server, Recognize(text).event(), until=("intent", "not-recognized")))[-1]
                    for text in ("turn on the kitchen light", "set the living room lamp to 30 percent",
                                 "what a lovely day it is")]

    kitchen, lamp, nothing = run(go())
    assert Intent.from_event(kitchen) == Intent("HassTurnOn", [Entity("name", "kitchen light"), Entity("domain", "light")],
                                                text="turn on the kitchen light")
    lamp = Intent.from_event(lamp)
    assert lamp.name == "HassLightSet" and {e.name: e.value for e in lamp.entities} == {
        "name": "living room lamp", "domain": "light", "brightness": 30}
    assert NotRecognized.is_type(nothing.type)


def test_transcript_is_handled_and_switches_the_light(serve, spy):
    async def go():
        async with serve()[1] as server:
            return await ask(server, Transcript("Turn on the kitchen light.").event(), until="handled")

    reply = Handled.from_event(run(go())[-1])
    assert reply.text and spy.take(1, timeout_s=5) == {KITCHEN: {"state": "ON"}}


def test_wake_word_is_detected_in_streamed_audio(serve, store):
    pcm = utterance(0.5, piper(store, "Hey Jarvis."), 1.0)

    async def go():
        async with serve()[1] as server:
            return await ask(server, Detect(names=["hey_jarvis"]).event(), *audio_events(pcm), until="detection")

    assert Detection.from_event(run(go())[-1]).name == "hey_jarvis"


def test_box_keeps_switching_while_clients_drop_and_crowd_in(serve, store, spy):
    """Twenty clients at once and one that hangs up mid-audio, while the box hears its own command."""
    own = FileSource(pcm=utterance(0.4, piper(store, "Hey Jarvis."), 0.5, piper(store, "Turn off the bedroom light."),
                                   1.0))
    speech = utterance(0.3, piper(store, "Turn on the kitchen light."), 0.3)

    async def drop(server):
        c = await client(server)
        for e in [Transcribe().event(), *audio_events(speech)[:5]]:
            await c.write_event(e)
        await c.disconnect()  # gone before audio-stop

    async def go():
        a, context = serve()
        async with context as server:
            crowd = [ask(server, Recognize("turn on the kitchen light").event(), until="intent") for _ in range(10)]
            crowd += [ask(server, Transcribe().event(), *audio_events(speech), until="transcript") for _ in range(10)]
            return await asyncio.gather(a.run(own), drop(server), *crowd)

    done = run(go())
    assert all(r[-1].type in ("intent", "transcript") for r in done[2:])
    assert spy.take(1, timeout_s=5) == {BEDROOM: {"state": "OFF"}}


def test_the_port_taken_is_one_clear_line(make_assistant, store):
    a, _, _ = make_assistant()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = WyomingConfig(port=taken.getsockname()[1], zeroconf=False)
        with pytest.raises(ServeError) as e:
            run(WyomingServer(a, cfg, store).start())
    assert "already in use" in str(e.value) and "\n" not in str(e.value)


def test_zeroconf_announces_the_box_on_loopback_only(serve):
    from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

    found: dict[str, int] = {}

    class Seen(ServiceListener):
        def add_service(self, zc, type_, name):
            info = zc.get_service_info(type_, name, timeout=3000)
            found[name] = info.port if info else -1

        def update_service(self, zc, type_, name):
            pass

        def remove_service(self, zc, type_, name):
            pass

    async def go():
        async with serve(zeroconf=True)[1] as server:
            browser_zc = Zeroconf(interfaces=["127.0.0.1"])  # nothing leaves the machine
            browser = ServiceBrowser(browser_zc, "_wyoming._tcp.local.", Seen())
            try:
                end = time.monotonic() + 10
                while not found and time.monotonic() < end:
                    await asyncio.sleep(0.1)
            finally:
                browser.cancel()
                await asyncio.to_thread(browser_zc.close)
            return server.port

    port = run(go())
    assert found == {"Voice assistant demo._wyoming._tcp.local.": port}


def test_latency_the_service_adds_over_the_pipeline(make_assistant, store):
    pcm = utterance(0.3, piper(store, "Set the living room lamp to 30 percent."), 0.3)

    report = run(bench_latency(make_assistant()[0], store, pcm))
    print("\n" + report["text"])
    assert report["added_ms"] < 1000


def test_the_port_taken_stops_the_command_with_one_line(broker, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code = main(["serve", "--mqtt", broker.url, "--uri", f"tcp://127.0.0.1:{taken.getsockname()[1]}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: cannot serve Wyoming") and "already in use" in err
    assert len(err.splitlines()) == 1


def test_clients_past_the_limit_are_refused_and_silent_ones_dropped(serve):
    async def go():
        async with serve(max_clients=2, idle_timeout_s=0.5)[1] as server:
            first, second = await client(server), await client(server)
            await asyncio.sleep(0.1)  # both taken in
            refused = await (await client(server)).read_event()  # told so as soon as it connects
            await asyncio.sleep(1.0)  # past the idle timeout: both closed by the server
            dropped = [await first.read_event(), await second.read_event()]
            return refused, dropped, await ask(server, Describe().event(), until="info")

    refused, dropped, later = run(go())
    assert refused.type == "error" and refused.data["code"] == "busy"
    assert dropped == [None, None] and later[-1].type == "info"


HUGE = json.dumps({"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1},
                   "payload_length": MAX_PAYLOAD * 100}).encode() + b"\n"


@pytest.mark.parametrize("raw", [HUGE, b"not json\n", b'{"type": "transcript"}\n', b'{"data": {}}\n',
                                 (b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 3, "channels": 1}, '
                                  b'"payload_length": 3}\nabc')],
                         ids=["huge", "not-json", "no-text", "no-type", "bad-audio"])
def test_a_huge_or_malformed_event_gets_an_error_and_ends_only_its_connection(serve, raw):
    async def go():
        async with serve()[1] as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(raw)
            await writer.drain()
            answer = json.loads(await reader.readline())
            writer.close()
            return answer, await ask(server, Describe().event(), until="info")

    answer, later = run(go())
    assert answer["type"] == "error" and later[-1].type == "info"


def test_run_serves_too_when_the_config_says_so(store, broker, spy, tmp_path):
    """One process: the box acts on its own audio while Home Assistant's describe is answered."""
    with socket.socket() as s:  # a port free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = home_file(tmp_path, EXAMPLE.read_text() + f"\n[wyoming]\nenabled = true\nport = {port}\nzeroconf = false\n")
    wav = tmp_path / "command.wav"
    write_wav(wav, utterance(0.4, piper(store, "Hey Jarvis."), 0.5, piper(store, "Turn on the kitchen light."), 8.0),
              SAMPLE_RATE)
    answers: list[str] = []

    async def describe_until_answered():
        for _ in range(300):
            try:
                async with AsyncTcpClient("127.0.0.1", port) as c:
                    await c.write_event(Describe().event())
                    answers.append((await c.read_event()).type)
                    return
            except OSError:
                await asyncio.sleep(0.05)

    home_assistant = threading.Thread(target=lambda: asyncio.run(describe_until_answered()))
    home_assistant.start()
    code = main(["run", "--config", str(config), "--mqtt", broker.url, "--input", str(wav),
                 "--output", str(tmp_path / "replies.wav")])
    home_assistant.join()
    assert code == 0 and answers == ["info"] and spy.take(1, timeout_s=5) == {KITCHEN: {"state": "ON"}}
