"""How hot the board is and whether it is throttling: the thermal zones in sysfs, and the Raspberry Pi
firmware's throttled flags (its sysfs file, else `vcgencmd get_throttled`). Read by `assistant doctor`
and by the LLM's model choice; `sys_root` lets tests stand a directory in for /sys."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

THROTTLED = {0: "under-voltage now", 1: "ARM frequency capped now", 2: "throttled now",
             3: "soft temperature limit now", 16: "under-voltage has occurred", 17: "frequency capping has occurred",
             18: "throttling has occurred", 19: "soft temperature limit has occurred"}
SLOWED_NOW = (1 << 1) | (1 << 2) | (1 << 3)  # capped, throttled or at the soft limit at this moment

# The firmware driver's attribute (Raspberry Pi kernels); the platform device's name differs by board.
THROTTLED_FILES = ("devices/platform/soc/soc:firmware/get_throttled", "devices/platform/*/*:firmware/get_throttled",
                   "devices/platform/*firmware*/get_throttled")


@dataclass(frozen=True)
class Reading:
    temp_c: float | None = None  # the hottest thermal zone
    throttled: int | None = None  # get_throttled's bits; None when there is nothing to read them from
    error: str | None = None  # the throttled flags could not be read, and why

    @property
    def slowed_now(self) -> bool:
        return bool(self.throttled and self.throttled & SLOWED_NOW)

    def flags(self) -> list[str]:
        return [w for bit, w in THROTTLED.items() if self.throttled and self.throttled & (1 << bit)]

    def hot(self, limit_c: float) -> str | None:
        """Why the board counts as throttling (in words), or None."""
        if self.slowed_now:
            return ", ".join(w for w in self.flags() if w.endswith("now"))
        if self.temp_c is not None and self.temp_c >= limit_c:
            return f"CPU at {self.temp_c:.0f} °C, limit {limit_c:.0f} °C"
        return None

    def describe(self) -> str:
        t = f"CPU at {self.temp_c:.0f} °C" if self.temp_c is not None else "no thermal sensor"
        if self.throttled is None:
            return t
        return f"{t}, get_throttled={self.throttled:#x}" + (f" ({', '.join(self.flags())})" if self.throttled else "")


def temperature(sys_root: str = "/sys") -> float | None:
    temps = []
    for zone in sorted(Path(sys_root, "class/thermal").glob("thermal_zone*/temp")):
        try:
            temps.append(int(zone.read_text().strip()) / 1000)
        except (OSError, ValueError):
            continue
    return max(temps) if temps else None


def throttled(sys_root: str = "/sys", vcgencmd: str | None = None) -> tuple[int | None, str | None]:
    """The firmware's throttled bits, from its sysfs file, else from vcgencmd; (None, why) if neither."""
    for pattern in THROTTLED_FILES:
        for f in sorted(Path(sys_root).glob(pattern)):
            try:
                return int(f.read_text().strip(), 16), None
            except (OSError, ValueError) as e:
                return None, f"{f}: {e}"
    if not vcgencmd:
        return None, None
    try:
        done = subprocess.run([vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=5,
                              check=False)
        if done.returncode != 0:
            return None, f"vcgencmd get_throttled failed: {done.stderr.strip()}"
        return int(done.stdout.strip().split("=")[-1], 16), None
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        return None, f"vcgencmd get_throttled failed: {e}"


def read(sys_root: str = "/sys", vcgencmd: str | None = None) -> Reading:
    bits, error = throttled(sys_root, vcgencmd)
    return Reading(temperature(sys_root), bits, error)
