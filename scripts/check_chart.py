"""Offline checks of charts/cloudflare-aop-exporter (run by scripts/check-chart, in its venv).

- `helm lint --strict` and rendering with the Helm SDK (helm-python-sdk: no helm binary, no
  cluster), with default values and with each tests/chart/values-*.yaml (every one must have
  its expectations in SCENARIOS); Helm enforces values.schema.json on each.
- Every rendered core object is validated by kubernetes-validate in strict mode (unknown fields
  are errors) against the oldest and the newest Kubernetes the chart supports; ServiceMonitor and
  PrometheusRule against the prometheus-operator CRDs' openAPIV3Schema (tests/chart/crds,
  pinned), made strict the same way.
- `promtool check rules` on every rendered PrometheusRule (when promtool is installed).
- The default PrometheusRule's groups equal prometheus/alerts.yml and the dashboard ConfigMap
  equals dashboards/cloudflare-aop.json (structurally); the schema lists exactly the alerts.
- Facts each scenario must show (probes, security context, overrides, ...), and values the
  schema or the templates must refuse.
- With --exporter BIN, the config.toml of every non-default rendering passes
  `BIN validate-config` (the defaults name no zone and no token, so the exporter refuses them).
"""

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "cloudflare-aop-exporter"
CASES = REPO / "tests" / "chart"
KUBE_VERSIONS = ["1.25.0", "1.37.0"]
RELEASE, NAMESPACE = "aop", "monitoring"
CRD_KINDS = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def strict_openapi(node):
    """A CRD's openAPIV3Schema with unknown fields refused, as `kubectl --validate=strict` does."""
    if isinstance(node, dict):
        node = {key: strict_openapi(value) for key, value in node.items()}
        if (
            node.get("type") == "object"
            and "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        if node.get("nullable") and "type" in node:
            node["type"] = [node["type"], "null"]
        return node
    if isinstance(node, list):
        return [strict_openapi(item) for item in node]
    return node


def crd_validators():
    validators = {}
    for kind, plural in CRD_KINDS.items():
        crd = yaml.safe_load((CASES / "crds" / f"monitoring.coreos.com_{plural}.yaml").read_text())
        (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        schema = strict_openapi(version["schema"]["openAPIV3Schema"])
        # The CRD leaves metadata to the API server: checked as ObjectMeta below.
        schema["properties"]["metadata"] = {"type": "object"}
        validators[kind] = (crd["metadata"]["annotations"]["operator.prometheus.io/version"],
                            jsonschema.Draft7Validator(schema))
    return validators


def render(values, name=RELEASE):
    """The chart's objects rendered with `values` (None: the defaults), as {kind/name: object}."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values=values, name=name, namespace=NAMESPACE, is_install=True)
    objects = {}
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                objects[f"{document['kind']}/{document['metadata']['name']}"] = document
    return objects


def lint(values, label):
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    check(not problems and not report.get("errors"), f"{label}: helm lint --strict: {problems or report.get('errors')}")


def validate_objects(objects, label, validators):
    for key, obj in objects.items():
        if obj["kind"] in validators:
            operator_version, validator = validators[obj["kind"]]
            errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
            for error in errors:
                path = "/".join(str(p) for p in error.absolute_path)
                failures.append(f"{label}: {key}: prometheus-operator {operator_version} CRD: {path}: {error.message}")
            meta_holder = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]}
            targets = [(meta_holder, f"{key} metadata")]
        else:
            targets = [(obj, key)]
        for target, what in targets:
            for version in KUBE_VERSIONS:
                try:
                    kubernetes_validate.validate(target, version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    path = "/".join(str(p) for p in error.absolute_path)
                    failures.append(f"{label}: {what}: Kubernetes {version} (strict): {path}: {error.message}")
                except kubernetes_validate.SchemaNotFoundError as error:
                    failures.append(f"{label}: {what}: {error.message}")


def only(objects, kind):
    found = [obj for obj in objects.values() if obj["kind"] == kind]
    return found[0] if len(found) == 1 else None


def container_of(objects):
    deployment = only(objects, "Deployment")
    return deployment, deployment["spec"]["template"]["spec"]["containers"][0]


def config_of(objects):
    configmap = [o for o in objects.values() if o["kind"] == "ConfigMap" and "config.toml" in o.get("data", {})]
    return configmap[0]["data"]["config.toml"]


def volume(deployment, name):
    return next((v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == name), None)


def common_facts(objects, label):
    """What every rendering must show: the Deployment the distroless image fits."""
    deployment, container = container_of(objects)
    spec = deployment["spec"]
    config = tomllib.loads(config_of(objects))
    pod = spec["template"]["spec"]
    if "leader_election" in config:
        # An HA pair (check_ha): its own replicas, strategy and service account token.
        check(spec["strategy"]["type"] == "RollingUpdate", f"{label}: a pair rolls one pod at a time")
        check(pod.get("automountServiceAccountToken") is True, f"{label}: leader election needs the token")
    else:
        check(spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}, f"{label}: one replica, Recreate")
        check(pod.get("automountServiceAccountToken") is False, f"{label}: no service account token mounted")
    check(pod["securityContext"].get("runAsNonRoot") is True and pod["securityContext"].get("runAsUser") == 65532
          and pod["securityContext"].get("fsGroup") == 65532
          and pod["securityContext"].get("seccompProfile") == {"type": "RuntimeDefault"},
          f"{label}: pod securityContext: {pod['securityContext']}")
    security = container["securityContext"]
    check(security.get("readOnlyRootFilesystem") is True and security.get("allowPrivilegeEscalation") is False
          and security.get("capabilities") == {"drop": ["ALL"]} and security.get("runAsNonRoot") is True,
          f"{label}: container securityContext: {security}")
    check(container["livenessProbe"]["httpGet"]["path"] == "/healthz"
          and container["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{label}: probe paths")
    check("checksum/config" in spec["template"]["metadata"]["annotations"], f"{label}: checksum/config annotation")
    check(config["state"]["dir"] == "/var/lib/cloudflare-aop-exporter", f"{label}: state.dir")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    check(mounts.get("state") == "/var/lib/cloudflare-aop-exporter", f"{label}: state volume mounted at state.dir")
    service = only(objects, "Service")
    port = service["spec"]["ports"][0]
    check(port["name"] == "metrics" and port["targetPort"] == "metrics", f"{label}: Service port named metrics")
    check(config["server"]["listen"] == f"0.0.0.0:{port['port']}", f"{label}: server.listen matches the Service port")
    return deployment, container, config


def source_groups():
    return yaml.safe_load((REPO / "prometheus" / "alerts.yml").read_text())["groups"]


def picked_alerts():
    """Alerts of prometheus/alerts.yml to override in values-mtls, chosen by shape, not by name,
    so that renaming alerts there needs no change here: (an alert comparing with a number of two
    or more digits, that comparison, a changed one), an alert with `for:`, one to disable, one to
    leave alone."""
    alerts = [r for g in source_groups() for r in g["rules"] if "alert" in r]
    comparison = re.compile(r"[<>]=? \d{2,}\b")
    threshold = next(r for r in alerts if comparison.search(r["expr"]))
    literal = comparison.search(threshold["expr"]).group(0)
    operator, number = literal.split(" ")
    changed = f"{operator} {int(number) * 2 + 1}"
    rest = [r for r in alerts if r is not threshold]
    with_for = next(r for r in rest if "for" in r)
    rest = [r for r in rest if r is not with_for]
    return threshold["alert"], literal, changed, with_for["alert"], rest[0]["alert"], rest[-1]["alert"]


def mtls_values():
    values = yaml.safe_load((CASES / "values-mtls.yaml").read_text())
    threshold, literal, changed, with_for, disabled, _ = picked_alerts()
    values["prometheusRule"]["alerts"] = {
        threshold: {"for": "5m", "severity": "critical", "exprReplace": [{"from": literal, "to": changed}]},
        with_for: {"expr": "vector(1) > 7200", "for": "", "labels": {"page": "true"}},
        disabled: {"enabled": False},
    }
    return values


def check_defaults(objects):
    label = "defaults"
    deployment, container, config = common_facts(objects, label)
    check({p["port"] for p in (container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"])} == {"metrics"},
          f"{label}: without webConfig the probes use the metrics port")
    check("probe_listen" not in config["server"] and "web_config_file" not in config["server"],
          f"{label}: no web config, no probe listener")
    check(volume(deployment, "state").get("persistentVolumeClaim") is not None and only(objects, "PersistentVolumeClaim"),
          f"{label}: state on a PersistentVolumeClaim")
    rule = only(objects, "PrometheusRule")
    # The drift check: the chart's rules are prometheus/alerts.yml, nothing added or lost.
    if check(rule is not None, f"{label}: one PrometheusRule"):
        check(rule["spec"]["groups"] == source_groups(),
              f"{label}: the PrometheusRule's groups differ from prometheus/alerts.yml: run scripts/sync-chart-rules")
    dashboard = [o for o in objects.values() if o["kind"] == "ConfigMap" and "cloudflare-aop.json" in o.get("data", {})]
    if check(len(dashboard) == 1, f"{label}: one dashboard ConfigMap"):
        check(dashboard[0]["metadata"]["labels"].get("grafana_dashboard") == "1", f"{label}: grafana_dashboard label")
        shipped = json.loads((REPO / "dashboards" / "cloudflare-aop.json").read_text())
        check(json.loads(dashboard[0]["data"]["cloudflare-aop.json"]) == shipped,
              f"{label}: the dashboard ConfigMap differs from dashboards/cloudflare-aop.json: run scripts/sync-chart-rules")
    monitor = only(objects, "ServiceMonitor")
    if check(monitor is not None, f"{label}: one ServiceMonitor"):
        endpoint = monitor["spec"]["endpoints"][0]
        check(endpoint["port"] == "metrics" and endpoint["scheme"] == "http", f"{label}: ServiceMonitor endpoint")
        check({"action": "replace", "targetLabel": "job", "replacement": "cloudflare-aop-exporter"} in endpoint["relabelings"],
              f"{label}: ServiceMonitor sets job=cloudflare-aop-exporter (CloudflareAOPExporterDown)")
    names = [r["alert"] for g in source_groups() for r in g["rules"] if "alert" in r]
    schema = json.loads((CHART / "values.schema.json").read_text())
    listed = list(schema["properties"]["prometheusRule"]["properties"]["alerts"]["properties"])
    check(listed == names, f"{label}: values.schema.json lists {listed}, alerts.yml has {names}: run scripts/sync-chart-rules")


def check_mtls(objects):
    label = "values-mtls"
    deployment, container, config = common_facts(objects, label)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(ports == {"metrics": 9793, "probes": 9794}, f"{label}: container ports {ports}")
    check(container["livenessProbe"]["httpGet"]["port"] == "probes" and container["readinessProbe"]["httpGet"]["port"] == "probes",
          f"{label}: under mTLS the probes use the plain probe port")
    check(config["server"].get("probe_listen") == "0.0.0.0:9794", f"{label}: server.probe_listen")
    check(config["server"].get("web_config_file") == "/etc/cloudflare-aop-exporter/web/web.yml", f"{label}: web_config_file")
    check(config["cloudflare"]["api_token_file"] == "/run/secrets/cloudflare-aop-exporter/token", f"{label}: api_token_file")
    check(config["cloudflare"]["requests_per_5m"] == 600 and isinstance(config["cloudflare"]["max_concurrency"], int),
          f"{label}: integers stay integers in config.toml")
    check([z["name"] for z in config["zones"]] == ["example.com", "example.org"], f"{label}: zones")
    check([s["type"] for s in config["alerts"]["sinks"]] == ["slack", "webhook"], f"{label}: sinks")
    check(volume(deployment, "state") == {"name": "state", "emptyDir": {}} and not only(objects, "PersistentVolumeClaim"),
          f"{label}: persistence off: emptyDir, no PVC")
    check(volume(deployment, "token")["secret"]["secretName"] == "cloudflare-api", f"{label}: the existing token Secret")
    check(volume(deployment, "web-config")["secret"]["secretName"] == "aop-web-config"
          and volume(deployment, "tls")["secret"]["secretName"] == "aop-tls", f"{label}: web config and TLS Secrets")
    check(not [o for o in objects.values() if o["kind"] == "Secret"], f"{label}: existing Secrets only, the chart makes none")
    check(container["image"] == "registry.example.com/sre/cloudflare-aop-exporter@sha256:" + "0123456789abcdef" * 4,
          f"{label}: image by digest")
    endpoint = only(objects, "ServiceMonitor")["spec"]["endpoints"][0]
    check(endpoint["scheme"] == "https" and "basicAuth" in endpoint and endpoint["tlsConfig"]["keySecret"]["name"] == "prometheus-scrape-client",
          f"{label}: ServiceMonitor over TLS with basic auth")
    check(endpoint["interval"] == "2m" and endpoint["relabelings"][-1]["targetLabel"] == "cluster", f"{label}: interval, relabelings")
    groups = only(objects, "PrometheusRule")["spec"]["groups"]
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    source = {r["alert"]: r for g in source_groups() for r in g["rules"]}
    threshold, literal, changed, with_for, disabled, untouched_name = picked_alerts()
    overridden = rules[threshold]
    check(overridden["for"] == "5m" and overridden["labels"]["severity"] == "critical" and changed in overridden["expr"]
          and literal not in overridden["expr"], f"{label}: for/severity/threshold override: {overridden}")
    replaced = rules[with_for]
    check("for" not in replaced and replaced["expr"] == "vector(1) > 7200" and replaced["labels"]["page"] == "true",
          f"{label}: expr override, for removed, extra label: {replaced}")
    check(disabled not in rules and len(rules) == len(source), f"{label}: a disabled alert is left out (one added)")
    check("CloudflareAOPNoHostnames" in rules and groups[-1]["name"] == "cloudflare-aop-local", f"{label}: additionalGroups")
    untouched = rules[untouched_name]
    expected = copy.deepcopy(source[untouched_name])
    expected.setdefault("labels", {})["team"] = "sre"
    # ruleAnnotations are defaults: the rule's own annotations (its runbook_url) win.
    expected["annotations"] = {"runbook_url": "https://runbooks.example.com/cloudflare-aop",
                               **expected.get("annotations", {})}
    check(untouched == expected, f"{label}: an alert without overrides gets only ruleLabels/ruleAnnotations")
    dashboard = [o for o in objects.values() if o["kind"] == "ConfigMap" and "cloudflare-aop.json" in o.get("data", {})][0]
    check(dashboard["metadata"]["annotations"] == {"grafana_folder": "Cloudflare"}, f"{label}: dashboard folder annotation")


def check_inline(objects):
    label = "values-inline"
    deployment, container, config = common_facts(objects, label)
    secrets = {o["metadata"]["name"]: o for o in objects.values() if o["kind"] == "Secret"}
    check(set(secrets) == {"aop-token", "aop-web-config"}, f"{label}: the chart's Secrets: {sorted(secrets)}")
    check(container["livenessProbe"]["httpGet"]["port"] == "probes"
          and {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9100, "probes": 9800},
          f"{label}: basic auth only still probes the plain port")
    check(config["server"]["probe_listen"] == "0.0.0.0:9800", f"{label}: probe_listen follows webConfig.probePort")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    check("checksum/token" in annotations and "checksum/web-config" in annotations, f"{label}: checksums of the chart's Secrets")
    check(volume(deployment, "state")["persistentVolumeClaim"]["claimName"] == "aop-state" and not only(objects, "PersistentVolumeClaim"),
          f"{label}: existing claim")
    check(not any(o["kind"] in ("ServiceMonitor", "PrometheusRule") for o in objects.values()), f"{label}: no CRD objects")
    check(deployment["spec"]["template"]["spec"]["serviceAccountName"] == "default" and not only(objects, "ServiceAccount"),
          f"{label}: serviceAccount.create=false")
    check("not-a-real-token" not in json.dumps([o for o in objects.values() if o["kind"] != "Secret"]),
          f"{label}: the token appears in its Secret only")


def check_storage(objects):
    label = "values-storage"
    common_facts(objects, label)
    claim = only(objects, "PersistentVolumeClaim")
    check(claim["spec"].get("storageClassName") == "fast-ssd" and claim["spec"]["resources"]["requests"]["storage"] == "256Mi",
          f"{label}: storage class and size")
    endpoint = only(objects, "ServiceMonitor")["spec"]["endpoints"][0]
    check(endpoint["scheme"] == "https", f"{label}: explicit https scheme")
    name = yaml.safe_load((CASES / "values-storage.yaml").read_text())["config"]["zones"][0]["name"]
    check(tomllib.loads(config_of(objects))["zones"][0]["name"] == name, f"{label}: a string with quotes, backslash, unicode survives TOML")


def check_ha(objects):
    label = "values-ha"
    deployment, container, config = common_facts(objects, label)
    spec = deployment["spec"]
    check(spec["replicas"] == 2, f"{label}: two replicas")
    check(spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
          f"{label}: a new pod first, then an old one stops: {spec['strategy']}")
    check(config.get("leader_election") == {"enabled": True, "lease_name": "aop-cloudflare-aop-exporter",
                                            "lease_duration": "20s"},
          f"{label}: [leader_election] set by the chart: {config.get('leader_election')}")
    env = {e["name"]: e for e in container["env"]}
    for name, field in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"), ("POD_IP", "status.podIP")]:
        check(env.get(name, {}).get("valueFrom") == {"fieldRef": {"fieldPath": field}}, f"{label}: {name} from {field}")
    check("SLACK_WEBHOOK_URL" in env, f"{label}: the user's env is kept next to the chart's")
    check(volume(deployment, "state") == {"name": "state", "emptyDir": {}} and not only(objects, "PersistentVolumeClaim"),
          f"{label}: each replica's state in an emptyDir, no shared claim")
    role = only(objects, "Role")
    if check(role is not None, f"{label}: one Role"):
        verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
        check(verbs == {"get", "create", "update"}
              and all(rule["apiGroups"] == ["coordination.k8s.io"] and rule["resources"] == ["leases"] for rule in role["rules"]),
              f"{label}: the Role allows leases get/create/update only: {role['rules']}")
        named = [rule for rule in role["rules"] if "get" in rule["verbs"]]
        check(named and named[0].get("resourceNames") == ["aop-cloudflare-aop-exporter"], f"{label}: get/update on the one Lease")
    binding = only(objects, "RoleBinding")
    if check(binding is not None, f"{label}: one RoleBinding"):
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        check(binding["roleRef"]["name"] == role["metadata"]["name"]
              and binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}],
              f"{label}: the RoleBinding binds the Role to the pod's ServiceAccount")
    pdb = only(objects, "PodDisruptionBudget")
    if check(pdb is not None, f"{label}: one PodDisruptionBudget"):
        check(pdb["spec"].get("maxUnavailable") == 1
              and pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"],
              f"{label}: PodDisruptionBudget maxUnavailable 1 over the Deployment's pods")


SCENARIOS = {
    "defaults": (None, check_defaults),
    "values-mtls": (mtls_values, check_mtls),
    "values-inline": ("values-inline.yaml", check_inline),
    "values-storage": ("values-storage.yaml", check_storage),
    "values-ha": ("values-ha.yaml", check_ha),
}

FIRST_ALERT = next(r["alert"] for g in source_groups() for r in g["rules"] if "alert" in r)

# Values that must be refused, and a piece of the reason. Schema first, then template checks.
REFUSED = [
    ({"replicas": 2}, "needs leaderElection.enabled"),
    ({"replicas": 3, "leaderElection": {"enabled": True}}, "/replicas"),
    ({"leaderElection": {"enabled": True, "leaseDuration": "15"}}, "/leaderElection/leaseDuration"),
    ({"leaderElection": {"enabled": True}, "persistence": {"existingClaim": "c"}}, "cannot be shared"),
    ({"config": {"leader_election": {"enabled": True}}}, "set by the chart"),
    ({"replicas": 2, "leaderElection": {"enabled": True}, "webConfig": {"enabled": True, "config": {"basic_auth_users": {"u": "x"}}}}, "cannot be combined with replicas: 2"),
    ({"persistence": {"enabled": "yes"}}, "/persistence/enabled"),
    ({"serviceMonitor": {"scheme": "ftp"}}, "/serviceMonitor/scheme"),
    ({"service": {"port": 70000}}, "/service/port"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"prometheusRule": {"alerts": {"CloudflareAOPNoSuchAlert": {"for": "5m"}}}}, "'CloudflareAOPNoSuchAlert' not allowed"),
    ({"prometheusRule": {"alerts": {FIRST_ALERT: {"severity": "page"}}}}, "/" + FIRST_ALERT + "/severity"),
    ({"prometheusRule": {"alerts": {FIRST_ALERT: {"for": "five minutes"}}}}, "/" + FIRST_ALERT + "/for"),
    ({"config": {"zones": [{"hostnames": ["a.example"]}]}}, "missing property 'id'"),
    ({"serviceMonitor": {"basicAuth": {"username": {"name": "s", "key": "u"}, "password": {"name": "s", "key": "p"}}}}, "https"),
    ({"prometheusRule": {"alerts": {FIRST_ALERT: {"exprReplace": [{"from": "< 99999", "to": "< 5"}]}}}}, "does not occur"),
    ({"config": {"server": {"listen": "0.0.0.0:1"}}}, "set by the chart"),
    ({"config": {"state": {"dir": "/data"}}}, "set by the chart"),
    ({"cloudflare": {"existingSecret": "s"}, "config": {"cloudflare": {"api_token_env": "T"}}}, "conflicts"),
    ({"webConfig": {"enabled": True}}, "webConfig.config"),
    ({"webConfig": {"enabled": True, "existingSecret": "w", "config": {"basic_auth_users": {"u": "x"}}}}, "both set"),
    ({"cloudflare": {"existingSecret": "s", "apiToken": "t"}}, "both set"),
]


def check_refused():
    with helm.Chart.load(CHART) as chart:
        for values, reason in REFUSED:
            try:
                chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
            except helm.HelmError as error:
                check(reason.lower() in str(error).lower(), f"refused {values}, but not for {reason!r}: {error}")
            else:
                failures.append(f"accepted values that must be refused: {values}")


def check_promtool(objects, label):
    """`promtool check rules` on the rendered PrometheusRule (the overrides must still be PromQL)."""
    rule = only(objects, "PrometheusRule")
    if rule is None:
        return
    promtool = shutil.which("promtool")
    if promtool is None:
        check(not os.environ.get("CF_AOP_REQUIRE_OS_TOOLS"), f"{label}: promtool is required (scripts/test installs it)")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".yml", prefix="cf-aop-chart-rules.") as rules_file:
        yaml.safe_dump(rule["spec"], rules_file)
        rules_file.flush()
        result = subprocess.run([promtool, "check", "rules", rules_file.name], capture_output=True, text=True, timeout=60)
    check(result.returncode == 0, f"{label}: promtool check rules: {result.stdout.strip()} {result.stderr.strip()}")


def check_exporter_config(exporter, label, config_text):
    """`validate-config` on the rendered config, the chart's paths pointed at local files."""
    with tempfile.TemporaryDirectory(prefix="cf-aop-chart.") as tmp:
        tmp = Path(tmp)
        (tmp / "token").write_text("0123456789abcdef0123456789abcdef01234567\n")
        (tmp / "web.yml").write_text(
            "basic_auth_users:\n  prometheus: $2y$10$PrloTg7aX68ALl7xGUO2T.HV2Rkh89WJcyBeBsjDZB2LiPf7Rg7Qu\n")
        text = re.sub(r'"/run/secrets/cloudflare-aop-exporter/[^"]+"', json.dumps(str(tmp / "token")), config_text)
        text = text.replace('"/etc/cloudflare-aop-exporter/web/web.yml"', json.dumps(str(tmp / "web.yml")))
        text = text.replace('"/var/lib/cloudflare-aop-exporter"', json.dumps(str(tmp / "state")))
        env = {key: value for key, value in os.environ.items() if not key.startswith("CF_AOP__")}
        env.update(SLACK_WEBHOOK_URL="https://hooks.slack.invalid/x", AOP_WEBHOOK_URL="https://hooks.invalid/x",
                   AOP_WEBHOOK_SECRET="not-a-secret")

        def validate(config):
            (tmp / "config.toml").write_text(config)
            return subprocess.run([exporter, "validate-config", str(tmp / "config.toml")], env=env,
                                  capture_output=True, text=True, timeout=60)

        result = validate(text)
        if result.returncode != 0 and "server.probe_listen: unknown key" in result.stderr:
            # An exporter older than the probe listener: check everything else, and say so.
            print(f"check-chart: {label}: this exporter has no server.probe_listen; validated the config without it")
            result = validate(re.sub(r"(?m)^probe_listen = .*\n", "", text))
        check(result.returncode == 0, f"{label}: validate-config refuses the rendered config.toml: {result.stderr.strip()}")


def main():
    parser = argparse.ArgumentParser(description="Offline checks of the Helm chart.")
    parser.add_argument("--exporter", help="the exporter binary, to run validate-config on each rendered config")
    args = parser.parse_args()

    files = sorted(p.name for p in CASES.glob("values-*.yaml"))
    check(files == sorted(f"{label}.yaml" for label in SCENARIOS if label != "defaults"),
          f"tests/chart holds {files}: each values file needs its entry in SCENARIOS")
    validators = crd_validators()
    print(f"check-chart: Helm SDK {helm.helm_sdk_version()}, kubernetes-validate {kubernetes_validate.__version__} "
          f"(Kubernetes {', '.join(KUBE_VERSIONS)}, strict), prometheus-operator CRDs "
          f"{', '.join(sorted({v for v, _ in validators.values()}))}")
    for label, (values_file, facts) in SCENARIOS.items():
        if callable(values_file):
            values = values_file()
        else:
            values = yaml.safe_load((CASES / values_file).read_text()) if values_file else None
        before = len(failures)
        lint(values, label)
        try:
            objects = render(values)
        except helm.HelmError as error:
            failures.append(f"{label}: render failed: {error}")
            continue
        validate_objects(objects, label, validators)
        facts(objects)
        check_promtool(objects, label)
        # The defaults name no zone and no token: the exporter rightly refuses to start with them.
        if args.exporter and values is not None:
            check_exporter_config(args.exporter, label, config_of(objects))
        kinds = sorted(key.split("/")[0] for key in objects)
        print(f"check-chart: {label}: {len(objects)} objects ({', '.join(kinds)}): "
              f"{'ok' if len(failures) == before else 'FAILED'}")
    before = len(failures)
    check_refused()
    print(f"check-chart: {len(REFUSED)} bad values refused: {'ok' if len(failures) == before else 'FAILED'}")
    for failure in failures:
        print(f"check-chart: FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
