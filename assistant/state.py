"""What the box remembers across restarts (timers, the volume): small JSON files in the state directory,
written whole to a temporary file and renamed over the old one, so a power cut leaves the old or the new
file, never half of one."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class StateFile:
    def __init__(self, path: Path):
        self.path = path

    def load(self, default: Any) -> Any:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return default
        except (OSError, ValueError) as e:  # unreadable: start afresh rather than not at all
            log.warning("ignored %s: %s", self.path, e)
            return default

    def save(self, value: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(value, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
