"""The development audio: public recordings for the tests and `assistant accuracy`, kept beside the project
(../shared/devset) or wherever $ASSISTANT_DEVSET says."""

from __future__ import annotations

import os
from pathlib import Path

BESIDE = Path(__file__).resolve().parent.parent.parent / "shared" / "devset"
SOURCES = ("The development audio is public: rhasspy-en/ holds spoken commands and wake-word recordings from "
           "the Rhasspy project's test set (MIT), noise-rir/ noise recordings and room impulse responses from "
           "SpeechBrain's test samples (Apache-2.0).")


def root() -> Path:
    return Path(os.environ.get("ASSISTANT_DEVSET") or BESIDE)

