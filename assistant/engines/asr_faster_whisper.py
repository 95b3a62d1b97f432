"""Speech to text with faster-whisper (CTranslate2, int8 on the CPU).

Whisper reads 30 s windows, and its encoder's cost grows with the window, not with the speech: a 2 s
command padded to 30 s costs ten times one padded to a few seconds. The several-readings path pads to
`window_s` (10 s by default) instead. Whisper then often fails to stop and says the sentence again
("turn off the sofa lamp turn off the sofa lamp turn"), so the readings are cut where they start over,
and their length is bounded by the audio's. A first, quick reading may pad to less (`first_window_s`,
5 s by default: half the encoder's work); it loses a word more often than the full window does, so it is
taken only where it is a sentence of the home as it is and the audio check bears it out (rescore.hear);
anything else is read again.

Besides the usual best transcript, the recogniser can give several (`hypotheses`: the beam's best K,
each with its average log-probability) and can say how well given sentences fit the audio (`score`:
the decoder reads each sentence after the audio, teacher-forced, and its per-token log-probabilities
are averaged). Both work on one encoding of the audio (`encode`), so asking for more costs decoder time
only.
"""

from __future__ import annotations

import logging
import re

import numpy as np

from ..models import ModelStore
from ..types import SAMPLE_RATE
from .base import Hypothesis

log = logging.getLogger(__name__)

SCORE_MARGIN = 50  # encoder positions (20 ms each) kept after the audio when scoring sentences
PAD_FRAMES = 100  # feature frames (10 ms each) of silence at least after the audio
PRIORS_KEPT = 20000  # sentences whose prior is kept (a few MB): the home's commands and the user's orders
SCORE_BATCH = 8  # sentences scored at once: 32 at once took 150 MB more memory at their peak, and no less time
TOKENS_PER_S = 8  # more than anyone says (hyphenated misreadings take more): bounds a reading's length


def _word(w: str) -> str:
    return re.sub(r"[^\w%]", "", w.lower())


def without_repeat(text: str) -> str:
    """The text up to where it starts over: "Make the light blue Make the light blue Make" -> "Make the
    light blue", "Can I get a mocha? Can I get a mo" -> "Can I get a mocha?". A sentence that only begins like
    an earlier one ("turn on the kitchen light and turn on the hall light") is kept whole: what follows must
    repeat what came before, word for word (the last word may be cut off where the decoding stopped)."""
    words = text.split()
    norm = [_word(w) for w in words]
    if len(words) >= 2 and norm[0] and len(set(norm)) == 1:  # one word over and over: "espresso espresso"
        return words[0]
    for k in range(2, len(words)):
        tail = norm[k:]
        at_sentence_end = words[k - 1][-1:] in ".?!"
        again = (norm[:k] * (len(tail) // k + 1))[:len(tail)]
        if (len(tail) >= 2 or at_sentence_end) and tail[:-1] == again[:-1] and tail[-1] and \
                again[-1].startswith(tail[-1]):
            return " ".join(words[:k])
    return text


def without_hint(text: str, hint: str | None) -> str:
    """The text without the hint said back: the decoder takes the hint ("Kitchen light, sofa lamp.") as
    text said before, and on little speech it may say it again. Nobody says two of its names in a row
    with nothing between them, so such a run is the hint's, and is taken out."""
    if not hint:
        return text
    items = [[_word(w) for w in item.split()] for item in re.split(r"[,.]\s*", hint) if item.strip()]
    said = text.split()
    norm = [_word(w) for w in said]
    keep = [True] * len(said)
    i = 0
    while i < len(said):
        j, names = i, 0
        while (item := next((it for it in items if norm[j:j + len(it)] == it), None)) is not None:
            j += len(item)
            names += 1
        if names >= 2:
            keep[i:j] = [False] * (j - i)
        i = max(j, i + 1)
    return " ".join(w for w, k in zip(said, keep) if k).strip()


class FasterWhisper:
    nbest = True  # an NBestAsr: several readings, and sentences scored against the audio
    steers = True  # a SteerableAsr: its decoding can be steered token by token

    def __init__(self, store: ModelStore, model: str, threads: int = 2, beam_size: int = 1, window_s: float = 10.0,
                 first_window_s: float = 0.0):
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        files = store.dir(model)
        self.model = WhisperModel(str(files), device="cpu", compute_type="int8", cpu_threads=threads)
        self.model_file = files / "model.bin"
        self._decoder = None  # the steerable decoder, loaded when first asked for
        self._attending = None  # (the last encoding it read, its view of it)
        self._silence = None  # an encoding of silence, made when first asked for a prior
        self._priors: dict[str, float] = {}  # sentence -> its fit with nothing said
        self.beam_size = beam_size
        self.window_frames = int(window_s * 100)
        self.first_frames = int(first_window_s * 100) if 0 < first_window_s < window_s else 0
        self.first_shorter = bool(self.first_frames)  # encode(first=True) reads less than the full window
        self.tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual,
                                   task="transcribe", language="en")

    def transcribe(self, pcm: np.ndarray, hotwords: str | None = None) -> str:
        audio = pcm.astype(np.float32) / 32768
        segments, _ = self.model.transcribe(
            audio, language="en", beam_size=self.beam_size, hotwords=hotwords or None,
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
        )
        return without_hint(" ".join(s.text.strip() for s in segments).strip(), hotwords)

    # -- several readings, and scoring given sentences ------------------------------------------------

    def encode(self, pcm: np.ndarray, first: bool = False):
        """The encoder's view of (the first 30 s of) the audio padded to the window (`first`: the first
        reading's window), and how many feature frames are the audio's."""
        from faster_whisper.audio import pad_or_trim

        m = self.model
        features = m.feature_extractor(pcm.astype(np.float32) / 32768)
        most = m.feature_extractor.nb_max_frames
        frames = min(features.shape[-1], most)
        least = self.first_frames if first and self.first_shorter else self.window_frames
        window = min(most, max(least, frames + PAD_FRAMES))
        return m.encode(pad_or_trim(features, window + window % 2)), frames

    def _prompt(self, hotwords: str | None) -> list[int]:
        return self.model.get_prompt(self.tokenizer, [], without_timestamps=True, hotwords=hotwords or None)

    def hypotheses(self, encoded, hotwords: str | None = None, n: int = 4) -> list[Hypothesis]:
        """The beam's n best transcripts, best first."""
        enc, frames = encoded
        prompt = self._prompt(hotwords)
        longest = min(64, int(frames / 100 * TOKENS_PER_S) + 6)
        r = self.model.model.generate(
            enc, [prompt], beam_size=n, num_hypotheses=n, return_scores=True, length_penalty=1,
            max_length=min(len(prompt) + longest, self.model.max_length), suppress_blank=True, suppress_tokens=[-1],
        )[0]
        out: dict[str, Hypothesis] = {}
        for tokens, score in zip(r.sequences_ids, r.scores):
            # generate's score is the sum of log-probabilities over the length: make it a per-token average
            # counting the end of text, as faster-whisper's avg_logprob does
            said = self.tokenizer.decode([t for t in tokens if t < self.tokenizer.eot]).strip()
            text = without_hint(without_repeat(said), hotwords)
            logprob = float(score) * len(tokens) / (len(tokens) + 1)
            if text and text not in out:
                out[text] = Hypothesis(text, logprob)
        return list(out.values())

    def score(self, encoded, texts: list[str], hotwords: str | None = None) -> list[float]:
        """How well each sentence fits the audio: the average log-probability of its tokens, read by the
        decoder after the same prompt free transcription uses (not the end of text after them: see
        with_ends)."""
        if not texts:
            return []
        from ctranslate2 import StorageView

        enc, frames = encoded
        # The decoder attends to every encoder position for every sentence; past the speech (and a margin)
        # the 30 s window is padding, and leaving it out makes each sentence about seven times cheaper.
        keep = min(np.asarray(enc).shape[1], frames // 2 + SCORE_MARGIN)
        tokens = [self.tokenizer.encode(" " + t.strip()) for t in texts]
        audio = np.asarray(enc)[:, :keep]
        results = []
        for i in range(0, len(tokens), SCORE_BATCH):
            part = tokens[i:i + SCORE_BATCH]
            batch = StorageView.from_array(np.ascontiguousarray(np.repeat(audio, len(part), axis=0)))
            results += self.model.model.align(batch, self._prompt(hotwords), part, min(frames, 2 * keep))
        out = []
        for r in results:
            p = np.clip(np.asarray(r.text_token_probs, dtype=np.float64), 1e-12, 1)
            out.append(float(np.log(p).mean()))
        return out

    def prior(self, texts: list[str]) -> list[float]:
        """How likely the decoder finds each sentence with nothing said: `score` over an encoding of
        silence, kept per sentence (it does not depend on the audio). What it favours there ("hot
        chocolate") it favours in any audio; a rare word said ("cortado") fits worse than it sounds."""
        new = [t for t in dict.fromkeys(texts) if t not in self._priors]
        if new:
            if self._silence is None:
                self._silence = self.encode(np.zeros(SAMPLE_RATE, dtype=np.int16))
            if len(self._priors) + len(new) > PRIORS_KEPT:
                self._priors.clear()
            self._priors.update(zip(new, self.score(self._silence, new)))
        return [self._priors[t] for t in texts]

    def token_ids(self, text: str) -> list[int]:
        """The tokens the decoder writes a text with."""
        return self.tokenizer.encode(text)

    def with_ends(self, encoded, texts: list[str], fits: list[float]) -> list[float]:
        """The fits `score` gave these sentences, with the end of text after each counted as one token more
        (CTranslate2's teacher-forced pass gives no probability for it): a sentence that stops where the
        speech goes on fits worse than it did. Read by the numpy decoder, at about 8 ms a sentence."""
        from .whisper_decoder import end_logprobs

        tokens = [self.tokenizer.encode(" " + t.strip()) for t in texts]
        ends = end_logprobs(self.steerable(), self._attended(encoded), self._prompt(None), tokens, self.tokenizer.eot)
        return [(f * len(t) + e) / (len(t) + 1) for f, t, e in zip(fits, tokens, ends)]

    def _attended(self, encoded):
        """The decoder's view of the encoded audio (each layer's keys and values of it, over the whole window
        as free decoding reads it), made once for an encoding: the steered reading and the end-of-text
        check read the same audio."""
        if self._attending is None or self._attending[0] is not encoded:
            self._attending = (encoded, self.steerable().start(np.asarray(encoded[0])[0]))
        return self._attending[1]

    def steerable(self):
        """The numpy decoder, loaded on first use (about half a second, 125 MB). A model file it cannot read
        (another CTranslate2 version, another kind of model) leaves the recogniser unsteered, said once."""
        from .whisper_decoder import ModelFileError, WhisperDecoder

        if self._decoder is None and self.steers:
            try:
                self._decoder = WhisperDecoder(self.model_file)
            except ModelFileError as e:
                log.warning("the user's grammar is matched by text only: its decoder cannot be steered: %s", e)
                self.steers = False
        return self._decoder

    def steering(self, encoded):
        """A decoding of the encoded audio whose every next token the caller chooses (see
        understand/steered.py): Whisper's decoder in numpy, its cache held here."""
        from .whisper_decoder import Decoding

        _, frames = encoded
        longest = min(64, int(frames / 100 * TOKENS_PER_S) + 6)
        return Decoding(self.steerable(), self._attended(encoded), self._prompt(None), self.tokenizer.eot, longest,
                        lambda ids: self.tokenizer.decode(ids).strip())
