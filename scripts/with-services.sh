#!/usr/bin/env bash
# Run a command with Redis, a Redis Cluster and PostgreSQL available:
#   REDIS_URL           redis://127.0.0.1:PORT
#   REDIS_CLUSTER_URLS  redis://127.0.0.1:P1,redis://127.0.0.1:P2,redis://127.0.0.1:P3
#   DATABASE_URL        postgres://postgres@127.0.0.1:PORT/postgres (pg_stat_statements loaded)
#   REDIS_TLS_URL       rediss://127.0.0.1:PORT (TLS only)
#   DATABASE_TLS_URL    postgres://postgres@127.0.0.1:PORT/postgres (ssl=on; plain text refused)
#   IDEMPO_TLS_CA       the CA that signed both TLS servers' certificates (PEM)
#   IDEMPO_TLS_WRONG_CA a CA that signed nothing here, for the tests that must fail (PEM)
# Each variable that is already set is used as it is; otherwise a throwaway server is
# started on a free loopback port and stopped when the command ends. Missing server
# binaries are installed with apt-get when running as root; otherwise this fails and says
# which packages to install. It never skips a store.
set -euo pipefail

state=$(mktemp -d /tmp/idempo-services.XXXXXX)
chmod 755 "$state"
pids=()
pg_datas=()
pg_bin=""

cleanup() {
  local code=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pg_data in "${pg_datas[@]}"; do
    if [ -f "$pg_data/postmaster.pid" ]; then
      runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
    fi
  done
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

find_pg() {
  [ -n "$pg_bin" ] && return 0
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    need /usr/lib/postgresql/15/bin/initdb postgresql
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  id postgres >/dev/null 2>&1 || die "the postgres system user is missing: reinstall the postgresql package"
}

start_pg() { # start_pg NAME PORT [server options...]
  local name=$1 port=$2; shift 2
  find_pg
  local data="$state/$name"
  mkdir -p "$data"
  chown postgres "$data"
  pg_datas+=("$data")
  runuser -u postgres -- "$pg_bin/initdb" -D "$data" -A trust -U postgres >"$state/initdb-$name.log" 2>&1 \
    || { cat "$state/initdb-$name.log" >&2; die "initdb failed"; }
  # Durability off: a throwaway test database, many short transactions.
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$data" -w -l "$data/server.log" -o \
    "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off \
     -c synchronous_commit=off -c full_page_writes=off $*" \
    start >/dev/null || { cat "$data/server.log" >&2; die "PostgreSQL did not start"; }
}

if [ -z "${DATABASE_URL:-}" ]; then
  port=$(free_port)
  start_pg pg "$port" -c shared_preload_libraries=pg_stat_statements
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "with-services: PostgreSQL at $DATABASE_URL" >&2
fi

# TLS servers (B22), all or none: a CA made here signs a certificate for 127.0.0.1 and
# localhost that a Redis with only a TLS port and a PostgreSQL with ssl=on (plain text
# refused) present; a second CA signs nothing, for the tests that must fail.
tls_vars=(REDIS_TLS_URL DATABASE_TLS_URL IDEMPO_TLS_CA IDEMPO_TLS_WRONG_CA)
tls_set=0
for v in "${tls_vars[@]}"; do [ -n "${!v:-}" ] && tls_set=$((tls_set + 1)); done
if [ "$tls_set" -ne 0 ] && [ "$tls_set" -ne 4 ]; then
  die "set all of ${tls_vars[*]} or none (then throwaway TLS servers are started)"
fi
if [ "$tls_set" -eq 0 ]; then
  need openssl openssl
  need redis-server redis-server redis-tools
  need redis-cli redis-tools
  tls="$state/tls"
  mkdir -p "$tls"
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  for ca in ca wrong-ca; do
    openssl req -x509 "${ec[@]}" -keyout "$tls/$ca.key" -out "$tls/$ca.pem" -days 2 \
      -subj "/CN=idempo test $ca" >/dev/null 2>&1 || die "openssl could not make a CA"
  done
  openssl req "${ec[@]}" -keyout "$tls/server.key" -out "$tls/server.csr" -subj "/CN=localhost" >/dev/null 2>&1 \
    || die "openssl could not make a key"
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
    >"$tls/server.ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -out "$tls/server.pem" -days 2 -extfile "$tls/server.ext" >/dev/null 2>&1 || die "openssl could not sign"
  chmod 755 "$tls"
  chmod 644 "$tls"/*.pem

  port=$(free_port)
  redis-server --port 0 --tls-port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$state" \
    --tls-cert-file "$tls/server.pem" --tls-key-file "$tls/server.key" --tls-ca-cert-file "$tls/ca.pem" \
    --tls-auth-clients no --logfile "$state/redis-tls.log" &
  pids+=($!)
  for _ in $(seq 100); do
    redis-cli --tls --cacert "$tls/ca.pem" -p "$port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.05
  done
  redis-cli --tls --cacert "$tls/ca.pem" -p "$port" ping 2>/dev/null | grep -q PONG \
    || { cat "$state/redis-tls.log" >&2; die "redis-server with TLS did not start (is it built with TLS?)"; }
  export REDIS_TLS_URL="rediss://127.0.0.1:$port"

  # PostgreSQL reads its key only if the server's user owns it and nobody else can.
  install -o postgres -m 600 "$tls/server.key" "$state/pg-server.key"
  port=$(free_port)
  start_pg pg-tls "$port" -c ssl=on -c "ssl_cert_file=$tls/server.pem" -c "ssl_key_file=$state/pg-server.key"
  printf 'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n' \
    >"$state/pg-tls/pg_hba.conf"
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$state/pg-tls" reload >/dev/null
  export DATABASE_TLS_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export IDEMPO_TLS_CA="$tls/ca.pem" IDEMPO_TLS_WRONG_CA="$tls/wrong-ca.pem"
  echo "with-services: TLS Redis at $REDIS_TLS_URL, TLS PostgreSQL at $DATABASE_TLS_URL (CA $IDEMPO_TLS_CA)" >&2
fi

"$@"
