"""LLM on the Hailo-10H NPU (AI HAT+ 2) through HailoRT's `hailo_platform.genai.LLM`.

Written against the HailoRT 5.x documentation; it has not run on a device here. HEF models are
instruction-tuned, so the prompt goes in as chat messages; there is no grammar mode, which is why every
line is parsed and validated by the caller.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import threading
from collections.abc import Iterator

from .base import LlmError


def device_present() -> bool:
    return bool(glob.glob("/dev/hailo*"))


def module_present() -> bool:
    try:
        return importlib.util.find_spec("hailo_platform.genai") is not None
    except ModuleNotFoundError:  # hailo_platform itself is missing
        return False


def availability(hef: str) -> tuple[bool, str]:
    """Whether the NPU backend can run, and why (or why not), in words for logs and `assistant doctor`."""
    if not device_present():
        return False, "no /dev/hailo* device"
    if not module_present():
        return False, "hailo_platform.genai does not import (apt install hailo-h10-all)"
    if not hef or not os.path.isfile(hef):
        return False, f"HEF model not found: {hef or '(llm.hef is not set)'}"
    return True, f"Hailo NPU present with {os.path.basename(hef)}"


class HailoBackend:
    name = "hailo"
    constrains = False  # no grammar mode in this API

    def __init__(self, hef: str):
        ok, why = availability(hef)
        if not ok:
            raise LlmError(why)
        from hailo_platform import VDevice
        from hailo_platform.genai import LLM

        params = VDevice.create_params()
        params.group_id = "SHARED"  # other processes (speech to text) may share the NPU
        self.vdevice = VDevice(params)
        self.llm = LLM(self.vdevice, hef)
        self.lock = threading.Lock()
        self._system: str | None = None
        self._context: bytes | None = None

    def _prefill(self, system: str) -> None:
        """Runs the fixed system prompt once and keeps the resulting context; every request starts
        from a copy of it instead of evaluating the prompt again."""
        self.llm.clear_context()
        with self.llm.generate([{"role": "system", "content": system}], max_generated_tokens=1) as gen:
            for _ in gen:
                pass
        self._context = self.llm.save_context()
        self._system = system

    def stream(self, system: str, user: str, max_tokens: int, stop: tuple[str, ...]) -> Iterator[str]:
        with self.lock:
            try:
                if self._system != system:
                    self._prefill(system)
                self.llm.load_context(self._context)
                text = ""
                with self.llm.generate([{"role": "user", "content": user}], temperature=0.1,
                                       max_generated_tokens=max_tokens) as gen:
                    for token in gen:
                        text += token
                        cut = min((text.find(s) for s in stop if s in text), default=-1)
                        if cut >= 0:  # no stop strings in this API: cut here and stop generating
                            tail = token[: max(0, len(token) - (len(text) - cut))]
                            if tail:
                                yield tail
                            return
                        yield token
            except LlmError:
                raise
            except Exception as e:  # HailoRTException and friends: the caller falls back to the CPU
                raise LlmError(f"Hailo: {e}") from e

    def close(self) -> None:
        try:
            self.llm.release()
        except Exception:
            pass
        self.vdevice.release()
