"""TOML configuration: typed sections, validated at start-up; every error names the file and the key."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .mqtt_topics import filter_problem, topic_problem


class ConfigError(Exception):
    """A config problem, already phrased as one line for the user: "FILE: 'KEY' should ...".

    `key` is the dotted key the message names first ("mqtt.url", "device[0].name"), or None when the file
    as a whole is wrong. It is read from the message, so every check that follows the format has it."""

    _KEY = re.compile(r": (?:unknown key |missing key )?'([^']+)'")

    def __init__(self, message: str):
        super().__init__(message)
        found = self._KEY.search(message)
        self.key = found[1] if found else None


DEFAULT_WAKE = "hey_jarvis"


@dataclass(frozen=True)
class WakeEntry:
    """One wake word the box listens for: a model of the manifest, or the user's own openWakeWord file."""

    name: str  # in events, logs, on the broker and to Home Assistant: the manifest name, or the file's stem
    file: str = ""  # the user's own ONNX model (absolute once the config is checked); empty: the manifest's
    key: str = "wake.model"  # the config key that names it, for errors

    @property
    def phrase(self) -> str:
        """What is said to wake the box, from the name: hey_jarvis_v0.1 -> "hey jarvis"."""
        return re.sub(r"[_-]+", " ", re.sub(r"_v\d[\d.]*$", "", self.name)).strip()


@dataclass
class WakeConfig:
    models: list[str] = field(default_factory=list)  # manifest names or .onnx files; all listen at once
    model: str = ""  # the one-word form: model = "alexa" is models = ["alexa"]; neither: hey_jarvis
    threshold: float = 0.5  # any wake word scoring this much wakes the box
    refractory_s: float = 2.0

    def listed(self) -> list[tuple[str, str]]:
        """(key, value) of each wake word as the config names it."""
        return [(f"wake.models[{i}]", v) for i, v in enumerate(self.models)] or [
            ("wake.model", self.model or DEFAULT_WAKE)]

    def entries(self) -> list[WakeEntry]:
        """The wake words, in the order the config lists them."""
        return [WakeEntry(Path(v).stem, v, key) if is_model_file(v) else WakeEntry(v, "", key)
                for key, v in self.listed()]


def is_model_file(value: str) -> bool:
    """A path to a file rather than a name in the manifest."""
    return "/" in value or value.startswith("~") or value.endswith(".onnx")


@dataclass
class ListenConfig:
    vad_threshold: float = 0.5
    silence_ms: int = 600  # how long a pause ends the command
    start_timeout_s: float = 4.0  # give up if nothing is said after the wake word
    max_seconds: float = 10.0
    early: bool = True  # a whole command of the home is acted on after a short pause, not the full silence_ms


@dataclass
class AsrConfig:
    model: str = "whisper-tiny.en"
    beam_size: int = 1
    threads: int = 2
    hints: bool = True  # pass device and area names to the decoder as hotwords
    nbest: int = 4  # readings the beam keeps when the greedy one is not a home sentence as it is (1: greedy only)
    window_s: float = 10.0  # the audio is padded to this (Whisper's own is 30 s: three times the work)
    first_window_s: float = 5.0  # the first, greedy reading's window (0: `window_s` for it too)


@dataclass
class UnderstandConfig:
    fuzzy: bool = True  # snap misheard transcripts onto the nearest sentence this home can say
    act_threshold: float = 0.8  # confidence at or above which a command is carried out
    ask_threshold: float = 0.7  # between the two, the assistant asks back; below, it does nothing
    check: bool = True  # ask the recogniser which of the home's nearest sentences fits the audio best
    steer: bool = True  # also read the audio as only the user's own grammar allows (with check)
    confirm_domains: list[str] = field(default_factory=lambda: ["lock", "cover", "alarm_control_panel"])


@dataclass
class TtsConfig:
    voice: str = "piper-joe-medium"
    length_scale: float = 1.0


@dataclass
class MqttConfig:
    url: str = "mqtt://127.0.0.1:1883"
    username: str = ""
    password: str = ""
    client_id: str = ""
    command_timeout_s: float = 3.0  # a command not delivered by then is answered as failed
    topic_prefix: str = "assistant"
    ca_file: str = ""  # TLS (mqtts://): the CA that signed the broker's certificate; empty: system CAs
    cert_file: str = ""  # TLS client certificate, when the broker asks for one
    key_file: str = ""
    max_payload_kb: int = 2048  # bigger messages are logged and ignored
    hermes: bool = False  # also publish recognised intents in Rhasspy's hermes/intent/<name> shape


@dataclass
class DiscoveryConfig:
    enabled: bool = True
    homeassistant_prefix: str = "homeassistant"
    zigbee2mqtt_base_topics: list[str] = field(default_factory=lambda: ["zigbee2mqtt"])
    allow: list[str] = field(default_factory=lambda: ["#"])  # topic filters discovered devices may be sent to
    wait_s: float = 1.0  # a one-shot run waits this long (at most) for retained announcements


@dataclass
class CustomizeConfig:
    """Adds to a discovered device: what people call it and where it is."""

    match: str  # the discovered device's name or id
    name: str = ""
    aliases: list[str] = field(default_factory=list)
    area: str = ""


@dataclass
class AudioConfig:
    input_device: str = ""  # sounddevice name or index; empty: the default; "file:PATH" loops a WAV; "silence"
    output_device: str = ""  # sounddevice name or index; empty: the default; "none" drops the replies
    # A live microphone: what the speaker plays is taken out of what it hears (WebRTC's canceller, in process);
    # with it the wake word cuts a louder reply 9 times in 10 in the test room, and its own voice never (README)
    echo_cancel: bool = True
    echo_delay_ms: int = 0  # the speaker heard this much later than usual (Bluetooth); the canceller finds ~0.5 s
    noise_suppression: bool = False  # WebRTC's, on the microphone (with the canceller)
    auto_gain: bool = False  # WebRTC's automatic gain on the microphone (with the canceller)


@dataclass
class SoundsConfig:
    """Short sounds around a turn; each key names a WAV of the user's own instead of the built-in one."""

    enabled: bool = True
    listening: str = ""  # the wake word was heard
    done: str = ""  # the command was taken
    error: str = ""  # the turn failed or was not understood
    ring: str = ""  # a timer finished

    def own(self) -> dict[str, str]:
        return {n: getattr(self, n) for n in SOUND_NAMES if getattr(self, n)}


SOUND_NAMES = ("listening", "done", "error", "ring")


@dataclass
class DeviceConfig:
    name: str
    id: str = ""
    aliases: list[str] = field(default_factory=list)
    area: str = ""
    domain: str = "light"
    dialect: str = "zigbee2mqtt"  # zigbee2mqtt | ha_json | ha_default | tasmota
    friendly_name: str = ""  # zigbee2mqtt
    base_topic: str = "zigbee2mqtt"  # zigbee2mqtt
    command_topic: str = ""  # ha_json, ha_default
    state_topic: str = ""  # ha_json, ha_default
    availability_topic: str = ""  # ha_json, ha_default
    brightness_command_topic: str = ""  # ha_default
    brightness_state_topic: str = ""  # ha_default
    payload_on: str = "ON"  # ha_default
    payload_off: str = "OFF"  # ha_default
    brightness_scale: int = 255  # ha_json, ha_default
    topic: str = ""  # tasmota: the device's %topic%
    color: bool = True


@dataclass
class IntentConfig:
    """A custom intent (see assistant/understand/custom.py)."""

    name: str
    sentences: list[str]
    reply: str = ""


@dataclass
class SlotConfig:
    """A slot list for custom intents: words, words with the value they stand for, or a number range."""

    name: str
    values: list[str] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)  # said -> value
    range: list[int] = field(default_factory=list)  # [from, to] or [from, to, step]


DIALECTS = ("zigbee2mqtt", "ha_json", "ha_default", "tasmota")


@dataclass
class LlmConfig:
    route: str = "templates"  # templates | templates_then_llm | llm
    backend: str = "auto"  # auto | hailo | llama_cpp | openai
    model: str = "gemma-3-270m-q4_k_m"  # llama_cpp: GGUF model name in the manifest, or a file path
    hef: str = ""  # hailo: the HEF file
    url: str = "http://127.0.0.1:8080/v1"  # openai: the endpoint's base URL
    api: str = "completions"  # openai: completions (base models) | chat (instruction-tuned models)
    api_key: str = ""
    remote_model: str = ""  # openai: the model name the server expects
    threads: int = 2
    context: int = 2048
    max_answer_tokens: int = 60  # spoken answers are capped: nobody wants a lecture from a speaker
    timeout_s: float = 30.0
    follow_up_s: float = 5.0  # after the assistant asks a question, listen this long without the wake word
    constrain: bool = True  # llama_cpp: sample only tokens that continue a valid answer line
    question_model: str = ""  # llama_cpp: a larger GGUF (name or path) for open questions; empty: llm.model
    throttled_model: str = ""  # llama_cpp: a smaller GGUF used for everything while the board throttles
    hot_c: float = 80.0  # CPU temperature from which the board counts as throttling (so do its throttled flags)
    sys_root: str = "/sys"  # where the thermal zones and the Raspberry Pi's get_throttled are read


@dataclass
class WyomingConfig:
    """Home Assistant's voice services over the Wyoming protocol (`assistant serve`, or with `run`)."""

    enabled: bool = False  # `assistant run` serves too, with the models it already loaded
    listen: str = "127.0.0.1"  # loopback: only this machine; 0.0.0.0 or an address to reach it from the LAN
    port: int = 10700
    zeroconf: bool = True  # announce the service (_wyoming._tcp) so Home Assistant finds it
    name: str = ""  # the name announced; empty: "Voice assistant <site>"
    max_clients: int = 32  # connections beyond this are refused
    idle_timeout_s: float = 60.0  # a connection silent this long is closed


@dataclass
class ArbitrationConfig:
    """Several boxes on one broker that hear the same wake word agree on the one that answers."""

    enabled: bool = True  # off: this box answers every wake word it hears, and claims none
    window_ms: int = 150  # how long a box waits for the others' claims after its own wake word, at most


LLM_ROUTES = ("templates", "templates_then_llm", "llm")
LLM_BACKENDS = ("auto", "hailo", "llama_cpp", "openai")


@dataclass
class Config:
    path: Path
    site: str = "default"
    area: str = ""  # the room the box stands in: "the lights" said to it are its area's; empty: none
    language: str = "en"
    models_dir: str = ""  # empty: $ASSISTANT_MODELS or the user cache
    wake: WakeConfig = field(default_factory=WakeConfig)
    listen: ListenConfig = field(default_factory=ListenConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    understand: UnderstandConfig = field(default_factory=UnderstandConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    sounds: SoundsConfig = field(default_factory=SoundsConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    wyoming: WyomingConfig = field(default_factory=WyomingConfig)
    arbitration: ArbitrationConfig = field(default_factory=ArbitrationConfig)
    device: list[DeviceConfig] = field(default_factory=list)
    customize: list[CustomizeConfig] = field(default_factory=list)
    intent: list[IntentConfig] = field(default_factory=list)
    slot: list[SlotConfig] = field(default_factory=list)
    sentences_file: str = ""  # custom intents in hassil's YAML shape, relative to this file
    state_dir: str = ""  # timers and volume; empty: $STATE_DIRECTORY (systemd) or ~/.local/state/assistant
    time_zone: str = ""  # IANA name for the spoken time, e.g. Europe/Berlin; empty: the system's


def load(path: str | os.PathLike) -> Config:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8-sig"))  # Windows editors may start the file with a BOM
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a UTF-8 text file") from None
    return from_dict(raw, p)


def from_dict(raw: dict[str, Any], path: Path) -> Config:
    cfg = _build(Config, {**raw, "path": path}, str(path), "")
    _check(cfg)
    return cfg


def _build(cls: type, raw: Any, file: str, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: {where or 'top level'}: expected a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names or (key == "path" and cls is Config and where):
            known = ", ".join(sorted(n for n in names if n != "path"))
            raise ConfigError(f"{file}: unknown key '{where}{key}' (known here: {known})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            kwargs[f.name] = _value(hints[f.name], raw[f.name], file, f"{where}{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{file}: missing key '{where}{f.name}'")
    return cls(**kwargs)


def _value(tp: Any, v: Any, file: str, key: str) -> Any:
    if tp is Path:
        return v
    if dataclasses.is_dataclass(tp):
        return _build(tp, v, file, key + ".")
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(v, list):
            raise ConfigError(f"{file}: '{key}' should be a list, got {_kind(v)}")
        if dataclasses.is_dataclass(item):
            return [_build(item, x, file, f"{key}[{i}].") for i, x in enumerate(v)]
        return [_value(item, x, file, f"{key}[{i}]") for i, x in enumerate(v)]
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if not isinstance(v, dict):
            raise ConfigError(f"{file}: '{key}' should be a table, got {_kind(v)}")
        return {k: _value(vt, x, file, f"{key}.{k}") for k, x in v.items()}
    if origin in (typing.Union, types.UnionType):
        raise TypeError("unions are not used in config types")
    ok = isinstance(v, tp) and not (tp in (int, float) and isinstance(v, bool))
    if tp is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if not ok:
        raise ConfigError(f"{file}: '{key}' should be {_kind_name(tp)}, got {_kind(v)} {v!r}")
    return v


def _kind_name(tp: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, tp.__name__)


def _kind(v: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def _check_llm_models(cfg: Config) -> None:
    file, llm = str(cfg.path), cfg.llm
    if not 40 <= llm.hot_c <= 110:
        raise ConfigError(f"{file}: 'llm.hot_c' should be a CPU temperature between 40 and 110 °C, got {llm.hot_c}")
    if not Path(llm.sys_root).is_dir():
        raise ConfigError(f"{file}: 'llm.sys_root': no such directory {llm.sys_root!r}")
    for key in ("model", "question_model", "throttled_model"):
        value = getattr(llm, key)
        if not value:
            continue
        if "/" in value or value.endswith(".gguf"):  # a file, relative to the config's directory
            path = cfg.path.parent / value
            if not path.is_file():
                raise ConfigError(f"{file}: 'llm.{key}': no such GGUF file {value!r}")
            setattr(llm, key, str(path))
            continue
        from .models import load_manifest

        known = sorted(n for n, m in load_manifest().items() if m.role == "llm")
        if value not in known:
            raise ConfigError(f"{file}: 'llm.{key}' should be a GGUF file or one of the manifest's language "
                              f"models ({', '.join(known)}), got {value!r}")


def _check_wake(cfg: Config) -> None:
    """What can be told without loading a model: each entry is a wake word of the manifest or a file that
    exists (made absolute here), and no two share a name or a file name (openWakeWord tells its models apart
    by it). Whether a file is a model openWakeWord can run is checked where models are loaded (startup.py)."""
    from .models import load_manifest

    file, wake = str(cfg.path), cfg.wake
    if not 0 < wake.threshold < 1:
        raise ConfigError(f"{file}: 'wake.threshold' should be between 0 and 1, got {wake.threshold}")
    if wake.model and wake.models:
        raise ConfigError(f"{file}: 'wake.model' and 'wake.models' are both set: keep one "
                          f"(model = {wake.model!r} is models = [{wake.model!r}])")
    manifest = load_manifest()
    known = sorted(n for n, m in manifest.items() if m.role == "wake")
    names: dict[str, str] = {}  # wake word -> the value that named it
    stems: dict[str, str] = {}  # model file name without .onnx -> the value that named it
    for i, (key, value) in enumerate(wake.listed()):
        if is_model_file(value):
            path = (cfg.path.parent / Path(value).expanduser()).absolute()
            if not path.is_file():
                raise ConfigError(f"{file}: '{key}': no such wake model file {str(path)!r}")
            name = stem = path.stem
            if wake.models:
                wake.models[i] = str(path)
            else:
                wake.model = str(path)
        elif value in known:
            name, stem = value, Path(manifest[value].files[0].path).stem if manifest[value].files else value
        else:
            raise ConfigError(f"{file}: '{key}' should be one of the manifest's wake words ({', '.join(known)}) "
                              f"or an openWakeWord .onnx file, got {value!r}")
        if value in names.values():
            raise ConfigError(f"{file}: '{key}': {value!r} is listed twice")
        if name in names:
            raise ConfigError(f"{file}: '{key}': {value!r} and {names[name]!r} would both be the wake word "
                              f"{name!r}; rename the file")
        if stem in stems:
            raise ConfigError(f"{file}: '{key}': {value!r} and {stems[stem]!r} have the same file name "
                              f"{stem}.onnx, which openWakeWord tells its models apart by; rename the file")
        names[name], stems[stem] = value, value


def _check_time_zone(cfg: Config) -> None:
    if not cfg.time_zone:
        return
    try:
        ZoneInfo(cfg.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{cfg.path}: 'time_zone' should be a time zone name like Europe/Berlin, "
                          f"got {cfg.time_zone!r}") from None


def state_dir(cfg: Config) -> Path:
    """Where what the box must remember across restarts lives (systemd's StateDirectory in the service)."""
    return Path(cfg.state_dir or os.environ.get("STATE_DIRECTORY") or "~/.local/state/assistant").expanduser()


DEVICE_TOPICS = ("command_topic", "state_topic", "availability_topic", "brightness_command_topic",
                 "brightness_state_topic")


def _check_topics(cfg: Config) -> None:
    """Every topic the assistant builds, subscribes to or publishes to, as MQTT syntax: a bad one would
    fail only later, inside the MQTT client (a wildcard in `site` stopped the service at every start)."""
    file = str(cfg.path)
    pieces = [("site", cfg.site), ("mqtt.topic_prefix", cfg.mqtt.topic_prefix),
              ("discovery.homeassistant_prefix", cfg.discovery.homeassistant_prefix)]
    pieces += [(f"discovery.zigbee2mqtt_base_topics[{i}]", b)
               for i, b in enumerate(cfg.discovery.zigbee2mqtt_base_topics)]
    for i, d in enumerate(cfg.device):
        pieces += [(f"device[{i}].{k}", getattr(d, k))
                   for k in ("friendly_name", "base_topic", "topic") if getattr(d, k)]
    for key, value in pieces:
        problem = topic_problem(value, part=True)
        if problem is None and key == "site" and "/" in value:
            problem = "contains a / (the site is one topic level)"
        if problem:
            raise ConfigError(f"{file}: '{key}' is not usable in an MQTT topic: {problem}, got {value!r}")
    for i, d in enumerate(cfg.device):
        for k in DEVICE_TOPICS:
            if getattr(d, k) and (problem := topic_problem(getattr(d, k))):
                raise ConfigError(f"{file}: 'device[{i}].{k}' is not an MQTT topic: {problem}, got {getattr(d, k)!r}")
    for i, pattern in enumerate(cfg.discovery.allow):
        if (problem := filter_problem(pattern)) is not None:
            raise ConfigError(f"{file}: 'discovery.allow[{i}]' is not an MQTT topic filter: {problem}, got {pattern!r}")


def _area_name(text: str) -> str:
    """An area as the home's registry spells it (lower case, `_` as a space, single spaces)."""
    return " ".join(text.lower().replace("_", " ").split())


def _check_area(cfg: Config) -> None:
    """The box's own area must be one the home's devices are in: a typo would otherwise leave "turn on
    the lights" switching nothing, with no word why. The areas the config knows are those of its
    `[[device]]` and `[[customize]]` entries (a discovered device's area is only known once it is
    announced; `[[customize]]` names it ahead)."""
    if not cfg.area.strip():
        cfg.area = ""
        return
    known = sorted({_area_name(a) for a in [*(d.area for d in cfg.device), *(c.area for c in cfg.customize)]
                    if a.strip()})
    area = _area_name(cfg.area)
    if area not in known:
        have = (f"one of the home's areas ({', '.join(known)})" if known else
                "an area a [[device]] or [[customize]] entry has (none has one yet)")
        raise ConfigError(f"{cfg.path}: 'area' should be {have}, got {cfg.area!r}")
    cfg.area = area


def _check_wyoming(cfg: Config) -> None:
    file, w = str(cfg.path), cfg.wyoming
    if not 0 < w.port < 65536:
        raise ConfigError(f"{file}: 'wyoming.port' should be a TCP port (1-65535), got {w.port}")
    if not w.listen.strip():
        raise ConfigError(f"{file}: 'wyoming.listen' should be an address to listen on, e.g. 127.0.0.1")
    if w.max_clients < 1:
        raise ConfigError(f"{file}: 'wyoming.max_clients' should be at least 1, got {w.max_clients}")
    if w.idle_timeout_s <= 0:
        raise ConfigError(f"{file}: 'wyoming.idle_timeout_s' should be positive, got {w.idle_timeout_s}")


def _check_arbitration(cfg: Config) -> None:
    w = cfg.arbitration.window_ms
    if not 10 <= w <= 2000:
        raise ConfigError(f"{cfg.path}: 'arbitration.window_ms' should be between 10 and 2000 (milliseconds), "
                          f"got {w}")


def _check_audio(cfg: Config) -> None:
    a = cfg.audio
    if not 0 <= a.echo_delay_ms <= 500:
        raise ConfigError(f"{cfg.path}: 'audio.echo_delay_ms' should be from 0 to 500 (milliseconds), "
                          f"got {a.echo_delay_ms}")
    for key in ("noise_suppression", "auto_gain"):
        if getattr(a, key) and not a.echo_cancel:
            raise ConfigError(f"{cfg.path}: 'audio.{key}' runs in the echo canceller: it needs "
                              f"'audio.echo_cancel' = true")


def _check_sounds(cfg: Config) -> None:
    """Own sound files exist (relative to this file); that each is a WAV is checked at start-up."""
    for name, path in cfg.sounds.own().items():
        p = cfg.path.parent / Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"{cfg.path}: 'sounds.{name}': no such file {path!r}")
        setattr(cfg.sounds, name, str(p))


def _check(cfg: Config) -> None:
    """Checks across keys that types alone do not express."""
    file = str(cfg.path)
    if not cfg.mqtt.url.startswith(("mqtt://", "mqtts://")):
        raise ConfigError(f"{file}: 'mqtt.url' should look like mqtt://host:1883, got {cfg.mqtt.url!r}")
    if cfg.mqtt.url.startswith("mqtt://") and (cfg.mqtt.ca_file or cfg.mqtt.cert_file):
        raise ConfigError(f"{file}: 'mqtt.ca_file' needs an mqtts:// URL, got {cfg.mqtt.url!r}")
    for k in ("ca_file", "cert_file", "key_file"):
        v = getattr(cfg.mqtt, k)
        if v and not (cfg.path.parent / v).is_file():
            raise ConfigError(f"{file}: 'mqtt.{k}': no such file {v!r}")
        if v:
            setattr(cfg.mqtt, k, str(cfg.path.parent / v))
    if not 1 <= cfg.asr.window_s <= 30:
        raise ConfigError(f"{file}: 'asr.window_s' should be from 1 to 30 seconds, got {cfg.asr.window_s}")
    if cfg.asr.first_window_s and not 1 <= cfg.asr.first_window_s <= 30:
        raise ConfigError(f"{file}: 'asr.first_window_s' should be 0 (off) or from 1 to 30 seconds, "
                          f"got {cfg.asr.first_window_s}")
    if not 0 < cfg.listen.vad_threshold < 1:
        raise ConfigError(f"{file}: 'listen.vad_threshold' should be between 0 and 1")
    for key, value, allowed in [("llm.route", cfg.llm.route, LLM_ROUTES), ("llm.backend", cfg.llm.backend, LLM_BACKENDS),
                                ("llm.api", cfg.llm.api, ("completions", "chat"))]:
        if value not in allowed:
            raise ConfigError(f"{file}: '{key}' should be one of {', '.join(allowed)}, got {value!r}")
    _check_wake(cfg)
    _check_llm_models(cfg)
    _check_time_zone(cfg)
    _check_wyoming(cfg)
    _check_arbitration(cfg)
    _check_sounds(cfg)
    _check_audio(cfg)
    u = cfg.understand
    if not 0 <= u.ask_threshold <= u.act_threshold <= 1:
        raise ConfigError(f"{file}: 'understand.ask_threshold' and 'understand.act_threshold' should satisfy "
                          f"0 <= ask <= act <= 1, got {u.ask_threshold} and {u.act_threshold}")
    seen: dict[str, str] = {}
    ids: set[str] = set()
    for i, d in enumerate(cfg.device):
        key = f"device[{i}]"
        if d.dialect not in DIALECTS:
            raise ConfigError(f"{file}: '{key}.dialect' should be one of {', '.join(DIALECTS)}, got {d.dialect!r}")
        if d.dialect in ("ha_json", "ha_default") and not d.command_topic:
            raise ConfigError(f"{file}: '{key}.command_topic' is required for dialect {d.dialect}")
        if d.dialect == "tasmota" and not d.topic:
            raise ConfigError(f"{file}: '{key}.topic' is required for dialect tasmota")
        if not d.name.strip():
            raise ConfigError(f"{file}: '{key}.name' is empty")
        d.id = d.id or d.name.strip().lower().replace(" ", "_")
        d.friendly_name = d.friendly_name or d.id
        if d.id in ids:
            raise ConfigError(f"{file}: '{key}': the name {d.name!r} is already used by device {d.id!r}")
        ids.add(d.id)
        for spoken in [d.name, *d.aliases]:
            norm = " ".join(spoken.lower().split())
            if norm in seen and seen[norm] != d.id:
                raise ConfigError(f"{file}: '{key}': the name {spoken!r} is already used by device {seen[norm]!r}")
            seen[norm] = d.id
    _check_area(cfg)
    _check_topics(cfg)
