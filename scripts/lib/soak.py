#!/usr/bin/env python3
"""Soak: the release binary polling `simulate` every 2 s while faults toggle; see scripts/soak.

Usage: soak.py OUT MINUTES REVISION (OUT holds the binary to run, copied there by scripts/soak).
"""
import ctypes, json, os, re, signal, statistics, subprocess, sys, threading
import time
from datetime import datetime, timezone

from free_ports import free_ports
from processes import call, serve_receiver, stop_process
from scale_config import SCALE_TOKEN, served_zones, zones_toml

out, minutes, revision = sys.argv[1], float(sys.argv[2]), sys.argv[3]
binary = os.path.abspath(f"{out}/cloudflare-aop-exporter")
TOGGLE = 30          # seconds per fault window
SAMPLE = 30          # seconds between resource samples
CRON = "*/2 * * * * *"
ZONES, CERTS, HOSTS = 20, 2, 10
started = datetime.now(timezone.utc)

class Stop(Exception):
    pass

def on_signal(signum, _frame):
    raise Stop(f"signal {signum}")

signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)

sim_port, exp_port, hook_port = free_ports(3)
SIM = f"http://127.0.0.1:{sim_port}"
EXP = f"http://127.0.0.1:{exp_port}"

# --- the account (the simulator's own `Scenario::scale`) and the exporter's config -------------
config = [f'''[cloudflare]
api_base_url = "{SIM}/client/v4"
api_token = "{SCALE_TOKEN}"
max_concurrency = 8
requests_per_5m = 10000000
verify_token = true
token_verify_interval = "1m"
request_timeout = "1s"
max_retries = 1
retry_initial_backoff = "50ms"
retry_max_backoff = "200ms"
max_retry_after = "2s"
max_response_bytes = 1048576

[schedule]
cron = "{CRON}"
jitter = "0s"

[server]
listen = "127.0.0.1:{exp_port}"

[state]
dir = "{os.path.abspath(out)}/state"

[log]
level = "warn"

[alerts]
pending_timeout = "1m"
repeat_interval = "5m"

[[alerts.sinks]]
type = "webhook"
name = "soak-hook"
url = "http://127.0.0.1:{hook_port}/hook"
hmac_secret = "soak-hmac"
timeout = "2s"
''']


def write_config():
    """The exporter's config for what the simulator serves; the zone and certificate ids."""
    zones = served_zones(sim_port)
    open(f"{out}/exporter.toml", "w").write("".join(config) + zones_toml(zones))
    return ([zone["id"] for zone in zones],
            [[certificate["id"] for certificate in zone["certificates"]] for zone in zones])

# --- children: started here, killed by pid; PR_SET_PDEATHSIG so they die with this script ----
libc = ctypes.CDLL(None, use_errno=True)
def die_with_parent():
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

children = {}
def start(name, args):
    log = open(f"{out}/{name}.log", "ab")
    children[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    return children[name]

def stop(name):
    stop_process(children.pop(name, None), signal.SIGTERM, 15)

def wait_200(url, limit):
    deadline = time.time() + limit
    while time.time() < deadline:
        if call("GET", url, timeout=2)[0] == 200:
            return True
        time.sleep(0.2)
    return False

def start_sim():
    start("simulate", [binary, "simulate", "--listen", f"127.0.0.1:{sim_port}",
                       "--scale-zones", str(ZONES), "--scale-certificates-per-zone", str(CERTS),
                       "--scale-hostnames-per-zone", str(HOSTS),
                       "--scale-requests-per-5m", "100000000"])
    if not wait_200(f"{SIM}/__sim/stats", 60):
        raise SystemExit("simulator did not start")

# --- webhook receiver: 500 while `failing`, else 204 ----------------------------------------
hook = {"failing": False, "accepted": 0, "refused": 0}
def on_delivery(_raw):
    if hook["failing"]:
        hook["refused"] += 1
        return 500
    hook["accepted"] += 1
    return 204
receiver = serve_receiver(hook_port, on_delivery)

# --- the fault schedule: fault window, healthy window, next fault ... ------------------------
FIRST_ZONE = "the first zone"  # a rule's zone_id: replaced by the served first zone's id
FAULTS = [
    ("latency 300ms", [{"fault": {"kind": "latency", "ms": 300}}]),
    ("server_error 503", [{"fault": {"kind": "server_error", "status": 503}}]),
    ("rate_limited", [{"fault": {"kind": "rate_limited", "retry_after_secs": 1}}]),
    ("malformed_json", [{"fault": {"kind": "malformed_json"}}]),
    ("success_false", [{"fault": {"kind": "success_false", "code": 10000, "message": "soak"}}]),
    ("truncated", [{"fault": {"kind": "truncated"}}]),
    ("hang (zone 0) + webhook 500", [{"fault": {"kind": "hang"}, "zone_id": FIRST_ZONE}]),
    ("huge_body 2 MiB", [{"fault": {"kind": "huge_body", "bytes": 2 * 1024 * 1024}}]),
    ("wrong_types", [{"fault": {"kind": "wrong_types"}}]),
    ("auth_failure", [{"fault": {"kind": "auth_failure"}}]),
    ("connection refused (simulator stopped)", "refused"),
]

scrapes = {"ok": 0, "bad": 0, "bad_detail": []}
def scraper(stop_event):
    while not stop_event.is_set():
        code, body = call("GET", f"{EXP}/metrics", timeout=10)
        if code == 200:
            scrapes["ok"] += 1
        else:
            scrapes["bad"] += 1
            if len(scrapes["bad_detail"]) < 20:
                scrapes["bad_detail"].append(f"{datetime.now(timezone.utc).isoformat()} {code} {body[:120]!r}")
        stop_event.wait(1)

def proc_sample(pid):
    status = open(f"/proc/{pid}/status").read()
    get = lambda key: int(re.search(rf"^{key}:\s+(\d+)", status, re.M).group(1))
    return get("VmRSS"), get("VmHWM"), get("Threads"), len(os.listdir(f"/proc/{pid}/fd"))

def metric_sum(body, name, label_filter=""):
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and label_filter in line and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total

samples = []
windows = []
error = None
stop_event = threading.Event()
t0 = time.time()
try:
    start_sim()
    zone_ids, cert_ids = write_config()
    exporter = start("exporter", [binary, "run", "--config", f"{out}/exporter.toml"])
    if not wait_200(f"{EXP}/readyz", 60):
        raise SystemExit("exporter not ready")
    threading.Thread(target=scraper, args=(stop_event,), daemon=True).start()
    deadline = t0 + minutes * 60
    next_sample = time.time()
    next_toggle = time.time() + TOGGLE
    window = 0
    current = "healthy (warm-up)"
    while time.time() < deadline:
        now = time.time()
        if exporter.poll() is not None:
            raise SystemExit(f"exporter exited with {exporter.returncode}")
        if now >= next_sample:
            rss, hwm, threads, fds = proc_sample(exporter.pid)
            code, body = call("GET", f"{EXP}/metrics", timeout=10)
            text = body.decode(errors="replace") if code == 200 else ""
            samples.append({
                "t": round(now - t0), "window": current, "rss_kib": rss, "hwm_kib": hwm,
                "threads": threads, "fds": fds, "metrics_code": code,
                "polls": metric_sum(text, "cloudflare_aop_polls_total"),
                "api_errors": metric_sum(text, "cloudflare_aop_api_errors_total"),
                "sent": metric_sum(text, "cloudflare_aop_notifications_total", 'outcome="sent"'),
                "failed": metric_sum(text, "cloudflare_aop_notifications_total", 'outcome="failed"'),
                "zones_ok": metric_sum(text, "cloudflare_aop_zone_poll_success"),
            })
            s = samples[-1]
            print(f"t={s['t']:>5}s rss={rss/1024:.1f}MiB hwm={hwm/1024:.1f}MiB fds={fds} threads={threads} "
                  f"polls={s['polls']:.0f} api_errors={s['api_errors']:.0f} zones_ok={s['zones_ok']:.0f}/{ZONES} "
                  f"sent={s['sent']:.0f} failed={s['failed']:.0f} scrapes ok/bad={scrapes['ok']}/{scrapes['bad']} "
                  f"[{current}]", flush=True)
            next_sample += SAMPLE
        if now >= next_toggle:
            next_toggle += TOGGLE
            # Leave the previous window: clear faults, restart the simulator, heal the receiver.
            if "simulate" not in children or children["simulate"].poll() is not None:
                children.pop("simulate", None)
                start_sim()
            call("DELETE", f"{SIM}/__sim/faults")
            hook["failing"] = False
            window += 1
            if window % 2 == 1:
                name, rules = FAULTS[(window // 2) % len(FAULTS)]
                current = name
                if rules == "refused":
                    stop("simulate")
                else:
                    for rule in rules:
                        if rule.get("zone_id") == FIRST_ZONE:
                            rule = {**rule, "zone_id": zone_ids[0]}
                        code, _ = call("POST", f"{SIM}/__sim/faults", rule)
                        if code != 201:
                            print(f"adding fault {rule} answered {code}", flush=True)
                if "webhook" in name:
                    hook["failing"] = True
                # An alert fires (or resolves) on every fault window, so notifications flow.
                status = "deployment_timed_out" if (window // 2) % 2 == 0 else "active"
                if "simulate" in children:
                    call("POST", f"{SIM}/__sim/zones/{zone_ids[1]}/certificates/{cert_ids[1][0]}/status",
                         {"status": status})
            else:
                current = "healthy"
            windows.append((round(now - t0), current))
        time.sleep(0.2)
except Stop as e:
    error = f"stopped early by {e}"
except SystemExit as e:
    error = str(e)
finally:
    stop_event.set()
    exporter_code = None
    if "exporter" in children:
        exporter_code = children["exporter"].poll()
    stop("exporter")
    stop("simulate")
    receiver.shutdown()

duration = time.time() - t0
with open(f"{out}/samples.csv", "w") as f:
    keys = list(samples[0].keys()) if samples else []
    f.write(",".join(keys) + "\n")
    for s in samples:
        f.write(",".join(str(s[k]) for k in keys) + "\n")

def mib(kib):
    return f"{kib / 1024:.1f} MiB"
lines = [f"# Soak {started.strftime('%Y-%m-%dT%H:%M:%SZ')} (revision {revision})", ""]
lines.append(f"- command: `scripts/soak --minutes {minutes:g}`; output in `{out}`")
lines.append(f"- ran {duration / 60:.1f} min: cron `{CRON}`, {ZONES} zones × {HOSTS} hostnames, "
             f"{ZONES * (HOSTS + 3)} requests per healthy cycle, faults toggled every {TOGGLE} s "
             f"(fault window, healthy window, next kind; {len(FAULTS)} kinds)")
if error:
    lines.append(f"- **ended early**: {error}")
if exporter_code is not None:
    lines.append(f"- **the exporter exited** with {exporter_code}")
lines.append(f"- /metrics scraped every second: {scrapes['ok']} × 200, {scrapes['bad']} other")
for d in scrapes["bad_detail"]:
    lines.append(f"  - {d}")
lines.append(f"- webhook receiver: {hook['accepted']} accepted, {hook['refused']} refused (500)")
if len(samples) >= 3:
    # Growth is measured from the sample after the first 5 minutes (allocator and caches warm).
    warm = next((s for s in samples if s["t"] >= 300), samples[1])
    last = samples[-1]
    rss = [s["rss_kib"] for s in samples]
    lines.append(f"- VmRSS: first {mib(samples[0]['rss_kib'])}, at {warm['t']} s {mib(warm['rss_kib'])}, "
                 f"last {mib(last['rss_kib'])}, max {mib(max(rss))}; growth after warm-up "
                 f"{(last['rss_kib'] - warm['rss_kib']) / 1024:+.1f} MiB; VmHWM {mib(last['hwm_kib'])}")
    half = [s for s in samples if s["t"] >= samples[-1]["t"] / 2]
    if len(half) >= 2:
        lines.append(f"- VmRSS second half: median {mib(statistics.median(s['rss_kib'] for s in half))}, "
                     f"min {mib(min(s['rss_kib'] for s in half))}, max {mib(max(s['rss_kib'] for s in half))}")
    fds = [s["fds"] for s in samples]
    th = [s["threads"] for s in samples]
    lines.append(f"- open fds: first {fds[0]}, at {warm['t']} s {warm['fds']}, last {fds[-1]}, max {max(fds)}")
    lines.append(f"- threads: first {th[0]}, last {th[-1]}, max {max(th)}")
    lines.append(f"- polls_total {last['polls']:.0f}, api_errors_total {last['api_errors']:.0f}, "
                 f"notifications sent {last['sent']:.0f} / failed attempts {last['failed']:.0f}, "
                 f"zones polled OK at the end {last['zones_ok']:.0f}/{ZONES}")
lines.append("")
lines.append("| window start (s) | window |")
lines.append("|---|---|")
for t, name in windows:
    lines.append(f"| {t} | {name} |")
summary = "\n".join(lines) + "\n"
open(f"{out}/summary.md", "w").write(summary)
print(summary)
sys.exit(1 if error or scrapes["bad"] or exporter_code is not None else 0)
