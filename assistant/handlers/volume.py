"""The volume of the box's own speaker, applied in software by the `Player` and remembered across
restarts. Muting keeps the level it had, for unmuting."""

from __future__ import annotations

from pathlib import Path

from ..audio.player import Player
from ..state import StateFile
from ..types import Intent, Outcome

STEP = 0.1  # "volume up": ten steps from silent to full


class VolumeHandler:
    def __init__(self, player: Player, state_dir: Path):
        self.player = player
        self.file = StateFile(Path(state_dir) / "volume.json")
        saved = self.file.load({})
        player.volume = float(saved.get("volume", player.volume))
        self.unmuted = float(saved.get("unmuted", player.volume or 1.0))  # the level to go back to

    def handles(self, intent: Intent) -> bool:
        return intent.name in ("HassSetVolume", "HassSetVolumeRelative", "AssistantMute", "AssistantUnmute")

    def plan(self, intent: Intent) -> Outcome:
        level = self._wanted(intent)
        reply = "Speaker muted." if level == 0 else f"Volume {round(level * 100)} percent."
        return Outcome(reply, intent=intent, effect=lambda: self._set(level))

    def _wanted(self, intent: Intent) -> float:
        if intent.name == "HassSetVolume":
            level = float(intent.slots["volume_level"]) / 100
        elif intent.name == "HassSetVolumeRelative":
            level = self.player.volume + (STEP if intent.slots.get("volume_step") == "up" else -STEP)
        else:
            level = 0.0 if intent.name == "AssistantMute" else self.unmuted
        return round(min(1.0, max(0.0, level)), 2)

    def _set(self, level: float) -> None:
        if level > 0:
            self.unmuted = level
        self.player.volume = level
        self.file.save({"volume": level, "unmuted": self.unmuted})
