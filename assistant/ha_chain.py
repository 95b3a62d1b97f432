"""`assistant bench --beside-home-assistant`: Home Assistant's own voice chain beside this one, on the same
spoken commands, taking turns so that the load on the machine hits both alike.

Their chain is what a Home Assistant voice setup runs: wyoming-faster-whisper (the same whisper tiny.en
files, int8, beam 1, 2 threads) for the transcript, hassil with home-assistant-intents (what Home
Assistant's default conversation agent matches) for the intent, an MQTT publish for the action, and
wyoming-piper (the same joe medium voice) for the reply. Both servers run from a virtualenv of their own
(`tools/wyoming-venv.sh` makes it), started here on free loopback ports with the local model files only.

Their end of speech to MQTT publish is measured from audio-stop (after the last chunk) to the
transcript, plus recognising the intent and publishing it; Home Assistant's voice activity detection
first waits through 0.7 s of silence before it stops the audio, which is given as a second figure.
Ours is the same as `assistant bench` measures it: the endpoint's hangover plus the time from its
decision to the broker's acknowledgement.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .audio.io import FileSource, MemorySink
from .bench import collect_turns, commands_for, pct, private_link
from .broker import LocalBroker, free_port
from .config import Config
from .engines.load import Engines
from .events import EventBus
from .models import ModelStore
from .mqtt_link import listener
from .pipeline import Assistant
from .samples import espeak, piper, utterance
from .types import SAMPLE_RATE

HA_SILENCE_S = 0.7  # Home Assistant's default: seconds of silence its VAD waits through before the command ends
PINNED = ("wyoming-faster-whisper==3.8.1", "wyoming-piper==2.5.2")
SERVERS = ("wyoming-faster-whisper", "wyoming-piper")
DEFAULT_VENV = Path(__file__).resolve().parent.parent / ".venv-wyoming"
MAKE_IT = "tools/wyoming-venv.sh"
CHUNK = 1024  # samples per audio chunk sent: 64 ms, as Home Assistant's satellites send


def wyoming_venv(given: str | None) -> Path:
    """--wyoming-venv, else $ASSISTANT_WYOMING_VENV, else .venv-wyoming beside the project."""
    return Path(given or os.environ.get("ASSISTANT_WYOMING_VENV") or DEFAULT_VENV)


def missing(venv: Path) -> str | None:
    """Why their chain cannot be measured with this virtualenv, in one line; None when it can."""
    for exe in SERVERS:
        if not (venv / "bin" / exe).exists():
            return (f"not measured: {exe} is not installed in {venv}; install with: {MAKE_IT} {venv} "
                    f"(or: python3 -m venv {venv} && {venv}/bin/pip install {' '.join(PINNED)})")
    return None


class ServerError(Exception):
    pass


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise ServerError(f"{proc.args[0]} exited ({proc.returncode}): " + " | ".join(tail))
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise ServerError(f"{proc.args[0]} did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s")


@contextmanager
def their_servers(venv: Path, store: ModelStore, threads: int = 2, beam_size: int = 1):
    """wyoming-faster-whisper and wyoming-piper on free loopback ports, from the local model files
    only (nothing is downloaded); yields their ports, (asr, tts)."""
    work = Path(tempfile.mkdtemp(prefix="assistant-ha-chain-"))
    asr_port, tts_port = free_port(), free_port()
    cmds = [
        [str(venv / "bin" / "wyoming-faster-whisper"), "--uri", f"tcp://127.0.0.1:{asr_port}",
         "--model", str(store.dir("whisper-tiny.en")), "--data-dir", str(work), "--stt-library", "faster-whisper",
         "--device", "cpu", "--compute-type", "int8", "--beam-size", str(beam_size), "--cpu-threads", str(threads),
         "--language", "en", "--local-files-only"],
        [str(venv / "bin" / "wyoming-piper"), "--uri", f"tcp://127.0.0.1:{tts_port}", "--voice", "en_US-joe-medium",
         "--data-dir", str(store.dir("piper-joe-medium")), "--local-files-only"],
    ]
    procs = []
    try:
        for cmd, port in zip(cmds, (asr_port, tts_port)):
            log = work / f"{Path(cmd[0]).name}.log"
            with open(log, "wb") as out:
                procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
            _wait_port(port, procs[-1], log, 120)
        yield asr_port, tts_port
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


async def transcribe(port: int, pcm: np.ndarray) -> tuple[str, float]:
    """The transcript, and the seconds from audio-stop (the last chunk sent) to it."""
    from wyoming.asr import Transcribe
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient

    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Transcribe(language="en").event())
        await c.write_event(AudioStart(SAMPLE_RATE, 2, 1).event())
        for i in range(0, len(pcm), CHUNK):
            await c.write_event(AudioChunk(SAMPLE_RATE, 2, 1, pcm[i:i + CHUNK].tobytes()).event())
        await c.write_event(AudioStop().event())
        t = time.perf_counter()
        while (e := await c.read_event()) is not None and e.type != "transcript":
            pass
        took = time.perf_counter() - t
    if e is None:
        raise ServerError("wyoming-faster-whisper closed the connection without a transcript")
    return e.data.get("text", "").strip(), took


async def first_audio(port: int, text: str) -> float:
    """Seconds from asking wyoming-piper to speak `text` to its first audio chunk."""
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize

    async with AsyncTcpClient("127.0.0.1", port) as c:
        t = time.perf_counter()
        await c.write_event(Synthesize(text=text).event())
        while (e := await c.read_event()) is not None and e.type != "audio-chunk":
            pass
        took = time.perf_counter() - t
        while e is not None and e.type != "audio-stop":  # the rest of it, so the server is idle again
            e = await c.read_event()
    return took


class DefaultAgent:
    """What Home Assistant's default conversation agent does with a transcript: hassil matching
    home-assistant-intents' English sentences against the home's device and area names."""

    def __init__(self, cfg: Config):
        from hassil import Intents, TextSlotList
        from home_assistant_intents import get_intents

        self.intents = Intents.from_dict(get_intents("en"))
        names = [(d.name, d.name, {"domain": d.domain}) for d in cfg.device]
        names += [(a, d.name, {"domain": d.domain}) for d in cfg.device for a in d.aliases]
        areas = sorted({d.area for d in cfg.device if d.area})
        self.slot_lists = {"name": TextSlotList.from_tuples(names or [("\u2400", "")], allow_template=False),
                           "area": TextSlotList.from_strings(areas or ["\u2400"], allow_template=False),
                           "floor": TextSlotList.from_strings(["\u2400"], allow_template=False)}

    def recognize(self, text: str):
        from hassil import recognize_best

        return recognize_best(text, self.intents, slot_lists=self.slot_lists, language="en")


REPLIES = {"HassTurnOn": "Turned on the light.", "HassTurnOff": "Turned off the light.",
           "HassLightSet": "Brightness set."}


def _stat(values: list[float]) -> dict:
    return {"median": statistics.median(values), "p90": pct(values, 0.9), "n": len(values)} if values else {"n": 0}


def run_beside(cfg: Config, store: ModelStore, venv: Path, repeat: int = 1) -> dict:
    """The device commands of `assistant bench`, each said by piper and espeak-ng, through their chain and
    through ours, taking turns (theirs first on one command, ours first on the next)."""
    why = missing(venv)
    if why:
        return {"not_measured": why, "text": why}
    engines = Engines.load(cfg, store, audio=True, speech=False)
    engines.tts = Engines.load(cfg, store, audio=False, speech=True).tts
    agent = DefaultAgent(cfg)
    phrase = cfg.wake.entries()[0].phrase.title()
    voices = {"piper": lambda t: piper(store, t), "espeak": lambda t: espeak(t, "en-us", 150)}
    texts = commands_for(cfg)
    ours: list[float] = []
    ours_stages = {"endpoint_hangover": [], "asr": [], "understand": [], "publish": []}
    theirs = {"asr": [], "understand": [], "publish": [], "tts_first_audio": [], "excluding": []}
    misheard, ours_missed, ours_unpublished = [], 0, []
    with (LocalBroker() as broker, tempfile.TemporaryDirectory() as state,
          their_servers(venv, store, cfg.asr.threads, cfg.asr.beam_size) as (asr_port, tts_port)):
        cfg.mqtt.url, cfg.state_dir = broker.url, state
        link = private_link(cfg, broker.url)
        bus = EventBus()
        turns = collect_turns(bus)
        heard: list[str] = []
        said = {"transcript": "heard", "reply": "said"}
        bus.subscribe(lambda ev: heard.append(f"{said[ev.kind]} {ev.data['text']!r}") if ev.kind in said else None)
        assistant = Assistant(cfg, engines, link, MemorySink(), bus)
        asyncio.run(assistant.prepare_replies())
        ha = listener(broker.url, ["homeassistant-bench/#"], lambda *a: None)

        def their_turn(command: np.ndarray) -> None:
            # what Home Assistant streams to speech to text after the wake word: the pause, the command and the
            # silence its VAD waits through
            text, asr_s = asyncio.run(transcribe(asr_port, utterance(0.5, command, HA_SILENCE_S)))
            t = time.perf_counter()
            result = agent.recognize(text)
            understand_s = time.perf_counter() - t
            if result is None or result.intent.name not in REPLIES:
                misheard.append(text)
                return
            name = result.entities["name"].value if "name" in result.entities else "light"
            t = time.perf_counter()
            ha.publish(f"homeassistant-bench/{name}/set", result.intent.name, qos=1).wait_for_publish(5)
            publish_s = time.perf_counter() - t
            theirs["asr"].append(asr_s)
            theirs["understand"].append(understand_s)
            theirs["publish"].append(publish_s)
            theirs["excluding"].append(asr_s + understand_s + publish_s)
            theirs["tts_first_audio"].append(asyncio.run(first_audio(tts_port, REPLIES[result.intent.name])))

        def our_turn(wake: np.ndarray, command: np.ndarray) -> None:
            nonlocal ours_missed
            before, said = len(turns), len(heard)
            asyncio.run(assistant.run(FileSource(pcm=utterance(0.4, wake, 0.5, command, 0.2))))
            done = [t for t in turns[before:] if t.eos_to_publish_s is not None]
            ours_missed += len(turns) == before
            if len(turns) > before and not done:
                ours_unpublished.append(" / ".join(heard[said:]))
            ours.extend(t.eos_to_publish_s for t in done)
            for t in done:
                for k, v in (("endpoint_hangover", t.hangover_s), ("asr", t.asr_s), ("understand", t.understand_s),
                             ("publish", t.publish_s)):
                    ours_stages[k].append(v)

        # one of each first, unmeasured: both sides' models warm
        warm = piper(store, texts[0])
        asyncio.run(transcribe(asr_port, warm))
        asyncio.run(first_audio(tts_port, "Ready."))
        asyncio.run(assistant.run(FileSource(pcm=utterance(0.4, piper(store, f"{phrase}."), 0.5, warm, 0.2))))
        del turns[:]
        k = 0
        for _ in range(repeat):
            for say in voices.values():
                wake = say(f"{phrase}.")
                for text in texts:
                    command = say(text)
                    if k % 2 == 0:
                        their_turn(command)
                        our_turn(wake, command)
                    else:
                        our_turn(wake, command)
                        their_turn(command)
                    k += 1
            for t in list(assistant.timers.timers.values()):
                assistant.timers.cancel(t)
        ha.loop_stop()
        ha.disconnect()
        assistant.close()
        link.stop()
    return report(ours, theirs, k, misheard, ours_missed, ours_unpublished, ours_stages)


def report(ours: list[float], theirs: dict, commands: int, misheard: list[str], ours_missed: int = 0,
           ours_unpublished: list[str] = (), ours_stages: dict | None = None) -> dict:
    including = [x + HA_SILENCE_S for x in theirs["excluding"]]
    data = {
        "commands": commands, "ha_silence_s": HA_SILENCE_S,
        "ours_end_of_speech_to_mqtt_publish": _stat(ours),
        "ours_stages": {k: _stat(v) for k, v in (ours_stages or {}).items()},
        "ours_missed": ours_missed, "ours_not_published": list(ours_unpublished),
        "theirs_stages": {k: _stat(v) for k, v in theirs.items() if k != "excluding"},
        "theirs_end_of_speech_to_mqtt_publish_excluding_silence": _stat(theirs["excluding"]),
        "theirs_end_of_speech_to_mqtt_publish_including_silence": _stat(including),
        "theirs_not_understood": misheard,
    }
    if ours and including:
        o = statistics.median(ours)
        data["ratio_ours_over_theirs_including_silence"] = o / statistics.median(including)
        data["ratio_ours_over_theirs_excluding_silence"] = o / statistics.median(theirs["excluding"])
    data["text"] = _text(data)
    return data


def _text(d: dict) -> str:
    ms = lambda s: f"{s * 1000:7.1f} ms"  # noqa: E731

    def row(name: str, s: dict, width: int = 52) -> str:
        return f"{name:{width}} {ms(s['median']):>10} {ms(s['p90']):>10} {s['n']:>4}" if s["n"] else f"{name:{width}} -"

    lines = [f"beside Home Assistant's chain (wyoming-faster-whisper, hassil, wyoming-piper): {d['commands']} "
             f"commands, taking turns", "", f"{'end of speech to MQTT publish':52} {'median':>10} {'p90':>10} {'n':>4}",
             row("ours", d["ours_end_of_speech_to_mqtt_publish"]),
             row(f"theirs, with the {d['ha_silence_s']} s silence wait",
                 d["theirs_end_of_speech_to_mqtt_publish_including_silence"]),
             row("theirs, without it", d["theirs_end_of_speech_to_mqtt_publish_excluding_silence"]), "",
             "our stages:"]
    ours_names = {"endpoint_hangover": "endpoint hangover (audio after the end of speech)",
                  "asr": "speech to text", "understand": "understand", "publish": "MQTT publish"}
    lines += ["  " + row(ours_names[k], s, 50) for k, s in d["ours_stages"].items()]
    if d["ours_stages"]:
        lines.append("  (they overlap: speech to text starts while the endpoint is still waiting)")
    lines += ["", "their stages:"]
    names = {"asr": "audio-stop to transcript", "understand": "hassil recognise", "publish": "MQTT publish",
             "tts_first_audio": "piper first audio (not in the figure above)"}
    lines += ["  " + row(names[k], s, 50) for k, s in d["theirs_stages"].items()]
    if "ratio_ours_over_theirs_including_silence" in d:
        lines += ["", f"ours / theirs (medians): {d['ratio_ours_over_theirs_including_silence']:.2f} with their "
                      f"silence wait, {d['ratio_ours_over_theirs_excluding_silence']:.2f} without it"]
    if d["theirs_not_understood"]:
        lines.append(f"theirs not understood ({len(d['theirs_not_understood'])}): "
                     + "; ".join(repr(t) for t in d["theirs_not_understood"]))
    if d["ours_missed"]:
        lines.append(f"ours missed (no wake word or no end of the command): {d['ours_missed']}")
    if d["ours_not_published"]:
        lines.append(f"ours not published ({len(d['ours_not_published'])}): " + "; ".join(d["ours_not_published"]))
    return "\n".join(lines)
