#!/usr/bin/env python3
"""scripts/load's last step: OUT/summary.md (also printed) from wrk's report and the scrapes
before and after; exits 1 if any request failed.

Usage: load_report.py OUT STARTED ZONES HOSTNAMES_PER_ZONE CERTIFICATES_PER_ZONE DURATION
       CONNECTIONS THREADS CRON REVISION ENCODING
"""
import json, os, re, sys
out, started, zones, hosts, certs, duration, connections, threads, cron, revision, encoding = sys.argv[1:]
wrk = open(f"{out}/wrk.txt").read()
stats = json.loads(re.search(r"^JSON (.*)$", wrk, re.M).group(1))
def counter(path, name, outcome):
    text = open(path).read()
    m = re.search(rf'^cloudflare_aop_{name}\{{outcome="{outcome}"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0
def status_kib(key):
    for line in open(f"{out}/exporter-status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
polls = {o: counter(f"{out}/metrics-after.txt", "polls_total", o) - counter(f"{out}/metrics-before.txt", "polls_total", o)
         for o in ("success", "partial", "failure", "skipped")}
size = len(open(f"{out}/metrics-after.txt", "rb").read())
errors = stats["connect"] + stats["read"] + stats["write"] + stats["status"] + stats["timeout"]
ms = lambda us: f"{us / 1000:.1f} ms"
secs = stats["duration_us"] / 1e6
lines = [
    f"# Load {started} (revision {revision})", "",
    f"- command: `scripts/load --zones {zones} --duration {duration} --connections {connections} --threads {threads} --cron '{cron}'"
    + (" --gzip`" if encoding == "gzip" else "`"),
    f"- account: {int(zones):,} zones × {hosts} hostnames × {certs} certificates; cron `{cron}`; /metrics body {size / 1048576:.1f} MiB",
    f"- wrk -t{threads} -c{connections} -d{duration}s --latency --timeout 30s -H 'Accept-Encoding: {encoding}' on http://127.0.0.1/metrics",
    f"- requests: {stats['requests']:,} in {secs:.1f} s ({stats['requests'] / secs:.1f}/s, {stats['bytes'] / secs / 1048576:.0f} MiB/s)",
    f"- errors: {errors} (non-2xx {stats['status']}, connect {stats['connect']}, read {stats['read']}, "
    f"write {stats['write']}, timeout {stats['timeout']})",
    f"- latency: p50 {ms(stats['p50_us'])}, p90 {ms(stats['p90_us'])}, p99 {ms(stats['p99_us'])}, "
    f"max {ms(stats['max_us'])}, mean {ms(stats['mean_us'])}",
    f"- poll cycles during the run: {polls['success']:.0f} success, {polls['partial']:.0f} partial, "
    f"{polls['failure']:.0f} failure, {polls['skipped']:.0f} skipped (a tick while a cycle ran)",
    f"- exporter VmRSS {status_kib('VmRSS') / 1024:.1f} MiB, VmHWM {status_kib('VmHWM') / 1024:.1f} MiB after the run"
    + (f"; peak VmRSS sampled during the load {int(open(f'{out}/peak-rss-during-load').read()) / 1024:.1f} MiB"
       if os.path.exists(f"{out}/peak-rss-during-load") else ""),
]
summary = "\n".join(lines) + "\n"
open(f"{out}/summary.md", "w").write(summary)
print(summary)
sys.exit(1 if errors else 0)
