#!/bin/sh
# Install what certlab needs on a fresh Debian/Ubuntu machine, then certlab itself in .venv.
#   sh scripts/setup.sh           system packages + certlab
#   sh scripts/setup.sh --test    ... plus the test and benchmark extras (requirements-test.txt)
#   sh scripts/setup.sh --bench   the same (pytest-xdist for bench/overhead.py is in the test lock)
# Python packages come from the hash-pinned locks requirements.txt and requirements-test.txt (sh scripts/lock.sh refreshes them).
# System packages come from system-packages.txt; run as root or with sudo available.
set -eu
cd "$(dirname "$0")/.."
lock=requirements.txt
[ "${1:-}" = "--test" ] && lock=requirements-test.txt
[ "${1:-}" = "--bench" ] && lock=requirements-test.txt  # the test lock holds the bench extra too

pkgs=$(sed -e 's/#.*//' system-packages.txt | tr -s ' \n' ' ')
missing=""
# names installed packages provide count too (NodeSource's nodejs provides npm and conflicts with it)
provided=$(dpkg-query -W -f='${Status}|${Provides}\n' 2>/dev/null | sed -n 's/^install ok installed|//p' \
  | sed 's/([^)]*)//g' | tr ', ' '\n\n')
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || printf '%s\n' "$provided" | grep -qx "$p" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing system packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# Every Python package, the build backend included, comes pinned with its hashes from the lock
# (refreshed with scripts/lock.sh); certlab itself is then built from this tree without fetching.
.venv/bin/python -m pip install -q --require-hashes -r "$lock"
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .

# The Allure 3 CLI that renders HTML reports, pinned by tools/allure/package-lock.json. The stamp
# holds the lock's checksum, so a rerun skips npm unless the lock changed or node_modules is gone.
lock_sum=$(sha256sum tools/allure/package-lock.json | cut -d' ' -f1)
stamp=tools/allure/node_modules/.certlab-stamp
if [ -x tools/allure/node_modules/.bin/allure ] && [ "$(cat "$stamp" 2>/dev/null)" = "$lock_sum" ]; then
  echo "setup: Allure CLI up to date in tools/allure"
else
  node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$node_major" -lt 20 ]; then
    echo "setup: the Allure CLI needs Node.js 20 or later, found $(node --version 2>/dev/null || echo none);" \
         "install nodejs >= 20 (Debian 13, or NodeSource on Debian 12) and rerun" >&2
    exit 1
  fi
  echo "setup: installing the Allure CLI into tools/allure (npm ci)"
  npm ci --prefix tools/allure --no-audit --no-fund --loglevel=error >/dev/null
  echo "$lock_sum" > "$stamp"
fi
# certlab looks for the CLI beside its python (then on PATH), never in the source tree
ln -sfn ../../tools/allure/node_modules/.bin/allure .venv/bin/allure
# axe-core, the accessibility checker the browser tests inject into the web app's pages, pinned by
# tools/axe/package-lock.json: a test tool, so only with --test; the same stamp as Allure's.
if [ "${1:-}" = "--test" ]; then
  axe_sum=$(sha256sum tools/axe/package-lock.json | cut -d' ' -f1)
  axe_stamp=tools/axe/node_modules/.certlab-stamp
  if [ -f tools/axe/node_modules/axe-core/axe.min.js ] && [ "$(cat "$axe_stamp" 2>/dev/null)" = "$axe_sum" ]; then
    echo "setup: axe-core up to date in tools/axe"
  else
    echo "setup: installing axe-core into tools/axe (npm ci)"
    npm ci --prefix tools/axe --no-audit --no-fund --loglevel=error >/dev/null
    echo "$axe_sum" > "$axe_stamp"
  fi
fi
echo "setup: certlab installed in .venv (run .venv/bin/certlab --help)"
