"""Streaming voice activity with Silero VAD v6 (ONNX), keeping its recurrent state across windows."""

from __future__ import annotations

import numpy as np

from ..models import ModelStore

WINDOW = 512  # samples at 16 kHz: what the model is trained on
CONTEXT = 64  # the model sees the last 64 samples of the previous window too


class SileroVad:
    def __init__(self, store: ModelStore):
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self.session = onnxruntime.InferenceSession(str(store.path("silero-vad")), sess_options=opts,
                                                    providers=["CPUExecutionProvider"])
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros((1, 1, 128), np.float32)
        self.c = np.zeros((1, 1, 128), np.float32)
        self.context = np.zeros((1, CONTEXT), np.float32)
        self.pending = np.zeros(0, np.float32)

    def probabilities(self, frame: np.ndarray) -> list[float]:
        """Speech probability for each complete 32 ms window in the audio fed so far."""
        self.pending = np.concatenate([self.pending, frame.astype(np.float32) / 32768])
        out = []
        while len(self.pending) >= WINDOW:
            window, self.pending = self.pending[:WINDOW], self.pending[WINDOW:]
            x = np.concatenate([self.context, window[None, :]], axis=1)
            prob, self.h, self.c = self.session.run(None, {"input": x, "h": self.h, "c": self.c})
            self.context = window[None, -CONTEXT:]
            out.append(float(np.asarray(prob).reshape(-1)[0]))
        return out
