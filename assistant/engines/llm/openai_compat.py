"""LLM on another machine: any OpenAI-compatible endpoint (llama.cpp's server, Ollama, vLLM,
hailo-ollama). `completions` suits base models, `chat` instruction-tuned ones."""

from __future__ import annotations

import json
from collections.abc import Iterator

import requests

from .base import LlmError


class OpenAiBackend:
    name = "openai"
    constrains = False

    def __init__(self, url: str, api: str = "completions", model: str = "", api_key: str = "",
                 timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        self.api = api
        self.model = model
        self.timeout_s = timeout_s
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"
        try:  # fail at selection time, not in the middle of a request, when nothing listens there
            self.session.get(f"{self.url}/models", timeout=min(timeout_s, 3.0)).raise_for_status()
        except requests.RequestException as e:
            raise LlmError(f"no OpenAI-compatible server at {self.url}: {e}") from e

    def stream(self, system: str, user: str, max_tokens: int, stop: tuple[str, ...]) -> Iterator[str]:
        body = {"max_tokens": max_tokens, "temperature": 0.0, "stop": list(stop), "stream": True,
                # llama.cpp's server: keep the shared prompt's KV state between requests
                "cache_prompt": True}
        if self.model:
            body["model"] = self.model
        if self.api == "chat":
            body["messages"] = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        else:
            body["prompt"] = system + user
        path = "chat/completions" if self.api == "chat" else "completions"
        try:
            with self.session.post(f"{self.url}/{path}", json=body, stream=True, timeout=self.timeout_s) as r:
                r.raise_for_status()
                for line in r.iter_lines(decode_unicode=True):
                    if not line or not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    choice = json.loads(data)["choices"][0]
                    text = choice.get("text") if self.api != "chat" else (choice.get("delta") or {}).get("content")
                    if text:
                        yield text
        except (requests.RequestException, ValueError, KeyError, IndexError) as e:
            raise LlmError(f"{self.url}: {e}") from e

    def close(self) -> None:
        self.session.close()
