#!/usr/bin/env bash
# A real Prometheus against a real testnet (issue 16 items 1-3). Starts a 2-proposer,
# 4-voter `--fast` testnet on loopback (tools/lib/pair.sh) and Debian's Prometheus server
# on a loopback port, scraping all six nodes every second with deploy/prometheus/alerts.yml
# loaded, then checks:
#
#   - promtool: `check metrics` on every node's exposition, `check rules` and
#     `test rules` on deploy/prometheus/;
#   - every metric name in the alert rules and in every panel of deploy/grafana/pala.json
#     is one the nodes export (against their live /metrics);
#   - Prometheus scrapes all six nodes (it parses their OpenMetrics pages);
#   - after some transactions, PromQL's finalized-block rate, epoch and per-node finalized
#     height agree with each node's /status (tolerances below), printed side by side;
#   - no alert fires on the healthy testnet; after two of the four voters stop (f = 1: no
#     quorum), PalaFinalityStalled and PalaVoterQuorumNotConnected fire.
#
#   tools/prometheus-test.sh
#
# Prints one `prom: ok <check>` or `prom: FAIL <check>` line per check (.ci/run counts
# them) and exits non-zero when one failed. Installs the `prometheus` package (promtool
# and the server) with apt-get when promtool is missing. Uses target/release/pala, else
# target/debug/pala (or PALA=...); ports from P2P_PORT, HTTP_PORT (node i serves on
# HTTP+i) and PROM_PORT. Everything it started is stopped on exit, its temp dirs removed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$PWD

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            prometheus >/dev/null 2>&1
    fi
    if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
        echo "prom: FAIL installing prometheus (apt-get install prometheus, as root)"
        exit 1
    fi
fi
# Debian's package starts a system-wide server where systemd runs; this script starts its
# own on a port of its own and leaves that one alone.

if [[ -z "${PALA:-}" && ! -x target/release/pala && ! -x target/debug/pala ]]; then
    # The test profile, as .ci/run's cargo test just before: its dependencies are built.
    echo "building target/debug/pala (cargo build --profile test --bin pala)"
    nice cargo build --profile test --bin pala >"/tmp/pala-prometheus-build.log" 2>&1 ||
        { tail -20 /tmp/pala-prometheus-build.log; echo "prom: FAIL building pala"; exit 1; }
fi
# shellcheck source=tools/lib/pair.sh
source tools/lib/pair.sh
PROM_PORT=${PROM_PORT:-19390}
prom_dir=$(mktemp -d /tmp/pala-prometheus.XXXXXX)
prom_pid=

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [[ -n "$prom_pid" ]]; then
        kill "$prom_pid" 2>/dev/null
        wait "$prom_pid" 2>/dev/null
    fi
    pair_stop
    rm -rf "$prom_dir" "${DIR:-}"
}
trap cleanup EXIT
testnet_start prometheus-test 17600 18600 2 4
# testnet_start installed its own trap: this one also stops Prometheus and removes dirs.
trap cleanup EXIT

targets=()
for i in "${!NODES[@]}"; do targets+=("\"127.0.0.1:$((HTTP + i))\""); done
cat >"$prom_dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $root/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: pala
    static_configs:
      - targets: [$(IFS=,; echo "${targets[*]}")]
EOF
prometheus --config.file="$prom_dir/prometheus.yml" --storage.tsdb.path="$prom_dir/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn 2>"$prom_dir/prometheus.log" &
prom_pid=$!

nodes=()
for i in "${!NODES[@]}"; do nodes+=("${NODES[$i]}=$((HTTP + i))=${PIDS[$i]}"); done
python3 - "$PROM_PORT" "$prom_dir" "${nodes[@]}" <<'PY'
import json, os, re, signal, subprocess, sys, time, urllib.parse, urllib.request

prom = f"http://127.0.0.1:{sys.argv[1]}"
prom_dir = sys.argv[2]
nodes = []
for arg in sys.argv[3:]:
    name, port, pid = arg.split("=")
    nodes.append({"name": name, "url": f"http://127.0.0.1:{port}", "pid": int(pid),
                  "instance": f"127.0.0.1:{port}"})
by_instance = {n["instance"]: n for n in nodes}
failed = 0

def result(ok, check, detail=""):
    global failed
    print(f"prom: {'ok' if ok else 'FAIL'} {check}", flush=True)
    if detail:
        print("\n".join("    " + l for l in detail.rstrip().splitlines()), flush=True)
    failed += not ok
    return ok

def get(url, accept=None, timeout=10):
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode(), r.headers.get("Content-Type", "")

def status(n):
    return json.loads(get(n["url"] + "/status")[0])

def promql(q):
    body = get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q}))[0]
    return json.loads(body)["data"]["result"]

def wait(what, pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception:
            pass
        time.sleep(1)
    return None

# 1. The nodes finalize.
ok = wait("finality", lambda: all(status(n)["finalized_height"] >= 3 for n in nodes), 120)
if not result(bool(ok), "the 2+4 testnet finalizes blocks on every node"):
    sys.exit(1)

# 2. promtool on the expositions and the rules. promtool reads the Prometheus text format
# (what the node serves to `Accept: text/plain`); the OpenMetrics page the server scrapes
# is checked by the scrape itself (check 4).
lint = []
for n in nodes:
    page, ctype = get(n["url"] + "/metrics", accept="text/plain")
    p = subprocess.run(["promtool", "check", "metrics"], input=page, text=True,
                       capture_output=True)
    if p.returncode != 0 or p.stdout.strip() or p.stderr.strip():
        lint.append(f"{n['name']}: {p.stdout}{p.stderr}")
    if not ctype.startswith("text/plain; version=0.0.4"):
        lint.append(f"{n['name']}: content type {ctype}")
result(not lint, "promtool check metrics on the exposition of all six nodes", "\n".join(lint))
om_types = {get(n["url"] + "/metrics")[1] for n in nodes}
result(om_types == {"application/openmetrics-text; version=1.0.0; charset=utf-8"},
       "/metrics answers OpenMetrics by default", f"content types: {om_types}")
for args in (["check", "rules", "deploy/prometheus/alerts.yml"],
             ["test", "rules", "deploy/prometheus/alerts_test.yml"]):
    p = subprocess.run(["promtool", *args], text=True, capture_output=True)
    result(p.returncode == 0, "promtool " + " ".join(args), p.stdout + p.stderr
           if p.returncode else p.stdout.strip().splitlines()[-1])

# 3. Every metric the alert rules and the dashboard name is exported (by some node: a
# label row such as a channel depth exists once its stage has published it).
exported = set()
for n in nodes:
    for line in get(n["url"] + "/metrics")[0].splitlines():
        if line and not line.startswith("#"):
            exported.add(re.split(r"[{ ]", line, maxsplit=1)[0])
# A histogram's family name (pala_fsync_seconds) counts as exported with its samples.
exported |= {re.sub(r"_(bucket|sum|count)$", "", x) for x in exported}
def names(expr):
    return set(re.findall(r"\bpala_[a-z0-9_]+", expr))
# The whole rules file: what the descriptions tell the operator to look at must exist too.
used = names(open("deploy/prometheus/alerts.yml").read())
result(used and not used - exported,
       f"every metric alerts.yml names ({len(used)}) is exported",
       f"not exported: {sorted(used - exported)}" if used - exported else "")
dash = json.load(open("deploy/grafana/pala.json"))
panel_exprs = {}
for p in dash["panels"]:
    exprs = [t.get("expr", "") for t in p.get("targets", [])]
    if p.get("type") != "row":
        panel_exprs[p["title"]] = exprs
for v in dash.get("templating", {}).get("list", []):
    if v.get("type") == "query":
        q = v.get("query")
        panel_exprs["variable " + v["name"]] = [q["query"] if isinstance(q, dict) else q]
no_query = [t for t, e in panel_exprs.items() if not any(names(x) for x in e)]
missing = {t: sorted(set().union(*map(names, e)) - exported) for t, e in panel_exprs.items()}
missing = {t: m for t, m in missing.items() if m}
result(not missing and not no_query,
       f"every metric in the {len(panel_exprs)} queries of deploy/grafana/pala.json is exported",
       json.dumps({"unknown metrics": missing, "panels without a pala_ metric": no_query})
       if missing or no_query else "")

# 4. Prometheus is up and scrapes all six nodes.
ready = wait("prometheus", lambda: get(prom + "/-/ready")[0], 60)
up = wait("targets", lambda: (lambda r: r if len(r) == 6 and all(x["value"][1] == "1" for x in r)
                              else None)(promql('up{job="pala"}')), 60)
if not result(bool(ready and up), "Prometheus scrapes all six nodes (up == 1)",
              open(os.path.join(prom_dir, "prometheus.log")).read()[-2000:]):
    sys.exit(1)

# 5. Transactions, through both proposers.
sent = 0
for batch in range(10):
    lines = "\n".join(json.dumps({"k": f"prom{batch}-{i}", "v": "x", "n": 1}) for i in range(20))
    url = nodes[batch % 2]["url"] + "/tx"
    req = urllib.request.Request(url, data=lines.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            sent += 20 if r.status < 300 else 0
    except Exception as e:
        print(f"    POST {url}: {e}")
    time.sleep(0.2)
txs = wait("txs", lambda: (lambda r: r if r and float(r[0]["value"][1]) >= sent else None)(
    promql("sum(pala_finalized_txs_total) / 6")), 60)
result(bool(txs) and sent == 200,
       f"{sent} transactions submitted; PromQL sum(pala_finalized_txs_total)/6 = "
       f"{txs[0]['value'][1] if txs else '?'}")

# 6. PromQL against /status.
# Finalized-block rate over 30 s of 1 s scrapes: PromQL's rate() of the applied-blocks
# counter against /status' finalized height differenced over the same 30 s, on every node.
# Tolerance: 15 % + 0.2 blocks/s (rate() extrapolates to the window's ends, and the two
# windows are up to a scrape interval apart).
time.sleep(5)
window = 30
h0 = {n["name"]: status(n)["finalized_height"] for n in nodes}
t0 = time.time()
time.sleep(window)
h1 = {n["name"]: status(n)["finalized_height"] for n in nodes}
t1 = time.time()
rates = {by_instance[r["metric"]["instance"]]["name"]: float(r["value"][1])
         for r in promql(f'rate(pala_finalized_blocks_total{{job="pala"}}[{window}s])')}
# Height and epoch: PromQL first, /status right after, so /status may only be ahead: by
# the blocks of one scrape interval plus the query's lag (3 s of blocks + 2).
heights = {by_instance[r["metric"]["instance"]]["name"]: int(float(r["value"][1]))
           for r in promql('pala_finalized_height{job="pala"}')}
epochs = {}
for r in promql('pala_epoch_session{job="pala"} * 1000000 + on(instance) pala_epoch{job="pala"}'):
    v = int(float(r["value"][1]))
    epochs[by_instance[r["metric"]["instance"]]["name"]] = (v // 1000000, v % 1000000)
statuses = {n["name"]: status(n) for n in nodes}
print(f"    {'node':<10} {'rate PromQL':>11} {'rate /status':>12} {'height PromQL':>13} "
      f"{'height /status':>14} {'epoch PromQL':>12} {'epoch /status':>13}")
bad_rate, bad_height, bad_epoch = [], [], []
for n in nodes:
    name, st = n["name"], statuses[n["name"]]
    srate = (h1[name] - h0[name]) / (t1 - t0)
    prate, ph, pe = rates.get(name), heights.get(name), epochs.get(name)
    se = tuple(st["epoch"])
    print(f"    {name:<10} {prate if prate is None else round(prate, 2):>11} {srate:>12.2f} "
          f"{ph!s:>13} {st['finalized_height']:>14} {pe!s:>12} {se!s:>13}")
    if prate is None or abs(prate - srate) > 0.15 * srate + 0.2 or srate <= 0:
        bad_rate.append(name)
    if ph is None or not 0 <= st["finalized_height"] - ph <= 3 * max(srate, 1) + 2:
        bad_height.append(name)
    if pe != se:
        bad_epoch.append(name)
result(not bad_rate, "finalized-block rate: PromQL rate(pala_finalized_blocks_total[30s]) "
       "vs /status, within 15 % + 0.2/s", f"off: {bad_rate}" if bad_rate else "")
result(not bad_height, "finalized height: PromQL pala_finalized_height vs /status, "
       "/status ahead by at most 3 s of blocks + 2", f"off: {bad_height}" if bad_height else "")
result(not bad_epoch, "epoch: PromQL (pala_epoch_session, pala_epoch) equals /status",
       f"off: {bad_epoch}" if bad_epoch else "")
firing = promql('ALERTS{alertstate="firing"}')
result(not firing, "no alert firing on the healthy testnet",
       json.dumps([f["metric"] for f in firing]) if firing else "")

# 7. Two of the four voters stop: 2 of 4 seats is below the quorum of 3 (f = 1).
stopped = [n for n in nodes if n["name"] in ("voter2", "voter3")]
for n in stopped:
    os.kill(n["pid"], signal.SIGTERM)
t_stop = time.time()
print(f"    stopped {', '.join(n['name'] for n in stopped)}; waiting for the alerts")
def firing_on(alert):
    r = promql(f'ALERTS{{alertname="{alert}",alertstate="firing"}}')
    return sorted(by_instance[x["metric"]["instance"]]["name"] for x in r)
running = sorted(n["name"] for n in nodes if n not in stopped)
# changes(...[1m]) == 0 holds a minute after the last finalized block, then `for: 30s`.
stalled = wait("stalled", lambda: (lambda f: f if set(running) <= set(f) else None)(
    firing_on("PalaFinalityStalled")), 300)
result(bool(stalled), f"PalaFinalityStalled firing on the four running nodes "
       f"{round(time.time() - t_stop)} s after two voters stopped",
       f"firing on {firing_on('PalaFinalityStalled')}, expected {running}" if not stalled else
       f"firing on {stalled}")
proposers = [n["name"] for n in nodes if n["name"].startswith("proposer")]
quorum = wait("quorum", lambda: (lambda f: f if f == proposers else None)(
    firing_on("PalaVoterQuorumNotConnected")), 120)
weights = {by_instance[r["metric"]["instance"]]["name"]: r["value"][1]
           for r in promql('pala_voter_weight_connected{job="pala"}')}
result(bool(quorum), "PalaVoterQuorumNotConnected firing on both proposers",
       f"pala_voter_weight_connected: {weights}, quorum: "
       f"{promql('max(pala_voter_quorum)')[0]['value'][1]}")
print(f"tools/prometheus-test.sh: {failed} checks failed" if failed else
      "tools/prometheus-test.sh: every check passed")
sys.exit(1 if failed else 0)
PY
status=$?
exit "$status"
