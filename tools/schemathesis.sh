#!/usr/bin/env bash
# Checks a running node's HTTP API against its own OpenAPI document with schemathesis
# (property-based requests from the document): no 5xx, every status code, content type,
# header and body as documented, 405 for undocumented methods.
#
#   tools/schemathesis.sh [MAX_EXAMPLES]
#
# Starts a 1-proposer, 1-voter testnet on loopback (ports from P2P_PORT / HTTP_PORT),
# waits for finality, runs schemathesis against the voter's /openapi.json and then the
# proposer's, and prints schemathesis' summary lines. Installs schemathesis with pip when
# it is missing. Uses target/release/pala, else target/debug/pala (or PALA=...).
# /stream is excluded: it never ends, which schemathesis would report as a timeout.
set -euo pipefail
MAX=${1:-100}
# shellcheck source=tools/lib/pair.sh
source "$(dirname "$0")/lib/pair.sh"
if ! command -v schemathesis >/dev/null; then
  python3 -m pip install --quiet schemathesis
fi
pair_start schemathesis 17400 18400
for _ in $(seq 1 100); do
  h=$(curl -s "http://127.0.0.1:$((HTTP + 1))/status" | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["finalized_height"])' 2>/dev/null || echo 0)
  [ "$h" -ge 1 ] && break
  sleep 0.2
done
# A key to read back, so /kv and /tx/<hash> also see their 200 answers.
curl -s -XPOST "http://127.0.0.1:$HTTP/tx" -d '{"k":"a","v":"b","n":1}' >/dev/null

status=0
for port in $((HTTP + 1)) "$HTTP"; do
  echo "== schemathesis against http://127.0.0.1:$port/openapi.json"
  # From $DIR: schemathesis keeps its example database in the working directory.
  (cd "$DIR" && schemathesis run "http://127.0.0.1:$port/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,unsupported_method,allow_header_conformance \
    --exclude-path /stream \
    --max-examples "$MAX" \
    --request-timeout 10 \
    --no-color) >"$DIR/schemathesis-$port.out" 2>&1 || status=$?
  # The summary: the line with the counts of passed/failed operations and the verdict.
  grep -A1 "^Test cases:" "$DIR/schemathesis-$port.out" | tail -1
  grep -E "^=+ .* in [0-9.]+s =+$" "$DIR/schemathesis-$port.out" | tail -1
done
echo "(full output in $DIR)"
exit $status
