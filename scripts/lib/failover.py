#!/usr/bin/env python3
"""Failover figures of an HA pair (issue 14, docs/reliability.md "HA pair failover"); see
scripts/failover.

One simulator (`simulate --scale-zones`), one fake Lease API (`simulate --lease-api`), one
webhook receiver, all on loopback. First a single exporter (leader election off) polls for
WINDOW seconds: its API requests per minute. Then two exporters with leader election on the
same Lease: the pair's requests per minute over the same window; a certificate times out and
the leader notifies; the standby must hold the alert and the status history. Then SIGKILL of
the leader: the time until the simulator sees the standby's first request (against the lease
duration plus one tick), the alerts delivered (each exactly once), and the status_since values
that changed across the takeover (resets).

Usage: failover.py OUT BINARY [--lease-duration SECONDS] [--tick SECONDS] [--window SECONDS]
"""
import argparse, ctypes, json, os, re, signal, subprocess, sys, time

from free_ports import free_ports
from processes import call, serve_receiver, stop_process
from scale_config import SCALE_TOKEN, served_zones, zones_toml

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("binary")
parser.add_argument("--lease-duration", type=int, default=15)
parser.add_argument("--tick", type=int, default=5, help="seconds between ticks (cron)")
parser.add_argument("--window", type=int, default=60, help="seconds each request rate is measured")
args = parser.parse_args()
out = os.path.abspath(args.out)
binary = os.path.abspath(args.binary)
ZONES, CERTS, HOSTS = 20, 2, 5
LEASE_TOKEN = "failover-lease-token"
NAMESPACE = "monitoring"

sim_port, lease_port, hook_port, single_port, a_port, b_port = free_ports(6)
SIM = f"http://127.0.0.1:{sim_port}"

# --- children, killed by pid; PR_SET_PDEATHSIG so they die with this script --------------------
libc = ctypes.CDLL(None, use_errno=True)
def die_with_parent():
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

children = {}
def start(name, argv, env=None):
    log = open(f"{out}/{name}.log", "ab")
    full_env = {"PATH": os.environ.get("PATH", ""), **(env or {})}
    children[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=full_env,
                                      preexec_fn=die_with_parent)
    return children[name]

def stop(name, sig=signal.SIGTERM):
    stop_process(children.pop(name, None), sig, 20)

def wait_for(what, condition, limit=120, every=0.05):
    deadline = time.time() + limit
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")

def sim_total():
    code, body = call("GET", f"{SIM}/__sim/stats")
    return json.loads(body)["total"] if code == 200 else None

def metrics(port):
    code, body = call("GET", f"http://127.0.0.1:{port}/metrics")
    return body.decode() if code == 200 else ""

def samples(text, name):
    """{labels: value} of one family's samples."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, value = line.rsplit(" ", 1)
            found[series[len(name):]] = float(value)
    return found

def value(text, name, labels=""):
    return sum(v for k, v in samples(text, name).items() if labels in k)

# --- the receiver: counts deliveries per alert fingerprint -----------------------------------
hook = {"requests": 0, "firing": {}}
def on_delivery(raw):
    body = json.loads(raw or b"{}")
    hook["requests"] += 1
    for alert in body.get("alerts", []):
        if alert.get("status") == "firing":
            key = alert.get("fingerprint")
            hook["firing"][key] = hook["firing"].get(key, 0) + 1
    return 204
receiver = serve_receiver(hook_port, on_delivery)

# --- configs ----------------------------------------------------------------------------------
def config(port, name, election, zones):
    text = f'''[cloudflare]
api_base_url = "{SIM}/client/v4"
api_token = "{SCALE_TOKEN}"
max_concurrency = 8
requests_per_5m = 10000000
verify_token = false

[schedule]
cron = "*/{args.tick} * * * * *"
jitter = "0s"

[server]
listen = "127.0.0.1:{port}"

[state]
dir = "{out}/state-{name}"

[log]
level = "info"

[alerts]
repeat_interval = "24h"

[[alerts.sinks]]
type = "webhook"
name = "failover-hook"
url = "http://127.0.0.1:{hook_port}/hook"
timeout = "2s"
'''
    if election:
        text += f'''
[leader_election]
enabled = true
lease_name = "cloudflare-aop-exporter"
namespace = "{NAMESPACE}"
lease_duration = "{args.lease_duration}s"
'''
    path = f"{out}/{name}.toml"
    open(path, "w").write(text + zones_toml(zones))
    return path

def kubeconfig():
    path = f"{out}/kubeconfig"
    open(path, "w").write(f'''apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: "http://127.0.0.1:{lease_port}"
users:
- name: fake
  user:
    token: "{LEASE_TOKEN}"
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: {NAMESPACE}
current-context: fake
''')
    return path

def aligned_window():
    """Requests the simulator answers in WINDOW seconds starting half a tick after a tick, so
    the window holds exactly WINDOW / tick ticks."""
    now = time.time()
    start_at = (now // args.tick + 1) * args.tick + args.tick / 2
    time.sleep(start_at - now)
    before = sim_total()
    time.sleep(args.window)
    return (sim_total() - before) * 60 / args.window

def ready(port):
    return call("GET", f"http://127.0.0.1:{port}/readyz")[0] == 200

figures = {}
try:
    os.makedirs(out, exist_ok=True)
    start("simulate", [binary, "simulate", "--listen", f"127.0.0.1:{sim_port}",
                       "--scale-zones", str(ZONES), "--scale-certificates-per-zone", str(CERTS),
                       "--scale-hostnames-per-zone", str(HOSTS),
                       "--scale-requests-per-5m", "100000000"])
    wait_for("the simulator", lambda: sim_total() is not None, 60)
    start("lease-api", [binary, "simulate-lease-api", "--listen",
                        f"127.0.0.1:{lease_port}", "--token", LEASE_TOKEN])
    wait_for("the Lease API", lambda: call("GET", f"http://127.0.0.1:{lease_port}/")[0] is not None, 60)
    zones = served_zones(sim_port)
    zone_id = zones[0]["id"]
    cert_id = zones[0]["certificates"][0]["id"]

    # 1. One exporter, leader election off.
    start("single", [binary, "run", "--config", config(single_port, "single", False, zones)])
    wait_for("the single exporter", lambda: ready(single_port), 120)
    figures["single_rpm"] = aligned_window()
    stop("single")

    # 2. The pair on one Lease.
    hook["firing"].clear()  # what the single exporter announced is not the pair's
    hook["requests"] = 0
    kube = kubeconfig()
    env = lambda name: {"KUBECONFIG": kube, "POD_NAME": name}
    start("exporter-a", [binary, "run", "--config", config(a_port, "a", True, zones)], env("exporter-a"))
    wait_for("exporter-a leading", lambda: value(metrics(a_port), "cloudflare_aop_leader") == 1, 120)
    start("exporter-b", [binary, "run", "--config", config(b_port, "b", True, zones)], env("exporter-b"))
    wait_for("exporter-b ready", lambda: ready(b_port), 120)
    figures["pair_rpm"] = aligned_window()

    # 3. A certificate times out: the leader notifies once; the standby holds the alert.
    code, _ = call("POST", f"{SIM}/__sim/zones/{zone_id}/certificates/{cert_id}/status",
                   {"status": "deployment_timed_out"})
    assert code == 200, code
    wait_for("the notification", lambda: hook["firing"], 60)
    firing = 'reason="deployment_timed_out"'
    # (A certificate serving several hostnames fires for each of them too.)
    wait_for("the standby holding the alerts, nothing queued", lambda: (
        value(metrics(a_port), "cloudflare_aop_alerts_firing", firing) == len(hook["firing"])
        and value(metrics(b_port), "cloudflare_aop_alerts_firing", firing) == len(hook["firing"])
        and value(metrics(b_port), "cloudflare_aop_notification_queue_length") == 0
        and value(metrics(a_port), "cloudflare_aop_notification_queue_length") == 0), 60)
    # What the standby fetches: the whole state, or a 304 while nothing changed.
    code, body = call("GET", f"http://127.0.0.1:{a_port}/api/v1/replication")
    assert code == 200, code
    figures["replication_bytes"] = len(body)
    since_before = samples(metrics(a_port), "cloudflare_aop_certificate_status_since_timestamp_seconds")
    since_before.update(samples(metrics(a_port), "cloudflare_aop_hostname_status_since_timestamp_seconds"))
    time.sleep(3)  # one more replication fetch (every 2 s)

    # 4. SIGKILL the leader.
    before = sim_total()
    killed_at = time.time()
    stop("exporter-a", signal.SIGKILL)
    polled = wait_for("the standby's first request", lambda: sim_total() > before and time.time(),
                      args.lease_duration * 4 + 60, 0.02)
    figures["takeover_s"] = polled - killed_at
    wait_for("exporter-b leading", lambda: value(metrics(b_port), "cloudflare_aop_leader") == 1, 60)
    polls = lambda: value(metrics(b_port), "cloudflare_aop_polls_total", 'outcome="success"')
    first = polls()
    wait_for("two full polls by the new leader", lambda: polls() >= first + 2, 120)
    time.sleep(5)  # any notification it (wrongly) sends
    text = metrics(b_port)
    since_after = samples(text, "cloudflare_aop_certificate_status_since_timestamp_seconds")
    since_after.update(samples(text, "cloudflare_aop_hostname_status_since_timestamp_seconds"))
    figures["objects"] = len(since_before)
    figures["resets"] = sum(1 for key, was in since_before.items() if since_after.get(key) != was)
    figures["alerts"] = dict(hook["firing"])
    figures["webhook_requests"] = hook["requests"]
finally:
    for name in list(children):
        stop(name)
    receiver.shutdown()

bound = args.lease_duration + args.tick
ratio = figures["pair_rpm"] / figures["single_rpm"] if figures.get("single_rpm") else float("nan")
delivered = sorted(figures["alerts"].values())
lines = [
    f"| figure | value | bar |",
    f"|---|---|---|",
    f"| API requests per minute, one instance | {figures['single_rpm']:.1f} | |",
    f"| API requests per minute, the pair | {figures['pair_rpm']:.1f} ({(ratio - 1) * 100:+.1f} %) | within 5 % |",
    f"| SIGKILL of the leader → the standby's first API request | {figures['takeover_s']:.1f} s | ≤ lease duration + one tick = {bound} s |",
    f"| alerts delivered (firing notifications per alert) | {len(delivered)} alerts, {sum(delivered)} notifications | each exactly once |",
    f"| status_since values changed by the takeover | {figures['resets']} of {figures['objects']} | 0 |",
    f"| `/api/v1/replication` body ({ZONES} zones) | {figures['replication_bytes'] / 1024:.1f} KiB | |",
]
summary = "\n".join(lines) + "\n"
open(f"{out}/summary.md", "w").write(summary)
print(summary, end="")
ok = (abs(ratio - 1) <= 0.05 and figures["takeover_s"] <= bound and delivered
      and set(delivered) == {1}
      and figures["resets"] == 0)
sys.exit(0 if ok else 1)
