"""What a language model backend does, and the errors and values it shares with its caller."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Protocol


class LlmError(Exception):
    """A backend could not produce text (not loaded, unreachable, crashed)."""


class ContextError(LlmError):
    """The prompt does not fit the model's context: this request fails, the backend is fine."""


class Stream(Protocol):
    """Text as the model generates it; `close` ends the generation early, freeing the model."""

    def __iter__(self) -> Iterator[str]: ...

    def __next__(self) -> str: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Language:
    """Every line allowed as an answer, written out, plus the verbs after which free text follows. A
    backend that can steer its sampler keeps the model on these lines; the caller still checks whatever
    comes out."""

    lines: tuple[str, ...]
    free: tuple[str, ...] = ("say",)


class Backend(Protocol):
    """Streams the continuation of `system` + `user`. `system` is the same for every request, so a
    backend keeps its state cached (llama.cpp prefix reuse, Hailo contexts)."""

    name: str
    constrains: ClassVar[bool]  # True: it is a ConstrainedBackend too

    def stream(self, system: str, user: str, max_tokens: int, stop: tuple[str, ...]) -> Stream: ...

    def close(self) -> None: ...


class ConstrainedBackend(Backend, Protocol):
    """A backend that can keep its output inside an answer language: given one, it only writes its lines."""

    def stream(self, system: str, user: str, max_tokens: int, stop: tuple[str, ...],
               language: Language | None = None) -> Stream: ...
