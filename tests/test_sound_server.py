"""The live microphone and speaker, through a real sound server (PulseAudio, tests/sound_server.py) reached
by PortAudio and ALSA as on a box: spoken commands in, the light on the broker, the spoken reply heard at
the speaker; and a microphone and a speaker that are taken away and come back while the box runs."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from conftest import EXAMPLE, home_file
from sound_server import RATE, SPEAKER_RATE
from test_home_live import wait_for

from assistant import doctor
from assistant.audio import health, io
from assistant.config import state_dir
from assistant.samples import piper, utterance
from assistant.startup import load_config

KITCHEN = "zigbee2mqtt/kitchen_light/set"


def onset(pcm: np.ndarray, level: int = 2000) -> int | None:
    """The first sample louder than `level`."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > level)
    return int(loud[0]) if len(loud) else None


def tone(seconds: float, rate: int, freq: float = 880.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 12000).astype(np.int16)


def heard(engines, pcm: np.ndarray) -> str:
    """What the speaker played, as the box's own recogniser hears it."""
    import soxr

    pcm16 = (soxr.resample(pcm.astype(np.float32) / 32768, SPEAKER_RATE, RATE) * 32767).astype(np.int16)
    return engines.asr.transcribe(pcm16, None).lower()


def command(store, text: str) -> np.ndarray:
    return utterance(0.4, piper(store, "Hey Jarvis."), 0.5, piper(store, text), 1.0)


async def until(check, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


def test_microphone_and_speaker_through_portaudio(sound_server):
    """The plumbing alone: what is said into the room arrives in 80 ms frames, in order and on time; what
    is played comes out of the speaker. The latencies are measured (printed with -s)."""
    mic, sink = io.MicSource("mic"), io.SpeakerSink("speaker")
    click = tone(0.2, RATE)

    async def go():
        frames: list[tuple[float, np.ndarray]] = []

        async def listen():
            async for f in mic.frames():
                frames.append((time.monotonic(), f))

        task = asyncio.ensure_future(listen())
        with sound_server.talk() as room:
            assert await until(lambda: len(frames) >= 5, 5), "no frames from the microphone"
            room.say(click)
            assert await until(lambda: room.said_at and any(f.any() for _, f in frames), 5)
            await sink.play(tone(0.3, SPEAKER_RATE, 440), SPEAKER_RATE)  # opens the stream
            await asyncio.sleep(0.5)
            played_at = time.monotonic()
            await sink.play(tone(0.3, SPEAKER_RATE), SPEAKER_RATE)
            await asyncio.sleep(0.5)
        task.cancel()
        return frames, room.said_at[0], played_at

    frames, said_at, played_at = asyncio.run(go())
    sink.close()
    pcm = np.concatenate([f for _, f in frames])
    got = next(t for t, f in frames if f.any())
    assert all(len(f) == 1280 for _, f in frames) and mic.dropped == 0 and mic.reopened == 0
    start = onset(pcm) - onset(click)
    assert np.array_equal(pcm[start:start + len(click)], click)  # sample for sample
    out_at = sound_server.speaker.sound_at(played_at - 0.2)
    assert out_at is not None, "the speaker played nothing"
    mic_ms, speaker_ms = (got - said_at) * 1000, (out_at - played_at) * 1000
    print(f"\nthrough the sound server: microphone {mic_ms:.0f} ms (room to frame, frames of 80 ms), "
          f"speaker {speaker_ms:.0f} ms (play() to the speaker)")
    assert mic_ms < 500 and -50 < speaker_ms < 500


def test_the_microphone_stops_when_told_to_as_a_frame_comes(sound_server):
    """Cancelling what reads the microphone ends it and closes the device, also when the cancel comes in
    the same turn of the event loop as a frame. (Python 3.11's asyncio.wait_for then handed the frame
    over and lost the cancel: the reader went on for ever, and a box could not be stopped.)"""
    mic = io.MicSource("mic")

    async def go():
        frames: list[np.ndarray] = []

        async def listen():
            async for f in mic.frames():
                frames.append(f)

        task = asyncio.ensure_future(listen())
        with sound_server.talk():
            assert await until(lambda: len(frames) >= 2, 5), "no frames from the microphone"
            time.sleep(0.3)  # the loop held: the frames heard meanwhile wait in its queue of callbacks
            asyncio.get_running_loop().call_soon(task.cancel)  # behind them: in the turn that hands one over
            done, _ = await asyncio.wait([task], timeout=2)
            while not task.done():  # the lost cancel, once more, so that the test ends
                task.cancel()
                await asyncio.sleep(0.1)
        return bool(done)

    assert asyncio.run(go()), "the microphone was still read after it was cancelled"
    assert mic.stream is None, "the microphone was left open"


def test_spoken_command_through_the_sound_server(sound_server, store, engines, make_assistant, spy):
    """"Hey Jarvis, turn on the kitchen light" said into the microphone switches the light on the broker,
    and the reply comes out of the speaker, on PulseAudio's default devices (`pulse`)."""
    a, sink, events = make_assistant(sink=io.SpeakerSink("pulse"))
    mic = io.MicSource("pulse")

    pcm = command(store, "Turn on the kitchen light.")

    async def go():
        task = asyncio.ensure_future(a.run(mic))
        with sound_server.talk() as room:
            room.say(pcm)
            assert await until(lambda: any(e.kind == "turn" for e in events), 30), [e.kind for e in events]
            await asyncio.sleep(0.5)  # the last of the reply leaves the speaker
        task.cancel()
        return room.said_at[0] + len(pcm) / RATE - 1.0  # the end of speech (1 s of silence follows)

    said_at = time.monotonic()
    end_of_speech = asyncio.run(go())
    sink.close()
    spy.settle()
    assert spy.on(KITCHEN) == [{"state": "ON"}]
    reply = heard(engines, sound_server.speaker.pcm(since=said_at))
    assert "kitchen" in reply, reply
    assert mic.dropped == 0, mic.stats()
    turn = next(e.data["metrics"] for e in events if e.kind == "turn")
    first = sound_server.speaker.sound_at(end_of_speech, level=500)
    print(f"\nend of speech into the microphone to the first sound at the speaker (the 'done' sound): "
          f"{(first - end_of_speech) * 1000:.0f} ms; the turn's own figures from the end of speech: the "
          f"light {turn.eos_to_publish_s * 1000:.0f} ms, the reply's first audio "
          f"{turn.eos_to_first_audio_s * 1000:.0f} ms")


def test_microphone_unplugged_and_back_mid_run(sound_server, store, engines, make_assistant, spy, tmp_path,
                                               monkeypatch):
    """The microphone goes away while the box listens and comes back: the box says what is missing,
    listens again without a restart, and answers the next command."""
    import socket

    notify_path = tmp_path / "notify"
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    manager.bind(str(notify_path))
    manager.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_path))
    sound_server.quiet_default_source()
    a, _, events = make_assistant(sink=io.SpeakerSink("speaker"))
    mic = io.MicSource("mic")

    async def go():
        task = asyncio.ensure_future(a.run(mic))
        report = asyncio.ensure_future(health.keep(mic, a.player.sink, state_dir(a.cfg), every_s=0.1))
        with sound_server.talk() as room:
            assert await until(lambda: a.ears.frame_at is not None, 5)
            await asyncio.sleep(0.5)
            sound_server.remove_mic()
            assert await until(lambda: mic.missing, 5), "the microphone's going was not noticed"
            announced = time.monotonic()
            a.presence.inbox.queue.put(("say", "Dinner is ready."))  # the rest of the box goes on meanwhile
            assert await until(lambda: any(e.kind == "announcement" for e in events) and not a.busy, 10)
            assert mic.missing and a.alive() is None, mic.stats()
            assert sound_server.speaker.sound_at(announced) is not None, "the announcement was not played"
            sound_server.add_mic()
            assert await until(lambda: mic.reopened == 1 and not mic.missing, 5), mic.stats()
            spoken_from = time.monotonic()
            room.say(command(store, "Turn on the kitchen light."))
            assert await until(lambda: any(e.kind == "turn" for e in events), 30), [e.kind for e in events]
            await asyncio.sleep(0.5)
        task.cancel()
        report.cancel()
        return spoken_from

    spoken_from = asyncio.run(go())
    live = [f for f in doctor.check_live_audio(a.cfg)]
    assert [f.level for f in live] == ["ok", "ok"], live
    assert "microphone 'mic': working; opened again 1 times, 0 frames dropped" in live[0].text, live
    a.player.sink.close()
    spy.settle()
    assert spy.on(KITCHEN) == [{"state": "ON"}]
    assert "kitchen" in heard(engines, sound_server.speaker.pcm(since=spoken_from))
    said = []
    while True:
        try:
            said.append(manager.recv(4096).decode())
        except BlockingIOError:
            break
    manager.close()
    assert any(m.startswith("STATUS=audio input mic stopped") for m in said), said
    assert "STATUS=listening on mic" in said, said


def test_speaker_unplugged_and_back(sound_server):
    """Gone and back between two replies: the next reply opens it again and is heard. Gone while nothing
    can replace it: that reply fails, and the one after it is heard."""
    sink = io.SpeakerSink("speaker")

    async def go():
        await sink.play(tone(0.3, SPEAKER_RATE), SPEAKER_RATE)
        sound_server.remove_speaker()
        sound_server.add_speaker()
        t = time.monotonic()
        await sink.play(tone(0.3, SPEAKER_RATE), SPEAKER_RATE)
        await asyncio.sleep(0.5)
        assert sound_server.speaker.sound_at(t) is not None, "the reply after the speaker came back"
        assert sink.failed == 0  # its old stream was opened again, by the sink or by ALSA's pulse plugin
        sound_server.remove_speaker()
        with pytest.raises(Exception, match="host error|Input/output|matching"):
            await sink.play(tone(0.3, SPEAKER_RATE), SPEAKER_RATE)
        assert sink.failed == 1 and sink.missing
        sound_server.add_speaker()
        t = time.monotonic()
        await sink.play(tone(0.3, SPEAKER_RATE), SPEAKER_RATE)
        await asyncio.sleep(0.5)
        assert sound_server.speaker.sound_at(t) is not None

    asyncio.run(go())
    sink.close()
    assert sink.reopened >= 1 and sink.missing is None, sink.stats()


def test_doctor_sees_the_devices_and_the_one_missing(sound_server, tmp_path):
    """`assistant doctor` lists what PortAudio sees, says the configured devices are there and records the
    microphone's level; with the microphone gone, it says it cannot record from it."""
    cfg = load_config(home_file(tmp_path, '[audio]\ninput_device = "mic"\noutput_device = "speaker"\n'))
    with sound_server.talk() as room:
        room.say(tone(2.0, RATE))
        found = {f.text: f.level for f in doctor.check_audio(cfg)}
    assert found["audio.input_device = 'mic' is present: 'mic'"] == "ok", found
    assert found["audio.output_device = 'speaker' is present: 'speaker'"] == "ok", found
    assert any(text.startswith("microphone level -") and level == "ok" for text, level in found.items()), found
    sound_server.quiet_default_source()
    sound_server.remove_mic()
    found = doctor.check_audio(cfg)
    assert any(f.level == "fail" and "mic" in f.text for f in found), found


def test_bench_counts_the_live_microphone(sound_server, make_assistant, tmp_path):
    """`assistant bench`'s line on the live microphone: frames taken against those due, and dropped."""
    from assistant.bench import _live_text, live_input

    a, _, _ = make_assistant()
    with sound_server.talk():
        live = live_input(a, "mic", seconds=2.0)
    assert live["dropped"] == 0 and live["reopened"] == 0 and abs(live["frames"] - live["expected"]) <= 3, live
    assert _live_text(live).startswith("live microphone 'mic': "), _live_text(live)
    assert "not measured" in _live_text(live_input(a, "silence"))


def test_the_service_command_on_the_default_devices(sound_server, store, broker, spy, tmp_path):
    """`assistant run` as the service runs it, with the system's default microphone and speaker (ALSA's
    default is PulseAudio's when a server runs): a spoken command switches the light through the echo
    canceller (on by default), and the running box's audio report is in its state directory, where
    `assistant doctor` reads it."""
    import os
    import signal
    import subprocess
    import sys

    state = tmp_path / "service-state"
    config = home_file(tmp_path, EXAMPLE.read_text())
    proc = subprocess.Popen([sys.executable, "-m", "assistant", "run", "--config", str(config), "--mqtt", broker.url],
                            env={**os.environ, "STATE_DIRECTORY": str(state)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        with sound_server.talk() as room:
            deadline = time.monotonic() + 60
            while not (state / health.FILE).exists():  # written once the microphone is opened
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.1)
            time.sleep(1.0)
            room.say(command(store, "Turn on the kitchen light."))
            assert wait_for(lambda: spy.on(KITCHEN), 30), "the light was not switched"
        live = doctor.check_live_audio(load_config(home_file(tmp_path, f'state_dir = "{state}"\n')))
        assert [f.level for f in live] == ["ok", "ok", "ok"] and "(the running assistant)" in live[0].text, live
        assert "microphone 'default': working" in live[0].text, live
        assert "echo cancellation: " in live[1].text and ", 0 failed, 0 dropped" in live[1].text, live  # on by default
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
