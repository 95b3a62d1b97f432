"""Text to speech with Piper; yields audio sentence by sentence so the first one plays early."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..models import ModelStore


class PiperTts:
    def __init__(self, store: ModelStore, voice: str, length_scale: float = 1.0):
        from piper import PiperVoice, SynthesisConfig

        model = store.model(voice)
        onnx = next(f.path for f in model.files if f.path.endswith(".onnx"))
        self.voice = PiperVoice.load(store.path(voice, onnx), config_path=store.path(voice, onnx + ".json"))
        self.syn_config = SynthesisConfig(length_scale=length_scale)
        self.sample_rate = self.voice.config.sample_rate

    def sentences(self, text: str) -> Iterator[np.ndarray]:
        for chunk in self.voice.synthesize(text, syn_config=self.syn_config):
            yield chunk.audio_int16_array
