#!/usr/bin/env python3
"""Memory under slow readers (PRODUCT.md §12, issue 14): the gateway's resident memory while N
streams are held open by clients that read a few bytes a second.

Starts the simulated upstream and `creditgate serve` (own SQLite database, a funded organization,
a key), warms up, samples the gateway's RSS, then opens each count of streams in --counts (long
streams: --output-tokens each), reads their first bytes, and keeps reading --trickle bytes per
second on every connection. After --hold seconds it samples RSS again, closes them all, waits for
every hold to be settled, and prints one table: RSS idle, RSS with the streams open, and the growth
per stream. Flat memory means the growth per stream stays small and does not grow with the count
(the gateway forwards what the client can take and keeps no copy of the answer).

Usage: bench/streams.py [--bin target/release/creditgate] [--counts 100,1000] [--hold 20]
Loopback only; bounded in connections and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

MODEL = "claude-haiku-4-5"


def cli(bin_: str, db: str, *args: str) -> dict:
    out = subprocess.run([bin_, "--database", db, *args, "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def wait_for(path: Path, pattern: str, proc: subprocess.Popen, secs: float = 60) -> str:
    deadline = time.time() + secs
    while time.time() < deadline:
        m = re.search(pattern, path.read_text(errors="replace")) if path.exists() else None
        if m:
            return m.group(1)
        if proc.poll() is not None:
            sys.exit(f"process exited early:\n{path.read_text(errors='replace')}")
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {pattern} in {path}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def request_bytes(host: str, port: int, key: str, tokens: int) -> bytes:
    body = json.dumps({
        "model": MODEL, "max_tokens": tokens + 64, "stream": True,
        "messages": [{"role": "user", "content": f"A long answer. [[sim output_tokens={tokens}]]"}],
    }).encode()
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: {host}:{port}\r\nx-api-key: {key}\r\n"
        f"anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def slow_reader(host: str, port: int, req: bytes, trickle: int, opened: list, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(host, port, limit=1024)
    writer.write(req)
    await writer.drain()
    first = await reader.read(1024)
    if not first.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"stream refused: {first[-260:]!r}")
    opened.append(1)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
        if not await reader.read(trickle):
            break
    writer.close()


async def hold_streams(args, port: int, key: str, pid: int, count: int, hold: int | None = None) -> dict:
    req = request_bytes("127.0.0.1", port, key, args.output_tokens)
    stop = asyncio.Event()
    opened: list = []
    tasks = []
    # Opened in batches, so what is measured is streams held open, not a connection storm.
    for i in range(count):
        tasks.append(asyncio.create_task(slow_reader("127.0.0.1", port, req, args.trickle, opened, stop)))
        if i % 50 == 49:
            await asyncio.sleep(0.5)
    deadline = time.time() + 60
    while len(opened) < count and time.time() < deadline:
        await asyncio.sleep(0.2)
        for t in tasks:
            if t.done() and t.exception():
                raise t.exception()
    samples = []
    end = time.time() + (args.hold if hold is None else hold)
    while time.time() < end:
        await asyncio.sleep(1)
        samples.append(rss_kib(pid))
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"count": count, "opened": len(opened), "rss_peak_kib": max(samples), "rss_last_kib": samples[-1]}


def start_upstream(args, work: Path, procs: list) -> str:
    """nginx answering every POST with one long stream captured once from the simulated upstream:
    an upstream that keeps up with a thousand connections on a small machine."""
    sim_out = work / "sim.out"
    sim = subprocess.Popen([args.bin, "upstream-sim", "--listen", "127.0.0.1:0"],
                           stdout=sim_out.open("w"), stderr=subprocess.DEVNULL)
    sim_url = json.loads(wait_for(sim_out, r"(\{.*\})", sim))["base_url"]
    raw = request_bytes("", 0, "sim", args.output_tokens).split(b"\r\n\r\n", 1)[1]
    req = urllib.request.Request(f"{sim_url}/v1/messages", data=raw, headers={
        "x-api-key": "sim", "anthropic-version": "2023-06-01", "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        answer = r.read()
    sim.send_signal(2)
    sim.wait(timeout=30)
    www = work / "www" / "v1"
    www.mkdir(parents=True)
    (www / "messages").write_bytes(answer)
    os.chmod(work, 0o711)
    subprocess.run(["chmod", "-R", "a+rX", str(work / "www")], check=True)
    port = free_port()
    (work / "nginx.conf").write_text(
        f"daemon off; worker_processes 1; pid {work}/nginx.pid; error_log {work}/nginx.err warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ access_log off; client_body_temp_path {work}/body; server {{ listen 127.0.0.1:{port}; "
        f"root {work}/www; location / {{ default_type text/event-stream; error_page 405 =200 $uri; }} }} }}\n")
    procs.append(subprocess.Popen(["nginx", "-p", str(work), "-c", str(work / "nginx.conf")]))
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/messages")
            break
        except OSError:
            time.sleep(0.1)
    return f"http://127.0.0.1:{port}"


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pending(url: str, key: str) -> str:
    req = urllib.request.Request(f"{url}/v1/credits", headers={"x-api-key": key})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["pending"]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="target/release/creditgate")
    p.add_argument("--counts", default="100,1000")
    p.add_argument("--hold", type=int, default=20)
    p.add_argument("--trickle", type=int, default=64, help="bytes each client reads per second")
    p.add_argument("--output-tokens", type=int, default=4000)
    args = p.parse_args()
    # Each stream is a client socket here and two sockets in the gateway (client, upstream).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    work = Path(tempfile.mkdtemp(prefix="creditgate-streams."))
    procs: list[subprocess.Popen] = []
    try:
        upstream_url = start_upstream(args, work, procs)
        db = f"sqlite://{work}/streams.db"
        org = cli(args.bin, db, "org", "create", "--name", "streams")["id"]
        cli(args.bin, db, "credits", "grant", "--org", org, "--amount", "100000000")
        key = cli(args.bin, db, "keys", "create", "--org", org, "--name", "streams")["secret"]
        (work / "gw.toml").write_text(
            f'listen = "127.0.0.1:0"\ndatabase_url = "{db}"\n'
            f'admin_key = "streams-admin-{secrets.token_hex(24)}"\n'
            f'[upstream]\nbase_url = "{upstream_url}"\napi_keys = ["streams-upstream-key"]\n'
            '[billing]\ncredit_name = "credit"\ncredit_usd = "0.005"\nprice_multiplier = "0.70"\n'
        )
        gw_log = work / "gw.log"
        wrapper = os.environ.get("STREAMS_GATEWAY_WRAPPER", "").split()
        gw = subprocess.Popen([*wrapper, args.bin, "serve", "--config", str(work / "gw.toml")],
                              stdout=subprocess.DEVNULL, stderr=gw_log.open("w"))
        procs.append(gw)
        url = wait_for(gw_log, r"listening on (http://[0-9.:]+)", gw)
        port = int(url.rsplit(":", 1)[1])
        # A warm-up round, not reported: the first streams also fill the database's page cache and
        # memory map, start the runtime's threads and size the allocator's arenas.
        asyncio.run(hold_streams(args, port, key, gw.pid, 100, hold=3))
        rows = []
        for count in (int(c) for c in args.counts.split(",")):
            idle = rss_kib(gw.pid)
            r = asyncio.run(hold_streams(args, port, key, gw.pid, count))
            for _ in range(600):
                if pending(url, key) == "0":
                    break
                time.sleep(0.1)
            r.update(idle_kib=idle, pending_after=pending(url, key))
            r["growth_per_stream_kib"] = (r["rss_peak_kib"] - idle) / count
            rows.append(r)
        print("| streams open | opened | RSS before | RSS peak while open | growth per stream | pending after |")
        print("|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['count']:,} | {r['opened']:,} | {r['idle_kib'] / 1024:.1f} MiB | "
                  f"{r['rss_peak_kib'] / 1024:.1f} MiB | {r['growth_per_stream_kib']:.1f} KiB | {r['pending_after']} |")
        ok = all(r["opened"] == r["count"] and r["pending_after"] == "0" for r in rows)
        print(json.dumps({"streams": rows, "ok": ok}))
        return 0 if ok else 1
    finally:
        for proc in reversed(procs):
            proc.send_signal(2)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
