#!/usr/bin/env bash
# Install the eval tools tests/test_eval_formats.py runs offline: promptfoo (npm, pinned) into
# .ci/tools, and Inspect AI (PyPI, pinned) into its own venv .ci/tools/inspect-venv (its
# dependency tree is large; the test environment only needs zstandard to read .eval logs) — or,
# when $PROMPTSTATE_INSPECT_PYTHON names a Python (the tests then run Inspect with it), into that
# Python's environment: its pins are compatible with the test extra (`pip check` passes with
# both), and the dependencies the two share are then installed once.
# Idempotent: does nothing for a tool that is already installed at its pinned version.
#
# The two installs run side by side (background jobs; a failure of either fails the script,
# with its log). What keeps them short:
# * promptfoo: `npm install --prefer-offline` (the npm cache is used without asking the
#   registry again), `--legacy-peer-deps` (promptfoo's 33 peer dependencies are SDKs of
#   providers the tests do not use: AWS, Azure, playwright, sharp, pdf-parse, …) and
#   `--omit=optional` (platform binaries of build tools); its SQLite module is built from the
#   system's Node headers once and the build is kept in a cache outside the checkout
#   ($PROMPTSTATE_TOOLS_CACHE, default ~/.cache/promptstate-eval-tools), keyed by the Node ABI
#   and the module's version;
# * inspect-ai: `pip install --no-compile` (no byte-compiling of its whole dependency tree;
#   Python compiles the modules the tests import when they are imported).
#
# Needs Node >= 20 with its headers in /usr/include/node (better-sqlite3 is built from them, no
# download). Usage: .ci/install_eval_tools.sh   (then PROMPTSTATE_PROMPTFOO=.ci/tools/node_modules/.bin/promptfoo)
set -euo pipefail

PROMPTFOO_VERSION="0.118.0"
INSPECT_VERSION="0.3.285"
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.ci/tools"
bin="$tools/node_modules/.bin/promptfoo"
inspect_venv="$tools/inspect-venv"
inspect_python="${PROMPTSTATE_INSPECT_PYTHON:-$inspect_venv/bin/python}"
cache="${PROMPTSTATE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/promptstate-eval-tools}"
# npm's own cache and config stay out of the user's home
npm_home="${TMPDIR:-/tmp}/promptstate-eval-tools-home"

say() { echo "install_eval_tools: $*"; }

installed_version() {
  node -e "console.log(require('$tools/node_modules/promptfoo/package.json').version)" 2>/dev/null || true
}
sqlite_loads() {
  (cd "$tools" && node -e "new (require('better-sqlite3'))(':memory:').close()" >/dev/null 2>&1)
}

install_inspect() {
  local start=$SECONDS
  [[ -n "${PROMPTSTATE_INSPECT_PYTHON:-}" ]] || "${PYTHON:-python3}" -m venv "$inspect_venv"
  "$inspect_python" -m pip install --quiet --disable-pip-version-check --no-compile \
    "inspect-ai==$INSPECT_VERSION"
  say "inspect-ai $INSPECT_VERSION installed for $inspect_python ($((SECONDS - start)) s)"
}

install_promptfoo() {
  local start=$SECONDS
  command -v node >/dev/null || { say "node not found (need Node >= 20)" >&2; return 2; }
  export HOME="$npm_home"
  mkdir -p "$HOME"
  cd "$tools"
  [[ -f package.json ]] || echo '{"name": "promptstate-eval-tools", "private": true}' > package.json
  # --ignore-scripts: better-sqlite3's install script downloads prebuilt binaries or Node
  # headers; it is built below from the system's headers instead (or taken from the cache).
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --ignore-scripts \
    --prefer-offline --legacy-peer-deps --omit=optional --loglevel=error \
    "promptfoo@$PROMPTFOO_VERSION"
  say "npm install: $((SECONDS - start)) s"
  local module="$tools/node_modules/better-sqlite3"
  local key
  key="node-abi$(node -p process.versions.modules)-better-sqlite3-$(node -p "require('$module/package.json').version")"
  local built="$cache/$key/better_sqlite3.node"
  if [[ -f "$built" ]]; then
    mkdir -p "$module/build/Release"
    cp "$built" "$module/build/Release/better_sqlite3.node"
  fi
  if ! sqlite_loads; then
    local build_start=$SECONDS
    npm rebuild better-sqlite3 --nodedir=/usr --loglevel=error
    sqlite_loads || { say "better-sqlite3 does not load after the rebuild" >&2; return 1; }
    say "better-sqlite3 built from the Node headers: $((SECONDS - build_start)) s"
    if mkdir -p "$cache/$key" 2>/dev/null; then
      cp "$module/build/Release/better_sqlite3.node" "$built.tmp.$$" && mv "$built.tmp.$$" "$built" \
        || say "could not keep the better-sqlite3 build in $cache (it is built again next time)"
    fi
  else
    say "better-sqlite3 from the build cache $cache/$key"
  fi
  say "promptfoo $(installed_version) installed in $tools ($((SECONDS - start)) s)"
}

mkdir -p "$tools"
jobs_started=()
if "$inspect_python" -c "import inspect_ai, sys; sys.exit(inspect_ai.__version__ != '$INSPECT_VERSION')" 2>/dev/null; then
  say "inspect-ai $INSPECT_VERSION already there for $inspect_python"
else
  install_inspect > "$tools/install-inspect.log" 2>&1 &
  jobs_started+=("inspect:$!")
fi
if [[ -x "$bin" && "$(installed_version)" == "$PROMPTFOO_VERSION" ]] && sqlite_loads; then
  say "promptfoo $PROMPTFOO_VERSION already in $tools"
else
  install_promptfoo > "$tools/install-promptfoo.log" 2>&1 &
  jobs_started+=("promptfoo:$!")
fi

status=0
for job in "${jobs_started[@]}"; do
  name="${job%%:*}"
  if wait "${job#*:}"; then
    grep '^install_eval_tools:' "$tools/install-$name.log" || true
  else
    code=$?
    say "installing $name failed (exit $code); its log:" >&2
    cat "$tools/install-$name.log" >&2
    status=$code
  fi
done
exit "$status"
