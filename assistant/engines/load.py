"""The engines this config asks for, chosen and loaded in one place."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..home.registry import Registry
from ..models import ModelStore
from ..understand.llm import Brain
from .base import Asr, Tts, Vad, WakeWord
from .llm import select


@dataclass
class Engines:
    """The loaded models. Each is created once and only used from its own worker thread."""

    wake: WakeWord | None = None
    vad: Vad | None = None
    asr: Asr | None = None
    tts: Tts | None = None
    brain: Brain | None = None  # the LLM, loaded on the first request no template understands

    @classmethod
    def load(cls, cfg: Config, store: ModelStore, audio: bool = True, speech: bool = True) -> Engines:
        from .asr_faster_whisper import FasterWhisper
        from .tts_piper import PiperTts
        from .vad_silero import SileroVad
        from .wake_openwakeword import OpenWakeWord

        e = cls()
        if audio:
            e.wake = OpenWakeWord(store, cfg.wake.entries())
            e.vad = SileroVad(store)
            e.asr = FasterWhisper(store, cfg.asr.model, cfg.asr.threads, cfg.asr.beam_size,
                                  cfg.asr.window_s, cfg.asr.first_window_s)
        if speech:
            e.tts = PiperTts(store, cfg.tts.voice, cfg.tts.length_scale)
        if cfg.llm.route != "templates":
            e.brain = make_brain(cfg, store)
        return e


def make_brain(cfg: Config, store: ModelStore) -> Brain:
    """The LLM for this home; cheap to make, its model loads on the first request that needs it."""
    return Brain(Registry.from_config(cfg.device), select.backends(cfg.llm, store), cfg.llm.max_answer_tokens,
                 constrain=cfg.llm.constrain, picker=select.ModelPicker(cfg.llm, store))
