#!/usr/bin/env python3
"""e2e: the compose stack's exporter config watches every zone and hostname the scenario serves.

Usage: e2e_compose_watches.py SCENARIO.toml EXPORTER.toml (exits non-zero, saying what differs).
"""
import sys, tomllib

def zones(path, key):
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return {z["id"]: sorted(h if isinstance(h, str) else h[key] for h in z.get("hostnames", [])) for z in data["zones"]}

scenario, compose = zones(sys.argv[1], "name"), zones(sys.argv[2], "name")
if scenario != compose:
    sys.exit(f"e2e: {sys.argv[2]} does not watch what {sys.argv[1]} serves:\n  {compose}\n  {scenario}")
