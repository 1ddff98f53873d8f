#!/usr/bin/env python3
"""e2e: every dashboard query and alert rule through Prometheus's HTTP API, the demo's
expected alerts, and Alertmanager paging a timed-out hostname exactly once.

Usage: e2e_checks.py PROMETHEUS_URL DASHBOARD.json ALERTS.yml ALERTMANAGER_NOTIFICATIONS.jsonl
"""
import json, os, re, sys, time, urllib.parse, urllib.request

prom, dashboard_path, rules_path, am_notifications = sys.argv[1:]
DEADLINE = time.monotonic() + 45

# Dashboard queries allowed to return nothing on the demo scenario, with the reason:
# (panel title, refId) -> why. Keep it short; everything else must show data.
ALLOWED_EMPTY = {}

# Alerts the demo scenario (scenarios/demo.toml) must raise (pending or firing), and alerts about
# the exporter's own health that must stay silent while it polls the simulator happily.
EXPECTED_ACTIVE = {
    "CloudflareAOPCertificateExpired",                 # legacy-pay's certificate, expired 3 days ago
    "CloudflareAOPCertificateExpiringCritical",        # checkout's certificate, 10 days left
    "CloudflareAOPCertificateStatusTimedOut",          # pay's certificate; archive's deletion
    "CloudflareAOPHostnameStatusTimedOut",             # eu, then pay
    "CloudflareAOPHostnameCertificateStatusTimedOut",  # eu and pay report their certificate's status
    "CloudflareAOPCertificateCheckFailing",            # RSA-1024/SHA-1, serverAuth-only, expiry mismatch
    "CloudflareAOPHostnameAssociationDisabled",        # static, mail (disabled), careers (voided)
    "CloudflareAOPHostnameAssociationAbsent",          # img (404)
}
EXPECTED_SILENT = {
    "CloudflareAOPExporterDown",
    "CloudflareAOPExporterAbsent",
    "CloudflareAOPZonePollFailing",
    "CloudflareAOPZoneDataStale",
    "CloudflareAOPAPIErrors",
    "CloudflareAOPTokenInvalid",
    "CloudflareAOPRateLimitLow",
    "CloudflareAOPRateLimitPaused",
    "CloudflareAOPRefreshBehind",
    "CloudflareAOPNotificationsDropped",
    "CloudflareAOPZoneCertificateLimit",
}

failures = []


def api(path, **params):
    url = f"{prom}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        body = json.load(error)
    if body.get("status") != "success":
        raise RuntimeError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]


def scalar(query):
    result = api("/api/v1/query", query=query)["result"]
    return float(result[0]["value"][1]) if result else 0.0


# 1. Wait for real data: the target is up, scraped several times, and the exporter has polled
#    often enough for the demo's timelines to reach their timed-out steps.
while True:
    scrapes = scalar('sum(count_over_time(up{job="cloudflare-aop-exporter"}[1m]))')
    up = scalar('sum(up{job="cloudflare-aop-exporter"})')
    polls = scalar('sum(cloudflare_aop_polls_total{outcome="success"})')
    if up == 1 and scrapes >= 8 and polls >= 5:
        break
    if time.monotonic() > DEADLINE:
        sys.exit(f"e2e: not enough data in time (up={up}, scrapes={scrapes}, successful polls={polls})")
    time.sleep(0.5)
print(f"e2e: {int(scrapes)} scrapes, {int(polls)} successful poll cycles")

# 2. The dashboard: structure, then every query through /api/v1/query.
with open(dashboard_path) as f:
    dashboard = json.load(f)
variables = {v["name"]: v for v in dashboard["templating"]["list"]}
for name, kind in (("datasource", "datasource"), ("zone", "query"), ("hostname", "query")):
    if variables.get(name, {}).get("type") != kind:
        failures.append(f"dashboard: template variable {name!r} of type {kind!r} missing")


def panels_of(items):
    for panel in items:
        yield panel
        yield from panels_of(panel.get("panels", []))


panels = [p for p in panels_of(dashboard["panels"]) if p.get("type") != "row"]
ids = [p.get("id") for p in panels_of(dashboard["panels"])]
if len(ids) != len(set(ids)):
    failures.append("dashboard: duplicate panel ids")
for panel in panels:
    for holder in [panel] + panel.get("targets", []):
        if holder.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
            failures.append(f"panel {panel['title']!r}: datasource is not the ${{datasource}} variable")
    if "gridPos" not in panel:
        failures.append(f"panel {panel['title']!r}: no gridPos")

BUILTINS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1m", "__range_s": "60", "__interval_ms": "60000"}
VAR = re.compile(r"\$\{([A-Za-z_]\w*)(?::[^}]*)?\}|\$([A-Za-z_]\w*)")


def substitute(expr, values):
    def one(match):
        name = match.group(1) or match.group(2)
        if name in values:
            return values[name]
        if name in BUILTINS:
            return BUILTINS[name]
        raise KeyError(name)
    return VAR.sub(one, expr)


# Variable queries: label_values(selector, label) through the label values API.
all_values = {"zone": ".*", "hostname": ".*"}
zones = []
for name in ("zone", "hostname"):
    definition = variables.get(name, {}).get("definition", "")
    match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", definition.strip())
    if not match:
        failures.append(f"variable {name}: unexpected definition {definition!r}")
        continue
    selector, label = substitute(match.group(1), all_values), match.group(2)
    values = api(f"/api/v1/label/{label}/values", **{"match[]": selector})
    if not values:
        failures.append(f"variable {name}: {definition} has no values")
    if name == "zone":
        zones = sorted(values)
print(f"e2e: variables: zone = {zones}")


def run_panels(values, require_data):
    evaluated = with_data = 0
    for panel in panels:
        for t in panel.get("targets", []):
            title, ref = panel["title"], t.get("refId", "A")
            try:
                query = substitute(t["expr"], values)
            except KeyError as missing:
                failures.append(f"panel {title!r} {ref}: unknown template variable ${missing}")
                continue
            evaluated += 1
            try:
                result = api("/api/v1/query", query=query)["result"]
            except Exception as error:  # a query error
                failures.append(f"panel {title!r} {ref} ({values}): {error}\n    {query}")
                continue
            if result:
                with_data += 1
            elif require_data and (title, ref) not in ALLOWED_EMPTY:
                failures.append(f"panel {title!r} {ref}: no data on the demo scenario\n    {query}")
    return evaluated, with_data


panel_total, panel_data = run_panels(all_values, require_data=True)
zone_total = zone_data = 0
if zones:
    # With one real zone selected: every query still evaluates (data may legitimately be absent).
    # Escaped as Grafana does for a regex variable: a backslash, doubled inside the PromQL string.
    zone_regex = re.sub(r"([\\.+*?()|\[\]{}^$-])", r"\\\\\1", zones[0])
    zone_total, zone_data = run_panels({"zone": zone_regex, "hostname": ".*"}, require_data=False)

# 3. The rules Prometheus loaded from alerts.yml: healthy, every expression evaluates.
with open(rules_path) as f:
    declared = len(re.findall(r"^\s*- alert:", f.read(), flags=re.M))
while True:
    rules = [r for g in api("/api/v1/rules")["groups"] for r in g["rules"]]
    # Every rule evaluated at least once (Prometheus reports 0001-01-01 before that).
    if rules and not any(r.get("lastEvaluation", "0001").startswith("0001") for r in rules):
        break
    if time.monotonic() > DEADLINE:
        break
    time.sleep(0.5)
if len(rules) != declared:
    failures.append(f"rules: Prometheus loaded {len(rules)} rules, alerts.yml declares {declared}")
rule_data = 0
for rule in rules:
    if rule.get("health") != "ok":
        failures.append(f"rule {rule['name']}: health {rule.get('health')!r}: {rule.get('lastError')}")
    try:
        if api("/api/v1/query", query=rule["query"])["result"]:
            rule_data += 1
    except Exception as error:
        failures.append(f"rule {rule['name']}: {error}")

# 4. The alerts the demo must raise, and the ones that must stay silent.
while True:
    active = {a["labels"]["alertname"] for a in api("/api/v1/alerts")["alerts"]}
    if EXPECTED_ACTIVE <= active or time.monotonic() > DEADLINE:
        break
    time.sleep(0.5)
for name in sorted(EXPECTED_ACTIVE - active):
    failures.append(f"alert {name} is not active on the demo scenario")
for name in sorted(EXPECTED_SILENT & active):
    failures.append(f"alert {name} is active although the exporter is healthy")

# 5. One Alertmanager fed by the rules and by the exporter: eu.northwind-pay.io's timed-out
#    association raises the exporter's CloudflareAOPDeploymentTimedOut and the rules'
#    CloudflareAOPHostname*StatusTimedOut; the inhibition rules let exactly one page through.
HOSTNAME = "eu.northwind-pay.io"
def hostname_notifications():
    found = []
    if os.path.exists(am_notifications):
        with open(am_notifications) as f:
            for line in f:
                for alert in json.loads(line)["alerts"]:
                    if alert["labels"].get("hostname") == HOSTNAME and alert["status"] == "firing":
                        found.append(alert["labels"]["alertname"])
    return found
def rule_alert_active():
    alerts = api("/api/v1/alerts")["alerts"]
    return any(a["labels"].get("hostname") == HOSTNAME and a["state"] == "firing" for a in alerts)
while not (hostname_notifications() and rule_alert_active()) and time.monotonic() < DEADLINE:
    time.sleep(0.5)
# Both sources are in; give a duplicate the time to arrive (group_wait and group_interval are 5 s).
time.sleep(7)
notified = hostname_notifications()
if not rule_alert_active():
    failures.append(f"alertmanager: the rules never fired for {HOSTNAME}")
if notified != ["CloudflareAOPDeploymentTimedOut"]:
    failures.append(f"alertmanager: {HOSTNAME} should page once (CloudflareAOPDeploymentTimedOut), got {notified}")
print(f"e2e: alertmanager notifications for {HOSTNAME}: {notified}")
print(f"e2e: {panel_total} panel queries evaluated, {panel_data} returned data "
      f"(allowlisted empty: {len(ALLOWED_EMPTY)}); with zone={zones[0] if zones else '?'}: "
      f"{zone_total} evaluated, {zone_data} returned data")
print(f"e2e: {len(rules)} rule expressions evaluated, {rule_data} returned data; "
      f"active alerts: {', '.join(sorted(active))}")
if failures:
    print("e2e: FAILED", file=sys.stderr)
    for failure in failures:
        print(f"  - {failure}", file=sys.stderr)
    sys.exit(1)
