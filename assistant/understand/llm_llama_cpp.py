"""LLM on the CPU: llama-cpp-python on a GGUF file, as a plain completion (the default model is a base
model without a chat template; few-shot completion is what it is good at)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from .llm import LlmError


class LlamaCppBackend:
    name = "llama_cpp"

    def __init__(self, gguf_path: str, threads: int = 2, context: int = 2048):
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise LlmError("llama-cpp-python is not installed (pip install '.[llm]')") from e
        self.llm = Llama(model_path=str(gguf_path), n_ctx=context, n_threads=threads, n_batch=512,
                         verbose=False)
        self.lock = threading.Lock()  # one generation at a time: the KV cache is shared state
        self._system = None

    def warm(self, system: str) -> None:
        """Evaluates the fixed prompt once and keeps its KV state. Every request starts from that state
        (llama.cpp then evaluates only the tokens after the common prefix: the request), so an answer
        does not depend on what was asked before."""
        with self.lock:
            tokens = self.llm.tokenize(system.encode(), add_bos=True)
            self.llm.reset()
            self.llm.eval(tokens)
            self._state = self.llm.save_state()
            self._system = system

    def stream(self, system: str, user: str, max_tokens: int, stop: tuple[str, ...]) -> Iterator[str]:
        if self._system != system:
            self.warm(system)
        with self.lock:
            self.llm.load_state(self._state)
            try:
                for chunk in self.llm.create_completion(system + user, max_tokens=max_tokens, temperature=0.0,
                                                        stop=list(stop), stream=True):
                    yield chunk["choices"][0]["text"]
            except (RuntimeError, ValueError, OSError) as e:
                raise LlmError(str(e)) from e

    def close(self) -> None:
        self.llm.close()
