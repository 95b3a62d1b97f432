"""The Wyoming server's guards, without models: event sizes, the --uri and the [wyoming] config."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import home_config, run

from assistant.config import ConfigError, WyomingConfig
from assistant.wyoming_events import (
    MAX_DATA,
    MAX_LINE,
    MAX_PAYLOAD,
    BadEvent,
    from_uri,
    read_event,
)


def read(raw: bytes):
    async def go():
        reader = asyncio.StreamReader(limit=MAX_LINE)
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_event(reader)

    return run(go())


def header(**fields) -> bytes:
    return json.dumps(fields).encode() + b"\n"


def test_an_event_with_data_and_payload_is_read_whole():
    event = read(header(type="audio-chunk", data={"rate": 16000}, data_length=14, payload_length=4)
                 + b'{"width": 2}  ' + b"\x00\x01\x02\x03")
    assert event.type == "audio-chunk" and event.data == {"rate": 16000, "width": 2} and event.payload == b"\x00\x01\x02\x03"


def test_the_end_of_the_stream_is_no_event():
    assert read(b"") is None


@pytest.mark.parametrize("raw", [
    header(type="audio-chunk", payload_length=MAX_PAYLOAD + 1),
    header(type="describe", data_length=MAX_DATA + 1),
    header(type="describe", data_length=-1),
    header(type="describe", payload_length="12"),
    b'{"type": "describe", "data": {"x": "' + b"x" * MAX_LINE + b'"}}\n',
    b"[1, 2]\n",
    header(type=7),
    header(type="describe", data_length=2) + b"[]",
])
def test_an_event_too_big_or_malformed_is_refused_before_it_is_read(raw):
    with pytest.raises(BadEvent):
        read(raw)


def test_the_uri_sets_address_and_port():
    cfg = from_uri(WyomingConfig(), "tcp://0.0.0.0:10800")
    assert (cfg.listen, cfg.port) == ("0.0.0.0", 10800)


@pytest.mark.parametrize("uri", ["unix:///tmp/socket", "tcp://127.0.0.1", "tcp://127.0.0.1:port", "10700"])
def test_a_uri_that_is_not_tcp_host_port_is_a_clear_error(uri):
    with pytest.raises(ConfigError, match="--uri should look like"):
        from_uri(WyomingConfig(), uri)


def test_the_service_is_off_in_run_and_on_loopback_by_default(tmp_path):
    w = home_config(tmp_path).wyoming
    assert (w.enabled, w.listen, w.port, w.zeroconf) == (False, "127.0.0.1", 10700, True)


@pytest.mark.parametrize("toml, key", [("port = 70000", "wyoming.port"), ("max_clients = 0", "wyoming.max_clients"),
                                       ("idle_timeout_s = 0", "wyoming.idle_timeout_s"), ('listen = " "', "wyoming.listen")])
def test_a_bad_wyoming_setting_names_its_key(tmp_path, toml, key):
    with pytest.raises(ConfigError) as e:
        home_config(tmp_path, f"\n[wyoming]\n{toml}\n")
    assert e.value.key == key
