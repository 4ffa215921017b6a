#!/usr/bin/env bash
# Run a command with Redis, a Redis Cluster and PostgreSQL available:
#   REDIS_URL           redis://127.0.0.1:PORT
#   REDIS_CLUSTER_URLS  redis://127.0.0.1:P1,redis://127.0.0.1:P2,redis://127.0.0.1:P3
#   DATABASE_URL        postgres://postgres@127.0.0.1:PORT/postgres (pg_stat_statements loaded)
# Each variable that is already set is used as it is; otherwise a throwaway server is
# started on a free loopback port and stopped when the command ends. Missing server
# binaries are installed with apt-get when running as root; otherwise this fails and says
# which packages to install. It never skips a store.
set -euo pipefail

state=$(mktemp -d /tmp/idempo-services.XXXXXX)
chmod 755 "$state"
pids=()
pg_data=""

cleanup() {
  local code=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$pg_data" ] && [ -f "$pg_data/postmaster.pid" ]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
  fi
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$state"
  exit $code
}
trap cleanup EXIT INT TERM

die() { echo "with-services: $*" >&2; exit 1; }

apt_updated=""
need() { # need BINARY PACKAGES...
  local bin=$1; shift
  command -v "$bin" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ]; then
    die "$bin is not installed: install the Debian packages '$*' (sudo apt-get install $*), or set the service URLs yourself"
  fi
  echo "with-services: installing $* for $bin" >&2
  export DEBIAN_FRONTEND=noninteractive
  [ -n "$apt_updated" ] || { apt-get update -qq >&2; apt_updated=1; }
  apt-get install -y -qq "$@" >&2 || die "apt-get install $* failed"
  command -v "$bin" >/dev/null 2>&1 || die "$bin still missing after installing $*"
}

# A free loopback port in 20000-49999 whose +10000 neighbour is free too (Redis Cluster's
# bus port; the kernel's ephemeral range would put it past 65535).
free_port() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    port = random.randrange(20000, 50000)
    try:
        for p in (port, port + 10000):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            s.close()
    except OSError:
        continue
    print(port)
    break
else:
    raise SystemExit("no free port found")
PY
}

wait_redis() { # wait_redis PORT
  for _ in $(seq 100); do
    redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.05
  done
  die "redis-server on port $1 did not start"
}

start_redis() { # start_redis PORT [extra args...]
  local port=$1; shift
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$state" \
    --logfile "$state/redis-$port.log" "$@" &
  pids+=($!)
  wait_redis "$port"
}

if [ -z "${REDIS_URL:-}" ] || [ -z "${REDIS_CLUSTER_URLS:-}" ]; then
  need redis-server redis-server redis-tools
  need redis-cli redis-tools
fi

if [ -z "${REDIS_URL:-}" ]; then
  port=$(free_port)
  start_redis "$port"
  export REDIS_URL="redis://127.0.0.1:$port"
  echo "with-services: Redis at $REDIS_URL" >&2
fi

if [ -z "${REDIS_CLUSTER_URLS:-}" ]; then
  nodes=()
  urls=()
  for _ in 1 2 3; do
    port=$(free_port)
    start_redis "$port" --cluster-enabled yes --cluster-config-file "$state/nodes-$port.conf" --cluster-node-timeout 2000
    nodes+=("127.0.0.1:$port")
    urls+=("redis://127.0.0.1:$port")
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$state/cluster-create.log" 2>&1 \
    || { cat "$state/cluster-create.log" >&2; die "redis-cli --cluster create failed"; }
  first_port=${nodes[0]#*:}
  for _ in $(seq 100); do
    redis-cli -p "$first_port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
  redis-cli -p "$first_port" cluster info | grep -q 'cluster_state:ok' || die "the Redis Cluster did not become ready"
  REDIS_CLUSTER_URLS=$(IFS=,; echo "${urls[*]}")
  export REDIS_CLUSTER_URLS
  echo "with-services: Redis Cluster at $REDIS_CLUSTER_URLS" >&2
fi

if [ -z "${DATABASE_URL:-}" ]; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    need /usr/lib/postgresql/15/bin/initdb postgresql
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  id postgres >/dev/null 2>&1 || die "the postgres system user is missing: reinstall the postgresql package"
  port=$(free_port)
  pg_data="$state/pg"
  mkdir -p "$pg_data"
  chown postgres "$pg_data"
  runuser -u postgres -- "$pg_bin/initdb" -D "$pg_data" -A trust -U postgres >"$state/initdb.log" 2>&1 \
    || { cat "$state/initdb.log" >&2; die "initdb failed"; }
  # Durability off: a throwaway test database, many short transactions.
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" -w -l "$pg_data/server.log" -o \
    "-p $port -k $pg_data -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off \
     -c synchronous_commit=off -c full_page_writes=off -c shared_preload_libraries=pg_stat_statements" \
    start >/dev/null || { cat "$pg_data/server.log" >&2; die "PostgreSQL did not start"; }
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "with-services: PostgreSQL at $DATABASE_URL" >&2
fi

"$@"
