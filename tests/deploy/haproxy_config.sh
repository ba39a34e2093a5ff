#!/usr/bin/env bash
# deploy/haproxy/haproxy.cfg and deploy/prometheus/replicas.json must be what
# deploy/haproxy/render.sh writes for its defaults (so the committed examples and the generator
# cannot drift apart), and HAProxy must accept the configuration (haproxy -c).
#   tests/deploy/haproxy_config.sh HAPROXY_BINARY SOURCE_DIR
set -euo pipefail
haproxy=$1 source=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$source/deploy/haproxy/render.sh" --prometheus-targets "$work/replicas.json" >"$work/haproxy.cfg"
diff -u "$source/deploy/haproxy/haproxy.cfg" "$work/haproxy.cfg" ||
  { echo "haproxy.cfg differs from render.sh's output: regenerate it" >&2; exit 1; }
diff -u "$source/deploy/prometheus/replicas.json" "$work/replicas.json" ||
  { echo "replicas.json differs from render.sh's output: regenerate it" >&2; exit 1; }
"$haproxy" -c -f "$source/deploy/haproxy/haproxy.cfg"
# And a generated one for other replicas, with HAProxy's exporter left out.
"$source/deploy/haproxy/render.sh" --replicas 10.0.0.1:80,10.0.0.2:80 --listen :9000 \
  --socket "$work/admin.sock" --stats off >"$work/two.cfg"
grep -q '^    server s2 10.0.0.2:80$' "$work/two.cfg"
! grep -q prometheus-exporter "$work/two.cfg"
"$haproxy" -c -f "$work/two.cfg"
# Bad input is refused.
! "$source/deploy/haproxy/render.sh" --replicas 10.0.0.1 >/dev/null 2>&1
