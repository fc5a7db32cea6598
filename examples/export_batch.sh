#!/bin/sh
# Export a batch to JSON Lines, then to CSV, from the command line.
#
#   sh examples/export_batch.sh BATCH_ID [OUT]  # BLAT_API_KEY set: a batch
#   sh examples/export_batch.sh                 # without: a fake demo batch
#
# Writes OUT.jsonl (one item per line, exactly as `blat-async items` prints
# it) and OUT.csv (one row per item: job_id, url, success, error_code, error,
# links). OUT defaults to "batch". DEMO_SIZE sets the size of the demo batch
# (default 120).
set -eu

batch_id="${1:-}"
out="${2:-batch}"

# 1. JSON Lines. The progress bar, if any, goes to stderr, so stdout is only
# items.
if [ -n "${BLAT_API_KEY:-}" ]; then
    [ -n "$batch_id" ] || { echo "usage: $0 BATCH_ID [OUT]" >&2; exit 2; }
    blat-async items "$batch_id" --no-progress > "$out.jsonl"
else
    blat-async demo --size "${DEMO_SIZE:-120}" --no-progress > "$out.jsonl"
fi

# 2. CSV, with Python's csv module (quoting commas, quotes and newlines in
# error messages).
python3 - "$out.jsonl" > "$out.csv" <<'PY'
import csv, json, sys

writer = csv.writer(sys.stdout)
writer.writerow(["job_id", "url", "success", "error_code", "error", "links"])
with open(sys.argv[1], encoding="utf-8") as lines:
    for line in lines:
        item = json.loads(line)
        meta = item["metadata"] or {}
        writer.writerow([
            meta.get("job_id"), meta.get("url"), item["success"],
            item["error_code"] or "", item["error"] or "", len(item["links"]),
        ])
PY

items=$(wc -l < "$out.jsonl" | tr -d ' ')
echo "wrote $items items to $out.jsonl and $out.csv" >&2
