#!/usr/bin/env python3
"""The exporter config (printed) for the synthetic account a running simulator serves
(`simulate --scale-zones N`, whose token is `sim-token`): every zone and hostname it lists on
its control API (`/__sim/zones`), zone-level polling on, a client budget no benchmark reaches.

Usage: scale_config.py SIM_PORT EXPORTER_PORT STATE_DIR CONCURRENCY CRON
"""
import json
import sys
import urllib.request

SCALE_TOKEN = "sim-token"


def served_zones(sim_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{sim_port}/__sim/zones", timeout=60) as response:
        return json.load(response)["zones"]


def zones_toml(zones):
    """`[[zones]]` entries watching every zone and hostname of `zones` (as `/__sim/zones` lists them)."""
    entries = []
    for zone in zones:
        quoted = ", ".join(f'"{hostname["name"]}"' for hostname in zone["hostnames"])
        entries.append(f'\n[[zones]]\nid = "{zone["id"]}"\nname = "{zone["name"]}"\n'
                       f'hostnames = [{quoted}]\nzone_level = true\n')
    return "".join(entries)


def exporter_config(sim_port, exporter_port, state_dir, concurrency, cron, zones):
    config = [f'''[cloudflare]
api_base_url = "http://127.0.0.1:{sim_port}/client/v4"
api_token = "{SCALE_TOKEN}"
max_concurrency = {concurrency}
requests_per_5m = 10000000
verify_token = false

[schedule]
cron = "{cron}"
jitter = "0s"

[server]
listen = "127.0.0.1:{exporter_port}"

[state]
dir = "{state_dir}"

[log]
level = "warn"
''']
    config.append(zones_toml(zones))
    return "".join(config)


if __name__ == "__main__":
    sim_port, exporter_port, state_dir, concurrency, cron = sys.argv[1:]
    print(exporter_config(sim_port, exporter_port, state_dir, int(concurrency), cron,
                          served_zones(sim_port)), end="")
