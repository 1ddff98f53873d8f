#!/usr/bin/env python3
"""How a legitimate scrape fares while the HTTP server is attacked (issue 12).

Starts the exporter's `simulate --scale-zones` (a generated account) and `run` on 127.0.0.1, then, phase by
phase, measures a legitimate scraper (sequential gzip scrapes of /metrics, as Prometheus
makes them, each on a fresh connection) while one attack runs:

  baseline         nothing else
  slow-readers     connections that request the plain /metrics and never read the body
  slow-headers     connections that send a request header one byte every few seconds
  idle-flood       connections that are opened and left idle
  wrong-passwords  (a second exporter with basic auth, restarted so nothing is cached)
                   threads sending wrong passwords non-stop from another address
                   (127.0.0.2), against a scraper with the right one

After each attack it checks that the server let go of the attacker's connections within
the configured timeouts ("nothing held for ever"). Loopback only, Python standard library
only, bounded (every phase lasts --phase-seconds; the whole run a few minutes).

Usage: scripts/abuse.py [--binary PATH] [--zones N] [--phase-seconds S] [--out DIR]
       (default binary target/release/cloudflare-aop-exporter, 300 zones x 10 hostnames)
Writes DIR/summary.md (default target/abuse/<UTC time>) and prints it.
"""

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts/lib"))
from free_ports import free_ports  # noqa: E402  (scripts/lib, shared with the other scripts)
from scale_config import SCALE_TOKEN, served_zones, zones_toml  # noqa: E402
PASSWORD = "scrape-password"
# bcrypt (cost 10) of PASSWORD, so the script needs no bcrypt module.
PASSWORD_HASH = "$2b$10$abcdefghijklmnopqrstuubwiNIfzQ5V3bgeXTvX/ywSi2S0MFfWS"
HEADER_READ_TIMEOUT = 5
WRITE_TIMEOUT = 10
SLOW_READERS = 16
SLOW_HEADERS = 200
IDLE_CONNECTIONS = 2000
PASSWORD_THREADS = 50


def exporter_config(out, name, sim_port, port, zones_toml, web_config):
    web = f'web_config_file = "{web_config}"\n' if web_config else ""
    path = out / f"{name}.toml"
    path.write_text(f'''[cloudflare]
api_base_url = "http://127.0.0.1:{sim_port}/client/v4"
api_token = "{SCALE_TOKEN}"
max_concurrency = 32
requests_per_5m = 10000000
verify_token = false

[schedule]
cron = "0 0 0 1 1 *"
jitter = "0s"

[server]
listen = "127.0.0.1:{port}"
header_read_timeout = "{HEADER_READ_TIMEOUT}s"
write_timeout = "{WRITE_TIMEOUT}s"
{web}
[state]
dir = "{out}/state-{name}"

[log]
level = "warn"
{zones_toml}''')
    return path


def wait_ready(port, auth=None, limit=300):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz", headers=auth_header(auth))
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"abuse: 127.0.0.1:{port} was not ready within {limit}s")


def auth_header(password):
    if password is None:
        return {}
    token = base64.b64encode(f"prom:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def scrape(port, password=None, source=None):
    """One gzip scrape on a fresh connection: (seconds, ok, compressed bytes)."""
    started = time.monotonic()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60,
                                          source_address=(source, 0) if source else None)
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip", **auth_header(password)})
        response = conn.getresponse()
        body = response.read()
        conn.close()
        ok = response.status == 200
        if ok:
            # Raises on a truncated stream; the registry's families come last.
            text = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            ok = b"# TYPE cloudflare_aop_build_info gauge" in text
        return time.monotonic() - started, ok, len(body)
    except (OSError, http.client.HTTPException, zlib.error):
        return time.monotonic() - started, False, 0


def measure(port, seconds, password=None):
    latencies, errors, size = [], 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        elapsed, ok, size = scrape(port, password)
        if ok:
            latencies.append(elapsed)
        else:
            errors += 1
    return latencies, errors, size


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, int(fraction * len(ordered) + 0.999999) - 1))]


class Attack:
    """Attacker sockets kept up by a background thread until stopped."""

    def __init__(self, port, count, opener, keeper=None):
        self.port, self.count, self.opener, self.keeper = port, count, opener, keeper
        self.sockets, self.closed_by_server, self.opened = [], 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def open_one(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", self.port))
            self.opener(s)
            s.setblocking(False)
            self.sockets.append(s)
            self.opened += 1
        except OSError:
            s.close()

    def run(self):
        while len(self.sockets) < self.count and not self.stop.is_set():
            self.open_one()
        while not self.stop.wait(1):
            self.sockets, closed = self.sweep(self.sockets)
            self.closed_by_server += closed
            # Keep the pressure up: replace what the server closed.
            while len(self.sockets) < self.count and not self.stop.is_set():
                self.open_one()

    def sweep(self, sockets, drain=False):
        """Closes the sockets the server closed and keeps the others busy (the keeper, if any);
        returns the ones still open and how many the server closed."""
        alive, closed = [], 0
        for s in sockets:
            if self.server_closed(s, drain=drain):
                closed += 1
                s.close()
            else:
                if self.keeper:
                    try:
                        self.keeper(s)
                    except OSError:
                        pass
                alive.append(s)
        return alive, closed

    @staticmethod
    def server_closed(s, drain=False):
        """True once the server closed. Without `drain` it only peeks, so an unread body
        stays unread (and a close behind it goes unseen); with it, it reads what arrived."""
        try:
            while True:
                data = s.recv(1 << 20) if drain else s.recv(1, socket.MSG_PEEK)
                if data == b"":
                    return True
                if not drain:
                    return False
        except BlockingIOError:
            return False
        except OSError:
            return True

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while len(self.sockets) < self.count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self

    def finish(self, grace):
        """Stops replacing sockets; returns how many of the remaining ones the server closes
        within `grace` seconds (the rest are then closed by us). Slow readers are drained
        now: what the server sent before it cut them off, then the close."""
        self.stop.set()
        self.thread.join()
        remaining = list(self.sockets)
        deadline = time.monotonic() + grace
        open_ones = remaining
        while open_ones and time.monotonic() < deadline:
            time.sleep(0.5)
            open_ones, _ = self.sweep(open_ones, drain=True)
        for s in open_ones:
            s.close()
        return len(remaining), len(remaining) - len(open_ones)


def slow_reader(s):
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: exporter\r\n\r\n")


def slow_header_start(s):
    s.sendall(b"GET /metrics HTTP/1.1\r\n")


def slow_header_keep(s):
    s.send(b"X")


def idle(_s):
    pass


def flood_process(port, threads, pause, stop, results):
    """The wrong-password clients, in a process of their own so that their threads do not
    compete with the measuring scraper for Python's interpreter lock."""
    answers, lock = {}, threading.Lock()

    def client():
        while not stop.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                                  source_address=("127.0.0.2", 0))
                conn.request("GET", "/metrics", headers=auth_header("wrong-guess"))
                status = conn.getresponse().status
                conn.close()
            except (OSError, http.client.HTTPException):
                status = "error"
            with lock:
                answers[status] = answers.get(status, 0) + 1
            if pause:
                stop.wait(pause)

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(answers)


class PasswordFlood:
    """`threads` clients sending wrong passwords from 127.0.0.2, each pausing `pause` seconds
    between attempts (0: as fast as the answers come)."""

    def __init__(self, port, threads, pause):
        self.stop, self.results = multiprocessing.Event(), multiprocessing.Queue()
        self.process = multiprocessing.Process(
            target=flood_process, args=(port, threads, pause, self.stop, self.results), daemon=True)

    def start(self):
        self.process.start()
        time.sleep(1)
        return self

    def finish(self):
        self.stop.set()
        answers = self.results.get(timeout=120)
        self.process.join(timeout=60)
        return answers


def process_fds(port, password=None):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/metrics", headers=auth_header(password))
        for line in conn.getresponse().read().decode().splitlines():
            if line.startswith("process_open_fds "):
                return int(float(line.split()[1]))
    except (OSError, http.client.HTTPException):
        return None
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=str(REPO / "target/release/cloudflare-aop-exporter"))
    parser.add_argument("--zones", type=int, default=300)
    parser.add_argument("--hostnames", type=int, default=10)
    parser.add_argument("--phase-seconds", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.phase_seconds > 120 or args.zones > 2000:
        sys.exit("abuse: bounded run: --phase-seconds <= 120, --zones <= 2000")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = IDLE_CONNECTIONS + 500
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
    out = Path(args.out or REPO / "target/abuse" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    out.mkdir(parents=True, exist_ok=True)
    binary = args.binary
    sim_port, plain_port, auth_port = free_ports(3)
    (out / "web.yml").write_text(f"basic_auth_users:\n  prom: {PASSWORD_HASH}\n")

    processes = []

    def start(*command, log):
        process = subprocess.Popen([binary, *command], stdout=open(out / log, "w"), stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    rows, notes = [], []
    try:
        # The simulator's own synthetic account (`Scenario::scale`), 2 certificates a zone.
        start("simulate", "--listen", f"127.0.0.1:{sim_port}", "--scale-zones", str(args.zones),
              "--scale-certificates-per-zone", "2", "--scale-hostnames-per-zone", str(args.hostnames),
              "--scale-requests-per-5m", "100000000", log="simulate.log")
        deadline = time.monotonic() + 180
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", sim_port, timeout=5).request("GET", "/__sim/stats")
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("abuse: the simulator did not start")
                time.sleep(0.2)
        zones = zones_toml(served_zones(sim_port))
        plain_config = exporter_config(out, "plain", sim_port, plain_port, zones, None)
        auth_config = exporter_config(out, "auth", sim_port, auth_port, zones, out / "web.yml")
        exporter = start("run", "--config", str(plain_config), log="exporter-plain.log")
        wait_ready(plain_port)
        measure(plain_port, 2)  # warm-up

        def phase(name, attack_factory, grace):
            attack = attack_factory().start() if attack_factory else None
            latencies, errors, size = measure(plain_port, args.phase_seconds)
            held = ""
            if attack:
                remaining, closed = attack.finish(grace)
                held = f"{closed} of {remaining} closed by the server within {grace} s after the attack; " \
                       f"{attack.closed_by_server} closed during it ({attack.opened} opened)"
            fds = process_fds(plain_port)
            rows.append((name, latencies, errors, size, held, fds))

        phase("baseline", None, 0)
        phase(f"slow-readers ({SLOW_READERS} never read)",
              lambda: Attack(plain_port, SLOW_READERS, slow_reader), WRITE_TIMEOUT + 5)
        phase(f"slow-headers ({SLOW_HEADERS}, 1 byte/s)",
              lambda: Attack(plain_port, SLOW_HEADERS, slow_header_start, slow_header_keep), HEADER_READ_TIMEOUT + 5)
        phase(f"idle-flood ({IDLE_CONNECTIONS} idle)",
              lambda: Attack(plain_port, IDLE_CONNECTIONS, idle), HEADER_READ_TIMEOUT + 5)
        exporter.terminate()
        exporter.wait(timeout=60)

        # Basic auth: the baseline with a warm cache, then a fresh process (nothing cached)
        # whose first scrapes meet the wrong-password flood.
        auth = start("run", "--config", str(auth_config), log="exporter-auth.log")
        wait_ready(auth_port, PASSWORD)
        auth_rows = []
        latencies, errors, size = measure(auth_port, args.phase_seconds, PASSWORD)
        auth_rows.append(("basic auth: baseline", latencies, errors, size, "",
                          process_fds(auth_port, PASSWORD)))
        auth.terminate()
        auth.wait(timeout=60)
        start("run", "--config", str(auth_config), log="exporter-auth-restarted.log")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", auth_port, timeout=5)
                conn.request("GET", "/healthz")  # no credentials needed: nothing gets cached
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        time.sleep(5)  # the start-up cycle
        # 50 clients guessing at once (what held the first scrape 4.4 s before), then the same
        # without pauses: a request flood, where the 2 shared cores become the limit.
        for pause, label in ((0.5, "one guess per 0.5 s each; first scrape uncached"),
                             (0, "no pause")):
            flood = PasswordFlood(auth_port, PASSWORD_THREADS, pause).start()
            first, first_ok, _ = scrape(auth_port, PASSWORD)
            latencies, errors, size = measure(auth_port, args.phase_seconds, PASSWORD)
            answers = flood.finish()
            auth_rows.append((f"basic auth: {PASSWORD_THREADS} wrong-password clients from 127.0.0.2, {label}",
                              [first] + latencies if first_ok else latencies, errors + (0 if first_ok else 1),
                              size, f"first scrape {first * 1000:.0f} ms; attacker answers {answers}",
                              process_fds(auth_port, PASSWORD)))
        rows.extend(auth_rows)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    baseline = {}
    lines = [f"# Abuse {datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}", "",
             f"- command: `scripts/abuse.py --zones {args.zones} --hostnames {args.hostnames} "
             f"--phase-seconds {args.phase_seconds}`; binary `{os.path.relpath(binary, REPO)}`",
             f"- server: header_read_timeout {HEADER_READ_TIMEOUT} s, write_timeout {WRITE_TIMEOUT} s, "
             f"max_connections 4096 (default)",
             "- legitimate scraper: sequential `Accept-Encoding: gzip` scrapes of /metrics, "
             "each on a new connection, body read and inflated", "",
             "| phase | scrapes | errors | p50 | p99 | max | p99 / baseline p99 | exporter open fds after | connections let go |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, latencies, errors, size, held, fds in rows:
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        key = "auth" if name.startswith("basic auth") else "plain"
        baseline.setdefault(key, p99)
        ratio = p99 / baseline[key] if baseline[key] == baseline[key] and baseline[key] > 0 else float("nan")
        lines.append(f"| {name} | {len(latencies)} | {errors} | {p50 * 1000:.1f} ms | {p99 * 1000:.1f} ms | "
                     f"{max(latencies, default=float('nan')) * 1000:.1f} ms | {ratio:.2f} | {fds} | {held or '–'} |")
    lines.append("")
    lines.append(f"- gzip body: {rows[0][3] / 1048576:.2f} MiB on the wire")
    summary = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(summary)
    (out / "raw.json").write_text(json.dumps([{"phase": r[0], "latencies": r[1], "errors": r[2]} for r in rows]))
    print(summary)


if __name__ == "__main__":
    main()
