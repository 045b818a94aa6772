#!/usr/bin/python3
"""Load test of `qface serve` on 127.0.0.1 (docs/reliability.md).

Starts the server (MobileFaceNet, random weights: the work per request is the
real one, the scores mean nothing), then C client threads each send R requests,
one connection per request, of a fixed mixture of valid, malformed and
oversized bodies. Every response must be JSON with the status its request
deserves; the server must still answer /health at the end. Prints one JSON
summary: requests/s, p50/p99 latency, wrong statuses, non-JSON responses,
connection errors, server exit, RSS before/after.

  /usr/bin/python3 scripts/reliability/serve_load.py --qface build/qface \
      --clients 32 --requests 500 --out load.json
"""
import argparse
import base64
import http.client
import json
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

from common import synth_crops


def png_header_only(width, height):
    """A PNG whose IHDR declares width x height, with one tiny IDAT: a pixel bomb if decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def rss_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def crops_from_synth(qface, work):
    """Aligned 112x112 crops (common.synth_crops), the first 64 as bytes."""
    _, crops = synth_crops(qface, work)
    files = sorted(p for p in crops.rglob("*") if p.is_file())
    return [p.read_bytes() for p in files[:64]]


def build_cases(crops, max_body):
    """(name, method, path, headers, body, expected status) builders; weights give the mixture."""
    b64 = lambda b: base64.b64encode(b).decode()
    js = {"Content-Type": "application/json"}
    png = {"Content-Type": "image/png"}
    oct_ = {"Content-Type": "application/octet-stream"}
    bomb = png_header_only(30000, 30000)
    big = b"\0" * (max_body + 200_000)
    return [
        # valid work
        (30, "embed_raw", lambda r: ("POST", "/embed", oct_, r.choice(crops), 200)),
        (10, "quality_json", lambda r: ("POST", "/quality", js, json.dumps({"image": b64(r.choice(crops))}).encode(), 200)),
        (10, "verify_json", lambda r: ("POST", "/verify", js,
                                       json.dumps({"a": b64(r.choice(crops)), "b": b64(r.choice(crops))}).encode(), 200)),
        (5, "health", lambda r: ("GET", "/health", {}, None, 200)),
        # malformed
        (8, "bad_json", lambda r: ("POST", "/embed", js, b'{"image": "abc', 400)),
        (6, "bad_base64", lambda r: ("POST", "/quality", js, b'{"image": "!!!not base64!!!"}', 400)),
        (6, "not_an_image", lambda r: ("POST", "/embed", png, r.randbytes(r.randint(1, 4096)), 400)),
        (5, "truncated_image", lambda r: ("POST", "/embed", oct_, (c := r.choice(crops))[: len(c) // 2], 400)),
        (5, "pixel_bomb", lambda r: ("POST", "/embed", png, bomb, 400)),
        (5, "wrong_field", lambda r: ("POST", "/verify", js, b'{"a": 1, "b": [2]}', 400)),
        (4, "unknown_path", lambda r: ("POST", "/nowhere", js, b"{}", 404)),
        (4, "no_gallery", lambda r: ("POST", "/search", js, json.dumps({"embedding": [0.0] * 512}).encode(), 503)),
        # oversized
        (2, "oversized", lambda r: ("POST", "/embed", oct_, big, 413)),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qface", default="build/qface")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=500, help="requests per client")
    ap.add_argument("--max-body-mb", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="-")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="qface-load-"))
    crops = crops_from_synth(a.qface, work)
    port = free_port()
    max_body = int(a.max_body_mb * (1 << 20))
    server = subprocess.Popen([a.qface, "--log-level", "warn", "serve", "--arch", "mobilefacenet", "--random-weights",
                               "--port", str(port), "--max-body-mb", str(a.max_body_mb), "--threads", "2"],
                              stdout=subprocess.DEVNULL, stderr=open(work / "serve.log", "w"))

    def request(method, path, headers, body, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    for _ in range(600):  # up to 60 s for the model to load
        try:
            if request("GET", "/health", {}, None, timeout=2)[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit("serve did not come up; log in " + str(work / "serve.log"))
    for c in crops[:8]:  # warm-up: primitive creation, allocator
        request("POST", "/embed", {"Content-Type": "application/octet-stream"}, c)
    rss_before = rss_kb(server.pid, "VmRSS")

    cases = build_cases(crops, max_body)
    weights = [w for w, _, _ in cases]
    lock = threading.Lock()
    latencies, by_case = [], {name: {"n": 0, "wrong_status": 0, "non_json": 0, "conn_errors": 0} for _, name, _ in cases}
    samples = []

    def client(k):
        r = random.Random(a.seed * 1000 + k)
        local = []
        for _ in range(a.requests):
            _, name, make = r.choices(cases, weights)[0]
            method, path, headers, body, want = make(r)
            t0 = time.perf_counter()
            st = by_case[name]
            try:
                status, data = request(method, path, headers, body)
                dt = time.perf_counter() - t0
                try:
                    json.loads(data)
                    is_json = True
                except ValueError:
                    is_json = False
                with lock:
                    st["n"] += 1
                    st["wrong_status"] += status != want
                    st["non_json"] += not is_json
                    if status != want and len(samples) < 10:
                        samples.append({"case": name, "status": status, "want": want, "body": data[:200].decode("latin1")})
                local.append(dt)
            except OSError as e:
                # A 413 may arrive before the whole body was sent: the server then closes, and
                # the client can see a reset while still writing. Counted apart, not as a crash.
                with lock:
                    st["n"] += 1
                    st["conn_errors"] += 1
                    if len(samples) < 10:
                        samples.append({"case": name, "error": repr(e)})
        with lock:
            latencies.extend(local)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0

    alive = server.poll() is None
    health = request("GET", "/health", {}, None)[0] if alive else None
    rss_after, rss_peak = rss_kb(server.pid, "VmRSS"), rss_kb(server.pid, "VmHWM")
    server.terminate()
    rc = server.wait(timeout=30)
    latencies.sort()
    q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
    total = sum(s["n"] for s in by_case.values())
    summary = {
        "clients": a.clients, "requests_per_client": a.requests, "requests": total,
        "wall_s": round(wall, 1), "requests_per_s": round(total / wall, 1),
        "latency_ms": {"p50": round(q(0.50), 1), "p99": round(q(0.99), 1), "max": round(latencies[-1] * 1000, 1)},
        "wrong_status": sum(s["wrong_status"] for s in by_case.values()),
        "non_json": sum(s["non_json"] for s in by_case.values()),
        "conn_errors": sum(s["conn_errors"] for s in by_case.values()),
        "server_alive_after": alive, "health_after": health, "server_exit_on_sigterm": rc,
        "rss_mb": {"before": round(rss_before / 1024, 1), "after": round(rss_after / 1024, 1),
                   "peak": round(rss_peak / 1024, 1)},
        "by_case": by_case, "first_failures": samples,
    }
    text = json.dumps(summary, indent=1)
    if a.out == "-":
        print(text)
    else:
        Path(a.out).write_text(text + "\n")
        print(text)
    ok = alive and health == 200 and summary["wrong_status"] == 0 and summary["non_json"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
