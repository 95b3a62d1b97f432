"""The user's own intents: carrying one out means telling the home, on the assistant's intent topic (and
Hermes'), and saying the intent's reply; an automation does the rest."""

from __future__ import annotations

from ..config import Config
from ..presence import intent_messages
from ..types import Intent, Outcome, Source
from ..understand.custom import CustomIntents


class CustomHandler:
    def __init__(self, custom: CustomIntents, cfg: Config):
        self.custom = custom
        self.cfg = cfg

    def handles(self, intent: Intent) -> bool:
        return intent.source is Source.CUSTOM

    def plan(self, intent: Intent) -> Outcome:
        return Outcome(self.custom.reply(intent), tuple(intent_messages(intent, self.cfg)), intent=intent,
                       carries_intent=True)
