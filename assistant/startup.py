"""What every command does first: the config loaded and the model store found."""

from __future__ import annotations

from .config import Config
from .config import load as load_config
from .models import ModelStore


def config_from(args) -> Config:
    cfg = load_config(args.config)
    if getattr(args, "mqtt", None):
        cfg.mqtt.url = args.mqtt
    return cfg


def store_from(args, cfg: Config | None = None) -> ModelStore:
    return ModelStore(args.models_dir or (cfg.models_dir if cfg else None) or None)
