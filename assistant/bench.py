"""`assistant bench`: synthesized commands through the whole pipeline, timed per stage.

Latencies are measured from the end of speech: the endpoint hangover (audio the endpointer waits through
before it decides the user has stopped) plus the wall-clock time from that decision to the MQTT
acknowledgement and to the first reply audio. A private broker is always used, so no real light flips.
"""

from __future__ import annotations

import asyncio
import copy
import resource
import statistics
import tempfile
import time

import numpy as np

from .audio import echo
from .audio.health import echo_text
from .audio.io import FileSource, MemorySink, MicSource, has_microphone
from .broker import LocalBroker
from .config import Config
from .engines.load import Engines
from .events import EventBus, TurnMetrics
from .models import ModelStore
from .mqtt_link import MqttLink, listener
from .pipeline import Assistant
from .samples import espeak, piper, speak_with, trimmed, utterance
from .types import FRAME_SAMPLES, SAMPLE_RATE
from .wyoming_server import bench_latency


def commands_for(cfg: Config) -> list[str]:
    names = [d.name for d in cfg.device] or ["kitchen light"]
    out = []
    for i, n in enumerate(names):
        out += [f"Turn on the {n}.", f"Turn off the {n}.", f"Set the {n} to {20 + 10 * i} percent."]
    return out


# What people say every day that switches nothing: timed to the first reply audio.
EVERYDAY = ["Set a timer for five minutes.", "What time is it?", "How much time is left on my timer?"]


def private_link(cfg: Config, url: str) -> MqttLink:
    """A link to the benchmark's own broker, connected."""
    link = MqttLink(url, f"{cfg.mqtt.topic_prefix}/{cfg.site}/availability")
    link.start()
    link.wait_connected(5)
    return link


def collect_turns(bus: EventBus) -> list[TurnMetrics]:
    """Every turn's metrics, as the turns end."""
    turns: list[TurnMetrics] = []
    bus.subscribe(lambda ev: turns.append(ev.data["metrics"]) if ev.kind == "turn" else None)
    return turns


def paused_commands(assistant: Assistant, texts: list[str], voices: dict, bus: EventBus, seed: int = 0) -> dict:
    """Each command said with a pause of 0.3 to 0.5 s between two of its words (after the first two):
    how many were cut short, their turn taking less than all of the speech."""
    rng = np.random.default_rng(seed)
    turns = collect_turns(bus)
    cut = 0
    for voice, say in voices.items():
        for text in texts:
            words = text.split()
            at = int(rng.integers(2, len(words)))
            parts = [trimmed(say(" ".join(words[:at]))), trimmed(say(" ".join(words[at:])))]
            pause = float(rng.uniform(0.3, 0.5))
            before = len(turns)
            asyncio.run(assistant.run(FileSource(pcm=utterance(0.2, parts[0], pause, parts[1], 1.0)), awake=True))
            whole_s = (len(parts[0]) + len(parts[1])) / SAMPLE_RATE + pause
            cut += any(t.utterance_s < whole_s - 0.1 for t in turns[before:])
    for t in list(assistant.timers.timers.values()):
        assistant.timers.cancel(t)
    return {"commands": len(texts) * len(voices), "cut": cut}


def idle_cpu(assistant: Assistant, seconds: float = 20.0) -> float:
    """Fraction of one core spent listening for the wake word in quiet room noise."""
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 120).astype(np.int16)
    t = time.process_time()
    asyncio.run(assistant.run(FileSource(pcm=noise, tail_s=0)))
    return (time.process_time() - t) / seconds


def live_input(assistant: Assistant, spec: str, seconds: float = 10.0, echo_cancel: bool = False) -> dict:
    """The configured microphone, idle-listening through the conductor for `seconds`: the frames taken
    against those it should have given, and what was dropped (a pipeline too slow for the audio thread),
    reported lost by PortAudio (overflows) or opened again."""
    if spec.startswith("file:") or spec in ("silence", "none"):
        return {"device": spec, "unavailable": "audio.input_device is not a microphone"}
    if not has_microphone():
        return {"device": spec or "default", "unavailable": "no microphone here"}
    mic = MicSource(spec)
    if echo_cancel:  # no reply plays here: its cost on the microphone alone
        mic.echo, why = echo.make()
        mic.echo_off = why and f"the canceller cannot run ({why})"
    before = assistant.ears.heard_s

    async def listen() -> bool:
        task = asyncio.ensure_future(assistant.run(mic))
        deadline = time.monotonic() + 5
        while assistant.ears.heard_s == before and time.monotonic() < deadline:  # from its first frame
            await asyncio.sleep(0.01)
        heard = assistant.ears.heard_s > before
        if heard:
            await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return heard

    heard = asyncio.run(listen())
    if mic.echo is not None:
        mic.echo.close()
    if not heard:
        return {"device": mic.name, "unavailable": f"no audio from it within 5 s ({mic.missing})"}
    taken = round((assistant.ears.heard_s - before) * SAMPLE_RATE / FRAME_SAMPLES)
    return {**mic.stats(), "seconds": seconds, "frames": taken,
            "expected": round(seconds * SAMPLE_RATE / FRAME_SAMPLES)}


def _live_text(x: dict) -> str:
    if "unavailable" in x:
        return f"live microphone {x['device']!r}: not measured ({x['unavailable']})"
    return (f"live microphone {x['device']!r}: {x['frames']} frames taken in {x['seconds']:.0f} s "
            f"(about {x['expected']} expected), {x['dropped']} dropped, {x['overflows']} overflows, "
            f"opened again {x['reopened']} times" + (f"; {echo_text(x['echo_cancel'])}" if "echo_cancel" in x else ""))


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def run_bench(cfg: Config, store: ModelStore, repeat: int = 2) -> dict:
    loads = {}
    t = time.perf_counter()
    engines = Engines.load(cfg, store, audio=True, speech=False)
    loads["wake+vad+asr"] = time.perf_counter() - t
    t = time.perf_counter()
    engines.tts = Engines.load(cfg, store, audio=False, speech=True).tts
    loads["tts"] = time.perf_counter() - t
    speak_with(engines.tts, cfg.tts.voice, cfg.tts.length_scale)
    phrase = cfg.wake.entries()[0].phrase.title()
    voices = {"piper": lambda t: piper(store, t), "espeak": lambda t: espeak(t, "en-us", 150)}
    texts = commands_for(cfg) + EVERYDAY
    with LocalBroker() as broker, tempfile.TemporaryDirectory() as state:
        cfg.mqtt.url, cfg.state_dir = broker.url, state  # the timers it starts are not the user's
        link = private_link(cfg, broker.url)
        bus = EventBus()
        turns = collect_turns(bus)
        sink = MemorySink()
        assistant = Assistant(cfg, engines, link, sink, bus)
        prepared = asyncio.run(assistant.prepare_replies())  # as the box does at start
        asyncio.run(assistant.prepare_listening())
        missed, everyday = 0, []
        for _ in range(repeat):
            for voice, say in voices.items():
                for text in texts:
                    before = len(turns)
                    pcm = utterance(0.4, say(f"{phrase}."), 0.5, say(text), 0.2)
                    asyncio.run(assistant.run(FileSource(pcm=pcm)))
                    missed += len(turns) == before
                    if text in EVERYDAY:
                        everyday += turns[before:]
                        del turns[before:]
            for t in list(assistant.timers.timers.values()):
                assistant.timers.cancel(t)
        frames, cpu_wake = assistant.ears.frames, assistant.ears.cpu_s
        agreement = arbitration_figures(assistant, store, broker.url, turns + everyday,
                                        utterance(0.4, piper(store, f"{phrase}."), 0.5,
                                                  piper(store, "Turn on the kitchen light."), 0.2))
        wyoming = asyncio.run(bench_latency(assistant, store, pcm))
        idle = idle_cpu(assistant)
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the speech pipeline alone
        measured = len(turns)
        cut_short = paused_commands(assistant, texts[:-len(EVERYDAY)], voices, bus)
        del turns[measured:]  # the paused commands are counted on their own
        live = live_input(assistant, cfg.audio.input_device, echo_cancel=cfg.audio.echo_cancel)
        box_rss_mb = box_with_llm(assistant, cfg, voices["piper"], phrase)
        assistant.close()
        link.stop()
    if engines.brain is not None:  # the box's own LLM, if a command reached it: the figures load theirs
        engines.brain.close()
    llm = llm_figures(cfg, store, assistant.home.registry, engines.tts)
    data = report(turns, missed, loads, cpu_wake / max(frames, 1), idle, peak_rss_mb, cfg, everyday, cut_short)
    data["llm"], data["wyoming"], data["replies_prepared"], data["live_input"] = llm, wyoming, prepared, live
    data["arbitration"] = agreement
    if box_rss_mb is not None:
        data["peak_rss_box_with_llm_mb"] = box_rss_mb
        data["text"] += (f"\npeak RSS of the box with its LLM (asked {len(LLM_REQUESTS)} things only it answers, "
                         f"before the LLM figures): {box_rss_mb:.0f} MB")
    data["text"] += "\n" + _live_text(live) + "\n" + agreement["text"] + "\n" + wyoming["text"]
    data["text"] += "".join(_llm_text(x) for x in llm)
    if llm:  # every backend measured stays loaded until here, so this is an upper bound
        data["peak_rss_with_llm_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        data["text"] += f"\npeak RSS with the LLM figures measured: {data['peak_rss_with_llm_mb']:.0f} MB"
    return data


LLM_REQUESTS = ["It is too dark in the kitchen.", "How long do I boil an egg?"]  # a command, a long answer


def box_with_llm(assistant: Assistant, cfg: Config, say, phrase: str) -> float | None:
    """The box's peak memory once its own LLM has answered spoken requests no template understands (the
    reply synthesized too), measured before the LLM figures load backends of their own."""
    if cfg.llm.route == "templates":
        return None
    for text in LLM_REQUESTS:
        asyncio.run(assistant.run(FileSource(pcm=utterance(0.4, say(f"{phrase}."), 0.5, say(text), 0.2))))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def arbitration_figures(assistant: Assistant, store: ModelStore, url: str, alone: list[TurnMetrics],
                        pcm) -> dict:
    """How long the boxes take to agree on which one answers (wake word to decision), and how long the
    turn waited for it (the latency arbitration adds): alone (the commands above), with a second box that
    hears the command 6 dB lower, and with a box online that hears nothing. The last two at the speed of
    a microphone, as a live box hears; the second box shares this one's recogniser."""
    from .engines.vad_silero import SileroVad
    from .engines.wake_openwakeword import OpenWakeWord

    cfg = assistant.cfg
    mine: list[TurnMetrics] = []
    assistant.events.subscribe(lambda ev: mine.append(ev.data["metrics"]) if ev.kind == "turn" else None)
    other_cfg = copy.deepcopy(cfg)
    other_cfg.site = f"{cfg.site}-beside"
    other_cfg.llm.route = "templates"  # it only claims wake words: no second LLM in memory
    link = MqttLink(url, f"{cfg.mqtt.topic_prefix}/{other_cfg.site}/availability")
    link.start()
    link.wait_connected(5)
    theirs: list[dict] = []
    bus = EventBus()
    bus.subscribe(lambda ev: theirs.append(ev.data) if ev.kind == "arbitration" else None)
    other = Assistant(other_cfg, Engines(wake=OpenWakeWord(store, cfg.wake.entries()), vad=SileroVad(store),
                                         asr=assistant.engines.asr), link, None, bus)
    link.wait_subscribed(5)
    _wait(lambda: other_cfg.site in assistant.arbiter.peers())

    async def both():
        await asyncio.gather(assistant.run(FileSource(pcm=pcm, paced=True)),
                             other.run(FileSource(pcm=(pcm // 2), paced=True)))
    asyncio.run(both())
    two = mine[-1:]
    other.close()
    link.stop()
    silent = f"{cfg.mqtt.topic_prefix}/{cfg.site}-elsewhere/availability"
    peer = listener(url, [silent], lambda *a: None)
    peer.publish(silent, "online", qos=1, retain=True).wait_for_publish(5)
    _wait(lambda: f"{cfg.site}-elsewhere" in assistant.arbiter.peers())
    asyncio.run(assistant.run(FileSource(pcm=pcm, paced=True)))
    elsewhere = mine[-1:]
    peer.publish(silent, "", qos=1, retain=True).wait_for_publish(5)
    peer.loop_stop()
    peer.disconnect()

    def ms(values) -> float | None:
        v = [x for x in values if x is not None]
        return round(statistics.median(v) * 1000, 1) if v else None

    data = {"window_ms": cfg.arbitration.window_ms, "enabled": cfg.arbitration.enabled,
            "alone": {"decision_ms": ms(t.agree_s for t in alone), "turn_wait_ms": ms(t.agree_wait_s for t in alone)},
            "two_boxes": {"decision_ms": ms(t.agree_s for t in two), "turn_wait_ms": ms(t.agree_wait_s for t in two),
                          "other_decision_ms": theirs[-1]["waited_ms"] if theirs else None,
                          "other_won": theirs[-1]["won"] if theirs else None},
            "box_online_elsewhere": {"decision_ms": ms(t.agree_s for t in elsewhere),
                                     "turn_wait_ms": ms(t.agree_wait_s for t in elsewhere)}}
    f = lambda v: "-" if v is None else f"{v:.1f} ms"  # noqa: E731
    a, t, e = data["alone"], data["two_boxes"], data["box_online_elsewhere"]
    rows = [("alone on the broker", a, ""),
            ("two boxes hear it, this one louder", t,
             f"   (the other: {f(t['other_decision_ms'])}, {'answered too!' if t['other_won'] else 'silent'})"),
            ("a box online that heard nothing", e, "")]
    data["text"] = "\n".join(
        [f"arbitration (window {data['window_ms']} ms): wake word to decision, and the turn's wait for it"] +
        [f"  {name:36} {f(r['decision_ms']):>9}   turn waited {f(r['turn_wait_ms'])}{more}" for name, r, more in rows])
    return data


def _wait(cond, timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < end:
        time.sleep(0.02)


def llm_figures(cfg: Config, store: ModelStore, registry, tts) -> list[dict]:
    """Time to first token, tokens/s and time to first spoken audio of an LLM answer, per backend that
    auto would use here (the others cannot be measured on this machine)."""
    if cfg.llm.route == "templates":
        return []
    from .engines.llm import select
    from .understand import llm

    out = []
    for name in select.choose(cfg.llm).order:
        try:
            backend = select.factory(name, cfg.llm, store)()
        except Exception as e:  # not installed, no device, unreachable: say so instead of a figure
            out.append({"backend": name, "unavailable": str(e)})
            continue
        try:
            out.append(llm.measure(backend, registry, tts, max_tokens=cfg.llm.max_answer_tokens))
        finally:
            backend.close()
    return out


def _llm_text(x: dict) -> str:
    if "unavailable" in x:
        return f"\nLLM {x['backend']}: unavailable here ({x['unavailable']})"
    audio = f", first spoken audio {x['first_audio_s'] * 1000:.0f} ms" if x.get("first_audio_s") else ""
    text = (f"\nLLM {x['backend']}: first token {x['ttft_s'] * 1000:.0f} ms, {x['tokens_per_s']} tokens/s"
            f"{audio} (answer to 'how long do I boil an egg')")
    cmd = x.get("command") or {}
    for mode in ("free", "constrained"):
        if mode in cmd:
            c = cmd[mode]
            text += (f"\nLLM {x['backend']} command, {mode}: first token {c['ttft_s'] * 1000:.0f} ms, "
                     f"{c['tokens_per_s']} tokens/s, whole line {c['line_s'] * 1000:.0f} ms ({c['line']!r} "
                     f"for {cmd['request']!r})")
    return text


def report(turns: list[TurnMetrics], missed: int, loads: dict, wake_frame_s: float, idle: float,
           peak_rss_mb: float, cfg: Config, everyday: list[TurnMetrics] = (), cut_short: dict | None = None) -> dict:
    """`turns`: the device commands; `everyday`: the timer and time requests, which publish nothing."""
    def stat(name: str, values: list[float | None]) -> dict:
        v = [x for x in values if x is not None]
        return {"median": statistics.median(v), "p90": pct(v, 0.9), "n": len(v)} if v else {"n": 0}

    stages = {
        "wake_per_80ms_frame_cpu": stat("wake", [wake_frame_s]),
        "endpoint_hangover": stat("hangover", [t.hangover_s for t in turns]),
        "asr": stat("asr", [t.asr_s for t in turns]),
        "understand": stat("understand", [t.understand_s for t in turns]),
        "mqtt_publish": stat("publish", [t.publish_s for t in turns]),
        "tts_first_audio": stat("tts", [t.tts_first_audio_s for t in turns]),
    }
    latency = {
        "end_of_speech_to_mqtt_publish": stat("eos_pub", [t.eos_to_publish_s for t in turns]),
        "end_of_speech_to_first_reply_audio": stat("eos_audio", [t.eos_to_first_audio_s for t in turns]),
        "everyday_end_of_speech_to_first_reply_audio": stat("everyday", [t.eos_to_first_audio_s for t in everyday]),
    }
    rtf = {
        "wake": wake_frame_s / 0.08,
        "asr": statistics.median([t.asr_s / t.utterance_s for t in turns]) if turns else None,
        "tts": (statistics.median([t.tts_total_s / t.reply_audio_s for t in turns if t.reply_audio_s])
                if turns else None),
    }
    data = {"commands": len(turns) + len(everyday) + missed, "turns": len(turns) + len(everyday),
            "missed_wake_or_endpoint": missed,
            "published": sum(t.publish_s is not None for t in turns), "stages_s": stages, "latency_s": latency,
            "real_time_factor": rtf, "model_load_s": loads, "idle_listening_cpu_fraction_of_one_core": idle,
            "peak_rss_mb": peak_rss_mb, "silence_ms": cfg.listen.silence_ms,
            "decided_early": sum(t.endpoint_reason == "early" for t in turns) / max(len(turns), 1)}
    if cut_short is not None:
        data["cut_short"] = cut_short
    data["text"] = _text(data)
    return data


def _text(d: dict) -> str:
    ms = lambda s: f"{s * 1000:7.1f} ms"  # noqa: E731
    lines = [f"commands {d['commands']} (piper and espeak-ng voices; lights, and timers and the time: "
             f"'everyday'), handled {d['turns']}, published {d['published']}, "
             f"missed {d['missed_wake_or_endpoint']}", "",
             f"{'stage':44} {'median':>10} {'p90':>10}"]
    for name, s in {**d["stages_s"], **d["latency_s"]}.items():
        if s["n"]:
            lines.append(f"{name:44} {ms(s['median']):>10} {ms(s['p90']):>10}")
    lines += ["", f"decided early (a whole command, before the pause was over): {d['decided_early'] * 100:.0f} %"]
    if "cut_short" in d:
        c = d["cut_short"]
        lines.append(f"cut short by an early decision, of {c['commands']} commands with a pause of 0.3-0.5 s "
                     f"inside: {c['cut']} ({c['cut'] / max(c['commands'], 1) * 100:.1f} %)")
    lines += ["", "real-time factors (processing time / audio time):"]
    lines += [f"  {k:10} {v:.4f}" for k, v in d["real_time_factor"].items() if v is not None]
    lines += ["", "model load: " + ", ".join(f"{k} {v:.2f} s" for k, v in d["model_load_s"].items()),
              f"CPU while idle-listening: {d['idle_listening_cpu_fraction_of_one_core'] * 100:.1f} % of one core",
              f"peak RSS (speech pipeline, before the LLM figures): {d['peak_rss_mb']:.0f} MB",
              f"(latency from end of speech includes the pause waited through: until a reading shows a whole "
              f"command, else {d['silence_ms']} ms)"]
    return "\n".join(lines)
