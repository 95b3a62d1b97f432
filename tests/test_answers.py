"""Answers to "Should I ...?" are read as a whole: a no anywhere wins, a lock needs a yes on its own,
and an answer that is neither is asked about once more, then dropped. Pure logic: no models, no broker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import EXAMPLE, with_front_door_lock

from assistant import config, handlers
from assistant.audio.player import Player
from assistant.events import EventBus
from assistant.home.live import Home
from assistant.timers import Timers
from assistant.understand.custom import CustomIntents
from assistant.understand.custom import from_config as custom_grammar
from assistant.understand.understanding import NOT_SURE, Understanding, Verdict


def understanding(cfg: config.Config, state: Path) -> Understanding:
    cfg.llm.route, cfg.state_dir = "templates", str(state)
    home, custom = Home(cfg), CustomIntents(custom_grammar(cfg), cfg.language)
    plan = handlers.for_home(cfg, home, custom, Timers(state, EventBus()), Player(None, None, None)).plan
    return Understanding(cfg, home.registry, custom, plan)


@pytest.fixture(scope="module")
def with_lock(tmp_path_factory) -> Understanding:
    return understanding(with_front_door_lock(tmp_path_factory.mktemp("home")), tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Understanding:
    return understanding(config.load(EXAMPLE), tmp_path_factory.mktemp("state"))


@pytest.fixture
def asked_about_the_lock(with_lock) -> Understanding:
    with_lock.forget()
    assert with_lock.read("unlock the front door").verdict is Verdict.ASK  # a lock is always asked about
    return with_lock


@pytest.fixture
def asked_about_a_light(example) -> Understanding:
    u = example
    u.forget()
    unsure = dataclasses.replace(u.lookup("turn on the kitchen light"), confidence=0.75)  # as if misheard
    assert u.decide(unsure).verdict is Verdict.ASK
    return u


@pytest.mark.parametrize("answer", ["Please don't.", "OK, wait, no.", "Right, cancel that.", "Yes. No, stop!",
                                    "Sure, not now.", "Never mind."])
def test_a_no_anywhere_declines(asked_about_the_lock, answer):
    d = asked_about_the_lock.read(answer)
    assert d.verdict is Verdict.DECLINED and not d.outcome.commands
    assert asked_about_the_lock.pending is None


@pytest.mark.parametrize("answer", ["Yes.", "Yes, please.", "Do it.", "Sure, go ahead.", "Okay, thanks."])
def test_a_yes_on_its_own_opens_the_lock(asked_about_the_lock, answer):
    d = asked_about_the_lock.read(answer)
    assert d.verdict is Verdict.ACT and [c.device_id for c in d.outcome.commands] == ["front_door"]


@pytest.mark.parametrize("answer", ["Yes, and now the weather for the weekend.", "Okay everyone, welcome back."])
def test_a_yes_that_starts_other_talk_does_not_open_the_lock(asked_about_the_lock, answer):
    d = asked_about_the_lock.read(answer)
    assert d.verdict is Verdict.ASK and d.outcome.reply == NOT_SURE and not d.outcome.commands


def test_a_yes_that_goes_on_is_enough_for_a_light(asked_about_a_light):
    d = asked_about_a_light.read("Yes, the kitchen one.")
    assert d.verdict is Verdict.ACT and [c.device_id for c in d.outcome.commands] == ["kitchen_light"]


def test_neither_yes_nor_no_is_asked_once_more_then_dropped(asked_about_the_lock):
    first = asked_about_the_lock.read("Hmm, what was that?")
    assert first.verdict is Verdict.ASK and first.outcome.reply == NOT_SURE
    second = asked_about_the_lock.read("The weather is nice today.")
    assert second.verdict is Verdict.DECLINED and not second.outcome.commands
    assert asked_about_the_lock.pending is None


def test_a_new_request_replaces_the_question(asked_about_the_lock):
    d = asked_about_the_lock.read("Turn off the bedroom light.")
    assert d.verdict is Verdict.ACT and [c.device_id for c in d.outcome.commands] == ["bedroom_light"]
    assert asked_about_the_lock.pending is None


def test_a_timer_heard_unsure_is_asked_about_and_started_on_yes(example):
    """A timer has no device message, only an effect on the box: unsure, it is asked about all the same."""
    example.forget()
    unsure = dataclasses.replace(example.lookup("set a timer for 2 seconds"), confidence=0.75)
    d = example.decide(unsure)
    assert d.verdict is Verdict.ASK and d.outcome.effect is None and "timer" in d.outcome.reply
    d = example.read("Yes.")
    assert d.verdict is Verdict.ACT and d.outcome.effect is not None


def test_an_answer_heard_unsure_is_asked_about_and_said_after_a_yes(example):
    """"Open the pod bay doors" was once told the date at 0.75: an answer nobody may have asked for is
    asked about first, as a command would be; the yes gets it."""
    u = example
    u.forget()
    unsure = dataclasses.replace(u.lookup("what time is it"), confidence=0.75)
    d = u.decide(unsure)
    assert d.verdict is Verdict.ASK and d.outcome.reply == "Did you ask: what time is it?"
    said = u.read("yes")
    assert said.verdict is Verdict.ACT and said.outcome.reply.startswith("It's")
    sure = u.decide(dataclasses.replace(unsure, confidence=1.0))
    assert sure.verdict is Verdict.ACT and sure.outcome.reply.startswith("It's")
