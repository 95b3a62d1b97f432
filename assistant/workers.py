"""One worker thread per engine: a model is never used from two threads at once, and never on the event
loop."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

# listen: the wake word and the VAD. Longest a single call may take before the box counts as hung; a
# Pi 5 is several times slower than a desktop, and the LLM's first call loads its model.
LIMITS_S = {"listen": 10.0, "asr": 60.0, "tts": 60.0, "llm": 120.0}


class Workers:
    def __init__(self):
        self.pools = {n: ThreadPoolExecutor(1, thread_name_prefix=n) for n in LIMITS_S}
        self.busy_since: dict[str, float] = {}  # worker -> when its call under way began

    async def run(self, name: str, fn, *args):
        self.busy_since[name] = time.monotonic()
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pools[name], fn, *args)
        finally:
            self.busy_since.pop(name, None)

    def stalled(self) -> str | None:
        """Why the box is hung, if a call has run past its worker's limit."""
        now = time.monotonic()
        for name, since in list(self.busy_since.items()):
            if now - since > LIMITS_S[name]:
                return f"the {name} worker has been busy for {now - since:.0f} s"
        return None

    def close(self) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
