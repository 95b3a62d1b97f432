"""LLM on the CPU: llama-cpp-python on a GGUF file, as a plain completion (the default model is a base
model without a chat template; few-shot completion is what it is good at).

Constrained output: llama.cpp's GBNF grammar checks every one of the vocabulary's tokens at every step
(Gemma 3 has 262k of them: about 30 ms a token here), so instead the home's answer language is written
out as lines, tokenized once into a trie, and a logits processor lets through only the tokens that
continue one of those lines; after `say` the text is free."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator

import numpy as np

from .base import ContextError, Language, LlmError


class _Node:
    __slots__ = ("allowed", "children", "end", "free")

    def __init__(self):
        self.children: dict[int, _Node] = {}
        self.end = False  # a whole line ends here: the newline may follow
        self.free = False  # free text from here on (after `say`)
        self.allowed: np.ndarray | None = None


class LineTrie:
    """The answer language as token sequences, each line tokenized as the model would read it after
    `Answer:` (with its leading space)."""

    def __init__(self, tokenize, lang: Language, newline: int):
        self.root = _Node()
        self.newline = newline
        for line in lang.lines:
            self._add(tokenize(" " + line), free=False)
        for verb in lang.free:
            self._add(tokenize(" " + verb), free=True)
        self._finish(self.root)

    def _add(self, tokens: list[int], free: bool) -> None:
        node = self.root
        for t in tokens:
            node = node.children.setdefault(t, _Node())
        if free:
            node.free = True
        else:
            node.end = True

    def _finish(self, node: _Node) -> None:
        ids = list(node.children) + ([self.newline] if node.end else [])
        node.allowed = np.array(ids, dtype=np.intc)
        for child in node.children.values():
            self._finish(child)

    def processor(self):
        """A llama-cpp-python logits processor for one generation: every token not continuing a line of
        the language gets -inf. Only the allowed ids are looked at; the rest is one fill."""
        start = None

        def constrain(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
            nonlocal start
            if start is None:
                start = len(input_ids)  # the first call sees the prompt only
            node = self.root
            for t in input_ids[start:]:
                node = node.children.get(int(t))
                if node is None or node.free:
                    return scores  # `say ...`: free text (or off the trie, which parse will refuse)
            out = np.full_like(scores, -np.inf)
            out[node.allowed] = scores[node.allowed]
            return out

        return constrain


BATCH = 64  # tokens evaluated at once


class LlamaCppBackend:
    name = "llama_cpp"
    constrains = True  # a ConstrainedBackend: keeps to the lines of a given answer language

    def __init__(self, gguf_path: str, threads: int = 2, context: int = 2048, constrain: bool = True):
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise LlmError("llama-cpp-python is not installed (pip install '.[llm]')") from e
        self.path = str(gguf_path)
        # A small batch: llama-cpp-python keeps a float32 score row per token of a batch for the whole
        # vocabulary, and Gemma's has 262k words: 537 MB at 512 tokens, 67 MB at 64. Only the fixed
        # prompt, evaluated once at start, is long; a request adds a few dozen tokens.
        self.llm = Llama(model_path=self.path, n_ctx=context, n_threads=threads, n_batch=BATCH, n_ubatch=BATCH,
                         verbose=False)
        # That row per batch token is written only when every token's logits are kept (logits_all, for
        # logprobs: not used here; sampling reads llama.cpp's own), yet save_state copies it and
        # load_state copies it back: 67 MB each. One row keeps both working (pinned version: 0.3.36).
        self.llm.scores = np.zeros((1, self.llm.n_vocab()), np.single)
        self.constrain = constrain
        self.lock = threading.Lock()  # one generation at a time: the KV cache is shared state
        self._system = None
        self._tries: dict[Language, LineTrie] = {}
        self._active = None  # weakref to the newest stream
        self.context = self.llm.n_ctx()

    def tokens(self, text: str) -> int:
        """How many tokens `text` takes in this model (without the BOS)."""
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=False))

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

    def trie(self, lang: Language) -> LineTrie:
        """Each request has its own lines (the devices it mentions): tokenized once, the recent kept."""
        trie = self._tries.pop(lang, None)
        if trie is None:
            def tok(s: str) -> list[int]:
                return self.llm.tokenize(s.encode(), add_bos=False, special=False)

            (newline,) = tok("\n")
            trie = LineTrie(tok, lang, newline)
            if len(self._tries) >= 32:
                self._tries.pop(next(iter(self._tries)))
        self._tries[lang] = trie
        return trie

    def stream(self, system: str, user: str, max_tokens: int, stop: tuple[str, ...],
               language: Language | None = None) -> Iterator[str]:
        # A stream left unfinished (an answer nobody spoke to the end) still holds the lock until it is
        # collected, which may be never: the newer request ends it instead of waiting for it.
        previous = self._active and self._active()
        if previous is not None:
            try:
                previous.close()
            except ValueError:  # still being read in another thread: wait for it on the lock
                pass
        gen = self._generate(system, user, max_tokens, stop, language)
        self._active = weakref.ref(gen)
        return gen

    def _generate(self, system: str, user: str, max_tokens: int, stop: tuple[str, ...],
                  language: Language | None) -> Iterator[str]:
        needed = self.tokens(system + user) + 1  # and the BOS
        if needed >= self.context:  # said before anything is evaluated: the caller keeps this backend
            raise ContextError(f"the prompt needs {needed} tokens, the context holds {self.context}")
        if self._system != system:
            self.warm(system)
        extra = {}
        if language is not None and self.constrain:
            from llama_cpp import LogitsProcessorList
            extra["logits_processor"] = LogitsProcessorList([self.trie(language).processor()])
        with self.lock:
            self.llm.load_state(self._state)
            try:
                for chunk in self.llm.create_completion(system + user, max_tokens=max_tokens, temperature=0.0,
                                                        stop=list(stop), stream=True, **extra):
                    yield chunk["choices"][0]["text"]
            except (RuntimeError, ValueError, OSError) as e:
                raise LlmError(str(e)) from e

    def close(self) -> None:
        self.llm.close()
