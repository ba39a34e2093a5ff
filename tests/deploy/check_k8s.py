#!/usr/bin/env python3
"""Checks deploy/k8s/*.yaml without a cluster (there is none on the project's machine).

It parses every document and asserts what the HAProxy setup tested on one machine relies on:
readiness on /v2/health/ready and liveness on /v2/health/live, resource requests and limits,
the model repository mounted read-only from a volume, a termination grace period longer than
the preStop sleep plus serve's --drain-seconds, rolling updates that never drop below the
wanted number of ready pods, Prometheus scrape annotations naming the container's port, and a
Service whose selector matches the pods and whose target port exists. It cannot tell whether a
cluster accepts the objects (no API server to validate against).

usage: check_k8s.py FILE.yaml...   exit 0 when every check passes, 1 otherwise
"""
import sys

import yaml


def fail(path, message):
    print(f"check_k8s: {path}: {message}", file=sys.stderr)
    return 1


def flag_value(args, name):
    for a in args:
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def check_deployment(path, d):
    errors = 0
    spec = d["spec"]
    template = spec["template"]
    pod = template["spec"]
    rolling = spec.get("strategy", {}).get("rollingUpdate", {})
    if rolling.get("maxUnavailable") != 0:
        errors += fail(path, "the rolling update may drop below the wanted ready pods "
                             "(strategy.rollingUpdate.maxUnavailable must be 0)")
    labels = template["metadata"]["labels"]
    for k, v in spec["selector"]["matchLabels"].items():
        if labels.get(k) != v:
            errors += fail(path, f"selector {k}={v} does not match the pod template's labels")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    (container,) = [c for c in pod["containers"] if c["name"] == "serve"]
    args = container.get("args", [])
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}

    def probe_path(kind):
        probe = container.get(kind)
        if not probe:
            return None
        get = probe["httpGet"]
        port = get["port"]
        if isinstance(port, str) and port not in ports:
            errors_local.append(f"{kind} names port {port!r}, which the container lacks")
        return get["path"]

    errors_local = []
    if probe_path("readinessProbe") != "/v2/health/ready":
        errors += fail(path, "readinessProbe must GET /v2/health/ready")
    if probe_path("livenessProbe") != "/v2/health/live":
        errors += fail(path, "livenessProbe must GET /v2/health/live")
    for e in errors_local:
        errors += fail(path, e)

    resources = container.get("resources", {})
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in resources.get(part, {}):
                errors += fail(path, f"resources.{part}.{r} is missing")

    repo = flag_value(args, "--model-repository")
    mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == repo]
    if repo is None or not mounts:
        errors += fail(path, "--model-repository must be a mounted volume")
    else:
        m = mounts[0]
        if not m.get("readOnly"):
            errors += fail(path, "the model repository must be mounted read-only")
        if m["name"] not in volumes:
            errors += fail(path, f"volume {m['name']!r} is mounted but not declared")

    drain = int(flag_value(args, "--drain-seconds") or 10)  # serve's default
    pre_stop = 0
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    if command and command[0] == "sleep":
        pre_stop = int(command[1])
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= pre_stop + drain:
        errors += fail(path, f"terminationGracePeriodSeconds {grace} must exceed the preStop "
                             f"sleep ({pre_stop} s) plus --drain-seconds ({drain} s)")

    annotations = template["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/scrape") != "true":
        errors += fail(path, "the pods lack prometheus.io/scrape: \"true\"")
    port = flag_value(args, "--port")
    if annotations.get("prometheus.io/port") != port or int(port) not in ports.values():
        errors += fail(path, "prometheus.io/port must be serve's --port and a container port")
    if annotations.get("prometheus.io/path", "/metrics") != "/metrics":
        errors += fail(path, "prometheus.io/path must be /metrics")
    return errors, labels, ports


def main(paths):
    errors = 0
    for path in paths:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        kinds = {d["kind"]: d for d in docs}
        if "Deployment" not in kinds or "Service" not in kinds:
            errors += fail(path, "needs a Deployment and a Service")
            continue
        e, labels, ports = check_deployment(path, kinds["Deployment"])
        errors += e
        service = kinds["Service"]["spec"]
        for k, v in service["selector"].items():
            if labels.get(k) != v:
                errors += fail(path, f"the Service's selector {k}={v} matches no pod")
        for p in service["ports"]:
            target = p["targetPort"]
            if target not in ports and target not in ports.values():
                errors += fail(path, f"the Service targets port {target!r}, which no container has")
    if errors == 0:
        print(f"check_k8s: {len(paths)} file(s) pass (parsed and checked; not applied to a cluster)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
