"""A real PulseAudio sound server for the tests, with a virtual microphone and a virtual speaker.

The assistant reaches it exactly as on a box: through sounddevice, PortAudio and ALSA (the pulse plugin
of libasound2-plugins), by device name. The microphone is a pipe source fed from the test at the pace of
a real one (16 kHz mono, s16le); the speaker is a null sink whose monitor is recorded, all along, to a
file. Streams are not rescued onto another device when theirs goes away (`rescue-streams = no`): they
end, as an unplugged USB device's do on bare ALSA, so the assistant has to notice and open the device
again. (A stream on the server's *default* source follows the default wherever it goes, so a test that
takes the microphone away first makes another source the default: `quiet_default_source`.)

ALSA names, besides PulseAudio's `pulse` and `default` (the server's default source and sink, which are
the virtual ones): `mic` and `speaker`, bound to the virtual devices themselves.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

RATE = 16000
SPEAKER_RATE = 22050  # Piper's voices speak at this rate: the null sink takes it without resampling
PACKAGES = "pulseaudio pulseaudio-utils libasound2-plugins"

ALSA_CONF = """\
pcm.mic { type pulse; device "mic"; hint { show on; description "the virtual microphone" } }
pcm.speaker { type pulse; device "speaker"; hint { show on; description "the virtual speaker" } }
"""


def missing() -> str | None:
    """Why a sound server cannot be started here, or None."""
    for exe in ("pulseaudio", "pactl", "parec"):
        if shutil.which(exe) is None:
            return f"{exe} is not installed (Debian: apt-get install {PACKAGES})"
    if not any(Path(d).glob("libasound_module_pcm_pulse.so") for d in _alsa_plugin_dirs()):
        return f"ALSA's pulse plugin is not installed (Debian: apt-get install {PACKAGES})"
    return None


def _alsa_plugin_dirs() -> list[str]:
    return [str(p) for p in Path("/usr/lib").glob("*/alsa-lib")] + ["/usr/lib/alsa-lib"]


class SoundServer:
    """`start()` runs pulseaudio in `root` (its own runtime dir, socket and config: nothing of the
    machine's); the environment variables that lead clients of this process to it are set by the caller
    from `env`. As root it runs as a per-user daemon all the same (it warns that it is not meant to):
    `--system` is not needed, since the runtime path, socket and config are given."""

    def __init__(self, root: Path):
        self.root = root
        self.socket = root / "native"
        self.fifo = root / "mic.fifo"
        self.proc: subprocess.Popen | None = None
        self.mic_module: int | None = None
        self.speaker_module: int | None = None
        self.recorders: list[Recorder] = []  # one per time the speaker was there
        self.env = {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_CLIENTCONFIG": str(root / "client.conf"),
            "PULSE_RUNTIME_PATH": str(root / "runtime"),
            "PULSE_STATE_PATH": str(root / "state"),
            "PULSE_COOKIE": str(root / "cookie"),
            "XDG_RUNTIME_DIR": str(root / "runtime"),
            "ALSA_CONFIG_PATH": f"{_alsa_conf()}:{root / 'asound.conf'}",
        }

    def start(self) -> SoundServer:
        (self.root / "runtime").mkdir(parents=True, mode=0o700, exist_ok=True)
        (self.root / "client.conf").write_text("autospawn = no\n")
        (self.root / "daemon.conf").write_text(
            "rescue-streams = no\nexit-idle-time = -1\nflat-volumes = no\nrealtime-scheduling = no\n"
            "high-priority = no\n")
        (self.root / "asound.conf").write_text(ALSA_CONF)
        (self.root / "start.pa").write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n")
        env = {**os.environ, **self.env, "HOME": str(self.root), "PULSE_CONFIG": str(self.root / "daemon.conf")}
        self.log = open(self.root / "pulseaudio.log", "w")
        self.proc = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "-n", "-F", str(self.root / "start.pa"), "--use-pid-file=no",
             "--exit-idle-time=-1", "--disallow-exit", "--log-target=stderr"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_dies_with_us)
        deadline = time.monotonic() + 10
        while self.pactl("info", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pulseaudio did not start: {(self.root / 'pulseaudio.log').read_text()}")
            time.sleep(0.05)
        self.add_mic()
        self.pactl("set-default-source", "mic")  # first: a stream opened on the default source follows it
        self.add_speaker()
        self.pactl("set-default-sink", "speaker")
        return self

    def stop(self) -> None:
        for r in self.recorders:
            r.stop()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env={**os.environ, **self.env}, capture_output=True, text=True,
                              check=check, timeout=10)

    # -- devices that come and go -------------------------------------------------------------------

    def add_mic(self) -> None:
        out = self.pactl("load-module", "module-pipe-source", "source_name=mic", f"file={self.fifo}",
                         "format=s16le", f"rate={RATE}", "channels=1",
                         "source_properties=device.description=virtual-microphone")
        self.mic_module = int(out.stdout.strip())

    def remove_mic(self) -> None:
        self.pactl("unload-module", str(self.mic_module))
        self.mic_module = None

    def add_speaker(self) -> None:
        """The null sink, and the recording of its monitor. A null sink with nobody listening renders 2 s
        at a time, so the first sound played into it would wait that long: the recorder asks for 20 ms,
        and this returns once the sink runs at that pace."""
        out = self.pactl("load-module", "module-null-sink", "sink_name=speaker", f"rate={SPEAKER_RATE}",
                         "channels=1", "sink_properties=device.description=virtual-speaker")
        self.speaker_module = int(out.stdout.strip())
        self.recorders.append(Recorder(self, self.root / f"speaker-{len(self.recorders)}.wav").start())

    def remove_speaker(self) -> None:
        self.recorders[-1].stop()
        self.pactl("unload-module", str(self.speaker_module))
        self.speaker_module = None

    def quiet_default_source(self) -> None:
        """Another source (silent) as the server's default: a stream on the microphone then ends when the
        microphone goes, instead of following the default onto whatever source is left."""
        self.pactl("load-module", "module-null-source", "source_name=quiet", f"rate={RATE}", "channels=1")
        self.pactl("set-default-source", "quiet")

    def sources(self) -> list[str]:
        return [line.split("\t")[1] for line in self.pactl("list", "short", "sources").stdout.splitlines()]

    # -- the room: what the microphone hears, what the speaker says -----------------------------------

    def talk(self, echo: Echo | None = None) -> Talker:
        """The voice in the room: writes into the microphone at its own pace, silence when nothing is said;
        with `echo`, what the speaker plays is heard in it too."""
        return Talker(self.fifo, echo)

    @property
    def speaker(self) -> Recorder:
        """The recording of the speaker as it is now."""
        return self.recorders[-1]


def _dies_with_us() -> None:
    """In the child: ended with the tests, even when they are killed."""
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _alsa_conf() -> str:
    return os.environ.get("ALSA_CONFIG_PATH", "").split(":")[0] or "/usr/share/alsa/alsa.conf"


class Talker:
    """Feeds the virtual microphone in real time from a thread: 20 ms at a time, silence between what is
    `say`-ed. While the microphone is taken away the writes fail and are dropped (the room goes on), and
    they go in again once it is back."""

    CHUNK = RATE // 50

    def __init__(self, fifo: Path, echo: Echo | None = None):
        self.fifo = fifo
        self.echo = echo
        self.pending: list[list] = []  # [pcm, samples already written]
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.written_s = 0.0
        self.said_at: list[float] = []  # when the first 20 ms of each `say` went into the microphone
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="talker", daemon=True)

    def __enter__(self) -> Talker:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join(5)

    def say(self, pcm: np.ndarray) -> float:
        """Queues 16 kHz int16 audio after what is already queued; returns its length in seconds."""
        with self.lock:
            self.done.clear()
            self.pending.append([pcm.astype(np.int16), 0])
        return len(pcm) / RATE

    def wait(self, timeout: float) -> bool:
        """Until everything queued has been said."""
        return self.done.wait(timeout)

    def _next(self) -> tuple[np.ndarray, bool]:
        """The next 20 ms, and whether a `say` begins with it."""
        with self.lock:
            if not self.pending:
                self.done.set()
                return np.zeros(self.CHUNK, np.int16), False
            head = self.pending[0]
            pcm, at = head
            chunk = pcm[at:at + self.CHUNK]
            head[1] += self.CHUNK
            if head[1] >= len(pcm):
                self.pending.pop(0)
            return np.pad(chunk, (0, self.CHUNK - len(chunk))), at == 0

    def _run(self) -> None:
        fd = None
        due = time.monotonic()
        while not self._stop.is_set():
            due += self.CHUNK / RATE
            time.sleep(max(0.0, due - time.monotonic()))
            chunk, begins = self._next()
            if self.echo is not None:
                chunk = np.clip(chunk + self.echo.next(len(chunk), due), -32768, 32767).astype(np.int16)
            if fd is None:
                try:  # non-blocking: a microphone that is not there takes nothing (ENXIO, ENOENT)
                    fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    continue
            try:
                os.write(fd, chunk.tobytes())
            except OSError as e:
                if e.errno not in (errno.EPIPE, errno.EAGAIN):
                    raise
                os.close(fd)
                fd = None
                continue
            self.written_s += len(chunk) / RATE
            if begins:
                self.said_at.append(time.monotonic())
        if fd is not None:
            os.close(fd)


class Recorder:
    """`parec` on the speaker's monitor into a WAV file (s16le mono at the speaker's rate), read while it
    grows: sample i of it was played at about `started + i / SPEAKER_RATE` (monotonic clock). (parec's
    --raw output to a file stops after its first block here, hence WAV.)"""

    def __init__(self, server: SoundServer, path: Path):
        self.server, self.path = server, path
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.header = 0  # bytes before the samples

    def start(self) -> Recorder:
        self.proc = subprocess.Popen(
            ["parec", "-d", "speaker.monitor", "--format=s16le", f"--rate={SPEAKER_RATE}", "--channels=1",
             "--latency-msec=20", "--file-format=wav", str(self.path)],
            env={**os.environ, **self.server.env}, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while not self.header or self.path.stat().st_size <= self.header:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the speaker's monitor gives no audio")
            time.sleep(0.01)
            if not self.header and self.path.exists():
                head = self.path.read_bytes()[:4096]
                self.header = head.find(b"data") + 8 if b"data" in head else 0
        self.started = time.monotonic() - self.seconds()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)

    def seconds(self) -> float:
        return (self.path.stat().st_size - self.header) / 2 / SPEAKER_RATE

    def pcm(self, since: float = 0.0) -> np.ndarray:
        """What the speaker played from `since` (monotonic) on."""
        return self.read(self._sample(since))

    def read(self, start: int) -> np.ndarray:
        """What the speaker played from its `start`th sample on."""
        with open(self.path, "rb") as f:
            f.seek(self.header + start * 2)
            data = f.read()
        return np.frombuffer(data[:len(data) // 2 * 2], np.int16)

    def sound_at(self, since: float, level: int = 2000) -> float | None:
        """When the speaker first played something louder than `level` after `since` (monotonic)."""
        pcm = self.pcm(since)
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > level)
        return self.started + (self._sample(since) + loud[0]) / SPEAKER_RATE if len(loud) else None

    def _sample(self, at: float) -> int:
        return max(0, int((at - self.started) * SPEAKER_RATE)) if at else 0


class Echo:
    """What the speaker plays, heard back by the microphone (for `talk`): the speaker's recording as the
    sound server played it, `delay_s` later on the talker's clock, at 16 kHz, `gain` times as loud, through
    a room's impulse response `rir` (16 kHz, scaled to keep the sound's energy). Sample i of the recording
    was played at `started + i / SPEAKER_RATE`; what the recorder has not delivered in time is silence
    (counted in `gaps`)."""

    def __init__(self, server: SoundServer, gain: float = 1.0, delay_s: float = 0.1, rir: np.ndarray | None = None):
        self.server, self.gain, self.delay_s = server, gain, delay_s
        self.rir = None if rir is None else rir.astype(np.float64) / np.sqrt(np.sum(rir.astype(np.float64) ** 2))
        self.tail = np.zeros(0)  # the room's reverberation still to come
        self.recorder: Recorder | None = None
        self.cursor = 0  # the next sample of the recording to be heard
        self.resampler = None
        self.carry = np.zeros(0, np.float32)  # resampled, not yet heard
        self.gaps = 0
        self.energy = 0.0  # sum of squares of the echo given, and its samples: its level
        self.samples = 0

    def next(self, n: int, at: float) -> np.ndarray:
        """The echo in the microphone's next n samples, the first written at `at` (monotonic)."""
        import soxr
        from scipy.signal import fftconvolve

        if self.server.recorders and self.server.speaker is not self.recorder:  # the speaker (again)
            self.recorder = self.server.speaker
            self.cursor = round((at - self.delay_s - self.recorder.started) * SPEAKER_RATE)
            self.resampler = soxr.ResampleStream(SPEAKER_RATE, RATE, 1, dtype="float32")
            self.carry = np.zeros(0, np.float32)
        want = n * SPEAKER_RATE // RATE
        got = self.recorder.read(max(0, self.cursor))[:want] if self.recorder is not None else np.zeros(0)
        if len(got) < want:
            self.gaps += 1
        played = np.zeros(want, np.float32)
        played[:len(got)] = got
        self.cursor += want
        out = np.zeros(n)
        if self.resampler is not None:  # its first output comes a little late: a constant delay from then on
            self.carry = np.concatenate([self.carry, self.resampler.resample_chunk(played)])
            out[n - min(n, len(self.carry)):] = self.carry[:n]
            self.carry = self.carry[n:]
        if self.rir is not None:
            wet = fftconvolve(out, self.rir)
            wet[:len(self.tail)] += self.tail
            out, self.tail = wet[:n], wet[n:]
        out = out * self.gain
        if out.any():
            self.energy += float(np.dot(out, out))
            self.samples += n
        return out

    def level(self) -> float:
        """The RMS of the echo while there was any."""
        return float(np.sqrt(self.energy / self.samples)) if self.samples else 0.0
