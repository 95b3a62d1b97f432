"""Wake word with openWakeWord's ONNX models (no tflite: it has no wheels for newer Pythons)."""

from __future__ import annotations

import numpy as np

from ..models import ModelStore


class OpenWakeWord:
    def __init__(self, store: ModelStore, model: str, threshold: float):
        from openwakeword.model import Model

        self.threshold = threshold
        path = store.path(model)
        self.model = Model(
            wakeword_models=[str(path)],
            inference_framework="onnx",
            melspec_model_path=str(store.path("openwakeword-features", "melspectrogram.onnx")),
            embedding_model_path=str(store.path("openwakeword-features", "embedding_model.onnx")),
        )
        self.key = next(iter(self.model.models))

    def score(self, frame: np.ndarray) -> float:
        """Feed one 80 ms frame (1280 int16 samples); the wake word's score for it, 0..1."""
        return float(self.model.predict(frame)[self.key])

    def reset(self) -> None:
        # openWakeWord keeps a rolling feature buffer; without a reset the same utterance fires again
        self.model.reset()
