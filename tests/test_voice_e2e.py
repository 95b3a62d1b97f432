"""The whole pipeline on real models and a real broker: spoken WAV in, MQTT messages and spoken WAV out."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from conftest import run

from assistant.audio.io import FileSource
from assistant.audio.wav import load_pcm16k
from assistant.samples import espeak, piper, utterance
from assistant.types import SAMPLE_RATE

KITCHEN = "zigbee2mqtt/kitchen_light/set"
LAMP = "home/living_room_lamp/set"


def reply_text(engines, sink, hotwords: str | None = None) -> str:
    """What the assistant said, as the speech recogniser hears it (hinted with the home's words, if given)."""
    import soxr

    pcm = np.concatenate(sink.chunks).astype(np.float32) / 32768
    pcm16 = (soxr.resample(pcm, sink.rate, SAMPLE_RATE) * 32767).astype(np.int16)
    return engines.asr.transcribe(pcm16, hotwords).lower()


def command(store, text: str, voice: str = "piper") -> np.ndarray:
    say = (lambda t: piper(store, t)) if voice == "piper" else (lambda t: espeak(t, voice))
    return utterance(0.4, say("Hey Jarvis."), 0.5, say(text), 1.0)


def test_kitchen_light_turns_on(store, engines, make_assistant, spy):
    a, sink, events = make_assistant()
    run(a.run(FileSource(pcm=command(store, "Turn on the kitchen light."))))
    spy.settle()
    assert spy.on(KITCHEN) == [{"state": "ON"}]
    assert [t for t, _ in spy.device_messages()] == [KITCHEN]
    intents = spy.on("assistant/demo/intent/HassTurnOn")
    assert len(intents) == 1 and intents[0]["device_ids"] == ["kitchen_light"]
    assert "kitchen" in reply_text(engines, sink)


def test_living_room_lamp_to_30_percent(store, engines, make_assistant, spy):
    a, sink, _ = make_assistant()
    run(a.run(FileSource(pcm=command(store, "Set the living room lamp to 30 percent."))))
    spy.settle()
    # Home Assistant's JSON schema on a 0..255 scale: 30 % is 76
    assert spy.on(LAMP) == [{"state": "ON", "brightness": 76}]
    assert [t for t, _ in spy.device_messages()] == [LAMP]
    heard = reply_text(engines, sink)
    assert "30" in heard or "thirty" in heard


def test_espeak_voice_switches_the_bedroom_light_off(store, engines, make_assistant, spy):
    a, _, events = make_assistant()
    pcm = utterance(0.4, espeak("Hey Jarvis", "en-us", 140), 0.6, espeak("turn off the bedroom light", "en-us", 150), 1.0)
    run(a.run(FileSource(pcm=pcm)))
    spy.settle()
    assert spy.on("zigbee2mqtt/bedroom_light/set") == [{"state": "OFF"}], [e for e in events if e.kind == "transcript"]


def test_no_wake_word_publishes_nothing(store, make_assistant, spy):
    a, sink, events = make_assistant()
    pcm = utterance(0.4, piper(store, "Turn on the kitchen light."), 1.0, piper(store, "Set the living room lamp to 30 percent."), 1.0)
    run(a.run(FileSource(pcm=pcm)))
    spy.settle()
    assert spy.device_messages() == []
    assert not [e for e in events if e.kind in ("wake", "intent", "command")]
    assert sink.chunks == []


def test_unknown_device_gets_a_spoken_answer_and_no_message(store, engines, make_assistant, spy):
    a, sink, events = make_assistant()
    run(a.run(FileSource(pcm=command(store, "Turn on the coffee machine."))))
    spy.settle()
    assert spy.device_messages() == []
    assert not [t for t, _ in spy.messages if "/intent/" in t]
    unknown = [e.data["intent"].unknown_name for e in events if e.kind == "intent"]
    assert unknown and "coffee" in unknown[0]
    heard = reply_text(engines, sink)
    assert "know" in heard and "coffee" in heard, heard


def test_two_commands_in_one_file(store, make_assistant, spy):
    a, _, _ = make_assistant()
    pcm = np.concatenate([command(store, "Turn on the kitchen light."), np.zeros(SAMPLE_RATE, np.int16),
                          command(store, "Turn off the kitchen light.")])
    run(a.run(FileSource(pcm=pcm)))
    spy.settle()
    assert spy.on(KITCHEN) == [{"state": "ON"}, {"state": "OFF"}]


def test_broker_down_is_answered_not_crashed(store, engines, make_assistant, spy):
    from assistant.broker import free_port

    a, sink, events = make_assistant(url=f"mqtt://127.0.0.1:{free_port()}")
    a.link.command_timeout_s = 0.5
    run(a.run(FileSource(pcm=command(store, "Turn on the kitchen light."))))
    assert [e.data["message"] for e in events if e.kind == "error"], "the outage was not reported"
    assert "broker" in reply_text(engines, sink)
    assert spy.device_messages() == []


def test_cli_run_on_a_wav_file_of_any_rate(store, broker, spy, tmp_path):
    """The real command line: a 44.1 kHz stereo WAV in, MQTT out, replies in a WAV."""
    import soxr

    pcm = command(store, "Turn on the kitchen light.").astype(np.float32) / 32768
    stereo = np.repeat(soxr.resample(pcm, SAMPLE_RATE, 44100)[:, None], 2, axis=1)
    wav_in = tmp_path / "in.wav"
    import wave

    with wave.open(str(wav_in), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(44100)
        w.writeframes((stereo * 32767).astype("<i2").tobytes())
    out = tmp_path / "replies.wav"
    done = subprocess.run([sys.executable, "-m", "assistant", "run", "--input", str(wav_in), "--output", str(out),
                           "--mqtt", broker.url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "heard" in done.stdout and "zigbee2mqtt/kitchen_light/set" in done.stdout
    spy.settle()
    assert spy.on(KITCHEN) == [{"state": "ON"}]
    assert len(load_pcm16k(out)) > SAMPLE_RATE // 2


def test_the_homes_confirmations_are_ready_before_they_are_needed(store, engines, make_assistant, spy):
    """Said ahead at start, a confirmation plays as soon as the light is switched: the voice is not asked
    again, and what plays is what it made then."""
    a, sink, events = make_assistant()
    assert run(a.prepare_replies()) >= 6  # on and off for each light and room of the example home
    ready = a.player.kept["Turned on the kitchen light."]
    sentences = engines.tts.sentences
    engines.tts.sentences = lambda text: (_ for _ in ()).throw(AssertionError(f"synthesized {text!r} again"))
    try:
        run(a.run(FileSource(pcm=command(store, "Turn on the kitchen light."))))
    finally:
        engines.tts.sentences = sentences
    spy.settle()
    assert spy.on(KITCHEN) == [{"state": "ON"}]
    assert any(c is ready[0] for c in sink.chunks)
