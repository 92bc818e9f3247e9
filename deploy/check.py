#!/usr/bin/env python3
"""Checks the deployment files for real; exits non-zero on the first kind of failure found.

1. The Helm chart is linted and rendered by Helm's own engine (helm-python-sdk,
   which binds Helm's Go SDK), with the default and the production values.
2. Every rendered manifest and every plain manifest in deploy/ is validated:
   Kubernetes kinds against the Kubernetes OpenAPI schemas (kubernetes-validate,
   strict: unknown fields fail); the Dapr, Argo CD and Prometheus Operator custom
   resources against deploy/schemas/*.json (the fields this repository uses).
3. What the worker needs is there: the Dapr annotations, probes on the admin port.
4. Monitoring as shipped: the chart's PrometheusRule and dashboard ConfigMap
   hold files/alerts.yaml and files/dashboard.json as they are; promtool checks
   the rules, runs their unit tests (monitoring/alerts.test.yaml) and parses
   every dashboard query.

Needs: pip install helm-python-sdk kubernetes-validate; promtool (Debian's prometheus)
"""

import json
import pathlib
import subprocess
import sys
import tempfile

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
CHART = DEPLOY / "helm" / "customer-worker"
KUBERNETES_VERSION = "1.33.0"
CUSTOM_SCHEMAS = {
    ("dapr.io/v1alpha1", "Component"): "dapr-component.json",
    ("dapr.io/v1alpha1", "Resiliency"): "dapr-resiliency.json",
    ("argoproj.io/v1alpha1", "Application"): "argocd-application.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json",
}
# Every value that turns something on, in each combination that matters:
# (label, overrides, kinds it must render).
EVERYTHING = {
    "extraEnv": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector:4317"}],
    "envFrom": [{"secretRef": {"name": "customer-worker-extra"}}],
    "serviceAccount": {"create": True, "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/worker"}},
    "podDisruptionBudget": {"enabled": True},
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}},
}
VALUE_CASES = [
    ("everything on, HPA", {**EVERYTHING, "autoscaling": {"mode": "hpa"}}, ["HorizontalPodAutoscaler", "ServiceAccount", "PodDisruptionBudget", "PrometheusRule"]),
    ("everything on, KEDA", {**EVERYTHING, "autoscaling": {"mode": "keda", "keda": {"authenticationRef": "redis-auth"}}}, ["ScaledObject"]),
    ("everything off", {"serviceAccount": {"create": False}, "podDisruptionBudget": {"enabled": False}, "topologySpreadConstraints": [], "dapr": {"sidecarResources": {}}}, []),
]
ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARD = CHART / "files" / "dashboard.json"

failures = []


def fail(where, message):
    failures.append(f"{where}: {message}")


def validate(where, doc):
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CUSTOM_SCHEMAS:
        schema = json.loads((DEPLOY / "schemas" / CUSTOM_SCHEMAS[key]).read_text())
        for error in jsonschema.Draft202012Validator(schema).iter_errors(doc):
            fail(where, f"{key[1]} {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}")
        return
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = "/".join(map(str, error.path)) or "(root)"
        fail(where, f"{key[1]} {path}: {error.message}")
    except kubernetes_validate.SchemaNotFoundError:
        fail(where, f"no schema for {key[0]} {key[1]}")


def check_worker_deployment(where, doc, transport):
    template = doc["spec"]["template"]
    annotations = template["metadata"].get("annotations", {})
    app_channel = transport != "streaming"
    expected = {
        "dapr.io/enabled": "true",
        "dapr.io/app-id": "customer-worker",
        "dapr.io/app-port": "5005" if app_channel else None,
        "dapr.io/app-protocol": transport if app_channel else None,
        "dapr.io/enable-app-health-check": "true" if app_channel else None,
    }
    for key, value in expected.items():
        if annotations.get(key) != value:
            fail(where, f"annotation {key} is {annotations.get(key)!r}, expected {value!r}")
    container = template["spec"]["containers"][0]
    for probe, path in [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        http = container.get(probe, {}).get("httpGet", {})
        if http.get("path") != path or http.get("port") != "metrics":
            fail(where, f"{probe} must GET {path} on the metrics (admin) port, got {http}")
    if "--mode" not in container.get("args", []):
        fail(where, "container args lack --mode")
    if annotations.get("dapr.io/enable-metrics") != "true" or not annotations.get("dapr.io/metrics-port"):
        fail(where, "daprd's metrics are not on (dapr.io/enable-metrics, dapr.io/metrics-port)")
    if template["spec"].get("automountServiceAccountToken") is not False:
        fail(where, "the worker needs no Kubernetes API token: automountServiceAccountToken must be false")


def check_chart():
    report = helm.lint(str(CHART), strict=True)
    for error in report.get("errors", []):
        fail("helm lint", error)
    for message in report.get("messages", []):
        if message.get("severity", 0) >= 2:  # warning or error
            fail(f"helm lint {message.get('path')}", message.get("error"))
    cases = [(None, "grpc", None), ("values-production.yaml", "grpc", None), (None, "http", None), (None, "streaming", None)]
    cases += [(None, "grpc", case) for case in VALUE_CASES]
    for values_file, transport, case in cases:
        overrides = yaml.safe_load((CHART / values_file).read_text()) if values_file else {}
        if transport != "grpc":
            overrides = {"config": {"server": {"transport": transport}}}
        if case:
            overrides = case[1]
        label = f"chart ({case[0] if case else values_file or 'values.yaml'}, transport {transport})"
        with helm.Chart.load(str(CHART)) as chart:
            try:
                rendered = chart.render(overrides, name="customer-worker", namespace="customer")
            except Exception as error:  # noqa: BLE001 - report any rendering failure
                fail(label, f"does not render: {error}")
                continue
        kinds = []
        for template, text in sorted(rendered.items()):
            if not template.endswith((".yaml", ".yml")):
                continue
            for doc in yaml.safe_load_all(text):
                if not doc:
                    continue
                kinds.append(doc["kind"])
                validate(f"{label} {template}", doc)
                if doc["kind"] == "Deployment":
                    check_worker_deployment(f"{label} {template}", doc, transport)
                check_shipped_monitoring(f"{label} {template}", doc)
        for kind in ["Deployment", "ConfigMap", "Service"] + (case[2] if case else []):
            if kind not in kinds:
                fail(label, f"renders no {kind}")
        if case and case[0] == "everything off":
            for kind in ["ServiceAccount", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ScaledObject"]:
                if kind in kinds:
                    fail(label, f"renders a {kind} it was told not to")
        if values_file:
            for kind in ["ServiceMonitor", "PrometheusRule"]:
                if kind not in kinds:
                    fail(label, f"renders no {kind}")
            if kinds.count("ServiceMonitor") != 2:
                fail(label, "renders no ServiceMonitor for daprd")
            if kinds.count("ConfigMap") != 2:
                fail(label, "renders no dashboard ConfigMap")


def check_shipped_monitoring(where, doc):
    """The rules and the dashboard the chart renders are the tested files, unchanged."""
    if doc["kind"] == "PrometheusRule" and doc["spec"]["groups"] != yaml.safe_load(ALERTS.read_text())["groups"]:
        fail(where, "the PrometheusRule differs from files/alerts.yaml")
    if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-dashboard"):
        if json.loads(doc["data"]["customer-worker.json"]) != json.loads(DASHBOARD.read_text()):
            fail(where, "the dashboard ConfigMap differs from files/dashboard.json")


def promtool(*args):
    result = subprocess.run(["promtool", *args], capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"promtool {' '.join(args)}", (result.stdout + result.stderr).strip())


def check_monitoring():
    promtool("check", "rules", str(ALERTS))
    promtool("test", "rules", str(DEPLOY / "monitoring" / "alerts.test.yaml"))
    # Every dashboard query must parse: promtool checks them as recording rules,
    # with Grafana's variables given values.
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {"$__rate_interval": "5m", "$namespace": ".*", "$job": "customer-worker"}
    rules = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(name, value)
            if "$" in expr:
                fail(f"dashboard panel {panel['title']!r}", f"unknown variable in {target['expr']}")
            rules.append({"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": expr})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, file)
        file.flush()
        promtool("check", "rules", file.name)


def check_manifests():
    for path in sorted((DEPLOY / "dapr").glob("*.yaml")) + sorted((DEPLOY / "argocd").glob("*.yaml")):
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except yaml.YAMLError as error:
            fail(path.relative_to(DEPLOY), f"invalid YAML: {error}")
            continue
        for doc in docs:
            validate(path.relative_to(DEPLOY), doc)
            if doc.get("kind") == "Secret":
                fail(path.relative_to(DEPLOY), "a Secret is created (README), never shipped with a placeholder")


check_chart()
check_manifests()
check_monitoring()
if failures:
    print("deployment check FAILED:")
    for failure in failures:
        print("  " + failure)
    sys.exit(1)
print("deployment check passed: chart renders and lints; every manifest validates; alert rules and dashboard check out")
