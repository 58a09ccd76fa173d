#!/usr/bin/env bash
# The daily promptstate report, run by cron (docs/scheduling.md explains every line).
#
#   30 6 * * *  PROMPTSTATE_EXPORT=/data/exports/events PROMPTSTATE_LEDGER=/srv/prompts/ledger.yaml PROMPTSTATE_ALERT=/usr/local/bin/page-oncall /opt/promptstate/daily-report.sh
#
# Exit codes (the script passes promptstate's on): 0 nothing needs attention, 1 something does,
# 2 bad input (nothing written), 4 internal error. Every code but 0 calls $PROMPTSTATE_ALERT.
set -uo pipefail

: "${PROMPTSTATE_EXPORT:?set PROMPTSTATE_EXPORT to the event export (file, directory or glob)}"
: "${PROMPTSTATE_LEDGER:?set PROMPTSTATE_LEDGER to the rollout ledger}"
reports=${PROMPTSTATE_REPORTS:-/var/lib/promptstate/reports}
alert=${PROMPTSTATE_ALERT:-}  # a command: the subject as $1, the summary and stderr on stdin

day=$(date -u +%F)
out="$reports/$day"
mkdir -p "$out"
# The window starts PROMPTSTATE_SINCE_DAYS (default 14) days ago, or at $PROMPTSTATE_SINCE:
# experiments that ended before it are left out with a note instead of alerting every day.
since=${PROMPTSTATE_SINCE:-$(date -u -d "$day - ${PROMPTSTATE_SINCE_DAYS:-14} days" +%FT00:00:00Z)}

# The baseline store comes from $PROMPTSTATE_STORE (or [tool.promptstate] store = in the
# nearest pyproject.toml); the report says which store it used.
promptstate report "$PROMPTSTATE_EXPORT" --ledger "$PROMPTSTATE_LEDGER" --since "$since" \
  --out "$out" --format json --no-progress >"$out/summary.json" 2>"$out/stderr.txt"
code=$?

case "$code" in
  0) subject="" ;;
  1) subject="promptstate $day: needs attention, see $out/report.html" ;;
  2) subject="promptstate $day: bad input, see $out/stderr.txt" ;;
  *) subject="promptstate $day: failed with exit $code, see $out/stderr.txt" ;;
esac
if [ -n "$subject" ] && [ -n "$alert" ]; then
  cat "$out/summary.json" "$out/stderr.txt" | "$alert" "$subject"
fi
exit "$code"
