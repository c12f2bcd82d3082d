#!/usr/bin/env bash
# Starts the demo IdP, the demo SP and the whole hub (`relais all`) on loopback, in the
# database `relais_demo` and the exchange `relais.demo.events`. Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${TARGET_DIR:-target}/debug"

db_exists=$(psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'relais_demo'" 2>/dev/null || true)
if [ "$db_exists" != "1" ]; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE relais_demo" >/dev/null
fi

# The services' mTLS certificates (deploy/relais.toml, [grpc]), made once.
if [ ! -f deploy/dev-pki/ca.pem ]; then
  "$bin/relais" admin pki init --config deploy/relais.toml
  "$bin/relais" admin pki issue operator dev --config deploy/relais.toml
fi

pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

"$bin/demo-idp" deploy/demo-idp.toml & pids+=($!)
"$bin/demo-sp" deploy/demo-sp.toml & pids+=($!)
"$bin/demo-sp" deploy/support-console.toml & pids+=($!)
"$bin/relais" all --config deploy/relais.toml & pids+=($!)

for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/8000) 2>/dev/null; then break; fi
  sleep 0.2
done
cat <<MSG

  Relais is running.
  Open the demo service provider:  http://127.0.0.1:8700
  Support console (API tokens):    http://127.0.0.1:8701
  (hub http://127.0.0.1:8000, demo IdP http://127.0.0.1:8600; Ctrl-C stops everything)

MSG
wait -n "${pids[@]}"
