#!/usr/bin/env bash
# Make sure every server the test suite talks to is up (idempotent, fast when all is running):
#   Redis on 127.0.0.1:6379, PostgreSQL on 127.0.0.1:5432, and a local 3-node Redis Cluster
#   on 127.0.0.1:7100-7102 (started and formed here; its data lives under /tmp).
set -euo pipefail

if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  echo "services: starting redis on 6379"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/hlquant-redis-6379.log
  for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "services: starting postgresql"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 100); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.1; done
fi

CLUSTER_DIR=/tmp/hlquant-redis-cluster
PORTS="7100 7101 7102"
if ! redis-cli -p 7100 cluster info 2>/dev/null | grep -q "cluster_state:ok"; then
  echo "services: starting a 3-node redis cluster on 7100-7102"
  for p in $PORTS; do
    redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$CLUSTER_DIR/$p"; mkdir -p "$CLUSTER_DIR/$p"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$p" --cluster-enabled yes \
      --cluster-config-file "$CLUSTER_DIR/$p/nodes.conf" --dir "$CLUSTER_DIR/$p" \
      --save "" --appendonly no --logfile "$CLUSTER_DIR/$p/redis.log"
  done
  for p in $PORTS; do
    for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli --cluster create 127.0.0.1:7100 127.0.0.1:7101 127.0.0.1:7102 \
    --cluster-replicas 0 --cluster-yes >/dev/null
  for _ in $(seq 100); do
    redis-cli -p 7100 cluster info | grep -q "cluster_state:ok" && break; sleep 0.1
  done
fi
echo "services: redis, postgresql, redis cluster ready"
