"""The `assistant` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__
from .audio.wav import AudioFileError
from .broker import BrokerError
from .config import ConfigError
from .models import ModelError
from .mqtt_link import MqttError
from .wyoming_events import ServeError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "home.toml"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args) or 0
    except (ConfigError, ModelError, AudioFileError, BrokerError, MqttError, ServeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def snr_list(text: str) -> tuple:
    try:
        return tuple("clean" if s.strip() == "clean" else int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected e.g. clean,24,18,12,6") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="assistant", description="An offline voice assistant for the home.")
    p.add_argument("--version", action="version", version=__version__)
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens inside")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    def cmd(name: str, fn, help: str, config: bool = True) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        c.set_defaults(func=fn)
        if config:
            c.add_argument("--config", default=str(EXAMPLE), help="TOML config (default: the example home)")
            c.add_argument("--mqtt", help="broker URL, e.g. mqtt://127.0.0.1:1883; overrides the config")
        c.add_argument("--models-dir", help="where model files live (default: $ASSISTANT_MODELS or ~/.cache)")
        return c

    from . import commands

    c = cmd("run", commands.run, "Listen and act: on the microphone, or on a WAV file with --input.")
    c.add_argument("--input", help="a WAV file to process instead of the microphone; exits at its end")
    c.add_argument("--output", help="write the spoken replies to this WAV file instead of the speaker")
    c = cmd("serve", commands.serve, "Serve Home Assistant's voice services over the Wyoming protocol: speech "
            "to text, text to speech, intents carried out, the wake word; announced by zeroconf.")
    c.add_argument("--uri", help="where to listen, e.g. tcp://0.0.0.0:10700 (default: [wyoming] listen and port, "
                   "tcp://127.0.0.1:10700)")
    c = cmd("demo", commands.demo, "Set up nothing, show everything: the example home on a spoken sample "
            "(or the microphone), with a private broker when none is reachable.")
    c.add_argument("--output", default="demo-replies.wav", help="where the replies are written")
    c = cmd("ask", commands.ask, "Type a request: understood and acted on like a spoken one; prints the reply.")
    c.add_argument("text")
    c.add_argument("--output", help="also speak the reply into this WAV file")
    c = cmd("say", commands.say, "Speak text into a WAV file.", config=False)
    c.add_argument("--output", required=True)
    c.add_argument("--voice", default="piper-joe-medium")
    c.add_argument("text")
    c = cmd("transcribe", commands.transcribe, "Print what the speech recogniser hears in a WAV file.")
    c.add_argument("wav")
    c = cmd("bench", commands.bench, "Measure the whole pipeline on synthesized commands.")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--repeat", type=int, help="times each command is run (default 2)")
    c.add_argument("--beside-home-assistant", action="store_true", help="instead: Home Assistant's chain "
                   "(wyoming-faster-whisper, hassil, wyoming-piper) and this one on the same commands, taking "
                   "turns; prints ours over theirs, end of speech to MQTT publish (--repeat defaults to 1)")
    c.add_argument("--wyoming-venv", help="the virtualenv with wyoming-faster-whisper and wyoming-piper (default: "
                   "$ASSISTANT_WYOMING_VENV, or .venv-wyoming in the source tree; made by tools/wyoming-venv.sh)")
    from . import doctor

    cmd("doctor", doctor.main, "Say what works on this box and what does not; exit 1 when something "
        "blocks normal operation.")
    c = cmd("check-config", doctor.check_config_main, "Check a config file as the service would load it; "
            "exit 2 and name the key when it would not start.", config=False)
    c.add_argument("file")
    c = cmd("accuracy", commands.accuracy, "Measure how many spoken commands are understood in reverberation "
            "and noise (24/18/12/6 dB), and how often speech that is not a command is acted on; exact "
            "templates against the robust path. With --labelled: your own recordings against your own config.")
    c.add_argument("--labelled", metavar="PATH", help="instead of the built-in commands, the WAVs of this folder, "
                   "each with a JSON label of the same name ({\"intent\": {\"name\": ...}, \"slots\": {...}}, as "
                   "in Rhasspy's test set; an empty intent name: speech that must do nothing), or a JSON file mapping "
                   "WAV names beside it to {\"intent\": NAME, \"slots\": {...}}; a clip is right when the intent "
                   "published and every slot are")
    c.add_argument("--snr", type=snr_list, help="SNRs in dB, comma-separated, 'clean' for no noise (default "
                   "24,18,12,6; with --labelled clean,24,18,12,6)")
    c.add_argument("--limit", type=int, help="with --labelled: at most this many clips, a choice made by --seed")
    c.add_argument("--reverb", action="store_true", help="with --labelled: put the clips across a room too "
                   "(for dry, synthetic speech; recordings have their own room)")
    c.add_argument("--per-snr", type=int, default=50, help="commands per SNR (default 50)")
    c.add_argument("--non-commands", type=int, default=100, help="non-command utterances in all (default 100; "
                   "with --labelled also single words and the grammar's slot values said alone)")
    c.add_argument("--noise-dir", help="folder of noise*.wav and rir*.wav (default: noise-rir/ in "
                   "$ASSISTANT_DEVSET, or in ../shared/devset beside the project)")
    c.add_argument("--json", help="also write every clip's transcript and outcome to this JSON file")
    c.add_argument("--llm", action="store_true", help="keep the config's LLM route (default: templates only)")
    c.add_argument("--seed", type=int, default=0, help="which commands, voices and noise (default 0); thresholds "
                   "were tuned on seed 0, so another seed is the fair test")
    c = cmd("soak", commands.soak, "Run many spoken commands while the broker is killed, frozen and restarted; "
            "exit 1 on a duplicate or late command, a hang, or a box that stops answering.")
    c.add_argument("--turns", type=int, default=1000, help="commands in all (default 1000)")
    c.add_argument("--faults", type=int, default=10, help="times each fault is injected (default 10)")
    c.add_argument("--json", help="also write the counts to this JSON file")
    c.add_argument("--seed", type=int, default=0, help="which commands, voices and fault turns (default 0)")
    m = sub.add_parser("models", help="Fetch, list and verify model files.")
    msub = m.add_subparsers(required=True, metavar="ACTION")
    for name, fn, help in [("fetch", commands.models_fetch, "download the default models (or NAMEs)"),
                           ("list", commands.models_list, "the models, their roles and licences"),
                           ("verify", commands.models_verify, "check every file's sha256")]:
        c = msub.add_parser(name, help=help, description=help)
        c.set_defaults(func=fn)
        c.add_argument("names", nargs="*", help="model names (default: the default set)")
        c.add_argument("--models-dir")
        if name == "fetch":
            c.add_argument("--find-links", help="a local folder of the model wheels (offline installs)")
    return p

