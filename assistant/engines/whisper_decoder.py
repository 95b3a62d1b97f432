"""Whisper's decoder in numpy, reading the same CTranslate2 model file, with its attention cache in our hands.

CTranslate2 decodes freely or scores whole given sentences; it cannot be told, token by token, which
tokens may come next. Steering the decoding by the home's grammar (understand/steered.py) needs exactly
that: after each token, the next one chosen only among those the grammar allows. Without a cache of the
decoder's keys and values every step would read every sentence so far again (16-20 ms per sentence per
token through CTranslate2); with one, a step is one token per sentence kept.

The decoder is small (tiny.en: 4 layers of 384), so numpy runs it in float32 from the model's float16
weights. Its probabilities match CTranslate2's float32 decoding; against the int8 one the box decodes
with they differ by a few hundredths, which is why what the steered decoding finds is weighed again by
the same scoring as every other candidate (rescore.weigh).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erf

BINARY_VERSION = 6  # CTranslate2's model.bin layout read here
DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16)  # CTranslate2's DataType order (bfloat16 unread)


class ModelFileError(ValueError):
    """A model file that is not what it says it is."""


def read_variables(path: Path, prefix: str) -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 model file whose names begin with `prefix`, checked as they are read:
    a truncated or foreign file raises ModelFileError, it never reads past its end."""
    data = Path(path).read_bytes()
    at = 0

    def take(fmt: str):
        nonlocal at
        size = struct.calcsize(fmt)
        if at + size > len(data):
            raise ModelFileError(f"{path}: ends early (byte {at} of {len(data)})")
        value = struct.unpack_from(fmt, data, at)[0]
        at += size
        return value

    def text() -> str:
        nonlocal at
        n = take("H")
        if n == 0 or at + n > len(data):
            raise ModelFileError(f"{path}: a name runs past the end")
        value = data[at:at + n - 1].decode("utf-8", "replace")
        at += n
        return value

    if (version := take("I")) != BINARY_VERSION:
        raise ModelFileError(f"{path}: CTranslate2 model version {version}, this reader knows {BINARY_VERSION}")
    if (spec := text()) != "WhisperSpec":
        raise ModelFileError(f"{path}: a {spec} model, not Whisper")
    take("I")  # the spec's revision
    out: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = text()
        shape = [take("I") for _ in range(take("B"))]
        kind, size = take("B"), take("I")
        if at + size > len(data):
            raise ModelFileError(f"{path}: {name} runs past the end")
        if name.startswith(prefix):
            if kind >= len(DTYPES):
                raise ModelFileError(f"{path}: {name} has a data type this reader does not know ({kind})")
            dtype = np.dtype(DTYPES[kind])
            if size != dtype.itemsize * math.prod(shape):
                raise ModelFileError(f"{path}: {name} is {size} bytes, its shape {shape} says otherwise")
            out[name] = np.frombuffer(data, dtype=dtype, count=size // dtype.itemsize, offset=at).reshape(shape)
        at += size
    return out


@dataclass
class Cache:
    """One decoding's state: the encoder's keys and values for each layer (the same for every sentence),
    and each sentence's own keys and values so far."""

    cross: list[tuple[np.ndarray, np.ndarray]]  # per layer: keys, values (heads, positions, 64)
    own: list[tuple[np.ndarray, np.ndarray]] | None = None  # per layer: (sentences, heads, tokens, 64)
    length: int = 0  # tokens read so far

    def keep(self, rows: list[int]) -> Cache:
        """The cache of the sentences at `rows` (a sentence may be kept twice, as two continuations)."""
        own = [(k[rows], v[rows]) for k, v in self.own] if self.own is not None else None
        return Cache(self.cross, own, self.length)


class WhisperDecoder:
    """Whisper's text decoder (pre-norm Transformer: self-attention, attention to the audio, GELU
    feed-forward) from a CTranslate2 Whisper model file."""

    def __init__(self, model_file: Path):
        v = read_variables(model_file, "decoder/")

        def get(name: str) -> np.ndarray:
            if (x := v.get("decoder/" + name)) is None:
                raise ModelFileError(f"{model_file}: no decoder/{name}")
            return np.asarray(x, dtype=np.float32)

        if int(get("num_heads")) <= 0 or not int(get("pre_norm")):
            raise ModelFileError(f"{model_file}: not a pre-norm decoder with attention heads")
        self.heads = int(get("num_heads"))
        # kept as (width, vocabulary): the output projection reads it so twice as fast as the other way
        self.embeddings = np.ascontiguousarray(get("embeddings/weight").T)
        self.positions = get("position_encodings/encodings")
        self.width = self.embeddings.shape[0]
        self.head_size = self.width // self.heads
        self.layers = []
        while f"decoder/layer_{len(self.layers)}/ffn/linear_0/weight" in v:
            p = f"layer_{len(self.layers)}/"
            self.layers.append({name: get(p + name) for name in (
                "self_attention/layer_norm/gamma", "self_attention/layer_norm/beta",
                "self_attention/linear_0/weight", "self_attention/linear_0/bias",  # queries, keys, values
                "self_attention/linear_1/weight", "self_attention/linear_1/bias",
                "attention/layer_norm/gamma", "attention/layer_norm/beta",
                "attention/linear_0/weight", "attention/linear_0/bias",  # queries
                "attention/linear_1/weight", "attention/linear_1/bias",  # the audio's keys and values
                "attention/linear_2/weight", "attention/linear_2/bias",
                "ffn/layer_norm/gamma", "ffn/layer_norm/beta",
                "ffn/linear_0/weight", "ffn/linear_0/bias", "ffn/linear_1/weight", "ffn/linear_1/bias")})
        if not self.layers:
            raise ModelFileError(f"{model_file}: a decoder of no layers")
        self.norm = (get("layer_norm/gamma"), get("layer_norm/beta"))
        self.scale = 1 / math.sqrt(self.head_size)

    @staticmethod
    def _norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
        d = x - x.mean(-1, keepdims=True)
        return d / np.sqrt((d * d).mean(-1, keepdims=True) + 1e-5) * gamma + beta

    def _split(self, x: np.ndarray) -> np.ndarray:
        """(..., n, width) -> (..., heads, n, head_size)"""
        *lead, n, _ = x.shape
        return np.swapaxes(x.reshape(*lead, n, self.heads, self.head_size), -2, -3)

    def start(self, audio: np.ndarray) -> Cache:
        """A cache for decoding this encoded audio ((positions, width), as the encoder gives it)."""
        cross = []
        for layer in self.layers:
            kv = audio @ layer["attention/linear_1/weight"].T + layer["attention/linear_1/bias"]
            cross.append((self._split(kv[:, :self.width]), self._split(kv[:, self.width:])))
        return Cache(cross)

    def step(self, cache: Cache, tokens: np.ndarray, last: np.ndarray | None = None) -> tuple[np.ndarray, Cache]:
        """Read the next tokens of each sentence ((sentences, n): the same n for all); the log-probabilities of
        the token after the last one (or after the one at `last`, one place for each sentence: the rest is
        padding), (sentences, vocabulary), and the cache with them read."""
        rows, n = tokens.shape
        start = cache.length
        if start + n > len(self.positions):
            raise ValueError(f"a sentence longer than the decoder's {len(self.positions)} positions")
        x = self.embeddings[:, tokens].transpose(1, 2, 0) + self.positions[start:start + n]
        ahead = np.triu(np.full((n, n), -np.inf, dtype=np.float32), 1)  # a token sees none after it
        own = []
        for i, layer in enumerate(self.layers):
            h = self._norm(x, layer["self_attention/layer_norm/gamma"], layer["self_attention/layer_norm/beta"])
            qkv = h @ layer["self_attention/linear_0/weight"].T + layer["self_attention/linear_0/bias"]
            q, k, v = (self._split(qkv[..., j * self.width:(j + 1) * self.width]) for j in range(3))
            if cache.own is not None:
                k = np.concatenate([cache.own[i][0], k], axis=2)
                v = np.concatenate([cache.own[i][1], v], axis=2)
            own.append((k, v))
            a = q @ np.swapaxes(k, -1, -2) * self.scale
            a[..., start:] += ahead
            x = x + self._merge(_softmax(a) @ v) @ layer["self_attention/linear_1/weight"].T \
                + layer["self_attention/linear_1/bias"]
            h = self._norm(x, layer["attention/layer_norm/gamma"], layer["attention/layer_norm/beta"])
            q = self._split(h @ layer["attention/linear_0/weight"].T + layer["attention/linear_0/bias"])
            ck, cv = cache.cross[i]
            a = q @ np.swapaxes(ck, -1, -2)[None] * self.scale
            x = x + self._merge(_softmax(a) @ cv[None]) @ layer["attention/linear_2/weight"].T \
                + layer["attention/linear_2/bias"]
            h = self._norm(x, layer["ffn/layer_norm/gamma"], layer["ffn/layer_norm/beta"])
            h = h @ layer["ffn/linear_0/weight"].T + layer["ffn/linear_0/bias"]
            h = 0.5 * h * (1 + erf(h / math.sqrt(2)))  # exact GELU, as Whisper was trained with
            x = x + h @ layer["ffn/linear_1/weight"].T + layer["ffn/linear_1/bias"]
        at = x[:, -1] if last is None else x[np.arange(rows), last]
        logits = self._norm(at, *self.norm) @ self.embeddings  # the output projection is the embedding matrix, shared
        logits -= logits.max(-1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(-1, keepdims=True)), Cache(cache.cross, own, start + n)

    def _merge(self, x: np.ndarray) -> np.ndarray:
        """(sentences, heads, n, head_size) -> (sentences, n, width)"""
        rows, _, n, _ = x.shape
        return np.swapaxes(x, 1, 2).reshape(rows, n, self.width)


def _softmax(a: np.ndarray) -> np.ndarray:
    a = np.exp(a - a.max(-1, keepdims=True))
    return a / a.sum(-1, keepdims=True)


def end_logprobs(decoder: WhisperDecoder, cross: Cache, prompt: list[int], sentences: list[list[int]], eot: int
                 ) -> list[float]:
    """The log-probability of the end of text after each sentence (its tokens after `prompt`), read at once:
    a sentence that stops where the speech goes on ("a large coffee" of "a large coffee with soy milk") is
    unlikely to end there."""
    if not sentences:
        return []
    longest = max(len(s) for s in sentences)
    tokens = np.full((len(sentences), len(prompt) + longest), eot)  # padding after a sentence is not read by it
    for i, s in enumerate(sentences):
        tokens[i, :len(prompt) + len(s)] = prompt + s
    last = np.array([len(prompt) + len(s) - 1 for s in sentences])
    logprobs, _ = decoder.step(Cache(cross.cross), tokens, last)
    return [float(x) for x in logprobs[:, eot]]


class Decoding:
    """One steered decoding of encoded audio: the log-probabilities of each kept sentence's next token, and
    the step that reads the chosen ones."""

    def __init__(self, decoder: WhisperDecoder, audio: Cache, prompt: list[int], eot: int, max_tokens: int, text):
        """`audio`: the decoder's view of the audio (`start`); `text`: token ids -> the text they write."""
        self.decoder, self.eot, self.max_tokens, self.text = decoder, eot, max_tokens, text
        self.logprobs, self.cache = decoder.step(audio, np.array([prompt]))

    def advance(self, rows: list[int], tokens: list[int]) -> None:
        """Go on from the sentences at `rows` (one may be taken twice), each with its token."""
        self.logprobs, self.cache = self.decoder.step(self.cache.keep(rows), np.array(tokens)[:, None])
