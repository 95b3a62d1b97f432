"""One worker thread per engine: a model is never used from two threads at once, and never on the event
loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

NAMES = ("listen", "asr", "tts", "llm")  # listen: the wake word and the VAD


class Workers:
    def __init__(self):
        self.pools = {n: ThreadPoolExecutor(1, thread_name_prefix=n) for n in NAMES}

    async def run(self, name: str, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pools[name], fn, *args)

    def close(self) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
