#!/usr/bin/python3
"""The idle/slowloris floor of tools/serve (bench/serve_load.sh runs it): with IDLE idle
connections and SLOW slowloris connections (one header byte a second each) open, REQUESTS fresh
POST /predict requests, one after another, each on a new connection, must all get 200 with p99
at most P99_MS; the server's RSS (VmRSS of PID) must stay at most RSS_MB and, once the idle and
slow connections are closed again, within 20% of the idle RSS measured before they opened.

    serve_floor.py PORT PID [IDLE=10000] [SLOW=500] [REQUESTS=1000] [P99_MS=10] [RSS_MB=200]

Prints one RESULT line and exits 1 if a bound is missed. Needs `ulimit -n` above IDLE + SLOW.
"""

import json
import socket
import sys
import threading
import time


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def connect_many(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    time.sleep(0.5)
    return socks


def request_bytes():
    pixels = []
    for i in range(784):
        row, col = divmod(i, 28)
        d = abs(col - 14)
        pixels.append(255 - 40 * d if 4 <= row < 24 and d <= 3 else 0)
    body = json.dumps({"pixels": pixels}, separators=(",", ":")).encode()
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head + body


def one_request(port, payload):
    """Seconds for a fresh connection's request and complete response, and its status."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(payload)
        data = b""
        length = None
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            end = data.find(b"\r\n\r\n")
            if end >= 0 and length is None:
                for line in data[:end].split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
            if length is not None and len(data) >= end + 4 + length:
                break
    elapsed = time.perf_counter() - start
    status = int(data[9:12]) if data.startswith(b"HTTP/1.") else 0
    return elapsed, status


def main():
    args = sys.argv[1:]
    port, pid = int(args[0]), int(args[1])
    idle_n = int(args[2]) if len(args) > 2 else 10000
    slow_n = int(args[3]) if len(args) > 3 else 500
    n_requests = int(args[4]) if len(args) > 4 else 1000
    p99_bound = float(args[5]) if len(args) > 5 else 10.0
    rss_bound = float(args[6]) if len(args) > 6 else 200.0

    payload = request_bytes()
    for _ in range(20):  # warm up
        one_request(port, payload)
    rss_idle = rss_mb(pid)

    idle = connect_many(port, idle_n)
    slow = connect_many(port, slow_n)
    stop = threading.Event()
    slow_closed = [0]

    def slowloris():
        text = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        step = 0
        alive = list(slow)
        while not stop.is_set():
            byte = text[step:step + 1] if step < len(text) else b"X-a: b\r\n"[(step - len(text)) % 8:][:1]
            still = []
            for s in alive:
                try:
                    s.send(byte)
                    still.append(s)
                except OSError:
                    slow_closed[0] += 1
            alive = still
            step += 1
            stop.wait(1.0)

    t = threading.Thread(target=slowloris, daemon=True)
    t.start()
    time.sleep(1.0)
    rss_loaded = rss_mb(pid)

    latencies, failures, rss_peak = [], 0, rss_loaded
    for i in range(n_requests):
        try:
            elapsed, status = one_request(port, payload)
        except OSError:
            elapsed, status = 5.0, 0
        latencies.append(elapsed * 1000)
        failures += status != 200
        if i % 100 == 0:
            rss_peak = max(rss_peak, rss_mb(pid))
    rss_peak = max(rss_peak, rss_mb(pid))

    stop.set()
    t.join()
    # How many idle connections the server still held (not closed on its side) at the end.
    idle_open = 0
    for s in idle:
        try:
            idle_open += s.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            idle_open += 1
        except OSError:
            pass
    for s in idle + slow:
        s.close()
    time.sleep(2.0)
    rss_after = rss_mb(pid)

    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    ok = (failures == 0 and p99 <= p99_bound and rss_peak <= rss_bound
          and abs(rss_after - rss_idle) <= 0.2 * rss_idle)
    print(f"RESULT idle={idle_n} slow={slow_n} requests={n_requests} failures={failures} "
          f"p50_ms={p50:.3f} p99_ms={p99:.3f} max_ms={latencies[-1]:.3f} "
          f"rss_idle_mb={rss_idle:.1f} rss_loaded_mb={rss_loaded:.1f} rss_peak_mb={rss_peak:.1f} "
          f"rss_after_mb={rss_after:.1f} idle_still_open={idle_open} slow_closed={slow_closed[0]} "
          f"pass={'yes' if ok else 'no'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
