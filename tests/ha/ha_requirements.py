"""The packages Home Assistant's integrations for the test need, at the versions their manifest.json files name.

Run by Home Assistant's own Python (.venv-ha): it reads the installed release's manifests, so the versions are
always that release's. Home Assistant checks and installs the requirements of an integration, of everything it
depends on (dependencies and after_dependencies) and of the discovery integrations its manifest names
(homeassistant/requirements.py); the same closure is taken here, from the integrations the test's
configuration.yaml and config entries load, the ones Home Assistant always loads (homeassistant/bootstrap.py)
and every entity platform. With these installed, Home Assistant runs with --skip-pip and never installs anything.

    python ha_requirements.py           the requirements, one a line
    python ha_requirements.py --check   exit 1 naming those not installed (Home Assistant's own test)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import homeassistant
from homeassistant import bootstrap, requirements
from homeassistant.const import Platform, __version__
from homeassistant.util.package import is_installed

# configuration.yaml's integrations and the two config entries the test makes
CONFIGURED = {"http", "api", "onboarding", "config", "assist_pipeline", "conversation", "intent", "stt", "tts",
              "wake_word", "media_source", "wyoming", "mqtt"}
COMPONENTS = Path(homeassistant.__file__).parent / "components"


def closure(roots: set[str]) -> dict[str, str]:
    """requirement -> the integration naming it, over every integration the roots can bring in."""
    seen: set[str] = set()
    todo, found = sorted(roots), {}
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest = json.loads((COMPONENTS / domain / "manifest.json").read_text())
        for req in manifest.get("requirements", []):
            found[req] = domain
        todo += manifest.get("dependencies", []) + manifest.get("after_dependencies", [])
        todo += [d for d, keys in requirements.DISCOVERY_INTEGRATIONS.items() if any(k in manifest for k in keys)]
    return found


def needed() -> dict[str, str]:
    always = bootstrap.CORE_INTEGRATIONS | bootstrap.DEFAULT_INTEGRATIONS | {"logger", "system_log"}
    return closure(CONFIGURED | always | {p.value for p in Platform})


def main(argv: list[str]) -> int:
    reqs = needed()
    if argv[1:] == ["--check"]:
        missing = [f"{r} ({d})" for r, d in sorted(reqs.items()) if not is_installed(r)]
        if missing:
            print("not installed: " + ", ".join(missing), file=sys.stderr)
            return 1
        print(f"Home Assistant {__version__}: the {len(reqs)} requirements of the test's integrations are installed")
        return 0
    print("\n".join(sorted(reqs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
