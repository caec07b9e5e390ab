#!/usr/bin/env python3
"""Server time per page of the web UI on a running devnet.

    scripts/bench-ui.py <devnet dir> [UI address] [requests per page]

Asks each view as the identity that uses it (sequentially, one request at a time) and reports
p50 / p95 / max of the server's own time (its `Server-Timing: app;dur=` header) and of the time
seen by the client, per page and over all pages. Reads are real: each record read is consent-
checked, decrypted and logged like any other.
"""
import json, sys, time, urllib.request, urllib.parse

devnet = sys.argv[1]
ui = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:7790"
n = int(sys.argv[3]) if len(sys.argv) > 3 else 50
seeded = json.load(open(f"{devnet}/demo/seeded.json"))
rec = seeded["records"]
obs = rec["hospital_a_observation"]
p1 = seeded["identities"]["patient-1"]["pseudonym"]

pages = [
    ("patient-1", "GET", "/", None),
    ("patient-1", "GET", "/records", None),
    ("patient-1", "GET", f"/records/{obs}", None),  # proves the anchors, reads and decrypts
    ("patient-1", "GET", "/consents", None),
    ("patient-1", "GET", "/requests", None),
    ("patient-1", "GET", "/access-log", None),
    ("dr-bob", "GET", "/patients", None),
    ("dr-bob", "POST", f"/records/{obs}/read", {"purpose": "treatment"}),
    ("dr-bob", "GET", "/write", None),
    ("regulator-rita", "GET", "/audit", None),
    ("regulator-rita", "POST", "/audit", {"patient": p1}),
    ("regulator-rita", "GET", "/audit/break-glass", None),
    ("regulator-rita", "GET", "/explorer", None),
    ("regulator-rita", "GET", "/explorer/blocks/2", None),
    ("admin-hospital-a", "GET", "/staff", None),
]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


rows, all_server = [], []
for who, method, path, form in pages:
    server, client = [], []
    for _ in range(n):
        data = urllib.parse.urlencode(form).encode() if form else None
        req = urllib.request.Request(ui + path, data=data, method=method, headers={"Cookie": f"who={who}"})
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
            timing = r.headers.get("Server-Timing", "app;dur=nan")
            status = r.status
        client.append((time.perf_counter() - t) * 1000)
        server.append(float(timing.split("dur=")[1]))
        assert status == 200, f"{method} {path} as {who}: {status}"
    all_server += server
    shown = path if len(path) < 40 else path[:24] + "…" + path[-8:]
    rows.append((f"{method} {shown} ({who})", pct(server, 50), pct(server, 95), max(server), pct(client, 95)))

print(f"| page (identity) | server p50 | server p95 | server max | client p95 |")
print("|---|---:|---:|---:|---:|")
for name, a, b, c, d in rows:
    print(f"| {name} | {a:.1f} ms | {b:.1f} ms | {c:.1f} ms | {d:.1f} ms |")
print(f"| **all pages, {len(all_server)} requests** | {pct(all_server, 50):.1f} ms | **{pct(all_server, 95):.1f} ms** | {max(all_server):.1f} ms | |")
