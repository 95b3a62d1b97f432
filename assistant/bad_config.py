"""What `assistant run` does when its config does not load: it says so out loud and on the broker, then
exits with code 2 (systemd shows the service failed and does not restart it).

The box has no screen and SSH is off by default, so an error only in the journal reaches no one. The
sentence is spoken, and the message published, with the last good config the boot-partition import kept
beside the live one (`<config>.bak`: its broker, site, voice and speaker) or, without one, the defaults.
When the config itself loaded and only a file it names is wrong (a wake model), it is used instead.
Saying it is best effort: without the voice model or a speaker the error is still printed, and the exit
is the same.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from .audio.io import WavSink, open_sink
from .audio.player import Player
from .broker import reachable
from .config import Config, ConfigError
from .mqtt_link import MqttError, MqttLink, parse_url
from .presence import base_topic
from .sdnotify import notify
from .startup import load_config, store_from
from .types import Command
from .workers import Workers


def report(args, error: ConfigError, cfg: Config | None = None) -> int:
    """`cfg`: the config itself, when it loaded and what it names is wrong (a wake model file)."""
    print(f"error: {error}", file=sys.stderr)
    notify(f"STATUS={error}")
    cfg = cfg or last_good(args.config)
    publish(cfg, str(error))
    say(args, cfg, spoken(error))
    return 2


def spoken(error: ConfigError) -> str:
    """One short sentence a listener can act on: the key to look at, as words."""
    if error.key:
        words = re.sub(r"\[(\d+)\]", r" \1", error.key).replace(".", " dot ").replace("_", " ")
        return f"My configuration has an error in the key {words}."
    line = re.search(r"at line (\d+)", str(error))
    return f"My configuration file has an error on line {line[1]}." if line else \
        "My configuration file cannot be read."


def last_good(path: str) -> Config:
    try:
        return load_config(f"{path}.bak")
    except ConfigError:
        return Config(path=Path(path))


def publish(cfg: Config, message: str) -> None:
    """The state `error` and the message, retained, for whoever watches the box on the broker."""
    host, port, _ = parse_url(cfg.mqtt.url)
    if not reachable(host, port):
        return
    base = base_topic(cfg)
    link = MqttLink.from_config(cfg.mqtt, f"{base}/availability")
    link.start()
    try:
        for topic, payload in ((f"{base}/state", "error"), (f"{base}/error", message)):
            link.send(Command("", topic, payload, retain=True))
    except MqttError as e:
        print(f"warning: the error was not published on {cfg.mqtt.url}: {e}", file=sys.stderr)
    finally:
        link.stop()


def say(args, cfg: Config, text: str) -> None:
    try:
        asyncio.run(_speak(args, cfg, text))
    except Exception as e:  # no voice model, no speaker, no PortAudio: the printed error has to do
        print(f"warning: could not say it: {e}", file=sys.stderr)


async def _speak(args, cfg: Config, text: str) -> None:
    from .engines.tts_piper import PiperTts

    tts = PiperTts(store_from(args, cfg), cfg.tts.voice, cfg.tts.length_scale)
    sink = WavSink(args.output) if args.output else open_sink(cfg.audio.output_device)
    workers = Workers()
    player = Player(sink, tts, workers)
    try:
        await player.say(text)
        await player.end_of_reply()
    finally:
        workers.close()
        sink.close()
