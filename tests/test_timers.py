"""Timers, the spoken time and the volume as pure logic: a clock the test turns, a state directory in
tmp_path, no models and no broker."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from conftest import EXAMPLE

from assistant import config
from assistant.audio.player import Player
from assistant.events import EventBus
from assistant.handlers.clock import ClockHandler, spoken_date, spoken_time
from assistant.handlers.timers import TimerHandler
from assistant.handlers.volume import VolumeHandler
from assistant.home.live import Home
from assistant.timers import RING_EVERY_S, RING_TIMEOUT_S, Timers, spoken_duration
from assistant.understand.templates import TemplateUnderstander


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def templates() -> TemplateUnderstander:
    return TemplateUnderstander(Home(config.load(EXAMPLE)).registry, strip_prefixes=("hey jarvis", "jarvis"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list:
    return []


@pytest.fixture
def timers(tmp_path, clock, events) -> Timers:
    bus = EventBus()
    bus.subscribe(events.append)
    return Timers(tmp_path, bus, clock)


def say(templates, handler, text: str) -> str:
    """What the box answers to `text`, carried out as a turn would."""
    intent = templates.understand(text)
    assert intent is not None and intent.confidence == 1, text
    outcome = handler.plan(intent)
    if outcome.effect:
        outcome.effect()
    return outcome.reply


@pytest.mark.parametrize("seconds,said", [(1, "1 second"), (300, "5 minutes"), (252, "4 minutes and 12 seconds"),
                                          (3725, "1 hour, 2 minutes and 5 seconds"), (11400, "3 hours and 10 minutes")])
def test_durations_are_said_as_people_say_them(seconds, said):
    assert spoken_duration(seconds) == said


@pytest.mark.parametrize("text,slots", [
    ("set a timer for 3 hours and 10 minutes", {"hours": 3, "minutes": 10}),
    ("set a 5 minute pizza timer", {"minutes": 5, "name": "pizza"}),
    ("set a pizza timer for 5 minutes", {"minutes": 5, "name": "pizza"}),
    ("timer for 30 seconds", {"seconds": 30}),
    ("Hey Jarvis, set a timer for 1 minute called tea.", {"minutes": 1, "name": "tea"}),
])
def test_timer_sentences_carry_their_slots(templates, text, slots):
    intent = templates.understand(text)
    assert intent.name == "HassStartTimer" and intent.slots == slots and intent.device_ids == ()


def test_start_status_and_cancel_by_name(templates, timers, clock, events):
    h = TimerHandler(timers)
    assert say(templates, h, "set a 5 minute pizza timer") == "Pizza timer, 5 minutes, started."
    assert say(templates, h, "set a timer for 10 minutes called tea") == "Tea timer, 10 minutes, started."
    clock.now += 48
    assert say(templates, h, "how much time is left on the pizza timer") == \
        "The pizza timer has 4 minutes and 12 seconds left."
    assert say(templates, h, "timer status") == ("The pizza timer has 4 minutes and 12 seconds left. "
                                                 "The tea timer has 9 minutes and 12 seconds left.")
    assert say(templates, h, "cancel the pizza timer") == "Pizza timer cancelled."
    assert [t.name for t in timers.active()] == ["tea"]
    assert [e.data["event"] for e in events] == ["started", "started", "cancelled"]
    assert say(templates, h, "cancel the cake timer") == "There is no cake timer."


def test_pause_resume_add_and_take_away(templates, timers, clock):
    h = TimerHandler(timers)
    say(templates, h, "set a timer for 2 minutes")
    assert say(templates, h, "pause the timer") == "2 minute timer paused."
    clock.now += 600  # paused: the time does not run
    assert say(templates, h, "add 1 minute to the timer") == "1 minute added to the 2 minute timer."
    assert say(templates, h, "resume the timer") == "3 minute timer resumed."
    clock.now += 30
    assert say(templates, h, "remove 1 minute from the timer") == "1 minute taken off the 3 minute timer."
    assert timers.remaining(timers.active()[0]) == 90


def test_two_unnamed_timers_are_asked_about(templates, timers):
    h = TimerHandler(timers)
    say(templates, h, "set a timer for 2 minutes")
    say(templates, h, "set a timer for 3 minutes")
    assert say(templates, h, "pause the timer").startswith("Which one?")
    assert say(templates, h, "cancel the 3 minute timer") == "3 minute timer cancelled."


def test_a_finished_timer_rings_until_stopped_and_gives_up_alone(templates, timers, clock, events):
    h = TimerHandler(timers)
    say(templates, h, "set a 2 second egg timer")
    assert timers.take() == []
    clock.now += 2
    assert [t.label for _, t in timers.take()] == ["egg timer"]
    assert timers.take() == []  # rung just now
    clock.now += RING_EVERY_S
    assert len(timers.take()) == 1  # and again
    assert say(templates, h, "stop") == ""
    assert timers.ringing() == [] and timers.timers == {}
    clock.now += RING_EVERY_S
    assert timers.take() == []
    say(templates, h, "set a 1 second timer")
    clock.now += 1
    timers.take()
    clock.now += RING_TIMEOUT_S + RING_EVERY_S
    assert timers.take() == [] and timers.timers == {}  # nobody home: it gave up
    assert [e.data["event"] for e in events][-3:] == ["started", "finished", "cancelled"]


def test_timers_survive_a_restart_and_ring_on(tmp_path, clock):
    first = Timers(tmp_path, EventBus(), clock)
    first.start(60, "tea")
    first.start(5, "egg")
    clock.now += 5
    assert len(first.take()) == 1  # the egg timer rings as the box stops
    again = Timers(tmp_path, EventBus(), clock)
    assert [t.label for _, t in again.take()] == ["egg timer"]  # at once, not after RING_EVERY_S
    assert again.remaining(again.find("tea")[0]) == 55
    assert not list(tmp_path.glob("*.tmp"))  # written whole, then renamed


def test_never_mind_with_nothing_ringing_is_a_quiet_end(templates, timers):
    for text in ("never mind", "cancel", "stop"):
        outcome = TimerHandler(timers).plan(templates.understand(text))
        assert outcome.reply == "" and outcome.effect is None and not outcome.commands


@pytest.mark.parametrize("hour,minute,said", [(15, 20, "It's 3:20 PM."), (9, 5, "It's 9:05 AM."),
                                              (12, 0, "It's noon."), (0, 0, "It's midnight."), (0, 30, "It's 12:30 AM."),
                                              (18, 0, "It's 6 PM.")])
def test_time_is_said_naturally(hour, minute, said):
    assert spoken_time(datetime(2026, 11, 30, hour, minute)) == said


def test_time_and_date_in_the_configured_zone(templates):
    utc = datetime(2026, 11, 30, 23, 30, tzinfo=ZoneInfo("UTC"))
    tokyo = ClockHandler("Asia/Tokyo", now=lambda: utc.astimezone(ZoneInfo("Asia/Tokyo")))
    assert tokyo.plan(templates.understand("what time is it")).reply == "It's 8:30 AM."
    assert tokyo.plan(templates.understand("what day is it")).reply == spoken_date(datetime(2026, 12, 1)) == \
        "It's Tuesday, December 1."
    assert ClockHandler("Asia/Tokyo").now().utcoffset().total_seconds() == 9 * 3600


def test_volume_is_set_stepped_muted_and_remembered(templates, tmp_path):
    player = Player(None, None, None)
    h = VolumeHandler(player, tmp_path)
    assert say(templates, h, "set the volume to 40 percent") == "Volume 40 percent."
    assert player.volume == 0.4
    say(templates, h, "volume up")
    assert player.volume == 0.5
    assert say(templates, h, "mute the speaker") == "Speaker muted." and player.volume == 0
    again = Player(None, None, None)
    VolumeHandler(again, tmp_path)  # a restart
    assert again.volume == 0
    say(templates, VolumeHandler(again, tmp_path), "unmute the speaker")
    assert again.volume == 0.5


def test_the_box_own_sentences_leave_the_lights_alone(templates):
    for text, name in [("turn on the kitchen light", "HassTurnOn"), ("set the kitchen light to 40 percent", "HassLightSet")]:
        assert templates.understand(text).name == name
    assert templates.understand("turn on the kitchen light in 5 minutes").name == "HassTurnOn"  # no delayed commands
