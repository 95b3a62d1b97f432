"""What each `assistant` subcommand does."""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import ExitStack, nullcontext
from pathlib import Path

from . import bad_config
from .audio import health
from .audio.io import FileSource, WavSink, cancel_echo, has_microphone, open_sink, open_source
from .audio.wav import load_pcm16k, write_wav
from .broker import LocalBroker, reachable
from .config import Config, ConfigError, state_dir
from .console import printer
from .engines.load import Engines
from .events import EventBus
from .mqtt_link import MqttLink, parse_url
from .mqtt_recorder import MqttRecorder
from .pipeline import Assistant
from .sdnotify import Heartbeat, Watched, notify
from .startup import check_wake_models, config_from, store_from


def connect(cfg: Config, wait_s: float) -> MqttLink:
    link = MqttLink.from_config(cfg.mqtt, f"{cfg.mqtt.topic_prefix}/{cfg.site}/availability")
    link.start()
    if not link.wait_connected(wait_s):
        print(f"warning: {link.status()}; retrying in the background, commands meanwhile are answered "
              f"as failed", file=sys.stderr)
    return link


def build(cfg: Config, args, sink, audio: bool = True, wait_s: float = 2.0,
          speech: bool = False) -> tuple[Assistant, MqttLink]:
    """`speech`: load the voice even without a sink (it speaks to other programs)."""
    store = store_from(args, cfg)
    engines = Engines.load(cfg, store, audio=audio, speech=speech or sink is not None)
    link = connect(cfg, wait_s)
    bus = EventBus()
    bus.subscribe(printer())
    return Assistant(cfg, engines, link, sink, bus), link


def run(args, cfg: Config | None = None) -> int:
    try:
        cfg = cfg or config_from(args)
    except ConfigError as e:  # the service has no screen: the error is said aloud and published
        return bad_config.report(args, e)
    try:
        check_wake_models(cfg)
    except ConfigError as e:  # the config loads: its own broker and voice say so
        return bad_config.report(args, e, cfg)
    if args.input:
        source = FileSource(args.input)
        sink = WavSink(args.output)
    else:
        # Live, e.g. as the systemd service: READY=1 comes with the first audio frame.
        mic = open_source(cfg.audio.input_device)
        sink = WavSink(args.output) if args.output else open_sink(cfg.audio.output_device)
        if cfg.audio.echo_cancel:
            cancel_echo(mic, sink, cfg.audio.noise_suppression, cfg.audio.auto_gain, cfg.audio.echo_delay_ms)
        source = Watched(mic, f"listening on {cfg.audio.input_device or 'default'}")
    notify("STATUS=loading models")
    assistant, link = build(cfg, args, sink)
    assistant.events.subscribe(lambda e: e.kind == "state" and notify(f"STATUS={e.data['state']}"))
    heartbeat = Heartbeat([assistant.alive,
                           lambda: None if link.healthy() else "the MQTT link's network thread is not running"])

    async def live():
        heartbeat.start(asyncio.get_running_loop())
        prepared = asyncio.ensure_future(assistant.prepare_replies())  # beside the listening
        weighed = asyncio.ensure_future(assistant.prepare_listening())
        # what the microphone and speaker go through, for `assistant doctor`
        report = None if args.input else asyncio.create_task(health.keep(source, sink, state_dir(cfg)))
        try:
            async with wyoming_beside(assistant, cfg, args):
                await assistant.run(source)
            await prepared
            await weighed
        finally:
            if report is not None:
                report.cancel()

    try:
        asyncio.run(live())
    finally:
        heartbeat.stop()
        sink.close()
        assistant.close()
        link.stop()
    if args.output and sink.rate:
        print(f"replies written to {args.output}")
    return 0


def wyoming_beside(assistant: Assistant, cfg: Config, args):
    """Home Assistant's voice services from the same process and models, when [wyoming] asks for them."""
    if not cfg.wyoming.enabled:
        return nullcontext()
    from .wyoming_server import serving

    return serving(assistant, cfg.wyoming, store_from(args, cfg))


def serve(args) -> int:
    """Home Assistant's voice services only: no microphone, no speaker."""
    from .wyoming_events import from_uri
    from .wyoming_server import serving

    cfg = config_from(args)
    if args.uri:
        from_uri(cfg.wyoming, args.uri)
    assistant, link = build(cfg, args, None, speech=True)

    async def forever():
        async with serving(assistant, cfg.wyoming, store_from(args, cfg)) as server:
            announced = f", announced as {server.name!r}" if cfg.wyoming.zeroconf else ""
            print(f"Wyoming services on {server.uri}{announced}")
            await asyncio.Event().wait()

    try:
        asyncio.run(forever())
    finally:
        assistant.close()
        link.stop()
    return 0


def ask(args) -> int:
    cfg = config_from(args)
    sink = WavSink(args.output) if args.output else None
    assistant, link = build(cfg, args, sink, audio=False, wait_s=cfg.mqtt.command_timeout_s)

    assistant.home.settle()  # a one-shot run: let retained announcements and states arrive first

    async def go():
        outcome = await assistant.handle_text(args.text)
        return outcome, await assistant.speak(outcome.speech or outcome.reply)

    try:
        outcome, reply = asyncio.run(go())
    finally:
        if sink:
            sink.close()
        assistant.close()
        link.stop()
    print(reply)
    return 0 if outcome.ok else 1


def say(args) -> int:
    import numpy as np

    from .engines.tts_piper import PiperTts

    tts = PiperTts(store_from(args), args.voice)
    write_wav(args.output, np.concatenate(list(tts.sentences(args.text))), tts.sample_rate)
    return 0


def transcribe(args) -> int:
    from .engines.asr_faster_whisper import FasterWhisper
    from .home.registry import Registry

    cfg = config_from(args)
    asr = FasterWhisper(store_from(args, cfg), cfg.asr.model, cfg.asr.threads, cfg.asr.beam_size,
                       cfg.asr.window_s)
    hints = Registry.from_config(cfg.device).asr_hint() if cfg.asr.hints else None
    print(asr.transcribe(load_pcm16k(args.wav), hints))
    return 0


def demo(args) -> int:
    """The example home, end to end, on whatever this machine has."""
    from .samples import demo_command

    cfg = config_from(args)
    with ExitStack() as stack:
        host, port, _ = parse_url(cfg.mqtt.url)
        if not reachable(host, port):
            broker = stack.enter_context(LocalBroker())
            cfg.mqtt.url = broker.url
            print(f"no broker at {host}:{port}; started a private mosquitto at {broker.url}")
        spy = stack.enter_context(MqttRecorder(cfg.mqtt.url))
        if has_microphone():
            print("listening on the microphone: say \"hey jarvis\", pause, then \"turn on the kitchen light\"")
            args.input, args.output = None, None
        else:
            store = store_from(args, cfg)
            wav = Path(store.root) / "samples" / "demo-command.wav"
            demo_command(store, wav)
            print(f"no microphone here: playing {wav} (\"hey jarvis ... turn on the kitchen light ... "
                  f"set the living room lamp to 30 percent\")")
            args.input = str(wav)
        run(args, cfg)
        spy.settle()
        print("messages seen on the broker:")
        for topic, payload in spy.messages:
            print(f"  {topic} {payload}")
    return 0


def bench(args) -> int:
    if args.beside_home_assistant:
        from .ha_chain import missing, run_beside, wyoming_venv

        venv = wyoming_venv(args.wyoming_venv)
        why = missing(venv)  # said before any model is loaded
        report = ({"not_measured": why, "text": why} if why else
                  run_beside(config_from(args), store_from(args), venv, repeat=args.repeat or 1))
        print(json.dumps(report, indent=2) if args.json else report["text"])
        return 0
    from .bench import run_bench

    report = run_bench(config_from(args), store_from(args), repeat=args.repeat or 2)
    print(json.dumps(report, indent=2) if args.json else report["text"])
    return 0


def accuracy(args) -> int:
    from .accuracy import CLEAN, NOISE_DIR, SNRS, LabelError, Room, run_accuracy, run_labelled

    noise_dir = Path(args.noise_dir) if args.noise_dir else NOISE_DIR
    Room(noise_dir)  # no noise here: said before the models load
    if args.labelled:
        snrs = args.snr or (CLEAN, *SNRS)
        try:
            report = run_labelled(config_from(args), store_from(args), args.labelled, snrs=snrs, limit=args.limit,
                                  non_commands=args.non_commands, noise_dir=noise_dir, seed=args.seed,
                                  llm=args.llm, reverb=args.reverb)
        except LabelError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for line in report["errors"]:
            print(f"error: {line}", file=sys.stderr)
    else:
        report = run_accuracy(config_from(args), store_from(args), per_snr=args.per_snr,
                              non_commands=args.non_commands, snrs=args.snr or SNRS, noise_dir=noise_dir,
                              llm=args.llm, seed=args.seed)
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in report.items() if k != "text"}, indent=1,
                                              default=str))
    print(report["text"])
    return 0


def soak(args) -> int:
    from .soak import TooFewTurns, run_soak

    try:
        report = run_soak(config_from(args), store_from(args), turns=args.turns, faults=args.faults, seed=args.seed)
    except TooFewTurns as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in report.items() if k != "text"}, indent=1))
    print(report["text"])
    return 0 if report["passed"] else 1


def _names(store, names: list[str]) -> list[str]:
    return names or [n for n, m in store.manifest.items() if m.default and m.files]


def models_fetch(args) -> int:
    store = store_from(args)
    store.fetch(_names(store, args.names), find_links=args.find_links)
    return models_verify(args)


def models_list(args) -> int:
    store = store_from(args)
    print(f"models in {store.root}")
    for name in args.names or store.manifest:
        m = store.model(name)
        states = {s for _, s in store.status(name)} if m.files else {"not verified here"}
        state = "ok" if states == {"ok"} else ",".join(sorted(states))
        flag = "default" if m.default else "optional"
        print(f"  {name:30} {m.role:14} {flag:8} {state:18} {m.license}")
        if m.upstream:
            print(f"  {'':30} upstream: {m.upstream}")
    return 0


def models_verify(args) -> int:
    store = store_from(args)
    bad = 0
    for name in _names(store, args.names):
        for path, state in store.status(name):
            if state != "ok":
                bad += 1
                print(f"{state}: {path}", file=sys.stderr)
    if bad:
        print(f"{bad} model files are missing or corrupt; run: assistant models fetch", file=sys.stderr)
        return 1
    print(f"all model files verified in {store.root}")
    return 0
