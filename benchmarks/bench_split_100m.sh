#!/usr/bin/env bash
# Completion check on 100 million events: split + contamination_summary through the CLI.
# Usage: bash benchmarks/bench_split_100m.sh [DIR]   (generates DIR if missing: ~3 GB, ~8 min)
set -euo pipefail
dir=${1:-benchmarks/data/e100m}
[ -d "$dir" ] || python -m analysis.sample --events 100000000 --out "$dir"
/usr/bin/time -v promptstate split "$dir" --ledger data_samples/ledger.yaml --format json \
  > /tmp/split100m.json 2> /tmp/split100m.time
grep -E "Elapsed|Maximum resident" /tmp/split100m.time
python -c "import json; d=json.load(open('/tmp/split100m.json')); print('events', d['summary']['n_events'])"
