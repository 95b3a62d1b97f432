"""Which LLM backend runs, decided in one place from the config and the hardware, with the reason
said out loud (logs, `assistant doctor`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from ..config import LlmConfig
from ..models import ModelStore
from . import llm_hailo
from .llm import Backend, LlmError

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Choice:
    order: tuple[str, ...]  # backends to try, first the preferred, then the fallbacks
    reason: str


def choose(cfg: LlmConfig, hailo_ok: tuple[bool, str] | None = None) -> Choice:
    hailo_ok = hailo_ok or llm_hailo.availability(cfg.hef)
    if cfg.backend != "auto":
        rest = ("llama_cpp",) if cfg.backend != "llama_cpp" else ()
        return Choice((cfg.backend, *rest), f"llm.backend = {cfg.backend!r} in the config")
    if hailo_ok[0]:
        return Choice(("hailo", "llama_cpp"), f"auto: {hailo_ok[1]}")
    return Choice(("llama_cpp",), f"auto: CPU, because {hailo_ok[1]}")


def describe(cfg: LlmConfig) -> str:
    """One line for `assistant doctor`: the backend that will run and why."""
    c = choose(cfg)
    fallback = f" (falls back to {', '.join(c.order[1:])})" if len(c.order) > 1 else ""
    return f"LLM: {c.order[0]}{fallback}; {c.reason}"


def gguf(cfg: LlmConfig, store: ModelStore, name: str) -> str:
    """A manifest name (verified) or a path to a GGUF file."""
    return name if os.path.isfile(name) else str(store.path(name))


def factory(name: str, cfg: LlmConfig, store: ModelStore, model: str | None = None):
    """A zero-argument maker for one backend; makers are called lazily, on the first unmatched request."""
    def make() -> Backend:
        if name == "hailo":
            return llm_hailo.HailoBackend(cfg.hef)
        if name == "llama_cpp":
            from .llm_llama_cpp import LlamaCppBackend
            try:
                path = gguf(cfg, store, model or cfg.model)
            except Exception as e:  # ModelError: not fetched, bad hash
                raise LlmError(str(e)) from e
            return LlamaCppBackend(path, cfg.threads, cfg.context)
        if name == "openai":
            from .llm_openai import OpenAiBackend
            return OpenAiBackend(cfg.url, cfg.api, cfg.remote_model, cfg.api_key, cfg.timeout_s)
        raise LlmError(f"unknown LLM backend {name!r}")
    make.name = name
    return make


def backends(cfg: LlmConfig, store: ModelStore) -> list:
    c = choose(cfg)
    log.info("LLM backend %s: %s", c.order[0], c.reason)
    return [factory(n, cfg, store) for n in c.order]

