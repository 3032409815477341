#!/usr/bin/env bash
# tests/setup-peers.sh - install the real Direct Connect software that dclua's
# integration tests start on 127.0.0.1 (idempotent; well under a second when
# everything is already there).
#
#   Debian packages: uhub (ADC hub), eiskaltdcpp-daemon (NMDC+ADC client driven
#     over JSON-RPC), openssl (TLS certificates for the ADCS hub), rhash (TTH
#     sums to cross-check), tmux (interactive console tests), python3-venv
#     (for the venv below).
#   PyPI: verlihub-py (the native Verlihub NMDC hub core) in a venv at
#     ${DCLUA_PEERS_DIR:-$HOME/.cache/dclua-peers}/venv, installed with
#     --no-deps: tests/support/vh_hub.py only needs its SWIG core module.
#
# CI runs it as `tests/setup-peers.sh && cargo test` on a fresh Debian machine
# as root. apt-get needs root (or sudo); the venv needs CPython 3.10-3.13.
# Environment: DCLUA_PEERS_DIR (where the venv goes), PYTHON (the interpreter
# the venv is made from, default python3), VERLIHUB_PY_VERSION (1.7.0.0).
set -euo pipefail

VERLIHUB_PY_VERSION=${VERLIHUB_PY_VERSION:-1.7.0.0}
PEERS_DIR=${DCLUA_PEERS_DIR:-${HOME:?HOME is not set; set DCLUA_PEERS_DIR}/.cache/dclua-peers}
VENV=$PEERS_DIR/venv
PY=${PYTHON:-python3}

say() { echo "setup-peers: $*"; }
die() { echo "setup-peers: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- apt packages
# util-linux: setpriv, which runs the intruder of the control-socket test as nobody.
PKGS=(uhub eiskaltdcpp-daemon openssl rhash tmux python3-venv util-linux)
missing=()
for p in "${PKGS[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get here (install them by hand)"
  SUDO=
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "missing ${missing[*]}: run this script as root (apt-get install)"
    SUDO=sudo
  fi
  say "apt-get update"
  $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages already installed: ${PKGS[*]}"
fi

# ---------------------------------------------------------------- venv
venv_ok() {
  "$VENV/bin/python" - "$VERLIHUB_PY_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
assert version("verlihub-py") == sys.argv[1]
from verlihub import verlihub_core
assert verlihub_core.HubContext
EOF
}

# A venv whose interpreter no longer runs (e.g. its Python was upgraded away) is remade.
if [ -e "$VENV/pyvenv.cfg" ] && ! "$VENV/bin/python" -c pass 2>/dev/null; then
  say "removing broken venv $VENV"
  rm -rf "$VENV"
fi

if [ -x "$VENV/bin/python" ] && venv_ok; then
  say "venv with verlihub-py $VERLIHUB_PY_VERSION already at $VENV"
else
  if [ ! -x "$VENV/bin/python" ]; then
    command -v "$PY" >/dev/null || die "no $PY: install python3 (CPython 3.10-3.13)"
    "$PY" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)' \
      || die "$PY is $("$PY" -V 2>&1); the verlihub-py wheel needs CPython 3.10-3.13 (set PYTHON)"
    mkdir -p "$PEERS_DIR"
    fresh=; [ -e "$VENV" ] || fresh=1
    say "creating venv $VENV ($("$PY" -V 2>&1))"
    if ! "$PY" -m venv "$VENV"; then
      [ -z "$fresh" ] || rm -rf "$VENV"   # only what this run created
      die "'$PY -m venv' failed (on Debian: apt-get install python3-venv)"
    fi
  fi
  say "pip install --no-deps verlihub-py==$VERLIHUB_PY_VERSION into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
    "verlihub-py==$VERLIHUB_PY_VERSION"
  venv_ok || die "verlihub-py installed in $VENV but 'from verlihub import verlihub_core' fails"
fi

# ---------------------------------------------------------------- report
say "ok"
echo "  $(uhub -V 2>&1 | head -n 1)"
echo "  eiskaltdcpp-daemon $(dpkg-query -W -f='${Version}' eiskaltdcpp-daemon)"
echo "  $(openssl version)"
echo "  verlihub-py $VERLIHUB_PY_VERSION in $VENV ($("$VENV/bin/python" -V 2>&1))"
