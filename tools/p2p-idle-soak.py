#!/usr/bin/env python3
"""Issue 13 rows 2 and 11 on a real testnet (2 proposers, 4 voters, --fast): 1000 idle p2p
connections to a proposer running at a 1024 fd limit, then garbage TLS handshakes for 5 s.
Prints threads, fds and RSS of the victim before, during and after, /healthz, the finalized
height, the refusal counters and how many handshake-failure lines were logged.

Usage: tools/p2p-idle-soak.py target/debug/pala-node   (SPREAD=1: sources 127.0.x.y, so
the total handshake cap is hit instead of the per-source one; P2P_PORT, HTTP_PORT)"""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request, glob

BIN = sys.argv[1]
d = tempfile.mkdtemp(prefix="p2pidle-")
P2P, HTTP = int(os.environ.get("P2P_PORT", 17400)), int(os.environ.get("HTTP_PORT", 18400))
subprocess.run([BIN, "testnet", "--validators", "4", "--proposers", "2", "--out", d,
                "--p2p-port", str(P2P), "--http-port", str(HTTP), "--fast"], check=True,
               stdout=subprocess.DEVNULL)
cfgs = sorted(glob.glob(os.path.join(d, "*.toml")))
cfgs = [c for c in cfgs if not c.endswith("genesis.toml")]
procs = []
def start(cfg, nofile=None):
    pre = ["prlimit", f"--nofile={nofile}:{nofile}"] if nofile else []
    log = open(cfg + ".log", "w")
    return subprocess.Popen(pre + [BIN, "node", "--config", cfg], stdout=subprocess.DEVNULL, stderr=log)
# proposers first in the name order? find the proposer configs by network.listen
props = [c for c in cfgs if 'listen = "127.0.0.1:%d"' % P2P in open(c).read()]
victim = props[0]
vhttp = None
for line in open(victim):
    if line.startswith("listen") and f":{HTTP}" in line:
        vhttp = line.split('"')[1]
for c in cfgs:
    procs.append(start(c, 1024 if c == victim else None))
vp = procs[cfgs.index(victim)]
def get(path):
    try:
        with urllib.request.urlopen(f"http://{vhttp}{path}", timeout=3) as r:
            return r.status, r.read().decode()
    except Exception as e:
        return None, str(e)
def snap(pid):
    st = open(f"/proc/{pid}/status").read()
    th = int([l for l in st.splitlines() if l.startswith("Threads")][0].split()[1])
    rss = int([l for l in st.splitlines() if l.startswith("VmRSS")][0].split()[1]) // 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    fin = json.loads(get("/status")[1] or "{}").get("finalized_height") if get("/status")[0] else None
    return dict(threads=th, fds=fds, rss_mb=rss, healthz=get("/healthz")[0], finalized=fin)
t0 = time.time()
while time.time() - t0 < 60:
    c, b = get("/status")
    if c == 200 and json.loads(b).get("finalized_height", 0) >= 5: break
    time.sleep(0.5)
# the node process is the child of prlimit (exec'd: same pid)
pid = vp.pid
print("limit:", open(f"/proc/{pid}/limits").read().splitlines()[8])
print("before", snap(pid))
socks = []
for _ in range(1000):
    s = socket.socket(); s.settimeout(2)
    if os.environ.get("SPREAD"): s.bind((f"127.0.{1 + len(socks) // 200}.{2 + len(socks) % 200}", 0))
    try:
        s.connect(("127.0.0.1", P2P)); socks.append(s)
    except OSError as e:
        print("connect failed", e); break
print("opened", len(socks))
time.sleep(5)
print("during (5 s)", snap(pid))
time.sleep(12)
print("during (17 s, after the 10 s handshake deadline)", snap(pid))
for s in socks: s.close()
time.sleep(2)
print("after close", snap(pid), "alive:", vp.poll() is None)
m = get("/metrics")[1]
for l in m.splitlines():
    if l.startswith(("pala_net_refused", "pala_handshake_failures_total{reason=\"timeout\"", "pala_net_inbound", "pala_net_handshakes_in_progress")):
        print(" ", l)
# Row 11: failed TLS handshakes as fast as one client can make them, for 5 s.
before_lines = open(victim + ".log").read().count("handshake failed")
n, t1 = 0, time.time()
while time.time() - t1 < 5:
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect(("127.0.0.1", P2P)); s.sendall(b"\x16\x03\x01\x00\x01\xff\xff\xff"); s.recv(64)
    except OSError:
        pass
    s.close(); n += 1
time.sleep(1)
lines = open(victim + ".log").read().count("handshake failed") - before_lines
print(f"garbage handshakes: {n} in 5 s ({n/5:.0f}/s); WARN lines logged: {lines}; log size {os.path.getsize(victim + '.log')} B")
m = get("/metrics")[1]
for l in m.splitlines():
    if l.startswith(("pala_handshake_failures_total{reason=\"tls\"", "pala_net_handshake_logs_suppressed")):
        print(" ", l)
log = open(victim + ".log").read()
print("EMFILE in log:", "Too many open files" in log)
for p in procs:
    p.kill(); p.wait()
import shutil; shutil.rmtree(d, ignore_errors=True)
