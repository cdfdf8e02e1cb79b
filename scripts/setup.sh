#!/bin/sh
# Install what certlab needs on a fresh Debian/Ubuntu machine, then certlab itself in .venv.
#   sh scripts/setup.sh           system packages + certlab
#   sh scripts/setup.sh --test    ... plus the test extras
#   sh scripts/setup.sh --bench   ... plus the test and benchmark extras (pytest-xdist for bench/overhead.py)
# System packages come from system-packages.txt; run as root or with sudo available.
set -eu
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
[ "${1:-}" = "--bench" ] && extras="[test,bench]"

pkgs=$(sed -e 's/#.*//' system-packages.txt | tr -s ' \n' ' ')
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing system packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".$extras"
echo "setup: certlab installed in .venv (run .venv/bin/certlab --help)"
