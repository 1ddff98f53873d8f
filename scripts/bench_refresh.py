#!/usr/bin/env python3
"""Refresh-scheduler benchmark: freshness, detection latency and rate-limit manners.

Runs the release binary's `simulate` and `run` on loopback, time-compressed: the simulator's
rate-limit window is 30 s instead of Cloudflare's 300 s (the exporter scales a learned quota
to its 5-minute budget window), ticks come every 2 s, and `requests_per_5m` is chosen so that
a full refresh at the budget (N/B) takes about 30 s. For each size, in one run:

  A. freshness: status changes injected into the simulator at random times (one of them to
     `deployment_timed_out` and, once seen, back to `active`); when each shows in the exporter's
     snapshot, as a ratio to N/B (`cloudflare_aop_refresh_sweep_seconds`); the oldest data at
     any sampled moment (now - min `zone_oldest_refresh`); the longest gap between two fetches
     of any object (simulator request log); requests per minute against the budget;
  D. a forced 429 with `Retry-After: 0`: requests the simulator sees during the block;
  B. another client of the same token spending 40 % of a limit that binds: 429s served;
  C. two exporter instances with the same token and zones: 429s served.

Writes (or replaces) the "Refresh scheduler" section of BENCHMARKS.md.
Usage: scripts/bench_refresh.py --binary target/release/cloudflare-aop-exporter
Python 3 standard library only.
"""

import argparse
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
from bench_summary import percentile, summary_lines  # noqa: E402  (shared with bench_report.py)
from free_ports import free_ports  # noqa: E402

TOKEN = "bench-refresh-token"
TICK_SECONDS = 2
CRON = "*/2 * * * * *"
SIM_WINDOW_SECONDS = 30  # Cloudflare's 300 s, compressed ten times
CF_WINDOW_SECONDS = 300
RATE_LIMIT_BLOCK_SECONDS = 10  # the exporter's `rate_limit_block`, compressed too
TARGET_SWEEP_SECONDS = 30
CERTIFICATES_PER_ZONE = 2
HOSTNAMES_PER_ZONE = 10
CONCURRENCY = 32
SIZES = {"mid": 100, "large": 1000}  # zones; 10 hostnames and 2 certificates each
SECTION_TITLE = "## Refresh scheduler"


def log(message):
    print(f"[bench_refresh {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def call(method, url, body=None, timeout=30):
    """One request; returns (status, bytes). Never raises on an HTTP error status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def get_json(url, timeout=30):
    status, body = call("GET", url, timeout=timeout)
    if status != 200:
        raise RuntimeError(f"GET {url}: HTTP {status}")
    return json.loads(body)


def wait_for_200(url, limit, process, log_path):
    start = time.time()
    while time.time() - start < limit:
        if process.poll() is not None:
            raise RuntimeError(f"process exited ({process.returncode}); see {tail(log_path)}")
        try:
            if call("GET", url, timeout=5)[0] == 200:
                return time.time() - start
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {limit}s; {tail(log_path)}")


def tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "last log lines:\n" + "".join(handle.readlines()[-lines:])
    except OSError:
        return "(no log)"


def epoch(timestamp):
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def metric_values(url, names):
    """Streams /metrics (tens of MB at scale) and keeps the samples of the named families."""
    values = {name: [] for name in names}
    with urllib.request.urlopen(url, timeout=60) as response:
        for raw in response:
            if raw.startswith(b"#") or not raw.startswith(b"cloudflare_aop_r"):
                # Only the rate-limit and refresh families are wanted (`cloudflare_aop_r…`).
                continue
            line = raw.decode().rstrip("\n")
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            if name in values:
                values[name].append(float(line.rsplit(" ", 1)[1]))
    return values


def other_client(base_url, rate, duration):
    """Another tool of the same credential: GET /user/tokens/verify at `rate` per second."""
    host, port = base_url.split("//", 1)[1].split("/", 1)[0].split(":")
    codes = {}
    connection = None
    start = time.monotonic()
    sent = 0
    while True:
        due = start + sent / rate
        if due - start >= duration:
            break
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent += 1
        try:
            if connection is None:
                connection = http.client.HTTPConnection(host, int(port), timeout=10)
            connection.request("GET", "/client/v4/user/tokens/verify",
                               headers={"Authorization": f"Bearer {TOKEN}"})
            response = connection.getresponse()
            response.read()
            key = str(response.status)
        except (OSError, http.client.HTTPException):
            key = "error"
            connection = None
        codes[key] = codes.get(key, 0) + 1
    print(json.dumps({"sent": sent, "codes": codes, "seconds": time.monotonic() - start}))


class Run:
    """One size: the simulator, the exporter(s) and the measurements."""

    def __init__(self, binary, size_name, zones, work, seed, sweeps, injections, phase_seconds):
        self.binary = binary
        self.size_name = size_name
        self.zones = zones
        self.work = work
        self.random = random.Random(seed)
        self.sweeps = sweeps
        self.injection_count = injections
        self.phase_seconds = phase_seconds
        self.processes = []
        self.full_cost = zones * (1 + HOSTNAMES_PER_ZONE)
        # A full refresh at the budget takes about TARGET_SWEEP_SECONDS; a multiple of 150
        # so that a 2-second tick's share of the 5-minute budget is a whole number.
        per_5m = self.full_cost * CF_WINDOW_SECONDS / TARGET_SWEEP_SECONDS
        self.requests_per_5m = int(math.ceil(per_5m / 150) * 150)
        own_per_window = self.requests_per_5m * SIM_WINDOW_SECONDS // CF_WINDOW_SECONDS
        # A: the exporter alone spends half the credential's limit (600 of Cloudflare's 1200).
        self.quota_alone = 2 * own_per_window
        # B, C: a limit the exporter's own budget would use up, so the reserve must work.
        self.quota_binding = own_per_window
        self.results = {"size": size_name, "zones": zones,
                        "hostnames": zones * HOSTNAMES_PER_ZONE,
                        "full_cost": self.full_cost, "requests_per_5m": self.requests_per_5m,
                        "quota_alone": self.quota_alone, "quota_binding": self.quota_binding}

    # -- processes -------------------------------------------------------------------------

    def start(self, args, log_name):
        log_path = os.path.join(self.work, log_name)
        handle = open(log_path, "w", encoding="utf-8")
        process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT)
        handle.close()
        self.processes.append(process)
        return process, log_path

    def stop(self, process):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self):
        for process in reversed(self.processes):
            self.stop(process)

    # -- set-up ----------------------------------------------------------------------------

    def zone_id(self, zone):
        return f"5ca1e000{zone:024x}"

    def hostname(self, zone, index):
        return f"h{index}.zone-{zone}.example"

    def write_scenario(self):
        out = [f'[auth]\ntoken = "{TOKEN}"\n\n[settings]\n'
               f'rate_limit = {{ max_requests = {self.quota_alone}, '
               f'window = "{SIM_WINDOW_SECONDS}s", retry_after = "{SIM_WINDOW_SECONDS}s" }}\n']
        for zone in range(self.zones):
            name = f"zone-{zone}.example"
            out.append(f'\n[[zones]]\nid = "{self.zone_id(zone)}"\nname = "{name}"\n')
            cert_ids = [f"{zone:08x}-{c:04x}-4000-8000-5ca1e0000000"
                        for c in range(CERTIFICATES_PER_ZONE)]
            for c, cert_id in enumerate(cert_ids):
                out.append(f'[[zones.certificates]]\nid = "{cert_id}"\n'
                           f'common_name = "origin-pull-{c}.{name}"\n'
                           f'not_after = "{30 + (zone * 7 + c * 13) % 300}d"\n')
            for index in range(HOSTNAMES_PER_ZONE):
                out.append(f'[[zones.hostnames]]\nname = "{self.hostname(zone, index)}"\n'
                           f'cert_id = "{cert_ids[index % len(cert_ids)]}"\n')
        path = os.path.join(self.work, "scenario.toml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("".join(out))
        return path

    def write_config(self, name, port):
        state = os.path.join(self.work, f"state-{name}")
        out = [f'''[cloudflare]
api_base_url = "{self.sim_url}/client/v4"
api_token = "{TOKEN}"
max_concurrency = {CONCURRENCY}
requests_per_5m = {self.requests_per_5m}
rate_limit_block = "{RATE_LIMIT_BLOCK_SECONDS}s"
request_timeout = "5s"
verify_token = false

[schedule]
cron = "{CRON}"
jitter = "0s"

[server]
listen = "127.0.0.1:{port}"

[state]
dir = "{state}"

[log]
level = "warn"
''']
        for zone in range(self.zones):
            names = ", ".join(f'"{self.hostname(zone, i)}"' for i in range(HOSTNAMES_PER_ZONE))
            out.append(f'\n[[zones]]\nid = "{self.zone_id(zone)}"\nname = "zone-{zone}.example"\n'
                       f"hostnames = [{names}]\nzone_level = false\n")
        path = os.path.join(self.work, f"exporter-{name}.toml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("".join(out))
        subprocess.run([self.binary, "validate-config", path], check=True,
                       stdout=subprocess.DEVNULL)
        return path

    def start_exporter(self, name, port):
        config = self.write_config(name, port)
        process, log_path = self.start([self.binary, "run", "--config", config],
                                       f"exporter-{name}.log")
        wait_for_200(f"http://127.0.0.1:{port}/readyz", 300, process, log_path)
        return process, log_path

    # -- simulator helpers -----------------------------------------------------------------

    def sim(self, method, path, body=None):
        status, data = call(method, f"{self.sim_url}/__sim/{path}", body)
        if status >= 300:
            raise RuntimeError(f"{method} /__sim/{path}: HTTP {status}: {data[:200]!r}")
        return json.loads(data) if data.strip() else None

    def calibrate(self):
        """Wall time minus the simulator's `at_ms` clock: one counted API request (token_verify,
        which the exporters never send: verify_token is off) at a known time."""
        sent = time.time()
        call("GET", f"{self.sim_url}/client/v4/user/tokens/verify")
        log_records = self.sim("GET", "stats?log=1").get("request_log", [])
        mine = [r for r in log_records if r["endpoint"] == "token_verify"]
        self.sim_offset = sent - mine[-1]["at_ms"] / 1000

    def sim_time(self, wall):
        return (wall - self.sim_offset) * 1000

    def snapshot(self, port):
        return get_json(f"http://127.0.0.1:{port}/api/v1/snapshot", timeout=60)

    def metrics(self, port):
        return metric_values(f"http://127.0.0.1:{port}/metrics", [
            "cloudflare_aop_refresh_sweep_seconds",
            "cloudflare_aop_rate_limit_remaining",
            "cloudflare_aop_rate_limit_quota",
            "cloudflare_aop_rate_limit_pauses_total",
        ])

    # -- the run ---------------------------------------------------------------------------

    def run(self):
        self.sim_port, self.port_one, self.port_two = free_ports(3)
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        scenario = self.write_scenario()
        sim, sim_log = self.start([self.binary, "simulate", "--listen",
                                   f"127.0.0.1:{self.sim_port}", "--scenario", scenario],
                                  "simulate.log")
        wait_for_200(f"{self.sim_url}/__sim/stats", 120, sim, sim_log)
        log(f"{self.size_name}: simulator up; N = {self.full_cost}, requests_per_5m = "
            f"{self.requests_per_5m}, limit {self.quota_alone}/{SIM_WINDOW_SECONDS}s")
        self.calibrate()
        self.started = time.time()
        self.exporter_one, self.exporter_one_log = self.start_exporter("one", self.port_one)
        self.phase_freshness()
        self.phase_forced_429()
        self.phase_other_client()
        self.phase_two_exporters()
        for process in self.processes:
            if process.poll() is not None and process.returncode not in (0, -15):
                self.results.setdefault("crashed", []).append(process.args[1])
        return self.results

    def phase_freshness(self):
        port = self.port_one
        # The first full sweep: every zone has refreshed every object once.
        while True:
            snap = self.snapshot(port)
            if all(z.get("oldest_refresh") for z in snap["zones"].values()):
                break
            if time.time() - self.started > 20 * TARGET_SWEEP_SECONDS:
                raise RuntimeError("the first full sweep did not finish")
            time.sleep(1)
        first_sweep = time.time() - self.started
        sweep = self.metrics(port)["cloudflare_aop_refresh_sweep_seconds"][0]
        log(f"{self.size_name}: first sweep done after {first_sweep:.1f}s; N/B = {sweep:.1f}s")
        stats_before = self.sim("GET", "stats")
        window_start = time.time()
        window = self.sweeps * sweep
        # Injections at random times over the window (the last ones with a fifth of a sweep
        # to go, so the window's end does not cut them short).
        times = sorted(self.random.uniform(0, window - 0.2 * sweep)
                       for _ in range(self.injection_count))
        picks = self.random.sample(range(self.zones * HOSTNAMES_PER_ZONE), self.injection_count)
        timed_out_at = self.random.randrange(self.injection_count)
        schedule = []
        for index, (offset, pick) in enumerate(zip(times, picks)):
            zone, host = divmod(pick, HOSTNAMES_PER_ZONE)
            status = "deployment_timed_out" if index == timed_out_at else "deleted"
            schedule.append({"at": window_start + offset, "zone": zone,
                             "hostname": self.hostname(zone, host), "status": status,
                             "kind": "cold"})
        pending, done, oldest_samples, sample_costs = [], [], [], []
        deadline = window_start + window + 1.5 * sweep
        while time.time() < deadline and (schedule or pending or
                                          time.time() < window_start + window):
            now = time.time()
            while schedule and schedule[0]["at"] <= now:
                injection = schedule.pop(0)
                injection["injected"] = time.time()
                self.sim("POST", f"zones/{self.zone_id(injection['zone'])}/hostnames/"
                                 f"{injection['hostname']}/status",
                         {"status": injection["status"]})
                pending.append(injection)
            sampled = time.time()
            snap = self.snapshot(port)
            sample_costs.append(time.time() - sampled)
            oldest = [epoch(z["oldest_refresh"]) for z in snap["zones"].values()
                      if z.get("oldest_refresh")]
            if sampled <= window_start + window and oldest:
                oldest_samples.append((sampled, sampled - min(oldest)))
            for injection in list(pending):
                zone = snap["zones"].get(self.zone_id(injection["zone"]), {})
                state = zone.get("hostnames", {}).get(injection["hostname"], {})
                refreshed = state.get("refreshed_at")
                if state.get("status") == injection["status"] and refreshed \
                        and epoch(refreshed) >= injection["injected"]:
                    injection["latency"] = epoch(refreshed) - injection["injected"]
                    pending.remove(injection)
                    done.append(injection)
                    if injection["status"] == "deployment_timed_out":
                        # Seen in a non-steady state: now it is hot. Put it back right away.
                        schedule.insert(0, {"at": time.time(), "zone": injection["zone"],
                                            "hostname": injection["hostname"],
                                            "status": "active", "kind": "hot"})
            time.sleep(max(0.0, 1.0 - (time.time() - sampled)))
        window_end = min(time.time(), window_start + window)
        stats_after = self.sim("GET", "stats?log=1")
        cold = [i for i in done if i["kind"] == "cold"]
        hot = [i for i in done if i["kind"] == "hot"]
        missed = [i for i in pending + schedule if i["kind"] == "cold"]
        latencies = [i["latency"] for i in cold]
        # Per object, the longest time between two fetches that ends in the window, or
        # from its last fetch to the window's end: the data's age just before each refresh.
        fetches = {}
        for record in stats_after.get("request_log", []):
            if record["endpoint"] == "token_verify" or record["status_code"] not in (200, 404):
                continue
            fetches.setdefault(record["path"], []).append(record["at_ms"])
        start_ms, end_ms = self.sim_time(window_start), self.sim_time(window_end)
        # The steady state, past the simulator window that holds the start-up's requests:
        # refresh gaps that begin a sweep after the first one ended, oldest-data samples from
        # two sweeps after it (their data was fetched in the steady state).
        steady_wall = window_start + sweep
        steady_ms = self.sim_time(steady_wall)

        def longest_gaps(from_ms, begin_after=False):
            gaps = []
            for path, arrivals in fetches.items():
                longest = 0.0
                for earlier, later in zip(arrivals, arrivals[1:]):
                    if (earlier if begin_after else later) >= from_ms and later <= end_ms:
                        longest = max(longest, later - earlier)
                before_end = [at for at in arrivals if at <= end_ms]
                if before_end:
                    longest = max(longest, end_ms - before_end[-1])
                gaps.append((longest / 1000, path))
            return sorted(gaps, reverse=True)

        for arrivals in fetches.values():
            arrivals.sort()
        gaps = longest_gaps(start_ms)
        steady_gaps = longest_gaps(steady_ms, begin_after=True)
        steady_oldest = [age for at, age in oldest_samples if at >= steady_wall + sweep]
        # Requests per tick from the exporter's start: the start-up tick against a tick's budget.
        started_ms = self.sim_time(self.started)
        per_tick = {}
        for record in stats_after.get("request_log", []):
            if record["endpoint"] != "token_verify" and record["at_ms"] >= started_ms:
                bucket = int((record["at_ms"] - started_ms) // (TICK_SECONDS * 1000))
                per_tick[bucket] = per_tick.get(bucket, 0) + 1
        tick_budget = self.requests_per_5m * TICK_SECONDS // CF_WINDOW_SECONDS
        window_minutes = (window_end - window_start) / 60
        exporter_requests = sum(
            1 for record in stats_after.get("request_log", [])
            if record["endpoint"] != "token_verify" and start_ms <= record["at_ms"] <= end_ms)
        steady_requests = sum(
            1 for record in stats_after.get("request_log", [])
            if record["endpoint"] != "token_verify" and steady_ms <= record["at_ms"] <= end_ms)
        steady_minutes = max(window_end - steady_wall, 1e-3) / 60
        steady_latencies = [i["latency"] for i in cold if i["injected"] >= steady_wall]
        self.results["freshness"] = {
            "sweep": sweep, "first_sweep": first_sweep, "window": window_end - window_start,
            "injections": len(cold) + len(missed), "detected": len(cold),
            "missed": [(i["hostname"], i["status"]) for i in missed],
            "latency_p50": percentile(latencies, 0.5) if latencies else None,
            "latency_max": max(latencies) if latencies else None,
            "latency_mean": statistics.mean(latencies) if latencies else None,
            "timed_out": [i["latency"] for i in cold if i["status"] == "deployment_timed_out"],
            "changes": [{"hostname": i["hostname"], "status": i["status"], "kind": i["kind"],
                         "after_start": i["injected"] - self.started,
                         "latency": i.get("latency")} for i in done + pending],
            "hot": [i["latency"] for i in hot],
            "oldest_max": max(age for _, age in oldest_samples) if oldest_samples else None,
            "oldest_max_steady": max(steady_oldest) if steady_oldest else None,
            "gap_max_steady": steady_gaps[0][0] if steady_gaps else None,
            "steady_from": steady_wall - self.started,
            "tick_budget": tick_budget,
            "requests_first_ticks": [per_tick.get(i, 0) for i in range(20)],
            "oldest_samples": len(oldest_samples),
            "sample_cost_median": statistics.median(sample_costs) if sample_costs else None,
            "objects": len(gaps), "gap_max": gaps[0][0] if gaps else None,
            "gap_max_path": gaps[0][1] if gaps else None,
            "gap_p99": percentile([g for g, _ in gaps], 0.99) if gaps else None,
            "requests_per_minute": exporter_requests / window_minutes,
            "requests_per_minute_steady": steady_requests / steady_minutes,
            "steady_injections": len(steady_latencies),
            "latency_max_steady": max(steady_latencies) if steady_latencies else None,
            "latency_p50_steady": percentile(steady_latencies, 0.5) if steady_latencies else None,
            "budget_per_minute": self.requests_per_5m / 5,
            "rate_limited": stats_after["rate_limited"] - stats_before["rate_limited"],
        }
        log(f"{self.size_name}: freshness {json.dumps(self.results['freshness'])}")

    def phase_forced_429(self):
        port = self.port_one
        pauses_before = sum(self.metrics(port)["cloudflare_aop_rate_limit_pauses_total"])
        self.sim("DELETE", "stats")
        self.sim("POST", "faults", {"fault": {"kind": "rate_limited", "retry_after_secs": 0},
                                    "times": 1})
        time.sleep(RATE_LIMIT_BLOCK_SECONDS + 2 * TICK_SECONDS + 2)
        records = self.sim("GET", "stats?log=1").get("request_log", [])
        self.sim("DELETE", "faults")
        refused = [r for r in records if r["status_code"] == 429]
        result = {"block": RATE_LIMIT_BLOCK_SECONDS, "forced": len(refused)}
        if refused:
            at = refused[0]["at_ms"]
            block_ms = RATE_LIMIT_BLOCK_SECONDS * 1000
            after = [r["at_ms"] - at for r in records if r["at_ms"] > at]
            # Requests already on the wire when the 429 was answered arrive within a few ms.
            result["in_flight_at_429"] = sum(1 for d in after if d <= 50)
            result["during_block"] = sum(1 for d in after if 50 < d < block_ms)
            later = [d for d in after if d > 50]
            result["first_after_ms"] = min(later) if later else None
            result["total_429"] = len(refused)
        result["pauses"] = sum(self.metrics(port)["cloudflare_aop_rate_limit_pauses_total"]) \
            - pauses_before
        self.results["forced_429"] = result
        log(f"{self.size_name}: forced 429 {json.dumps(result)}")

    def into_reserve(self, records, since_ms):
        """Exporter requests from `since_ms` on that arrived while the window had no more than
        the reserve (20 % of the limit) left for other clients, and the largest bunch of them
        within 100 ms. Earlier records only fill the window."""
        reserve = self.quota_binding // 5
        window_ms = SIM_WINDOW_SECONDS * 1000
        admitted, head = [], 0
        count, largest, bunch_start, bunch = 0, 0, None, 0
        for record in sorted(records, key=lambda r: r["at_ms"]):
            at = record["at_ms"]
            while head < len(admitted) and at - admitted[head] >= window_ms:
                head += 1
            remaining = self.quota_binding - (len(admitted) - head)
            if at >= since_ms and record["endpoint"] != "token_verify" and remaining <= reserve:
                count += 1
                if bunch_start is None or at - bunch_start > 100:
                    bunch_start, bunch = at, 0
                bunch += 1
                largest = max(largest, bunch)
            if record["status_code"] != 429:
                admitted.append(at)
        return count, largest

    def window_peak(self, records, since_ms):
        """The most admitted requests in any simulator window ending from `since_ms` on."""
        arrivals = sorted(r["at_ms"] for r in records if r["status_code"] != 429)
        best, first = 0, 0
        for last, at in enumerate(arrivals):
            while at - arrivals[first] >= SIM_WINDOW_SECONDS * 1000:
                first += 1
            if at >= since_ms:
                best = max(best, last + 1 - first)
        return best

    def shared_phase(self, since, seconds):
        """What the simulator served from wall time `since` on, split by client. The log also
        holds the previous phase, whose requests are still in the simulator's window."""
        since_ms = self.sim_time(since)
        everything = self.sim("GET", "stats?log=1").get("request_log", [])
        records = [r for r in everything if r["at_ms"] >= since_ms]
        into_reserve, bunch = self.into_reserve(everything, since_ms)
        other = [r for r in records if r["endpoint"] == "token_verify"]
        exporter = [r for r in records if r["endpoint"] != "token_verify"]
        minutes = seconds / 60
        return {
            "seconds": seconds, "quota": self.quota_binding, "window": SIM_WINDOW_SECONDS,
            "rate_limited": sum(1 for r in records if r["status_code"] == 429),
            "exporter_429": sum(1 for r in exporter if r["status_code"] == 429),
            "other_429": sum(1 for r in other if r["status_code"] == 429),
            "first_429_after": next((r["at_ms"] / 1000 + self.sim_offset - since
                                     for r in sorted(records, key=lambda r: r["at_ms"])
                                     if r["status_code"] == 429), None),
            "exporter_per_minute": len(exporter) / minutes,
            "other_per_minute": len(other) / minutes,
            "window_peak": self.window_peak(everything, since_ms),
            "exporter_into_reserve": into_reserve, "largest_bunch_into_reserve": bunch,
        }

    def phase_other_client(self):
        self.sim("POST", "settings", {"rate_limit": {
            "max_requests": self.quota_binding, "window": f"{SIM_WINDOW_SECONDS}s",
            "retry_after": f"{SIM_WINDOW_SECONDS}s"}})
        self.sim("DELETE", "stats")
        seconds = self.phase_seconds
        rate = 0.4 * self.quota_binding / SIM_WINDOW_SECONDS
        started = time.time()
        other = subprocess.run(
            [sys.executable, __file__, "--other-client", f"{self.sim_url}/client/v4",
             str(rate), str(seconds)],
            check=True, capture_output=True, text=True)
        elapsed = time.time() - started
        result = self.shared_phase(started, elapsed)
        result["other_client"] = json.loads(other.stdout)
        result["other_rate_per_minute"] = rate * 60
        metrics = self.metrics(self.port_one)
        result["learned_quota"] = metrics["cloudflare_aop_rate_limit_quota"]
        result["sweep"] = metrics["cloudflare_aop_refresh_sweep_seconds"]
        self.results["other_client"] = result
        log(f"{self.size_name}: other client {json.dumps(result)}")

    def phase_two_exporters(self):
        # No stats reset: phase B's requests still fill the simulator's window.
        started = time.time()
        self.start_exporter("two", self.port_two)
        time.sleep(max(0.0, self.phase_seconds - (time.time() - started)))
        result = self.shared_phase(started, time.time() - started)
        result["both_up"] = all(p.poll() is None for p in self.processes)
        self.results["two_exporters"] = result
        log(f"{self.size_name}: two exporters {json.dumps(result)}")


# -- the report ------------------------------------------------------------------------------

def ratio(value, sweep):
    return "n/a" if value is None else f"{value:.1f} s = {value / sweep:.2f} × N/B"


def report(results, started_at, revision, commands):
    out = []
    w = out.append
    w(f"{SECTION_TITLE}\n")
    w(f"Generated by `scripts/bench_refresh.py` (run by `scripts/bench`, or alone with "
      f"`scripts/bench --refresh-only`) on {started_at}, revision {revision}.\n")
    w("Time-compressed, loopback only, the release binary's `simulate` and `run`. The simulator "
      f"enforces one sliding rate-limit window of {SIM_WINDOW_SECONDS} s for the token "
      f"(Cloudflare's {CF_WINDOW_SECONDS} s, ten times shorter; the exporter scales the quota "
      "it learns from `Ratelimit-Policy` to its 5-minute budget window) and answers with "
      "`Ratelimit`/`Ratelimit-Policy`; ticks come every "
      f"{TICK_SECONDS} s (`cron = \"{CRON}\"`, no jitter); `requests_per_5m` is set so that a "
      f"full refresh at the budget (N/B, `cloudflare_aop_refresh_sweep_seconds`) takes about "
      f"{TARGET_SWEEP_SECONDS} s. {HOSTNAMES_PER_ZONE} hostnames and {CERTIFICATES_PER_ZONE} "
      f"certificates per zone, `zone_level = false`, `max_concurrency = {CONCURRENCY}`, "
      f"`rate_limit_block = \"{RATE_LIMIT_BLOCK_SECONDS}s\"`. One run per size, phases in this "
      "order:\n")
    w("- **A, freshness** (exporter alone; the simulator's limit is twice its budget, as "
      "Cloudflare's 1,200 is twice the default 600): after the first full sweep, hostname "
      "association statuses are changed in the simulator at random times "
      "(`POST /__sim/zones/{zone}/hostnames/{hostname}/status`; `active` → `deleted`, one "
      "`active` → `deployment_timed_out`); a change counts as visible at the `refreshed_at` of "
      "the first snapshot entry (`/api/v1/snapshot`, polled every second) that shows it, since "
      "answers are published as they arrive. Once the timed-out one is seen it is set back to "
      "`active` (now a hot object). Oldest data: now − min over zones of `oldest_refresh` "
      "(the `cloudflare_aop_zone_oldest_refresh_timestamp_seconds` value), sampled every "
      "second. Longest refresh gap: per object (list or hostname) from the simulator's request "
      "log, the longest time between two fetches (or from the last fetch to the window's end).")
    w("- **D, forced 429**: one `rate_limited` fault with `retry_after_secs: 0` "
      "(`POST /__sim/faults`); requests arriving at the simulator during the block that "
      "follows (the exporter's `rate_limit_block`), not counting those already on the wire "
      "when the 429 was answered (arriving within 50 ms of it).")
    w("- **B, another client** of the same token (a Python loop on `/user/tokens/verify`) "
      "spends 40 % of a limit lowered to the exporter's own budget, so that without its "
      "reserve the exporter (at 80 % after learning the quota) would overrun: 429s served.")
    w("- **C, two exporters** with the same token and zones (the second started fresh), same "
      "limit, no other client: 429s served.\n")
    w("```sh")
    for command in commands:
        w(command)
    w("```\n")

    summary = []
    for r in results:
        f, d, b, c = (r.get(k, {}) for k in ("freshness", "forced_429", "other_client",
                                             "two_exporters"))
        sweep = f.get("sweep") or 1
        label = f"{r['zones']:,} zones / {r['hostnames']:,} hostnames"
        for key, what in (("gap_max", "every object refreshed within 1.1 × N/B"),
                          ("oldest_max", "oldest data ≤ 1.1 × N/B at any sampled moment")):
            if f.get(key) is not None:
                summary.append((f"{what}, from the first full sweep on ({label})",
                                ratio(f[key], sweep), f[key] <= 1.1 * sweep))
            if f.get(key + "_steady") is not None:
                summary.append((f"{what}, steady state ({label})",
                                ratio(f[key + "_steady"], sweep), f[key + "_steady"] <= 1.1 * sweep))
        if f:
            ok = not f["missed"] and f["latency_max"] is not None \
                and f["latency_max"] <= 1.1 * sweep
            measured = ratio(f["latency_max"], sweep) + (
                f", {len(f['missed'])} of {f['injections']} not seen" if f["missed"] else "")
            summary.append((f"status change visible within 1.1 × N/B, max of "
                            f"{f['injections']} ({label})", measured, ok))
            if f.get("latency_max_steady") is not None:
                summary.append((f"status change visible within 1.1 × N/B, max of the "
                                f"{f['steady_injections']} in the steady state ({label})",
                                ratio(f["latency_max_steady"], sweep),
                                f["latency_max_steady"] <= 1.1 * sweep))
            if f["hot"]:
                # The first tick after the change fetches it: at most a tick's period plus
                # the time into that tick its request takes.
                summary.append((f"hot object's change visible at the next tick, ≤ 1.5 ticks "
                                f"({label})", f"{max(f['hot']):.1f} s (tick {TICK_SECONDS} s)",
                                max(f["hot"]) <= 1.5 * TICK_SECONDS))
            spent = f.get("requests_per_minute_steady", f["requests_per_minute"])
            summary.append((f"requests ≤ budget, steady state ({label})",
                            f"{spent:,.0f} / {f['budget_per_minute']:,.0f} per minute",
                            spent <= f["budget_per_minute"]))
        if d.get("forced"):
            summary.append((f"nothing sent during the block after a forced 429 ({label})",
                            f"{d['during_block']} requests", d["during_block"] == 0))
        if b:
            summary.append((f"0 429s beside another client at 40 % of the limit ({label})",
                            f"{b['rate_limited']}", b["rate_limited"] == 0))
        if c:
            summary.append((f"0 429s with two exporters on one token ({label})",
                            f"{c['rate_limited']}", c["rate_limited"] == 0))
    out += summary_lines(summary, "targets met", "target")

    for r in results:
        f, d, b, c = (r.get(k, {}) for k in ("freshness", "forced_429", "other_client",
                                             "two_exporters"))
        w(f"### {r['zones']:,} zones / {r['hostnames']:,} hostnames\n")
        w("| measurement | value |")
        w("|---|---|")
        w(f"| requests of a full refresh N (lists + hostnames) | {r['full_cost']:,} |")
        w(f"| `requests_per_5m` / simulator limit in A and D / in B and C | "
          f"{r['requests_per_5m']:,} / {r['quota_alone']:,} per {SIM_WINDOW_SECONDS} s / "
          f"{r['quota_binding']:,} per {SIM_WINDOW_SECONDS} s |")
        if f:
            sweep = f["sweep"]
            w(f"| N/B (`cloudflare_aop_refresh_sweep_seconds`) | {sweep:.1f} s |")
            w(f"| first full sweep done after start | {f['first_sweep']:.1f} s |")
            w(f"| A: measurement window | {f['window']:.0f} s ({f['window'] / sweep:.1f} × N/B) |")
            w(f"| A: status changes injected / seen | {f['injections']} / {f['detected']} |")
            if f["latency_p50"] is not None:
                w(f"| A: time to visible, p50 / mean / max | {ratio(f['latency_p50'], sweep)} / "
                  f"{ratio(f['latency_mean'], sweep)} / {ratio(f['latency_max'], sweep)} |")
            if f["timed_out"]:
                w(f"| A: of which `active` → `deployment_timed_out` | "
                  f"{ratio(f['timed_out'][0], sweep)} |")
            if f["hot"]:
                w(f"| A: back to `active` while hot (re-checked every tick) | "
                  f"{f['hot'][0]:.1f} s |")
            if f["missed"]:
                w(f"| A: not seen by the end | {', '.join(h + ' → ' + s for h, s in f['missed'])} |")
            if f["oldest_max"] is not None:
                w(f"| A: oldest data, max over {f['oldest_samples']} samples | "
                  f"{ratio(f['oldest_max'], sweep)} |")
            if f["gap_max"] is not None:
                w(f"| A: longest refresh gap over {f['objects']:,} objects, max / p99 | "
                  f"{ratio(f['gap_max'], sweep)} / {ratio(f['gap_p99'], sweep)} |")
            if f.get("oldest_max_steady") is not None and f.get("gap_max_steady") is not None:
                w(f"| A: steady state (gaps beginning ≥ {f['steady_from']:.0f} s after start, "
                  f"samples ≥ {f['steady_from'] + sweep:.0f} s): oldest data / longest refresh gap | "
                  f"{ratio(f['oldest_max_steady'], sweep)} / {ratio(f['gap_max_steady'], sweep)} |")
            if f.get("latency_max_steady") is not None:
                w(f"| A: steady state: time to visible of the {f['steady_injections']} changes "
                  f"injected ≥ {f['steady_from']:.0f} s after start, p50 / max | "
                  f"{ratio(f['latency_p50_steady'], sweep)} / "
                  f"{ratio(f['latency_max_steady'], sweep)} |")
            if f.get("requests_per_minute_steady") is not None:
                w(f"| A: steady state: requests per minute / budget | "
                  f"{f['requests_per_minute_steady']:,.0f} / {f['budget_per_minute']:,.0f} "
                  f"({100 * f['requests_per_minute_steady'] / f['budget_per_minute']:.0f} %) |")
            ticks = f.get("requests_first_ticks") or []
            if ticks:
                w(f"| A: requests in each {TICK_SECONDS} s from the exporter's start (a tick's "
                  f"budget: {f['tick_budget']:,}) | {', '.join(f'{n:,}' for n in ticks)} |")
            w(f"| A: requests per minute over the whole window / budget (`requests_per_5m` / 5) | "
              f"{f['requests_per_minute']:,.0f} / {f['budget_per_minute']:,.0f} "
              f"({100 * f['requests_per_minute'] / f['budget_per_minute']:.0f} %) |")
            w(f"| A: 429s served | {f['rate_limited']} |")
            w(f"| A: snapshot sample, median time (the sampler's own cost) | "
              f"{1000 * f['sample_cost_median']:.0f} ms |")
        if d:
            if d.get("forced"):
                first = d.get("first_after_ms")
                w(f"| D: requests during the {d['block']} s block after the forced 429 "
                  f"(on the wire at the 429) | {d['during_block']} ({d['in_flight_at_429']}) |")
                w(f"| D: first request after the 429 | "
                  f"{'none' if first is None else f'{first / 1000:.1f} s later'} |")
                w(f"| D: `cloudflare_aop_rate_limit_pauses_total` increase | {d['pauses']:.0f} |")
            else:
                w("| D: forced 429 | the fault was not hit |")
        for key, name in (("other_client", "B"), ("two_exporters", "C")):
            p = r.get(key)
            if not p:
                continue
            first = p.get("first_429_after")
            w(f"| {name}: 429s served (exporters / other client) | {p['rate_limited']} "
              f"({p['exporter_429']} / {p['other_429']}) over {p['seconds']:.0f} s"
              + ("" if first is None else f"; the first {first:.1f} s into the phase") + " |")
            w(f"| {name}: requests per minute, exporters / other client | "
              f"{p['exporter_per_minute']:,.0f} / {p['other_per_minute']:,.0f} |")
            w(f"| {name}: most requests admitted in any {p['window']} s window / limit | "
              f"{p['window_peak']:,} / {p['quota']:,} |")
            if "exporter_into_reserve" in p:
                w(f"| {name}: exporter requests sent while ≤ 20 % of the limit was left "
                  f"(largest bunch within 100 ms) | {p['exporter_into_reserve']:,} "
                  f"({p['largest_bunch_into_reserve']}) |")
        if b.get("learned_quota"):
            w(f"| B: `cloudflare_aop_rate_limit_quota` learned | "
              f"{', '.join(f'{q:,.0f}' for q in b['learned_quota'])} |")
        if r.get("crashed"):
            w(f"| processes that exited with an error | {', '.join(r['crashed'])} |")
        w("")
        notes = []
        ticks = f.get("requests_first_ticks") or []
        if ticks and ticks[0] > 2 * f["tick_budget"]:
            notes.append(
                f"The first {TICK_SECONDS} s after start carried {ticks[0]:,} requests against "
                f"a tick's budget of {f['tick_budget']:,}; the simulator's window then holds "
                "them for a whole window, the reserve stops the ticks until they leave it "
                f"({', '.join(f'{n:,}' for n in ticks[8:16])} in the 8th to 15th "
                f"{TICK_SECONDS} s), and the objects fetched at start wait longer than N/B: "
                "that start-up, not the steady state, is what the rows measured from the "
                "first full sweep show.")
        bunches = [p.get("largest_bunch_into_reserve", 0) for p in (b, c) if p]
        if bunches and max(bunches) >= CONCURRENCY:
            notes.append(
                f"While the window was down to the reserve the exporters still sent bunches of "
                f"up to {max(bunches)} requests within 100 ms (`max_concurrency` is "
                f"{CONCURRENCY}).")
        for note in notes:
            w(f"_{note}_\n")
    return "\n".join(out) + "\n"


def write_section(path, section):
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    start = text.find(f"\n{SECTION_TITLE}\n")
    if start >= 0:
        after = text.find("\n## ", start + 1)
        rest = text[after:] if after >= 0 else ""
        text = text[:start] + "\n" + section + rest
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def main():
    global CONCURRENCY  # the exporters' max_concurrency, from --concurrency
    if len(sys.argv) > 1 and sys.argv[1] == "--other-client":
        other_client(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default="target/release/cloudflare-aop-exporter")
    parser.add_argument("--sizes", default="mid,large",
                        help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--sweeps", type=float, default=4.0,
                        help="length of the freshness window, in N/B")
    parser.add_argument("--injections", type=int, default=20)
    parser.add_argument("--phase-seconds", type=float, default=75.0,
                        help="length of phases B and C")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY,
                        help="the exporters' max_concurrency")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    CONCURRENCY = args.concurrency
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        parser.error(f"unknown size {unknown}; choose from {', '.join(SIZES)}")
    if args.injections < 2:
        parser.error("--injections must be at least 2")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip() or "unknown"
    if subprocess.run(["git", "status", "--porcelain"], capture_output=True,
                      text=True).stdout.strip():
        revision += " + uncommitted changes"
    results = []
    for index, size in enumerate(sizes):
        work = tempfile.mkdtemp(prefix=f"cf-aop-bench-refresh-{size}.")
        run = Run(args.binary, size, SIZES[size], work, args.seed + index, args.sweeps,
                  args.injections, args.phase_seconds)
        try:
            results.append(run.run())
        except Exception as error:  # report what was measured, keep the logs
            log(f"{size}: failed: {error}; logs kept in {work}")
            run.results["error"] = str(error)
            results.append(run.results)
            work = None
        finally:
            run.stop_all()
        if work:
            shutil.rmtree(work, ignore_errors=True)
    commands = [f"scripts/bench_refresh.py --binary {args.binary} --sizes {args.sizes} "
                f"--sweeps {args.sweeps:g} --injections {args.injections} "
                f"--phase-seconds {args.phase_seconds:g} --concurrency {args.concurrency} "
                f"--seed {args.seed}"]
    section = report(results, started_at, revision, commands)
    for r in results:
        if r.get("error"):
            section += f"\n_{r['size']}: the run failed: {r['error'].splitlines()[0]}_\n"
    write_section(args.output, section)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    print(section)
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
