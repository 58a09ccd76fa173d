#!/usr/bin/env bash
# Install the eval tools tests/test_eval_formats.py runs offline: promptfoo (npm, pinned) into
# .ci/tools, and Inspect AI (PyPI, pinned) into its own venv .ci/tools/inspect-venv (its
# dependency tree is large; the test environment only needs zstandard to read .eval logs).
# Idempotent: does nothing for a tool that is already installed at its pinned version.
#
# Needs Node >= 20 with its headers in /usr/include/node (better-sqlite3 is built from them, no
# download). Usage: .ci/install_eval_tools.sh   (then PROMPTSTATE_PROMPTFOO=.ci/tools/node_modules/.bin/promptfoo)
set -euo pipefail

PROMPTFOO_VERSION="0.118.0"
INSPECT_VERSION="0.3.285"
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.ci/tools"
bin="$tools/node_modules/.bin/promptfoo"

installed_version() {
  node -e "console.log(require('$tools/node_modules/promptfoo/package.json').version)" 2>/dev/null || true
}
sqlite_loads() {
  (cd "$tools" && node -e "new (require('better-sqlite3'))(':memory:').close()" >/dev/null 2>&1)
}

inspect_venv="$tools/inspect-venv"
if "$inspect_venv/bin/python" -c "import inspect_ai, sys; sys.exit(inspect_ai.__version__ != '$INSPECT_VERSION')" 2>/dev/null; then
  echo "install_eval_tools: inspect-ai $INSPECT_VERSION already in $inspect_venv"
else
  mkdir -p "$tools"
  "${PYTHON:-python3}" -m venv "$inspect_venv"
  "$inspect_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "inspect-ai==$INSPECT_VERSION"
  echo "install_eval_tools: inspect-ai $INSPECT_VERSION installed in $inspect_venv"
fi

if [[ -x "$bin" && "$(installed_version)" == "$PROMPTFOO_VERSION" ]] && sqlite_loads; then
  echo "install_eval_tools: promptfoo $PROMPTFOO_VERSION already in $tools"
  exit 0
fi
command -v node >/dev/null || { echo "install_eval_tools: node not found (need Node >= 20)" >&2; exit 2; }
mkdir -p "$tools"
export HOME="${TMPDIR:-/tmp}/promptstate-eval-tools-home"
mkdir -p "$HOME"
cd "$tools"
[[ -f package.json ]] || echo '{"name": "promptstate-eval-tools", "private": true}' > package.json
# --ignore-scripts: better-sqlite3's install script downloads prebuilt binaries or Node headers;
# it is rebuilt below from the system's headers instead.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --ignore-scripts \
  "promptfoo@$PROMPTFOO_VERSION"
npm rebuild better-sqlite3 --nodedir=/usr
sqlite_loads || { echo "install_eval_tools: better-sqlite3 does not load after the rebuild" >&2; exit 1; }
echo "install_eval_tools: promptfoo $(installed_version) installed in $tools"
