"""`assistant doctor`: what works on this box and what does not, in words.

Each check returns Findings; a "fail" blocks normal operation and makes the exit code non-zero, a "warn"
is worth knowing but the assistant still works.
"""

from __future__ import annotations

import glob
import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from . import thermal
from .broker import reachable
from .config import Config, ConfigError
from .models import ModelError, ModelStore
from .startup import check_wake_models, load_config


@dataclass(frozen=True)
class Finding:
    level: str  # ok | warn | fail | info
    what: str
    text: str


def check_config(path: str) -> tuple[Config | None, list[Finding]]:
    """The config as `assistant run` takes it: loaded, and the wake model files it names opened."""
    try:
        cfg = load_config(path)
        check_wake_models(cfg)
    except ConfigError as e:
        return None, [Finding("fail", "config", str(e))]
    return cfg, [Finding("ok", "config", f"{path} is valid ({len(cfg.device)} devices, site {cfg.site!r})")]


def check_wake_words(cfg: Config) -> list[Finding]:
    """The wake words it listens for, and where each model comes from."""
    return [Finding("info", "wake word", f"{w.name} ({w.phrase!r}): " + (
        f"your own model {w.file}" if w.file else "the manifest's model") + f", from {w.key}")
        for w in cfg.wake.entries()]


def check_grammar(cfg: Config) -> list[Finding]:
    """The user's own intents: how many sentences they say, and what listening closely to them costs."""
    import time

    from .understand.custom import CustomIntents, from_config
    from .understand.paths import GrammarGraph, GrammarTooLarge

    custom = CustomIntents(from_config(cfg), cfg.language)  # a bad grammar failed check_config already
    if not custom:
        return []
    n = len(custom.grammar.intents)
    try:
        graph = GrammarGraph(custom.intents, custom.intents.skip_words)
    except GrammarTooLarge as e:
        return [Finding("warn", "your intents", f"{n} intent{'s' * (n != 1)}, matched exactly only, not listened for "
                                                f"closely: {e}")]
    t = time.perf_counter()
    graph.nearest("please can you do the thing i said with the other one in the kitchen now")
    ms = (time.perf_counter() - t) * 1000
    return [Finding("info", "your intents", f"{n} intent{'s' * (n != 1)} saying {graph.sentence_count():,} sentences; "
                                            f"a reading is matched against all of them in {ms:.0f} ms")]


def check_models(store: ModelStore, cfg: Config) -> list[Finding]:
    wake = [w.name for w in cfg.wake.entries() if not w.file]
    needed = [*wake, "openwakeword-features", "silero-vad", cfg.asr.model, cfg.tts.voice]
    out = []
    for name in needed:
        try:
            bad = [f"{p.name} {state}" for p, state in store.status(name) if state != "ok"]
        except ModelError as e:
            out.append(Finding("fail", "models", str(e)))
            continue
        if bad:
            out.append(Finding("fail", "models", f"{name}: {', '.join(bad)} in {store.root / name}; "
                                                  f"run: assistant models fetch"))
        else:
            out.append(Finding("ok", "models", f"{name} present, sha256 verified"))
    return out


def check_audio(cfg: Config) -> list[Finding]:
    """The devices PortAudio sees, whether the configured ones are among them, the microphone's level,
    and what the running assistant's microphone and speaker have been through."""
    spec_in, spec_out = cfg.audio.input_device, cfg.audio.output_device
    out = []
    if spec_in.startswith("file:") or spec_in == "silence":
        path = spec_in.removeprefix("file:")
        ok = spec_in == "silence" or Path(path).is_file()
        out.append(Finding("ok" if ok else "fail", "audio in",
                           f"test input {spec_in!r}" + ("" if ok else ": no such file")))
        devices = None
    else:
        devices = _devices()
        if devices is None:
            out.append(Finding("fail", "audio in", "PortAudio is not available (apt install libportaudio2)"))
        else:
            ins = [d["name"] for d in devices if d["max_input_channels"] > 0]
            if not ins:
                out.append(Finding("fail", "audio in", "no microphone found (is it plugged in? `arecord -l` "
                                                       "lists what ALSA sees)"))
            else:
                out.append(Finding("info", "audio in", f"{len(ins)} input devices: {', '.join(ins)}"))
                found = _configured(spec_in, "input")
                out.append(found)
                if found.level == "ok":
                    out.append(_level(spec_in))
    if devices is not None:
        out.append(_echo_cancel(cfg))
    if spec_out == "none":
        out.append(Finding("info", "audio out", "replies are not played (audio.output_device = \"none\")"))
    else:
        devices = devices if devices is not None else _devices()
        outs = [d["name"] for d in devices or [] if d["max_output_channels"] > 0]
        if outs:
            out.append(Finding("info", "audio out", f"{len(outs)} output devices: {', '.join(outs)}"))
            found = _configured(spec_out, "output")
            out.append(found if found.level == "ok" else Finding("warn", found.what, found.text))
        else:
            out.append(Finding("warn", "audio out", "no speaker found: the assistant acts but cannot answer aloud"))
    return out + check_live_audio(cfg)


def _echo_cancel(cfg: Config) -> Finding:
    """Whether the echo canceller the live microphone is to have can run here."""
    from .audio import echo

    if not cfg.audio.echo_cancel:
        return Finding("info", "echo cancel", "off (audio.echo_cancel = false): the box hears itself while it speaks")
    if cfg.audio.output_device == "none":
        return Finding("info", "echo cancel", "not used: no speaker, so no echo (audio.output_device = \"none\")")
    canceller, why = echo.make(cfg.audio.noise_suppression, cfg.audio.auto_gain)
    if canceller is None:
        return Finding("warn", "echo cancel", f"cannot run ({why}): the box hears itself while it speaks; "
                                              f"pip install livekit")
    canceller.close()
    return Finding("ok", "echo cancel", "WebRTC's echo canceller loads (livekit)")


def _configured(spec: str, kind: str) -> Finding:
    """Whether the configured device (`audio.input_device` or `audio.output_device`) is there, as
    PortAudio matches a name: any device whose name contains it."""
    import sounddevice as sd

    what, key = ("audio in", "input_device") if kind == "input" else ("audio out", "output_device")
    device = int(spec) if spec.isdigit() else (spec or None)
    try:
        name = sd.query_devices(device, kind)["name"]
    except (ValueError, sd.PortAudioError) as e:
        return Finding("fail", what, f"audio.{key} = {spec!r} names none of them ({e}): unplugged? "
                                     f"`{'arecord' if kind == 'input' else 'aplay'} -L` lists ALSA's names")
    return Finding("ok", what, f"audio.{key} = {spec!r} is present: {name!r}" if spec else
                   f"the default {kind} device is present: {name!r}")


def check_live_audio(cfg: Config) -> list[Finding]:
    """What the running assistant's microphone and speaker went through (its state directory's report)."""
    from .audio import health
    from .config import state_dir

    found = health.read(state_dir(cfg), health.SERVICE_STATE_DIR)
    if found is None:
        return []
    path, report = found
    if not health.running(report):
        return [Finding("info", "audio live", f"{line} (when the assistant last ran; {path})")
                for line in health.describe(report)]
    trouble = any((report.get(k) or {}).get("missing") for k in ("input", "output"))
    return [Finding("warn" if trouble else "ok", "audio live", f"{line} (the running assistant)")
            for line in health.describe(report)]


def _devices() -> list[dict] | None:
    try:
        import sounddevice as sd

        return [dict(d) for d in sd.query_devices()]
    except (OSError, ImportError):
        return None


def _level(spec: str) -> Finding:
    """Half a second from the microphone, as a level: a dead or muted microphone shows as silence."""
    import numpy as np
    import sounddevice as sd

    from .types import SAMPLE_RATE

    device = int(spec) if spec.isdigit() else (spec or None)
    try:
        pcm = sd.rec(SAMPLE_RATE // 2, samplerate=SAMPLE_RATE, channels=1, dtype="int16", device=device,
                     blocking=True)
    except Exception as e:  # PortAudio raises several kinds; all mean the device cannot record
        return Finding("fail", "audio in", f"cannot record from {spec or 'the default device'}: {e}")
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    dbfs = 20 * np.log10(max(rms, 1.0) / 32768)
    if rms < 1.0:
        return Finding("warn", "audio in", "the microphone records pure silence: muted? (alsamixer)")
    return Finding("ok", "audio in", f"microphone level {dbfs:.0f} dBFS over half a second")


def check_npu(dev_glob: str = "/dev/hailo*") -> list[Finding]:
    nodes = sorted(glob.glob(dev_glob))
    has_lib = importlib.util.find_spec("hailo_platform") is not None
    if not nodes:
        return [Finding("info", "NPU", "no Hailo NPU (/dev/hailo*): models run on the CPU")]
    if not has_lib:
        return [Finding("warn", "NPU", f"{', '.join(nodes)} present but hailo_platform is not installed "
                                       f"(apt install hailo-h10-all): it stays unused")]
    try:
        from hailo_platform import VDevice

        with VDevice():
            pass
    except Exception as e:  # HailoRT's errors are its own classes; any of them means not usable
        return [Finding("warn", "NPU", f"{', '.join(nodes)} present but it cannot be opened: {e}")]
    return [Finding("ok", "NPU", f"{', '.join(nodes)} present and usable through HailoRT")]


def check_backends(npu: list[Finding]) -> list[Finding]:
    """What `auto` has to choose from: the NPU when it is usable, else llama.cpp on the CPU."""
    npu_ok = any(f.level == "ok" for f in npu)
    llama = importlib.util.find_spec("llama_cpp") is not None
    llm = ("the NPU (hailo_platform)" if npu_ok else "the CPU (llama-cpp-python)" if llama
           else "none: only the sentence templates understand requests (install the [llm] extra for more)")
    return [Finding("info", "backends", f"speech to text: faster-whisper on the CPU; LLM: {llm}")]


def check_llm_model(cfg: Config, reader=None) -> list[Finding]:
    """Which model would answer a command and an open question now, and why (board temperature)."""
    from .engines.llm import select

    return [Finding("info", "LLM model", select.describe_models(cfg.llm, reader).removeprefix("LLM model: "))]


def check_broker(cfg: Config) -> list[Finding]:
    from .mqtt_link import MqttError, parse_url

    try:
        host, port, _ = parse_url(cfg.mqtt.url)
    except MqttError as e:
        return [Finding("fail", "broker", str(e))]
    if reachable(host, port, timeout=2.0):
        return [Finding("ok", "broker", f"{host}:{port} accepts connections")]
    return [Finding("fail", "broker", f"nothing answers at {host}:{port}: commands cannot reach the devices "
                                      f"(is mosquitto running? systemctl status mosquitto)")]


def check_discovery(cfg: Config) -> list[Finding]:
    """What the broker's retained announcements make of this home, and what in them was refused (a
    malformed or hostile announcement, a device that would reach a lock): anyone on the broker can publish."""
    from .home.live import Home
    from .mqtt_link import MqttLink

    link = MqttLink.from_config(cfg.mqtt, availability_topic="")  # a look only: no availability of its own
    home = Home(cfg)
    home.attach(link)
    link.start()
    try:
        if not link.wait_connected(3) or not link.wait_subscribed(3):
            return [Finding("warn", "discovery", f"could not read the announcements: {link.status()}")]
        home.settle()
        found = sum(d.source != "config" for d in home.registry.devices.values())
    finally:
        link.stop()
    if not link.rejected.total:
        return [Finding("ok", "discovery", f"{found} devices discovered, no message refused")]
    return [Finding("warn", "discovery", f"{found} devices discovered; refused: {link.rejected.summary()} "
                                         f"(docs/mqtt.md: who may publish on your broker)")]


def check_thermal(sys_root: str = "/sys", vcgencmd: str | None = None) -> list[Finding]:
    r = thermal.read(sys_root, vcgencmd or shutil.which("vcgencmd"))
    out = []
    if r.temp_c is not None:
        t = r.temp_c
        level = "fail" if t >= 85 else "warn" if t >= 75 else "ok"
        out.append(Finding(level, "temperature", f"CPU at {t:.0f} °C" + (" (the Pi throttles at 85 °C: "
                                                                           "add cooling)" if level != "ok" else "")))
    else:
        out.append(Finding("info", "temperature", "no thermal sensor to read"))
    if r.error:
        out.append(Finding("info", "power", r.error))
    elif r.throttled == 0:
        out.append(Finding("ok", "power", "no under-voltage or throttling since boot"))
    elif r.throttled is not None:
        out.append(Finding("fail" if r.throttled & 1 else "warn", "power",  # under-voltage now corrupts SD cards
                           f"get_throttled={r.throttled:#x}: {', '.join(r.flags())} (use the official 27 W supply)"))
    return out


def check_resources(path: Path, meminfo: str = "/proc/meminfo") -> list[Finding]:
    out = []
    probe = path
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**20
    out.append(Finding("fail" if free < 100 else "warn" if free < 1024 else "ok", "disk",
                       f"{free:,.0f} MB free under {probe}"))
    try:
        fields = dict(line.split(":", 1) for line in Path(meminfo).read_text().splitlines() if ":" in line)
        avail = int(fields["MemAvailable"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return out + [Finding("info", "memory", "cannot read /proc/meminfo")]
    out.append(Finding("fail" if avail < 200 else "warn" if avail < 600 else "ok", "memory",
                       f"{avail:,.0f} MB available (the default models need about 500 MB)"))
    return out


def run_checks(config_path: str, models_dir: str | None, mqtt_url: str | None = None) -> list[Finding]:
    cfg, findings = check_config(config_path)
    if cfg is not None and mqtt_url:
        cfg.mqtt.url = mqtt_url
    if cfg is not None:
        store = ModelStore(models_dir or cfg.models_dir or None)
        findings += check_wake_words(cfg) + check_grammar(cfg) + check_models(store, cfg) + check_audio(cfg)
    npu = check_npu()
    findings += npu + check_backends(npu)
    if cfg is not None and cfg.llm.route != "templates":
        findings += check_llm_model(cfg)
    if cfg is not None:
        broker = check_broker(cfg)
        findings += broker
        if broker[0].level == "ok" and cfg.discovery.enabled:
            findings += check_discovery(cfg)
    findings += check_thermal()
    findings += check_resources(Path(models_dir or (cfg.models_dir if cfg else "") or ModelStore(
        manifest={}).root))
    return findings


def report(findings: list[Finding]) -> tuple[str, int]:
    mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "info": "    "}
    lines = [f"{mark[f.level]} {f.what:12} {f.text}" for f in findings]
    fails = [f for f in findings if f.level == "fail"]
    lines.append(f"{len(fails)} problems block normal operation" if fails else "everything needed works")
    return "\n".join(lines), 1 if fails else 0


def main(args) -> int:
    text, code = report(run_checks(args.config, args.models_dir, args.mqtt))
    print(text)
    return code


def check_config_main(args) -> int:
    """The config file alone, loaded as the service loads it: exit 0 when it would start, 2 when not."""
    _, (finding,) = check_config(args.file)
    print(finding.text, file=sys.stdout if finding.level == "ok" else sys.stderr)
    return 0 if finding.level == "ok" else 2
