#!/usr/bin/env python3
"""e2e: the exporter's config (printed): every zone and hostname of the scenario, a poll
every 2 s, a webhook sink to the receiver and an Alertmanager sink.

Usage: e2e_exporter_config.py SCENARIO SIM_PORT EXPORTER_PORT RECEIVER_PORT WORK MODE AM_PORT
"""
import sys, tomllib

scenario, sim_port, exporter_port, receiver_port, work, mode, am_port = sys.argv[1:]
with open(scenario, "rb") as f:
    data = tomllib.load(f)
token = data.get("auth", {}).get("token", "sim-token")
print(f'''[cloudflare]
api_base_url = "http://127.0.0.1:{sim_port}/client/v4"
api_token = "{token}"
request_timeout = "5s"
# A poll every 2 s is far above a production pace: lift the client-side budget so the
# exporter does not (correctly) slow its cycles down to stay inside 1000 requests / 5 min.
requests_per_5m = 20000

[schedule]
cron = "*/2 * * * * *"
jitter = "0s"

[server]
listen = "127.0.0.1:{exporter_port}"

[[alerts.sinks]]
type = "webhook"
name = "e2e-receiver"
url = "http://127.0.0.1:{receiver_port}/hook"

[[alerts.sinks]]
type = "alertmanager"
url = "http://127.0.0.1:{am_port}"

[metrics]
statesets = "{mode}"

[state]
dir = "{work}/state-{mode}"
''')
for zone in data["zones"]:
    hostnames = ", ".join(f'"{h["name"]}"' for h in zone.get("hostnames", []))
    print(f'''[[zones]]
id = "{zone["id"]}"
name = "{zone.get("name", zone["id"])}"
hostnames = [{hostnames}]
''')
