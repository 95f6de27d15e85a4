#!/usr/bin/env bash
# Sets up a fresh machine for sensorium: Debian packages (when root with apt),
# a virtual environment, the CPU build of torch, and the package itself.
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# Debian packages: PortAudio for sounddevice, PulseAudio for the virtual
# microphone, EGL/OSMesa for MuJoCo's offscreen rendering.
DEB_PACKAGES="libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins libegl1 libgl1 libosmesa6"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=""
  for p in $DEB_PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    echo "setup: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || echo "setup: apt-get update failed; trying the install anyway"
    apt-get install -y -qq --no-install-recommends $missing
  fi
else
  echo "setup: not root with apt; skipping Debian packages ($DEB_PACKAGES)." \
       "Tests that need them will skip and say why."
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip

# An unpinned torch pulls a CUDA build of several GB; take the CPU build.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  $PIP install -q "torch==2.13.0"
fi
$PIP install -q -e ".[dev]"
echo "setup: done ($VENV)"
