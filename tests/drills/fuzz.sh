#!/usr/bin/env bash
# Drill: hostile payloads. Mutated bodies (byte flips, cuts, wrong types, huge and
# negative numbers, deep nesting, bad UTF-8, missing fields) on every intake route and
# on the import, each carrying a marker. Checks: no 5xx and no dropped connection; a
# stored marker only from an accepted (2xx) request, and every accepted one stored.
# `--long`: 100,000 requests, else 5,000.
source "$(dirname "$0")/lib.sh"
SIFT=$(sift_bin)
E2E_DIR=$(mktemp -d /tmp/sift-drill-fuzz.XXXXXX)
N=5000; [ "$LONG" = 1 ] && N=100000
PORT=$(free_port)
start_sift sift "$PORT" SIFT_STORE__URL="sqlite://$E2E_DIR/sift.db"
python3 - "$PORT" "$N" "$E2E_DIR/result.txt" <<'PY'
import collections, http.client, json, random, sys, threading
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = random.Random(7)
routes = ["/api/v1/alerts/alertmanager", "/api/v2/alerts", "/api/v1/alerts/pagerduty"]
def base(route, m):
    a = {"status": "firing", "labels": {"alertname": m, "instance": "fz:9100", "severity": "warning"},
         "annotations": {"summary": "x"}, "startsAt": "2026-12-06T00:00:00Z"}
    if route.endswith("alertmanager"):
        return {"version": "4", "alerts": [a]}
    if route.endswith("v2/alerts"):
        return [a]
    return {"routing_key": "k", "event_action": "trigger", "dedup_key": m,
            "payload": {"summary": m, "source": "fz", "severity": "error", "class": m}}
junk = [None, True, -1, 2**70, 1e308, "", "x" * 5000, [], {}, [[[[[]]]]], "\u0000", "2026-13-45T99:99:99Z"]
def mutate(v, depth=0):
    if isinstance(v, dict) and v and rng.random() < 0.7:
        k = rng.choice(list(v))
        r = rng.random()
        if r < 0.3:
            del v[k]
        elif r < 0.6:
            v[k] = rng.choice(junk)
        else:
            v[k] = mutate(v[k], depth + 1)
    elif isinstance(v, list) and v and rng.random() < 0.7:
        v[rng.randrange(len(v))] = mutate(v[rng.randrange(len(v))], depth + 1)
    elif rng.random() < 0.5:
        return rng.choice(junk)
    return v
def body(i):
    route = rng.choice(routes)
    m = f"FZ{i}"
    doc = base(route, m)
    kind = rng.random()
    if kind < 0.15:
        raw = json.dumps(doc).encode()  # a good one now and then
    elif kind < 0.6:
        raw = json.dumps(mutate(doc)).encode()
    else:
        raw = bytearray(json.dumps(doc).encode())
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            if op < 0.4 and raw:
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            elif op < 0.7:
                raw = raw[: rng.randrange(len(raw) + 1)]
            else:
                raw[rng.randrange(len(raw) + 1):0] = rng.choice([b"\xff\xfe", b"[" * 200, b'{"a":', b"\\u0000"])
        raw = bytes(raw)
    return route, m, raw
jobs = [body(i) for i in range(n)]
status = collections.Counter()
accepted, dropped = set(), 0
codes = {}
lock = threading.Lock()
def worker(chunk):
    global dropped
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for route, m, raw in chunk:
        try:
            conn.request("POST", route, raw, {"content-type": "application/json"})
            r = conn.getresponse(); r.read()
            with lock:
                status[r.status // 100] += 1
                codes[m] = r.status
                if 200 <= r.status < 300:
                    accepted.add(m)
        except Exception:
            with lock:
                dropped += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
threads = [threading.Thread(target=worker, args=(jobs[t::4],)) for t in range(4)]
for t in threads: t.start()
for t in threads: t.join()
stored, cursor = set(), None
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
while True:
    conn.request("GET", "/api/v1/alerts?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
    page = json.loads(conn.getresponse().read())
    stored |= {a["labels"].get("alertname", "") for a in page["alerts"]}
    cursor = page.get("next_cursor")
    if not cursor:
        break
# What sift should hold: the alert names in the bodies it accepted (read the way the
# routes read them), and nothing else. PagerDuty events sharing a dedup_key are one alert
# (it keeps one of their names).
def parse(raw):
    try:
        return json.loads(raw.decode("utf-8", "replace"))
    except Exception:
        return None
def names_in(route, doc):
    if route.endswith("pagerduty"):
        p = doc.get("payload") or {}
        name = p.get("class") or p.get("summary")
        return {name} if isinstance(name, str) else set()
    alerts = doc.get("alerts") if isinstance(doc, dict) else doc
    return {a["labels"].get("alertname", "") for a in alerts or []
            if isinstance(a, dict) and isinstance(a.get("labels"), dict)}
by_marker = {m: (route, raw) for route, m, raw in jobs}
required, groups = set(), collections.defaultdict(set)
for m in accepted:
    route, raw = by_marker[m]
    doc = parse(raw)
    if doc is None:
        continue
    names = names_in(route, doc)
    if route.endswith("pagerduty"):
        groups[str(doc.get("dedup_key"))] |= names
    else:
        required |= names
for key, names in list(groups.items()):
    if len(names) == 1:
        required |= names
        del groups[key]
allowed = required.union(*groups.values())
from_rejected = len(stored - allowed)
missing = len(required - stored) + sum(1 for names in groups.values() if not names & stored)
for name in sorted(stored - allowed)[:5]:
    print("stored, not from an accepted body:", repr(name)[:200], file=sys.stderr)
for name in sorted(required - stored)[:5]:
    print("accepted, not stored:", repr(name)[:200], file=sys.stderr)
open(out, "w").write(f"{n} {status[2]} {status[4]} {status[5]} {dropped} {from_rejected} {missing}\n")
PY
read -r n ok4 bad4 s5 dropped from_rejected missing <"$E2E_DIR/result.txt"
rss=$(peak_mib "$SIFT_PID")
ok=0
[ "$s5" = 0 ] && [ "$dropped" = 0 ] && [ "$from_rejected" = 0 ] && [ "$missing" = 0 ] && ok=1
report fuzz "$ok" requests=$n accepted_2xx=$ok4 rejected_4xx=$bad4 server_5xx=$s5 dropped=$dropped \
  stored_from_rejected=$from_rejected accepted_not_stored=$missing peak_mib=$rss
finish
