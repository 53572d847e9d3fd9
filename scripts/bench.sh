#!/usr/bin/env bash
# Macro benchmark of exportd on generated data:
#   - bulk NDJSON ingest of N (default 1,000,000) ~400-byte documents: docs/s, peak RSS
#   - export of those documents as NDJSON and CSV: wall time POST→ready, docs/s, MB/s of
#     uncompressed output, archive ratio, peak RSS during the export
#   - the same export over N/10 documents, to show that memory stays flat
# Usage: scripts/bench.sh [N]      (needs curl, python3, unzip; FILE_MBS="50 200" file sizes)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-${N:-1000000}}
SMALL=$((N / 10))
PORT=${PORT:-18555}
BASE="http://127.0.0.1:$PORT"
WORK=$(mktemp -d /tmp/exportd-bench.XXXXXX)
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release --quiet
python3 -c 'import os;print(os.urandom(32).hex())' > "$WORK/key"
EXPORTD_SYSTEM_TOKEN=bench RUST_LOG=warn ./target/release/exportd serve --data-dir "$WORK/data" \
  --master-key-file "$WORK/key" --bind "127.0.0.1:$PORT" 2>"$WORK/server.log" &
PID=$!
for _ in $(seq 100); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.1; done

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
peak_kib() { awk '/VmHWM/ {print $2}' /proc/$PID/status; }
rss_kib() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
reset_peak() { echo 5 > /proc/$PID/clear_refs 2>/dev/null || true; }
now() { date +%s.%N; }

setup_org() { # org code → admin token
  curl -sf -XPOST "$BASE/sys/orgs" -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' -d "{\"code\":\"$1\"}" >/dev/null
  local tok
  tok=$(curl -sf -XPOST "$BASE/sys/orgs/$1/accounts" -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' \
    -d "{\"email\":\"bench@$1.test\",\"roles\":[\"administrator\"]}" | json 'd["token"]')
  curl -sf -XPOST "$BASE/$1/v2/objects" -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' -d '{
    "name":"c_site","properties":[{"name":"c_name","type":"String"}]}' >/dev/null
  curl -sf -XPOST "$BASE/$1/v2/objects" -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' -d '{
    "name":"c_step","properties":[
      {"name":"c_participant","type":"String"},{"name":"c_count","type":"Number"},
      {"name":"c_when","type":"Date"},{"name":"c_done","type":"Boolean"},
      {"name":"c_site","type":"Reference","sourceObject":"c_site"},
      {"name":"c_tags","type":"String","array":true},
      {"name":"c_vitals","type":"Document","properties":[{"name":"c_hr","type":"Number"},{"name":"c_bp","type":"String"},{"name":"c_note","type":"String"}]},
      {"name":"c_comment","type":"String"}]}' >/dev/null
  echo "$tok"
}

gen() { # count site_id → NDJSON on stdout (~400 bytes per stored document)
  python3 - "$1" "$2" <<'PY'
import json, random, sys
n, site = int(sys.argv[1]), sys.argv[2]
r = random.Random(7)
tags = ["baseline", "follow-up", "remote", "in-clinic", "screening"]
out = sys.stdout
for i in range(n):
    out.write(json.dumps({
        "c_participant": "P-%06d" % r.randrange(1, 200000), "c_count": r.randrange(0, 20000),
        "c_when": "2026-%02d-%02dT%02d:%02d:00.000Z" % (r.randrange(1, 13), r.randrange(1, 29), r.randrange(24), r.randrange(60)),
        "c_done": r.random() < 0.8, "c_site": site, "c_tags": r.sample(tags, 2),
        "c_vitals": {"c_hr": r.randrange(50, 120), "c_bp": "%d/%d" % (r.randrange(100, 150), r.randrange(60, 95)), "c_note": "resting"},
        "c_comment": "Participant completed the daily walking task without reported issues.",
    }) + "\n")
PY
}

ingest() { # org token count
  local site
  site=$(curl -sf -XPOST "$BASE/$1/v2/c_sites" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' -d '{"c_name":"Boston"}' | json 'd["_id"]')
  gen "$3" "$site" > "$WORK/docs.ndjson"
  reset_peak
  local t0 t1 inserted
  t0=$(now)
  inserted=$(curl -sf -XPOST "$BASE/$1/v2/c_steps" -H "Authorization: Bearer $2" -H 'Content-Type: application/x-ndjson' \
    --data-binary @"$WORK/docs.ndjson" | json 'd["data"]["inserted"]')
  t1=$(now)
  python3 -c "n=$inserted; s=$t1-$t0; print(f'ingest  {n:>9} docs  {s:7.2f} s  {n/s:10.0f} docs/s  {$(stat -c %s "$WORK/docs.ndjson")/s/1e6:6.1f} MB/s  peak RSS {$(peak_kib)/1024:.0f} MiB')"
  rm -f "$WORK/docs.ndjson"
}

export_run() { # org token format label
  local id t0 t1 state out
  reset_peak
  local idle; idle=$(rss_kib)
  t0=$(now)
  id=$(curl -sf -XPOST "$BASE/$1/v2/exports" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
    -d "{\"label\":\"bench\",\"objects\":\"c_steps\",\"format\":\"$3\"}" | json 'd["_id"]')
  while :; do
    state=$(curl -sf "$BASE/$1/v2/exports/$id" -H "Authorization: Bearer $2" | json 'd["state"]')
    [ "$state" = ready ] || [ "$state" = error ] && break
    sleep 0.05
  done
  t1=$(now)
  [ "$state" = ready ] || { echo "export failed"; exit 1; }
  curl -sf "$BASE/$1/v2/exports/$id/dataFile/content" -H "Authorization: Bearer $2" -o "$WORK/out.zip"
  local raw zipped docs
  raw=$(unzip -l "$WORK/out.zip" | tail -1 | awk '{print $1}')
  zipped=$(stat -c %s "$WORK/out.zip")
  docs=$(curl -sf "$BASE/$1/v2/exports/$id" -H "Authorization: Bearer $2" | json 'd["stats"]["docs"]["count"]')
  python3 -c "s=$t1-$t0; print(f'export  {\"$4\":<6} {$docs:>9} docs  {s:7.2f} s  {$docs/s:10.0f} docs/s  {$raw/s/1e6:6.1f} MB/s  ratio {$raw/$zipped:4.1f}x  peak RSS {$(peak_kib)/1024:.0f} MiB (idle {$idle/1024:.0f} MiB)')"
  curl -sf -XDELETE "$BASE/$1/v2/exports/$id" -H "Authorization: Bearer $2" >/dev/null
}

file_export() { # org token MiB: one large file exported with zipFiles, peak RSS
  local doc id state t0 t1
  curl -sf -XPOST "$BASE/$1/v2/objects" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
    -d "{\"name\":\"c_blob$3\",\"properties\":[{\"name\":\"c_file\",\"type\":\"File\"}]}" >/dev/null
  doc=$(curl -sf -XPOST "$BASE/$1/v2/c_blob$3s" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' -d '{}' | json 'd["_id"]')
  head -c $(($3 * 1024 * 1024)) /dev/urandom > "$WORK/big.bin"
  curl -sf -XPUT "$BASE/$1/v2/c_blob$3s/$doc/c_file/content" -H "Authorization: Bearer $2" \
    -H 'Content-Type: application/octet-stream' --data-binary @"$WORK/big.bin" >/dev/null
  reset_peak
  local idle; idle=$(rss_kib)
  t0=$(now)
  id=$(curl -sf -XPOST "$BASE/$1/v2/exports" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
    -d "{\"label\":\"file\",\"objects\":\"c_blob$3s\",\"exportFiles\":true,\"zipFiles\":true}" | json 'd["_id"]')
  while :; do
    state=$(curl -sf "$BASE/$1/v2/exports/$id" -H "Authorization: Bearer $2" | json 'd["state"]')
    [ "$state" = ready ] || [ "$state" = error ] && break
    sleep 0.05
  done
  t1=$(now)
  python3 -c "print(f'file    {$3} MiB file, zipFiles  {$t1-$t0:7.2f} s  state $state  peak RSS {$(peak_kib)/1024:.0f} MiB (idle {$idle/1024:.0f} MiB)')"
  rm -f "$WORK/big.bin"
}

echo "exportd bench: N=$N on $(nproc) cores"
BIG=$(setup_org big)
SMALLTOK=$(setup_org small)
ingest big "$BIG" "$N"
ingest small "$SMALLTOK" "$SMALL"
export_run big "$BIG" application/x-ndjson ndjson
export_run big "$BIG" text/csv csv
export_run small "$SMALLTOK" application/x-ndjson ndjson
export_run small "$SMALLTOK" text/csv csv
for mb in ${FILE_MBS:-50 200}; do file_export small "$SMALLTOK" "$mb"; done
