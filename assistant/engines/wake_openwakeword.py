"""Wake words with openWakeWord's ONNX models (no tflite: it has no wheels for newer Pythons).

Every wake word runs on every frame in one openWakeWord Model: the melspectrogram and the speech embedding
are computed once and shared, and each wake word's model adds only a small classifier over them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..config import WakeEntry
from ..models import ModelError, ModelStore

FEATURES = 96  # numbers per frame of the speech embedding openWakeWord feeds its wake word models
MAX_FRAMES = 120  # embedding frames openWakeWord keeps (about 10 s): a model cannot take more
EXPECTED = f"[1, 16, {FEATURES}]"  # what openWakeWord's own models take: 16 frames of speech embedding


def file_problem(path: Path) -> str | None:
    """What keeps a file from working as an openWakeWord model, as words that follow "the wake model
    PATH"; None when openWakeWord can run it. Loads it with onnxruntime and runs it once on silence."""
    import onnxruntime as ort

    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own classes, one per kind of broken file
        return f"is not an ONNX model ({_reason(e)})"
    inputs, outputs = session.get_inputs(), session.get_outputs()
    takes = ", ".join(f"{i.name} {_shape(i.shape)}" for i in inputs)
    if len(inputs) != 1:
        return f"takes {len(inputs)} inputs ({takes}), but an openWakeWord model takes one, {EXPECTED}"
    frames = _frames(inputs[0].shape)
    if frames is None:
        return f"takes input {_shape(inputs[0].shape)}, but openWakeWord gives its models {EXPECTED}"
    if inputs[0].type != "tensor(float)":
        return f"takes {inputs[0].type} input, but openWakeWord gives its models float numbers"
    gives = outputs[0].shape
    if len(outputs) != 1 or len(gives) != 2 or gives[1] != 1:
        return f"gives {', '.join(_shape(o.shape) for o in outputs)}, but a wake word model gives one score, [1, 1]"
    try:
        session.run(None, {inputs[0].name: np.zeros((1, frames, FEATURES), np.float32)})
    except Exception as e:  # as above
        return f"does not run on openWakeWord's features ({_reason(e)})"
    return None


def _frames(shape: list) -> int | None:
    """How many embedding frames an input of this shape takes: [1, n, 96], the batch also left open."""
    if len(shape) != 3:
        return None
    batch, frames, features = shape
    if isinstance(batch, int) and batch != 1 or features != FEATURES:
        return None
    return frames if isinstance(frames, int) and 0 < frames <= MAX_FRAMES else None


def _reason(e: Exception) -> str:
    """onnxruntime's message without its codes and the path (the caller names the file), on one line."""
    text = " ".join(str(e).split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"^Load model from .*? failed: ?", "", text)
    return (text[:150] + "...") if len(text) > 150 else text.rstrip(".")


def _shape(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


class OpenWakeWord:
    def __init__(self, store: ModelStore, words: list[WakeEntry]):
        from openwakeword.model import Model

        paths = []
        for w in words:
            if not w.file:
                paths.append(store.path(w.name))
                continue
            path = Path(w.file).expanduser()
            if not path.is_file():
                raise ModelError(f"the wake model {path} does not exist")
            if problem := file_problem(path):
                raise ModelError(f"the wake model {path} {problem}")
            paths.append(path)
        self.model = Model(
            wakeword_models=[str(p) for p in paths],
            inference_framework="onnx",
            melspec_model_path=str(store.path("openwakeword-features", "melspectrogram.onnx")),
            embedding_model_path=str(store.path("openwakeword-features", "embedding_model.onnx")),
        )
        if len(self.model.models) != len(words):  # openWakeWord keys its models by file name
            raise ModelError(f"two wake models have the same file name ({', '.join(p.name for p in paths)}); "
                             f"rename one")
        self.names = [w.name for w in words]
        self._keys = dict(zip(self.model.models, self.names))  # openWakeWord's name for each -> ours
        self._made_of = (store, words)

    def twin(self) -> OpenWakeWord:
        """The same wake words with a state of their own: for a second stream of audio."""
        return OpenWakeWord(*self._made_of)

    def scores(self, frame: np.ndarray) -> dict[str, float]:
        """Feed one 80 ms frame (1280 int16 samples); each wake word's score for it, 0..1."""
        return {self._keys[k]: float(v) for k, v in self.model.predict(frame).items()}

    def reset(self) -> None:
        # openWakeWord keeps a rolling feature buffer; without a reset the same utterance fires again
        self.model.reset()
