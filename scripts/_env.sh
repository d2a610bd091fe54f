# Shared by scripts/demo and scripts/test: create or refresh the project's virtual environment.
# Usage: source scripts/_env.sh; ensure_env [EXTRA]   (EXTRA: "test" for the test dependencies)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MOOPT_VENV:-$ROOT/.venv}"

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "moopt needs Python >= 3.11; install it or set PYTHON=/path/to/python3.11" >&2
  return 1
}

ensure_env() {
  local extra="${1:-}" spec="$ROOT" stamp
  [ -n "$extra" ] && spec="$ROOT[$extra]"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "scripts: creating the virtual environment in $VENV" >&2
    "$(find_python)" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
  fi
  # Reinstall only when pyproject.toml or the wanted extras changed.
  stamp="$VENV/.moopt-installed-$extra-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "scripts: installing moopt${extra:+ with [$extra]} into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --editable "$spec"
    rm -f "$VENV"/.moopt-installed-"$extra"-*
    touch "$stamp"
  fi
}
