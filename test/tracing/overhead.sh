#!/usr/bin/env bash
# Tracing overhead per request, in one run of one sidecar (1 worker, uws listener): CPU µs per
# request of the sidecar process (all its threads: /proc/<pid>/stat utime+stime, so the main
# thread's OTLP export is included) under wrk, with tracing off, at sample_rate 0.01 and at 1.0,
# switched by PUT /config and measured in alternating rounds. Spans go to a local collector that
# answers 200. Also the sidecar's RSS after each round. Needs wrk and a build (npm run build).
# Usage: test/tracing/overhead.sh [rounds=3] [seconds=5]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
SECS=${2:-5}
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$DIR"' EXIT
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
APP=$(free_port); COLLECTOR=$(free_port); PROXY=$(free_port); ADMIN=$(free_port)
node -e "require('http').createServer((q,r)=>r.end('ok')).listen($APP,'127.0.0.1')" &
node -e "require('http').createServer((q,r)=>{q.resume();q.on('end',()=>r.end('{}'))}).listen($COLLECTOR,'127.0.0.1')" &
(umask 077 && echo s3cret-token-for-the-overhead-run > "$DIR/token")
config() { # $1: the tracing section as JSON, or null
  node -e "const t=JSON.parse(process.argv[1]); const c={node:{workers:1},admin:{address:'127.0.0.1:$ADMIN',token_file:'token'},
    listeners:[{name:'main',address:'127.0.0.1:$PROXY',engine:'uws',routes:[{match:{path_prefix:'/'},cluster:'app'}]}],
    clusters:[{name:'app',endpoints:[{address:'127.0.0.1:$APP'}]}]}; if(t) c.tracing=t; console.log(JSON.stringify(c))" "$1"
}
config null > "$DIR/outrigger.json"
node dist/src/cli/main.js run -c "$DIR/outrigger.json" > "$DIR/log" 2>&1 &
PID=$!
until grep -q '"msg":"ready"' "$DIR/log"; do sleep 0.2; done
cpu_ticks() { awk '{print $14+$15}' "/proc/$PID/stat"; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$PID/status"; }
apply() {
  config "$1" | curl -sf -X PUT -H 'authorization: Bearer s3cret-token-for-the-overhead-run' -H 'content-type: application/json' \
    --data-binary @- "http://127.0.0.1:$ADMIN/config" > /dev/null
}
TCK=$(getconf CLK_TCK)
wrk -t1 -c16 -d2s "http://127.0.0.1:$PROXY/" > /dev/null # warm-up
printf '%-8s %-6s %10s %12s %10s\n' mode round requests cpu_us_req rss_mib
for r in $(seq 1 "$ROUNDS"); do
  for mode in off 0.01 1.0; do
    if [ "$mode" = off ]; then apply null; else apply "{\"otlp_endpoint\":\"http://127.0.0.1:$COLLECTOR/v1/traces\",\"sample_rate\":$mode}"; fi
    wrk -t1 -c16 -d1s "http://127.0.0.1:$PROXY/" > /dev/null # settle after the reload
    before=$(cpu_ticks)
    reqs=$(wrk -t1 -c16 -d"${SECS}s" "http://127.0.0.1:$PROXY/" | awk '/requests in/{print $1}')
    sleep 1.2 # the last interval's spans are exported (CPU counted in this round)
    after=$(cpu_ticks)
    awk -v t=$((after - before)) -v n="$reqs" -v hz="$TCK" -v m="$mode" -v r="$r" -v rss="$(rss_kib)" \
      'BEGIN{printf "%-8s %-6s %10d %12.1f %10.1f\n", m, r, n, t*1e6/hz/n, rss/1024}'
  done
done
curl -sf -H 'authorization: Bearer s3cret-token-for-the-overhead-run' "http://127.0.0.1:$ADMIN/stats" | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log('tracing stats:',JSON.stringify(JSON.parse(s).tracing)))"
kill $PID
