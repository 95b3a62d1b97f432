#!/usr/bin/env bash
# `make test-ha`: Home Assistant Core 2024.3.3 into .venv-ha when it is missing or another version
# (tests/ha/install.sh, a few minutes the first time), then the tests in tests/ha against it (under a
# minute on an idle machine). As root they run in a network namespace of their own with only loopback, so
# nothing Home Assistant or the box does can leave the machine; otherwise on this machine's 127.0.0.1.
# Arguments go to pytest (e.g. -k mute).
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
./tests/ha/install.sh
installed=$(date +%s)
export ASSISTANT_HA_PYTHON="$PWD/.venv-ha/bin/python"
tests=(.venv/bin/python -m pytest -q tests/ha "$@")
rc=0
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null && unshare --net true 2>/dev/null; then
  echo "running the tests in a network namespace with only loopback"
  ASSISTANT_HA_ISOLATED=1 unshare --net sh -c 'ip link set lo up && exec "$@"' sh "${tests[@]}" || rc=$?
else
  echo "running the tests on this machine's loopback (a network namespace needs root and unshare)"
  "${tests[@]}" || rc=$?
fi
echo "test-ha: Home Assistant's install $((installed - start)) s, its tests $(( $(date +%s) - installed )) s"
exit $rc
