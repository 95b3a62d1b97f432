"""Which LLM backend runs, and which model answers a request, decided in one place from the config and
the hardware, with the reason said out loud (logs, `assistant doctor`)."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass

from ... import thermal
from ...config import LlmConfig
from ...models import ModelStore
from . import hailo
from .base import Backend, LlmError

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Choice:
    order: tuple[str, ...]  # backends to try, first the preferred, then the fallbacks
    reason: str


def choose(cfg: LlmConfig, hailo_ok: tuple[bool, str] | None = None) -> Choice:
    hailo_ok = hailo_ok or hailo.availability(cfg.hef)
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
            return hailo.HailoBackend(cfg.hef)
        if name == "llama_cpp":
            from .llama_cpp import LlamaCppBackend
            try:
                path = gguf(cfg, store, model or cfg.model)
            except Exception as e:  # ModelError: not fetched, bad hash
                raise LlmError(str(e)) from e
            return LlamaCppBackend(path, cfg.threads, cfg.context, cfg.constrain)
        if name == "openai":
            from .openai_compat import OpenAiBackend
            return OpenAiBackend(cfg.url, cfg.api, cfg.remote_model, cfg.api_key, cfg.timeout_s)
        raise LlmError(f"unknown LLM backend {name!r}")
    make.name = name
    return make


def backends(cfg: LlmConfig, store: ModelStore) -> list:
    c = choose(cfg)
    log.info("LLM backend %s: %s", c.order[0], c.reason)
    return [factory(n, cfg, store) for n in c.order]



# -- model choice by need -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelChoice:
    role: str  # commands | questions | throttled
    model: str  # a manifest name or a GGUF path; empty: the backend chain as chosen above
    reason: str


class ModelPicker:
    """A small model for commands, a larger one for open questions (`llm.question_model`), a smaller one
    while the board throttles (`llm.throttled_model`). The models are llama.cpp GGUFs; with another
    backend in front (the NPU, a server) the picker stands aside. Loaded models are kept."""

    def __init__(self, cfg: LlmConfig, store: ModelStore | None, reader=None, cache_s: float = 5.0):
        self.cfg = cfg
        self.store = store
        self.primary = choose(cfg).order[0] if cfg.question_model or cfg.throttled_model else None
        self._reader = reader or (lambda: thermal.read(cfg.sys_root, shutil.which("vcgencmd")))
        self.cache_s = cache_s
        self._reading: tuple[float, thermal.Reading] | None = None
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.primary == "llama_cpp"

    def reading(self) -> thermal.Reading:
        now = time.monotonic()
        if self._reading is None or now - self._reading[0] > self.cache_s:
            self._reading = (now, self._reader())
        return self._reading[1]

    def choose(self, need: str) -> ModelChoice:
        """need: "command" (every request starts there) or "question" (the command model chose to speak)."""
        c = self.cfg
        if not self.active:
            why = ("no llm.question_model or llm.throttled_model is set" if self.primary is None
                   else f"the LLM runs on {self.primary}, model switching is for llama_cpp")
            return ModelChoice("commands", "", why)
        hot = self.reading().hot(c.hot_c)
        if hot and c.throttled_model:
            return ModelChoice("throttled", c.throttled_model, f"the board is throttling ({hot}): llm.throttled_model")
        if need == "question" and c.question_model:
            if hot:
                return ModelChoice("commands", c.model, f"an open question, but the board is throttling ({hot}): "
                                                        f"not the larger llm.question_model")
            return ModelChoice("questions", c.question_model, "an open question: llm.question_model")
        what = "a command" if need == "command" else "an open question, and no llm.question_model is set"
        hot = f"; the board is throttling ({hot}) but no llm.throttled_model is set" if hot else ""
        return ModelChoice("commands", c.model, f"{what}: llm.model{hot}")

    def backend(self, choice: ModelChoice) -> Backend:
        with self._lock:
            if choice.model not in self._backends:
                self._backends[choice.model] = factory("llama_cpp", self.cfg, self.store, choice.model)()
            return self._backends[choice.model]

    def close(self) -> None:
        for b in self._backends.values():
            b.close()
        self._backends.clear()


def describe_models(cfg: LlmConfig, reader=None) -> str:
    """For `assistant doctor`: the models configured, what the board says now, and what would run."""
    p = ModelPicker(cfg, None, reader)
    if not p.active:
        return f"LLM model: {cfg.model if choose(cfg).order[0] == 'llama_cpp' else choose(cfg).order[0]}; " \
               f"no switching ({p.choose('command').reason})"
    now = p.reading()
    cmd, q = p.choose("command"), p.choose("question")
    return (f"LLM model: {now.describe()}; a command would go to {cmd.model} ({cmd.reason}), "
            f"an open question to {q.model} ({q.reason})")
