#!/usr/bin/env bash
# Side-by-side benchmark of exportd on generated data (N, default 1,000,000 documents of
# ~400 bytes: numbers, dates, strings, a nested document, an array, a reference):
#   - ingest: bulk NDJSON insert, docs/s and peak RSS
#   - exportd: NDJSON and CSV exports through the API (wall time POST → ready), all
#     documents and a selective `where` keeping about half; medians of RUNS runs; docs/s,
#     MB/s of uncompressed output, archive ratio, peak RSS above idle, for N and N/10
#   - memory: peak RSS above idle of one export on a freshly started server, N and N/10
#   - the by-hand pipeline on the same rows: PostgreSQL (throwaway cluster on a temp dir,
#     unix socket) `COPY (SELECT row_to_json(t) FROM t WHERE ...) TO STDOUT | zip | openssl
#     enc -chacha20`
#   - the floor: `pigz -p $(nproc) -6` over exactly the NDJSON bytes exportd produced
#   - API: wrk, 64 connections × 10 s, medians of WRK_RUNS runs: /health, GET /exports/{id},
#     the list; each run with the hypervisor steal time it suffered
#   - one large file exported with zipFiles (FILE_MBS sizes), peak RSS
# Usage: scripts/bench.sh [N]     env: RUNS=3  WRK_RUNS=3  FILE_MBS="50 200"  PORT=18555
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-${N:-1000000}}
SMALL=$((N / 10))
RUNS=${RUNS:-3}
WRK_RUNS=${WRK_RUNS:-3}
PORT=${PORT:-18555}
BASE="http://127.0.0.1:$PORT"
WHERE_HALF='{"c_count":{"$lt":10000}}'
PG_WHERE='c_count < 10000'

missing=()
for c in curl python3 unzip zip pigz wrk openssl; do command -v "$c" >/dev/null || missing+=("$c"); done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")

WORK=$(mktemp -d /tmp/exportd-bench.XXXXXX)
chmod 755 "$WORK"
cleanup() {
  kill "$PID" 2>/dev/null || true
  [ -d "$WORK/pg" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --quiet
python3 -c 'import os;print(os.urandom(32).hex())' > "$WORK/key"
start_server() {
  EXPORTD_SYSTEM_TOKEN=bench RUST_LOG=warn ./target/release/exportd serve --data-dir "$WORK/data" \
    --master-key-file "$WORK/key" --bind "127.0.0.1:$PORT" 2>>"$WORK/server.log" &
  PID=$!
  for _ in $(seq 300); do curl -sf "$BASE/health" >/dev/null && return; sleep 0.1; done
  echo "the server did not start" >&2; exit 1
}
stop_server() { kill "$PID" 2>/dev/null || echo "the server had stopped (see $WORK/server.log)" >&2; wait "$PID" 2>/dev/null || true; }
start_server

json() { python3 -c "import datetime,json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
state_of() { # org token id → state (grep, not python: polled often)
  curl -sf "$BASE/$1/v2/exports/$3" -H "Authorization: Bearer $2" | grep -o '"state":"[a-z]*"' | head -1 | cut -d'"' -f4
}
peak_kib() { awk '/VmHWM/ {print $2}' /proc/$PID/status; }
rss_kib() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
reset_peak() { echo 5 > /proc/$PID/clear_refs 2>/dev/null || true; }
now() { date +%s.%N; }
median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }

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

ingest() { # org token count → leaves the generated NDJSON in $WORK/docs-<org>.ndjson
  local site
  site=$(curl -sf -XPOST "$BASE/$1/v2/c_sites" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' -d '{"c_name":"Boston"}' | json 'd["_id"]')
  gen "$3" "$site" > "$WORK/docs-$1.ndjson"
  reset_peak
  local t0 t1 inserted
  t0=$(now)
  inserted=$(curl -sf -XPOST "$BASE/$1/v2/c_steps" -H "Authorization: Bearer $2" -H 'Content-Type: application/x-ndjson' \
    --data-binary @"$WORK/docs-$1.ndjson" | json 'd["data"]["inserted"]')
  t1=$(now)
  python3 -c "n=$inserted; s=$t1-$t0; print(f'ingest  {n:>9} docs  {s:7.2f} s  {n/s:10.0f} docs/s  {$(stat -c %s "$WORK/docs-$1.ndjson")/s/1e6:6.1f} MB/s  peak RSS {$(peak_kib)/1024:.0f} MiB')"
}

LAST_ID=""
export_once() { # org token format where → "seconds docs raw_bytes zipped_bytes peak_above_idle_kib"; keeps the archive in $WORK/out.zip
  local id t0 t1 state body idle
  body=$(python3 -c "import json,sys; b={'label':'bench','objects':'c_steps','format':sys.argv[1]}; w=sys.argv[2]; b.update({'where':w} if w else {}); print(json.dumps(b))" "$3" "$4")
  reset_peak
  idle=$(rss_kib)
  t0=$(now)
  id=$(curl -sf -XPOST "$BASE/$1/v2/exports" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' -d "$body" | json 'd["_id"]')
  # polled gently (each poll spawns curl: every 20 ms took ~20% of a 2-core machine from the
  # export being measured); the end is the record's own `completed` time, same clock
  while :; do
    state=$(state_of "$1" "$2" "$id")
    [ "$state" = ready ] || [ "$state" = error ] && break
    sleep 0.25
  done
  [ "$state" = ready ] || { echo "export failed" >&2; exit 1; }
  t1=$(curl -sf "$BASE/$1/v2/exports/$id" -H "Authorization: Bearer $2" \
    | json 'datetime.datetime.fromisoformat(d["completed"].replace("Z", "+00:00")).timestamp()')
  local peak; peak=$(peak_kib)
  curl -sf "$BASE/$1/v2/exports/$id/dataFile/content" -H "Authorization: Bearer $2" -o "$WORK/out.zip"
  local raw zipped docs
  raw=$(unzip -l "$WORK/out.zip" | tail -1 | awk '{print $1}')
  zipped=$(stat -c %s "$WORK/out.zip")
  docs=$(curl -sf "$BASE/$1/v2/exports/$id" -H "Authorization: Bearer $2" | json 'd["stats"]["docs"]["count"]')
  if [ "${KEEP:-0}" = 1 ]; then LAST_ID=$id; else
    curl -sf -XDELETE "$BASE/$1/v2/exports/$id" -H "Authorization: Bearer $2" >/dev/null; fi
  python3 -c "print($t1-$t0, $docs, $raw, $zipped, max(0, $peak-$idle))"
}

EXPORT_MEDIAN=""
export_bench() { # org token format label where
  local secs=() peaks=() r
  for _ in $(seq "$RUNS"); do
    r=$(export_once "$1" "$2" "$3" "$5")
    secs+=("$(echo "$r" | awk '{print $1}')"); peaks+=("$(echo "$r" | awk '{print $5}')")
  done
  EXPORT_MEDIAN=$(median "${secs[@]}")
  python3 -c "
s=$EXPORT_MEDIAN; docs,raw,z=$(echo "$r" | awk '{print $2","$3","$4}')
print(f'exportd {\"$4\":<14} {docs:>9} docs  median {s:6.2f} s  {docs/s:9.0f} docs/s  {raw/s/1e6:6.1f} MB/s  ratio {raw/z:4.1f}x  peak RSS above idle {max([$(IFS=,; echo "${peaks[*]}")])/1024:.0f} MiB (runs {\" \".join(f\"{x/1024:.0f}\" for x in [$(IFS=,; echo "${peaks[*]}")])})  runs {\" \".join(f\"{x:.2f}\" for x in [$(IFS=,; echo "${secs[*]}")])}')"
}

pg_setup() { # loads $WORK/docs-big.ndjson into a throwaway PostgreSQL
  mkdir -p "$WORK/pg" "$WORK/pgsock" && chown postgres "$WORK/pg" "$WORK/pgsock"
  runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg" -A trust >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/log" -w \
    -o "-k $WORK/pgsock -c listen_addresses='' -c shared_buffers=256MB -c max_wal_size=4GB" start >/dev/null
  PSQL=(runuser -u postgres -- psql -h "$WORK/pgsock" -d postgres -Atq -v ON_ERROR_STOP=1)
  "${PSQL[@]}" -c "CREATE UNLOGGED TABLE raw (doc jsonb)"
  "${PSQL[@]}" -c "COPY raw FROM STDIN WITH (FORMAT csv, QUOTE e'\x01', DELIMITER e'\x02')" < "$WORK/docs-big.ndjson"
  "${PSQL[@]}" -c "CREATE TABLE t AS SELECT md5(n::text) AS _id, now() AS created,
      doc->>'c_participant' AS c_participant, (doc->>'c_count')::int AS c_count,
      (doc->>'c_when')::timestamptz AS c_when, (doc->>'c_done')::bool AS c_done,
      doc->>'c_site' AS c_site, ARRAY(SELECT jsonb_array_elements_text(doc->'c_tags')) AS c_tags,
      doc->'c_vitals' AS c_vitals, doc->>'c_comment' AS c_comment
    FROM (SELECT row_number() OVER () AS n, doc FROM raw) r; DROP TABLE raw"
  "${PSQL[@]}" -c "VACUUM ANALYZE t"
}

PG_MEDIAN=""
pg_bench() { # label where-sql
  local secs=() t0 t1 key iv
  key=$(openssl rand -hex 32); iv=$(openssl rand -hex 16)
  for _ in $(seq "$RUNS"); do
    t0=$(now)
    "${PSQL[@]}" -c "COPY (SELECT row_to_json(t) FROM t WHERE $2) TO STDOUT" \
      | zip -q -6 - - | openssl enc -chacha20 -K "$key" -iv "$iv" > "$WORK/pg.zip.enc"
    t1=$(now)
    secs+=("$(python3 -c "print($t1-$t0)")")
  done
  PG_MEDIAN=$(median "${secs[@]}")
  printf 'pg      %-14s median %6.2f s   (COPY row_to_json | zip -6 | openssl chacha20, %s bytes)  runs %s\n' "$1" "$PG_MEDIAN" "$(stat -c %s "$WORK/pg.zip.enc")" "$(printf '%.2f ' "${secs[@]}")"
}

FLOOR_MEDIAN=""
floor_bench() { # label; over the NDJSON inside $WORK/out.zip
  local secs=() t0 t1
  unzip -p "$WORK/out.zip" '*.ndjson' > "$WORK/floor.ndjson"
  for _ in $(seq "$RUNS"); do
    t0=$(now); pigz -p "$(nproc)" -6 -c "$WORK/floor.ndjson" > "$WORK/floor.gz"; t1=$(now)
    secs+=("$(python3 -c "print($t1-$t0)")")
  done
  FLOOR_MEDIAN=$(median "${secs[@]}")
  printf 'floor   %-14s median %6.2f s   (pigz -p %s -6 over %s bytes of exportd NDJSON)  runs %s\n' "$1" "$FLOOR_MEDIAN" "$(nproc)" "$(stat -c %s "$WORK/floor.ndjson")" "$(printf '%.2f ' "${secs[@]}")"
  rm -f "$WORK/floor.ndjson" "$WORK/floor.gz"
}

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

MEM_MEDIAN=""
memory_bench() { # org token format label: one export on a freshly started server, RUNS times
  # A fresh server each time: in one long-lived process, what earlier work left resident
  # (the cache, allocator pages) is in the idle figure, and the next run's peak reads
  # 0-27 MiB above it depending on that history, not on the export.
  local peaks=() idles=() r
  for _ in $(seq "$RUNS"); do
    stop_server; start_server; settle
    idles+=("$(rss_kib)")
    r=$(export_once "$1" "$2" "$3" "")
    peaks+=("$(echo "$r" | awk '{print $5}')")
  done
  MEM_MEDIAN=$(median "${peaks[@]}")
  python3 -c "print(f'memory  {\"$4\":<14} peak RSS above idle of a fresh server, one export: median {$MEM_MEDIAN/1024:.0f} MiB (runs {\" \".join(f\"{x/1024:.0f}\" for x in [$(IFS=,; echo "${peaks[*]}")])}, idle at start {\" \".join(f\"{x/1024:.0f}\" for x in [$(IFS=,; echo "${idles[*]}")])} MiB)')"
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
    state=$(state_of "$1" "$2" "$id")
    [ "$state" = ready ] || [ "$state" = error ] && break
    sleep 0.05
  done
  t1=$(now)
  python3 -c "print(f'file    {$3} MiB file, zipFiles  {$t1-$t0:7.2f} s  state $state  peak RSS above idle {max(0, $(peak_kib)-$idle)/1024:.0f} MiB (idle {$idle/1024:.0f} MiB)')"
  rm -f "$WORK/big.bin"
}

settle() { # until the server is idle (< 5% CPU over half a second; at most 10 s): memory
  # and the API are measured from a quiet server, not against start-up or what the last
  # export left the database to do
  local c0 c1
  for _ in $(seq 20); do
    c0=$(awk '{print $14+$15}' /proc/$PID/stat); sleep 0.5; c1=$(awk '{print $14+$15}' /proc/$PID/stat)
    [ $((c1 - c0)) -lt 3 ] && return
  done
  echo "note: the server was still busy after 10 s" >&2
}

steal_ms() { # CPU time the hypervisor gave to other guests, all CPUs (/proc/stat "steal");
  # the arithmetic in bash: mawk prints integers of 2^31 and more in exponent form
  local ticks
  ticks=$(awk '$1=="cpu" {print $9}' /proc/stat)
  echo $((ticks * 1000 / $(getconf CLK_TCK)))
}

to_ms() { # a wrk duration (850.00us, 6.28ms, 1.02s) → milliseconds
  python3 -c "import re,sys; m=re.fullmatch(r'([0-9.]+)(us|ms|s|m)',sys.argv[1]); print(float(m[1])*{'us':1e-3,'ms':1,'s':1e3,'m':6e4}[m[2]] if m else sys.exit(f'wrk printed no p99 ({sys.argv[1]!r})'))" "$1"
}

wrk_run() { # label url [token]: WRK_RUNS runs of 64 connections × 10 s; prints each run (with
  # the steal time it suffered: a virtual machine whose host takes a vCPU away for ~100 ms a
  # few times stalls every request in flight on it) and the medians
  local out rps p99 non2xx s0 run all_rps=() all_p99=()
  for run in $(seq "$WRK_RUNS"); do
    s0=$(steal_ms)
    if [ -n "${3:-}" ]; then
      out=$(wrk -t2 -c64 -d10s --latency -H "Authorization: Bearer $3" "$2")
    else
      out=$(wrk -t2 -c64 -d10s --latency "$2")
    fi
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    printf 'wrk     %-22s run %s: %10s req/s  p99 %7.2f ms  non-2xx %s  steal %s ms\n' \
      "$1" "$run" "$rps" "$p99" "${non2xx:-0}" "$(($(steal_ms) - s0))"
    all_rps+=("$rps"); all_p99+=("$p99")
  done
  WRK_RPS=$(median "${all_rps[@]}")
  printf 'wrk     %-22s median: %10.0f req/s  p99 %7.2f ms\n' "$1" "$WRK_RPS" "$(median "${all_p99[@]}")"
}

echo "exportd bench: N=$N, RUNS=$RUNS, on $(nproc) cores"
BIG=$(setup_org big)
SMALLTOK=$(setup_org small)
ingest big "$BIG" "$N"
ingest small "$SMALLTOK" "$SMALL"
rm -f "$WORK/docs-small.ndjson"

export_bench big "$BIG" application/x-ndjson "ndjson all" ""
ND_ALL=$EXPORT_MEDIAN
floor_bench "ndjson all"
FLOOR_ALL=$FLOOR_MEDIAN
export_bench big "$BIG" application/x-ndjson "ndjson where" "$WHERE_HALF"
ND_HALF=$EXPORT_MEDIAN
floor_bench "ndjson where"
FLOOR_HALF=$FLOOR_MEDIAN
export_bench big "$BIG" text/csv "csv all" ""
CSV_ALL=$EXPORT_MEDIAN
export_bench small "$SMALLTOK" application/x-ndjson "ndjson all N/10" ""
export_bench small "$SMALLTOK" text/csv "csv all N/10" ""

for f in "application/x-ndjson ndjson" "text/csv csv"; do
  read -r mime name <<<"$f"
  memory_bench big "$BIG" "$mime" "$name N"
  MEM_N=$MEM_MEDIAN
  memory_bench small "$SMALLTOK" "$mime" "$name N/10"
  echo "ratios  $name peak RSS above idle, N/10 vs N: $(python3 -c "print(f'{$MEM_MEDIAN/max($MEM_N, 1):.2f}')")"
done

pg_setup
rm -f "$WORK/docs-big.ndjson"
pg_bench "all" "true"
PG_ALL=$PG_MEDIAN
pg_bench "where" "$PG_WHERE"
PG_HALF=$PG_MEDIAN
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null

echo "ratios  ndjson all:   exportd/pipeline $(ratio "$ND_ALL" "$PG_ALL")  exportd/floor $(ratio "$ND_ALL" "$FLOOR_ALL")"
echo "ratios  ndjson where: exportd/pipeline $(ratio "$ND_HALF" "$PG_HALF")  exportd/floor $(ratio "$ND_HALF" "$FLOOR_HALF")"
echo "ratios  csv/ndjson (all): $(ratio "$CSV_ALL" "$ND_ALL")"

KEEP=1 export_once small "$SMALLTOK" application/x-ndjson "" >/dev/null
settle
wrk_run "/health" "$BASE/health"
HEALTH_RPS=$WRK_RPS
wrk_run "GET /exports/{id}" "$BASE/small/v2/exports/$LAST_ID" "$SMALLTOK"
echo "ratios  GET /exports/{id} vs /health: $(ratio "$WRK_RPS" "$HEALTH_RPS")"
wrk_run "GET /exports (list)" "$BASE/small/v2/exports" "$SMALLTOK"

for mb in ${FILE_MBS:-50 200}; do file_export small "$SMALLTOK" "$mb"; done
