"""What every command does first: the config loaded and checked whole, and the model store found.

config.py checks the file key by key; the custom intents it names are checked here, one level up, by
parsing them as the assistant will (understand/custom.py), so a bad grammar is a start-up error too. The
user's own wake model files are opened here as openWakeWord will, before the engines load
(`check_wake_models`): that needs onnxruntime, so only what listens, and `check-config`, pays for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .audio.sounds import check_own as check_own_sounds
from .config import Config, ConfigError
from .config import load as load_file
from .models import ModelStore
from .understand.custom import from_config as custom_grammar


def load_config(path: str | os.PathLike) -> Config:
    """The config at `path`; raises ConfigError naming the file and the key."""
    cfg = load_file(path)
    if cfg.intent or cfg.slot or cfg.sentences_file:
        custom_grammar(cfg)
    check_own_sounds(cfg)
    return cfg


def config_from(args) -> Config:
    cfg = load_config(args.config)
    if getattr(args, "mqtt", None):
        cfg.mqtt.url = args.mqtt
    return cfg


def store_from(args, cfg: Config | None = None) -> ModelStore:
    return ModelStore(args.models_dir or (cfg.models_dir if cfg else None) or None)


def check_wake_models(cfg: Config) -> None:
    """Each of the user's own wake model files runs as an openWakeWord model; raises ConfigError naming the
    config, the key and the model file, and what is wrong with it."""
    files = [w for w in cfg.wake.entries() if w.file]
    if not files:
        return
    from .engines.wake_openwakeword import file_problem

    for w in files:
        if problem := file_problem(Path(w.file)):
            raise ConfigError(f"{cfg.path}: '{w.key}': the wake model {w.file} {problem}")
