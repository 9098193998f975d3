#!/bin/sh
# The ads ETL, precision-first: one strict run per (customer, day), each validated into the ledger.
# A day that fails stays failed (its partial data is never read) until `quarry retry` re-runs it.
#
#   examples/ads-report/etl.sh 2026-11-03 [2026-11-04 …]
#
# Environment: ADS_URL (the dashboard), ADS_USER and ADS_PASSWORD (its login, read by the script,
# never stored), QUARRY (the command, default "npx quarry"), CUSTOMERS, PARALLEL (runs at once,
# default 2), and any QUARRY_* setting such as QUARRY_BROWSER_ENDPOINT (one shared Chromium).
# Extra quarry run flags (e.g. --storage-path) go in QUARRY_RUN_FLAGS.
# Exits 0 when every run's data became authoritative, else non-zero (cron mails you).
set -eu
: "${ADS_URL:?set ADS_URL to the dashboard, e.g. http://127.0.0.1:8090/}"
[ $# -gt 0 ] || { echo "usage: $0 DAY [DAY ...]  (days as YYYY-MM-DD)" >&2; exit 2; }
export QUARRY="${QUARRY:-npx quarry}" QUARRY_RUN_FLAGS="${QUARRY_RUN_FLAGS:-}" ADS_URL
export SCRIPT="$(dirname "$0")/extract.ts"
for day in "$@"; do
  for customer in ${CUSTOMERS:-acme globex hooli initech umbrella}; do echo "$customer $day"; done
done | xargs -n 2 -P "${PARALLEL:-2}" sh -c '
  $QUARRY run --script "$SCRIPT" --source ads --category "$0" --day "$1" \
    --job "{\"url\":\"$ADS_URL\"}" --quiet $QUARRY_RUN_FLAGS && echo "ok     $0 $1" || { echo "FAILED $0 $1" >&2; exit 1; }'
