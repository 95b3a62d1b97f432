"""What the live microphone and speaker have been through since the assistant started: frames dropped,
devices lost and opened again. The running assistant keeps it in its state directory (`audio.json`,
written only when something changed), where `assistant doctor`, another process, reads it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from ..state import StateFile

log = logging.getLogger(__name__)
FILE = "audio.json"
SERVICE_STATE_DIR = Path("/var/lib/assistant")  # the service's StateDirectory, where doctor also looks


def snapshot(source, sink) -> dict:
    """The counters of a live source and sink (those that keep any), as the assistant sees them now."""
    out = {}
    if (stats := getattr(source, "stats", None)) is not None:
        out["input"] = stats()
    if (stats := getattr(sink, "stats", None)) is not None:
        out["output"] = stats()
    return out


async def keep(source, sink, state_dir: Path, every_s: float = 15.0) -> None:
    """Writes the counters whenever they changed, checked every `every_s`, until cancelled."""
    file = StateFile(Path(state_dir) / FILE)
    started, last = time.time(), None
    while True:
        now = snapshot(source, sink)
        if now and now != last:
            try:
                file.save({**now, "pid": os.getpid(), "started": started, "updated": time.time()})
            except OSError as e:  # a state directory it cannot write: the box works on, unreported
                if last is None:
                    log.warning("cannot keep the audio report in %s: %s", file.path, e)
            last = now
        await asyncio.sleep(every_s)


def read(*dirs: Path) -> tuple[Path, dict] | None:
    """The newest report among these state directories, with its file."""
    found = []
    for d in dirs:
        path = Path(d) / FILE
        if path.is_file():
            report = StateFile(path).load(None)
            if isinstance(report, dict):
                found.append((report.get("updated", 0), path, report))
    if not found:
        return None
    _, path, report = max(found, key=lambda f: f[0])
    return path, report


def running(report: dict) -> bool:
    """Whether the process that wrote the report still runs."""
    pid = report.get("pid")
    return isinstance(pid, int) and Path(f"/proc/{pid}").exists()


def describe(report: dict) -> list[str]:
    """The report in words, one line per device."""
    lines = []
    if (i := report.get("input")) is not None:
        now = f"missing now: {i['missing']}" if i.get("missing") else "working"
        lines.append(f"microphone {i.get('device')!r}: {now}; opened again {i.get('reopened', 0)} times, "
                     f"{i.get('dropped', 0)} frames dropped by a slow pipeline, "
                     f"{i.get('overflows', 0)} overflows reported by PortAudio")
    if (e := (i or {}).get("echo_cancel")) is not None:
        lines.append(echo_text(e))
    if (o := report.get("output")) is not None:
        now = f"failing now: {o['missing']}" if o.get("missing") else "working"
        lines.append(f"speaker {o.get('device')!r}: {now}; {o.get('failed', 0)} plays failed, "
                     f"opened again {o.get('reopened', 0)} times")
    return lines


def echo_text(e: dict) -> str:
    """The echo canceller's figures (MicSource.stats()['echo_cancel']) in words."""
    if "off" in e:
        return f"echo cancellation: off, {e['off']}"
    per = f"{e['ms_per_frame']} ms CPU each" if e.get("ms_per_frame") is not None else "none yet"
    left = f"; left out: {e['gave_up']}" if e.get("gave_up") else ""
    return (f"echo cancellation: {e.get('frames', 0)} frames of 10 ms cleaned ({per}), {e.get('failed', 0)} failed, "
            f"{e.get('dropped', 0)} dropped{left}")
