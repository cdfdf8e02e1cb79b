#!/bin/sh
# Refresh the dependency locks that scripts/setup.sh installs from:
#   requirements.txt        certlab and what it needs to build (setuptools)
#   requirements-test.txt   ... plus the test and benchmark extras (what .ci/run installs)
# Every package is pinned with the SHA-256 of each of its files on the index, resolved once for
# every platform and every Python that pyproject.toml admits (uv's universal resolution), so a
# lab on another Debian release installs the same set. pyproject.toml keeps the ranges, for
# people who install certlab as a library. Usage: sh scripts/lock.sh [--upgrade-package NAME]...
# Needs the network to reach the package index; commit both files with what changed them.
set -eu
cd "$(dirname "$0")/.."
tool=${CERTLAB_LOCK_TOOL_VENV:-${TMPDIR:-/tmp}/certlab-lock-tool}
[ -x "$tool/bin/uv" ] || { python3 -m venv "$tool" && "$tool/bin/pip" install -q "uv>=0.9"; }
build=$(mktemp)
trap 'rm -f "$build"' EXIT
# the build backend is locked too: setup.sh builds certlab without fetching anything unpinned
python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' > "$build"
compile() {  # OUT, then extra flags
  out=$1; shift
  "$tool/bin/uv" pip compile pyproject.toml "$build" --universal --python-version 3.11 \
    --generate-hashes --no-header --quiet --output-file "$out" "$@"
  { printf '# Locked by scripts/lock.sh: do not edit; refresh with sh scripts/lock.sh\n'
    sed "s|-r $build|build-system.requires of pyproject.toml|" "$out"; } > "$out.tmp"
  mv "$out.tmp" "$out"
}
compile requirements.txt "$@"
compile requirements-test.txt --extra test --extra bench "$@"
echo "lock: requirements.txt $(grep -c '==' requirements.txt) packages," \
     "requirements-test.txt $(grep -c '==' requirements-test.txt) packages"
