"""Text to speech with Piper; yields audio sentence by sentence so the first one plays early, and a
long sentence clause by clause: Piper's memory grows with the audio of what it is given at once (about
20 MB a second), and a clause plays sooner than its whole sentence."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from ..models import ModelStore

LONG_SENTENCE = 80  # characters (about 5 s of speech): a longer sentence is said clause by clause


def pieces(text: str) -> list[str]:
    """The text as it is synthesized: its sentences, and a long one's clauses (split after a comma,
    semicolon or colon and a space, so "1,000" stays whole)."""
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        out += re.split(r"(?<=[,;:])\s+", sentence) if len(sentence) > LONG_SENTENCE else [sentence]
    return [p for p in out if p]


class PiperTts:
    def __init__(self, store: ModelStore, voice: str, length_scale: float = 1.0):
        from piper import PiperVoice, SynthesisConfig

        model = store.model(voice)
        onnx = next(f.path for f in model.files if f.path.endswith(".onnx"))
        self.voice = PiperVoice.load(store.path(voice, onnx), config_path=store.path(voice, onnx + ".json"))
        self.syn_config = SynthesisConfig(length_scale=length_scale)
        self.sample_rate = self.voice.config.sample_rate

    def sentences(self, text: str) -> Iterator[np.ndarray]:
        for piece in pieces(text):
            for chunk in self.voice.synthesize(piece, syn_config=self.syn_config):
                yield chunk.audio_int16_array
