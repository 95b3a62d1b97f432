"""The Wyoming protocol's events as read from a client that may not be trusted: every size is checked
before anything is read, so a huge or malformed event costs the box nothing. And the errors the
service reports."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlparse

from wyoming.event import Event

from .config import ConfigError, WyomingConfig

MAX_LINE = 64 * 1024  # an event's JSON header
MAX_DATA = 64 * 1024  # its data, when sent after the header
MAX_PAYLOAD = 2 * 1024 * 1024  # its payload: an audio chunk


class ServeError(Exception):
    """The service cannot start (the port is taken, the address is not this machine's); one line."""


class BadEvent(Exception):
    """An event that breaks the protocol or its bounds."""


class Refused(Exception):
    """A request the service will not take; the message goes back to the client as an error."""


def from_uri(cfg: WyomingConfig, uri: str) -> WyomingConfig:
    """The config with `--uri tcp://HOST:PORT` for its address."""
    u = urlparse(uri)
    try:
        port = u.port
    except ValueError:
        port = None
    if u.scheme != "tcp" or not u.hostname or port is None:
        raise ConfigError(f"--uri should look like tcp://127.0.0.1:10700, got {uri!r}")
    cfg.listen, cfg.port = u.hostname, port
    return cfg


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, None at the end of the stream; sizes are checked before anything is read."""
    try:
        line = await reader.readline()  # longer than the reader's limit (MAX_LINE): ValueError
        if not line:
            return None
        header = json.loads(line)
    except ValueError as e:
        raise BadEvent(f"not an event header: {e}") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise BadEvent("an event header is a JSON object with a 'type'")
    data = header.get("data") or {}
    data_length, payload_length = header.get("data_length") or 0, header.get("payload_length") or 0
    for name, n, limit in [("data_length", data_length, MAX_DATA), ("payload_length", payload_length, MAX_PAYLOAD)]:
        if not isinstance(n, int) or not 0 <= n <= limit:
            raise BadEvent(f"'{name}' should be a size up to {limit} bytes, got {n!r}")
    if data_length:
        try:
            data = {**data, **json.loads(await reader.readexactly(data_length))}
        except (ValueError, TypeError) as e:
            raise BadEvent(f"the event's data is not a JSON object: {e}") from None
    payload = await reader.readexactly(payload_length) if payload_length else None
    if not isinstance(data, dict):
        raise BadEvent("the event's data is not a JSON object")
    return Event(header["type"], data, payload)
