#!/usr/bin/env bash
# Separate hosts for real (issue 15 item 2): a 2 + 4 testnet whose nodes each run in a
# network namespace of their own, with an address of their own on one bridge, configured
# by host name only (`pala testnet --host-template`, names resolved through
# /etc/netns/<ns>/hosts). Checks, each printed as `netns: ok <check>` or
# `netns: FAIL <check>` (.ci/run adds them to its totals):
#
#   finalizes          every node finalizes, and transactions sent to the proposers are
#                      applied on every node;
#   partition-safety   the links of two voters and the primary taken down for a while and
#                      brought up again: finalized blocks agree across nodes at every
#                      height they share;
#   partition-resumes  after healing, finality resumes on every node;
#   moved-rejoins      the standby proposer stopped, given a new address (its namespace's
#                      and every hosts file), started: the voters reach it again by name
#                      (its /readyz needs a quorum of them), and with the other proposer
#                      stopped it carries the chain from its new address;
#   joins-by-snapshot  a voter whose data directory is wiped starts empty, joins from a
#                      snapshot the proposers serve (W-12; snapshots every 20 heights),
#                      catches up and has every key written before;
#   cleanup            nothing the test created is left.
#
# Figures: finality rate before and after the partition, the pause it caused, and how
# long finality took to resume after healing.
#
# Every name it creates starts with `pala-t-` (namespaces, veths, the bridge, which lives
# in a namespace of its own so the host's firewall and routes are never involved, and
# /etc/netns/pala-t-*); a leftover of an interrupted run is removed first. Needs root and
# `ip` (iproute2, installed with apt-get when missing); elsewhere it skips with a message
# and status 0. The peers keep every block here (no retention), so the joining voter
# could replay from genesis; that it joins by snapshot is read from its
# pala_state_sync_joins_total. A join after the others pruned is in
# crates/pala-node/tests/state_sync.rs.
#
#   tools/netns-test.sh            (PALA=path/to/pala-node to use another binary;
#                                   NETNS_LOG_LEVEL=info for the nodes' logs, NETNS_KEEP=1
#                                   keeps them and the data after a run that passed)
# Functions run from traps and `wait_for`; the scripts run inside namespaces are quoted
# on purpose, their variables expand there.
# shellcheck disable=SC2317,SC2016
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
P=pala-t
NAMES=(proposer0 proposer1 voter0 voter1 voter2 voter3)
SUBNET=10.231.7
P2P_PORT=7100
HTTP_PORT=8100

skip() {
  echo "netns: skipped: $*"
  exit 0
}
[ "$(uname -s)" = Linux ] || skip "not Linux"
[ "$(id -u)" = 0 ] || skip "not root, cannot create network namespaces"
if ! command -v ip >/dev/null; then
  if command -v apt-get >/dev/null; then
    echo "netns: installing iproute2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null 2>&1; } ||
      skip "no ip command and iproute2 could not be installed"
  else
    skip "no ip command (iproute2)"
  fi
fi
command -v python3 >/dev/null || {
  command -v apt-get >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null 2>&1
} || skip "no python3 (it reads the nodes' chains) and it could not be installed"
ip netns add "$P-probe" 2>/dev/null || skip "cannot create network namespaces here"
ip netns del "$P-probe"

PALA=${PALA:-}
if [ -z "$PALA" ]; then
  # The README's test build (a no-op right after `cargo test --workspace`, as in .ci/run;
  # a plain `cargo build` would rebuild everything in the dev profile).
  (cd "$root" && cargo test -q --workspace --no-run >/dev/null 2>&1) ||
    { echo "netns: FAIL setup (cargo test --no-run failed)"; exit 1; }
  PALA="$root/target/debug/pala-node"
fi
[ -x "$PALA" ] || { echo "netns: FAIL setup (no binary at $PALA)"; exit 1; }

made_etc_netns=0
[ -d /etc/netns ] || made_etc_netns=1
DIR=$(mktemp -d "/tmp/$P.XXXXXX")
declare -A PID=()
failed=0

ns_of() { echo "$P-$1"; }
addr_of() { # node index -> current address (proposer1 may move)
  echo "${ADDR[$1]}"
}
declare -a ADDR
for i in "${!NAMES[@]}"; do ADDR[i]="$SUBNET.$((10 + i))"; done

remove_all() {
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-" || true); do
    # Whatever still runs in a namespace of ours was started by this script.
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$P-" || true); do
    ip link del "$l" 2>/dev/null || true
  done
  rm -rf /etc/netns/"$P"-*
  # /etc/netns itself only if this script made it and nothing else is in it.
  [ "$made_etc_netns" = 0 ] || rmdir /etc/netns 2>/dev/null || true
}

cleanup() {
  local status=$?
  for i in "${!PID[@]}"; do kill "${PID[$i]}" 2>/dev/null || true; done
  for i in "${!PID[@]}"; do wait "${PID[$i]}" 2>/dev/null || true; done
  remove_all
  if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ -n "${NETNS_KEEP:-}" ]; then
    echo "netns: logs and data kept in $DIR"
  else
    rm -rf "$DIR"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { echo "netns: ok $1"; }
fail() {
  echo "netns: FAIL $1${2:+ ($2)}"
  failed=1
}
# A failed check that later checks depend on ends the run.
fatal() {
  fail "$@"
  for i in "${!NAMES[@]}"; do
    echo "--- ${NAMES[$i]} (last lines)"
    tail -n 8 "$DIR/${NAMES[$i]}.log" 2>/dev/null || true
  done
  exit 1
}

# --- The network: a bridge in its own namespace, one veth pair per node ----------------
remove_all
hub=$(ns_of hub)
ip netns add "$hub"
ip -n "$hub" link add "$P-br" type bridge
ip -n "$hub" link set "$P-br" up
ip -n "$hub" link set lo up
hosts_files() {
  for i in "${!NAMES[@]}"; do
    local f
    f="/etc/netns/$(ns_of "${NAMES[$i]}")/hosts"
    mkdir -p "$(dirname "$f")"
    {
      echo "127.0.0.1 localhost"
      for j in "${!NAMES[@]}"; do echo "$(addr_of "$j") $P-${NAMES[$j]}"; done
    } >"$f.new"
    # In place (same inode): a running node sees the file through a bind mount.
    if [ -e "$f" ]; then cat "$f.new" >"$f"; rm -f "$f.new"; else mv "$f.new" "$f"; fi
  done
}
hosts_files
for i in "${!NAMES[@]}"; do
  ns=$(ns_of "${NAMES[$i]}")
  ip netns add "$ns"
  ip link add "$P-h$i" type veth peer name "$P-e$i"
  ip link set "$P-h$i" netns "$hub"
  ip link set "$P-e$i" netns "$ns"
  ip -n "$hub" link set "$P-h$i" master "$P-br" up
  ip -n "$ns" link set "$P-e$i" name eth0
  ip -n "$ns" addr add "$(addr_of "$i")/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done

# --- The testnet, by host name ----------------------------------------------------------
"$PALA" testnet --proposers 2 --validators 4 --out "$DIR" --fast \
  --host-template "$P-{role}{i}" --p2p-port "$P2P_PORT" --http-port "$HTTP_PORT" >/dev/null
for n in "${NAMES[@]}"; do
  [ -f "$DIR/$P-$n.toml" ] || fatal setup "pala testnet wrote no $P-$n.toml"
done

start() {
  local i=$1 n=${NAMES[$1]}
  mkdir -p "$DIR/data/$n"
  PALA_NODE_DATA_DIR="$DIR/data/$n" PALA_LOG_LEVEL="${NETNS_LOG_LEVEL:-warn}" PALA_STATE_SYNC_SNAPSHOT_INTERVAL=20 \
    ip netns exec "$(ns_of "$n")" "$PALA" node --config "$DIR/$P-$n.toml" \
    >>"$DIR/$n.log" 2>&1 &
  PID[$i]=$!
}
stop() {
  local i=$1
  kill "${PID[$i]}" 2>/dev/null || true
  wait "${PID[$i]}" 2>/dev/null || true
  unset "PID[$i]"
}

# `http NODE METHOD PATH [BODY]`: the response body, from inside the node's namespace.
http() {
  local ns
  ns=$(ns_of "${NAMES[$1]}")
  timeout 5 ip netns exec "$ns" bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "%s %s HTTP/1.1\r\nHost: node\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" \
      "$2" "$3" "${#4}" "$4" >&3
    sed "1,/^\r$/d" <&3' _ "$HTTP_PORT" "$2" "$3" "${4:-}" 2>/dev/null || true
}
field() { # field NAME < json: a number or boolean field
  grep -o "\"$1\":[a-z0-9]*" | head -1 | cut -d: -f2
}
finalized() { http "$1" GET /status | field finalized_height; }
producing() {
  for i in 0 1; do
    [ "$(http "$i" GET /status | field producing)" = true ] && { echo "$i"; return; }
  done
  echo none
}
ready() { http "$1" GET /readyz | grep -q '^ready'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# `wait_for SECONDS WHAT CMD...`: polls CMD every 200 ms.
wait_for() {
  local secs=$1 what=$2 t0
  shift 2
  t0=$(date +%s)
  until "$@"; do
    [ $(($(date +%s) - t0)) -lt "$secs" ] || { echo "netns: timed out after $secs s: $what"; return 1; }
    sleep 0.2
  done
}
all_finalize_past() { # every running node's finalized height above $1
  local i h
  for i in "${!PID[@]}"; do
    h=$(finalized "$i")
    [ "${h:-0}" -gt "$1" ] || return 1
  done
}
highest() {
  local i h best=0
  for i in "${!PID[@]}"; do
    h=$(finalized "$i")
    [ "${h:-0}" -gt "$best" ] && best=$h
  done
  echo "$best"
}
rate() { # finality rate of node $1 over $2 s, blocks per second
  local a b
  a=$(finalized "$1")
  sleep "$2"
  b=$(finalized "$1")
  awk -v a="${a:-0}" -v b="${b:-0}" -v s="$2" 'BEGIN { printf "%.1f", (b - a) / s }'
}
# Every node's finalized hashes agree at every height they share (each node's blocks
# read over one keep-alive connection from inside its namespace).
chains_agree() {
  local i
  for i in "${!PID[@]}"; do
    ip netns exec "$(ns_of "${NAMES[$i]}")" python3 - "$HTTP_PORT" "$(finalized "$i")" \
      >"$DIR/hashes.$i" <<'EOF'
import http.client, json, sys
port, top = int(sys.argv[1]), int(sys.argv[2] or 0)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
for h in range(1, top + 1):
    c.request("GET", f"/block/{h}")
    r = c.getresponse()
    body = r.read()
    print(h, json.loads(body)["hash"] if r.status == 200 else "")
EOF
  done
  cat "$DIR"/hashes.* | awk '
    $2 == "" { missing++; next }
    !($1 in h) { h[$1] = $2; next }
    h[$1] != $2 { bad++; print "netns: height " $1 " differs: " h[$1] " " $2 }
    END {
      if (missing) print "netns: " missing " finalized blocks unreadable"
      print "netns: " length(h) " finalized heights compared"
      exit (bad + missing) > 0
    }'
}
# `submit NODE FROM TO`: key-value transactions k<FROM>..k<TO> (one a line) to NODE.
submit() {
  local body="" n
  for ((n = $2; n <= $3; n++)); do body+="{\"k\":\"k$n\",\"v\":\"v$n\",\"n\":$n}"$'\n'; done
  http "$1" POST /tx "$body" | grep -q '"accepted":\["'
}
applied_everywhere() { # key k$1 readable with value v$1 on every running node
  local i
  for i in "${!PID[@]}"; do
    http "$i" GET "/kv/k$1" | grep -q "\"value\":\"v$1\"" || return 1
  done
}

# --- finalizes ----------------------------------------------------------------------------
for i in "${!NAMES[@]}"; do start "$i"; done
wait_for 120 "every node finalizes 5 blocks" all_finalize_past 5 ||
  fatal finalizes "no finality by name across namespaces"
# No forwarding in a host layout: transactions go to the proposers (both: whichever is
# primary includes them, the other drops its copy once they are final).
for i in 0 1; do submit "$i" 1 20 || fatal finalizes "proposer $i refused transactions"; done
wait_for 60 "transactions applied on every node" applied_everywhere 20 ||
  fatal finalizes "transactions not applied everywhere"
ok finalizes

# --- partition ----------------------------------------------------------------------------
primary=$(producing)
[ "$primary" != none ] || fatal partition-safety "no proposer is producing"
before=$(rate 2 5)
cut=("$primary" 4 5)
h0=$(highest)
t_cut=$(now)
for i in "${cut[@]}"; do ip -n "$hub" link set "$P-h$i" down; done
echo "netns: links of nodes ${cut[*]} down at $(date -u +%T.%3N)"
sleep 8
# Each side has two voters of four, below the quorum of three: neither finalizes.
h_during=$(highest)
t_heal=$(now)
for i in "${cut[@]}"; do ip -n "$hub" link set "$P-h$i" up; done
echo "netns: links up at $(date -u +%T.%3N)"
# Resumed = every node finalized a block the partition held back (the first finality
# after healing); then 10 more blocks, at the idle keep-alive cadence, show it goes on.
if wait_for 90 "finality resumes after healing" all_finalize_past "$h_during"; then
  resumed=$(since "$t_heal")
  pause=$(since "$t_cut")
  wait_for 60 "10 more blocks after healing" all_finalize_past $((h_during + 10)) ||
    fatal partition-resumes "finality stopped again after healing"
  after=$(rate 2 5)
  if chains_agree; then ok partition-safety; else fail partition-safety "finalized blocks differ"; fi
  ok partition-resumes
  echo "netns: finality ${before} blocks/s before the partition, ${after} blocks/s after;" \
    "finalized height ${h0} -> ${h_during} during the 8 s cut; pause ${pause} s," \
    "first finality on every node ${resumed} s after healing"
else
  if chains_agree; then ok partition-safety; else fail partition-safety "finalized blocks differ"; fi
  fatal partition-resumes "no finality after healing"
fi

# --- moved-rejoins ------------------------------------------------------------------------
primary=$(producing)
[ "$primary" != none ] || fatal moved-rejoins "no proposer is producing"
standby=$((1 - primary))
ns=$(ns_of "${NAMES[$standby]}")
stop "$standby"
ADDR[standby]="$SUBNET.$((110 + standby))"
ip -n "$ns" addr flush dev eth0
ip -n "$ns" addr add "${ADDR[standby]}/24" dev eth0
hosts_files
start "$standby"
if wait_for 90 "the moved proposer is ready (a quorum of voters reach it by name)" ready "$standby"; then
  # And it carries the chain: the other proposer stops, the voters move to the moved one.
  stop "$primary"
  h=$(highest)
  t_over=$(now)
  if wait_for 90 "finality under the moved proposer" all_finalize_past $((h + 10)); then
    echo "netns: proposer moved to ${ADDR[standby]}: ready by name, carried the chain" \
      "$(since "$t_over") s after the other proposer stopped"
    start "$primary"
    if ! wait_for 90 "the stopped proposer rejoins" ready "$primary"; then
      fail moved-rejoins "the other proposer did not rejoin"
    elif ! chains_agree; then
      fail moved-rejoins "finalized blocks differ"
    else
      ok moved-rejoins
    fi
  else
    fail moved-rejoins "no finality under the moved proposer"
  fi
else
  fail moved-rejoins "the moved proposer never became ready"
fi

# --- joins-by-snapshot --------------------------------------------------------------------
# A voter whose data directory is wiped starts empty: it joins from a snapshot the
# proposers serve by name across namespaces (W-12), then follows the chain.
j=5
stop "$j"
rm -rf "${DIR:?}/data/${NAMES[$j]}"
start "$j"
joined() { http "$j" GET /metrics | grep -q '^pala_state_sync_joins_total 1'; }
caught_up() { [ "$(finalized "$j")" -ge "$(($(highest) - 3))" ] 2>/dev/null; }
if ! wait_for 90 "the wiped voter joins by snapshot" joined; then
  fail joins-by-snapshot "no join by state sync (pala_state_sync_joins_total)"
elif ! wait_for 90 "the joined voter catches up" caught_up; then
  fail joins-by-snapshot "the joined voter did not catch up"
elif ! (for k in $(seq 1 20); do http "$j" GET "/kv/k$k" | grep -q "\"value\":\"v$k\"" || exit 1; done); then
  fail joins-by-snapshot "the joined voter lacks keys written before it joined"
else
  echo "netns: wiped voter joined by snapshot at height $(finalized "$j")"
  ok joins-by-snapshot
fi

# --- cleanup ------------------------------------------------------------------------------
for i in "${!PID[@]}"; do stop "$i"; done
remove_all
left=$( (ip netns list; ip -o link show; ls -d /etc/netns/"$P"-* 2>/dev/null) | grep -c "$P-" || true)
if [ "$left" = 0 ]; then ok cleanup; else fail cleanup "$left objects named $P-* left"; fi
exit "$failed"
