#!/usr/bin/env bash
# The store benchmarks and the servers' own round-trip times, side by side.
set -euo pipefail
redis_port=${REDIS_URL##*:}; redis_port=${redis_port%%/*}
echo "== redis-benchmark -t ping (1 client, server round trip)"
redis-benchmark -p "$redis_port" -t ping_mbulk -c 1 -n 50000 -q
echo "== pgbench SELECT 1 (1 client, server round trip)"
script=$(mktemp); echo "SELECT 1;" > "$script"
pgbench_bin=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | sort -V | tail -n 1)
"$pgbench_bin" -n -c 1 -T 5 -M prepared -f "$script" "$DATABASE_URL" 2>/dev/null | grep -E 'latency average|tps'
rm -f "$script"
psql_bin=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql | sort -V | tail -n 1)
"$psql_bin" -q "$DATABASE_URL" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" -c "SELECT pg_stat_statements_reset()" >/dev/null
echo "== criterion (cargo bench -p idempo-benches)"
cargo bench -p idempo-benches --bench stores -- "$@"
echo "== PostgreSQL server-side execution time per statement (pg_stat_statements)"
"$psql_bin" "$DATABASE_URL" -c "SELECT calls, round(mean_exec_time::numeric * 1000, 1) AS mean_exec_us,
  left(regexp_replace(query, '\s+', ' ', 'g'), 60) AS statement
  FROM pg_stat_statements WHERE query LIKE '%idempo_records%' OR query = 'SELECT \$1' ORDER BY calls DESC LIMIT 6"
