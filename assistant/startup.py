"""What every command does first: the config loaded and checked whole, and the model store found.

config.py checks the file key by key; the custom intents it names are checked here, one level up, by
parsing them as the assistant will (understand/custom.py), so a bad grammar is a start-up error too.
"""

from __future__ import annotations

import os

from .audio.sounds import check_own as check_own_sounds
from .config import Config
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
