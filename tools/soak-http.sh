#!/usr/bin/env bash
# A short soak of the HTTP API against the hostile clients of issue 13 (rows 1, 4, 5, 6):
# 10,000 fire-and-forget `HTTP/2.0` request lines, 2000 idle connections, 4 stalled
# request bodies and a 64 MiB header, each against a running voter of a 1-proposer,
# 1-voter loopback testnet. Prints, per phase, the victim's threads, fds and RSS before
# and after, what the attacker saw, and whether /healthz answered.
#
#   tools/soak-http.sh
#
# Uses target/release/pala, else target/debug/pala (or PALA=...); ports from P2P_PORT /
# HTTP_PORT. Exits non-zero when /healthz stops answering.
set -euo pipefail
# shellcheck source=tools/lib/pair.sh
source "$(dirname "$0")/lib/pair.sh"
pair_start soak-http 17500 18500
sleep 2
echo "binary $PALA; victim voter0 pid ${PIDS[1]}, http 127.0.0.1:$((HTTP + 1)); logs in $DIR"
python3 - "${PIDS[1]}" "$((HTTP + 1))" <<'PY'
import os, resource, socket, sys, threading, time

pid, port = int(sys.argv[1]), int(sys.argv[2])
addr = ("127.0.0.1", port)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))

def figures():
    t = len(os.listdir(f"/proc/{pid}/task"))
    f = len(os.listdir(f"/proc/{pid}/fd"))
    rss = next(l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
    return t, f, int(rss)

def healthz():
    try:
        s = socket.create_connection(addr, timeout=5)
        s.settimeout(5)
        t = time.time()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n")
        out = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            out += d
        s.close()
        if out.endswith(b"ok\n"):
            return "ok %.0f ms" % ((time.time() - t) * 1000)
        return "answered " + (out.split(b"\r\n")[0].decode(errors="replace") or "nothing")
    except Exception as e:
        return f"DEAD ({e})"

def status_line(s, timeout=15):
    s.settimeout(timeout)
    try:
        d = s.recv(200)
        return d.split(b"\r\n")[0].decode(errors="replace") or "closed"
    except Exception as e:
        return type(e).__name__

rows = []
def phase(name, f):
    before = figures()
    t = time.time()
    seen = f()
    took = time.time() - t
    time.sleep(1)
    after = figures()
    rows.append((name, before, after, seen, took, healthz()))

def http2_lines():
    for _ in range(10000):
        s = socket.create_connection(addr)
        s.sendall(b"GET /healthz HTTP/2.0\r\nHost: s\r\n\r\n")
        s.close()
    s = socket.create_connection(addr)
    s.sendall(b"GET /healthz HTTP/2.0\r\nHost: s\r\n\r\n")
    return "one answered: " + status_line(s)

def idle_2000():
    conns = [socket.create_connection(addr) for _ in range(2000)]
    time.sleep(1)
    held = figures()
    refused = 0
    for c in conns:
        c.setblocking(False)
        try:
            if c.recv(64).startswith(b"HTTP/1.1 503"):
                refused += 1
        except BlockingIOError:
            pass
        except OSError:
            refused += 1
    hz = healthz()
    for c in conns:
        c.close()
    return f"held: threads {held[0]} fds {held[1]} RSS {held[2]} KiB; {refused} refused (503); /healthz while held: {hz}"

def stalled_bodies():
    conns = []
    for _ in range(4):
        s = socket.create_connection(addr)
        s.sendall(b"POST /tx HTTP/1.1\r\nHost: s\r\nContent-Length: 100\r\n\r\n")
        conns.append(s)
    hz = healthz()
    t = time.time()
    answers = [status_line(s, 30) for s in conns]
    for s in conns:
        s.close()
    return f"/healthz while stalled: {hz}; stalled ones got {set(answers)} after {time.time() - t:.1f} s"

def big_header():
    s = socket.create_connection(addr)
    answer = []
    r = threading.Thread(target=lambda: answer.append(status_line(s, 15)))
    r.start()
    sent = 0
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: s\r\nX-Big: ")
        chunk = b"b" * (1 << 20)
        for _ in range(64):
            s.sendall(chunk)
            sent += len(chunk)
        s.sendall(b"\r\n\r\n")
    except OSError as e:
        pass
    r.join()
    s.close()
    return f"answer: {answer[0] if answer else '?'}; the server took {sent >> 20} MiB before closing"

print("start: threads %d fds %d RSS %d KiB; /healthz %s" % (*figures(), healthz()))
phase("10000 HTTP/2.0 request lines", http2_lines)
phase("2000 idle connections", idle_2000)
phase("4 stalled bodies", stalled_bodies)
phase("64 MiB header", big_header)
bad = False
print("| phase | threads | fds | RSS KiB | took | /healthz after | what the client saw |")
print("|---|---|---|---|---|---|---|")
for name, b, a, seen, took, hz in rows:
    print(f"| {name} | {b[0]} -> {a[0]} | {b[1]} -> {a[1]} | {b[2]} -> {a[2]} | {took:.1f} s | {hz} | {seen} |")
    bad |= not hz.startswith("ok")
sys.exit(1 if bad else 0)
PY
