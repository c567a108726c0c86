#!/usr/bin/env bash
# Makes a fresh machine ready: Debian packages the tests and the demo use,
# then .venv with coreseal and its test tools. Safe to run again.
#   scripts/bootstrap.sh          what `make demo` and `make test` need
#   scripts/bootstrap.sh --bench  also the peers the benchmarks compare with
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

want=(gdb:gdb gcore:gdb gcc:gcc keyctl:keyutils zstd:zstd
      qemu-system-x86_64:qemu-system-x86)
if [ "${1:-}" = "--bench" ]; then
  want+=(age:age age-keygen:age)
fi
missing=()
for pair in "${want[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" != 0 ]; then
    echo "coreseal: error: missing packages: $pkgs(install them as root)" >&2
    exit 1
  fi
  echo "coreseal: installing $pkgs" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $pkgs >/dev/null
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "coreseal: error: $PYTHON is older than Python 3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c 'import coreseal, cryptography, zstandard, click, pytest'
