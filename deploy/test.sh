#!/usr/bin/env bash
# Runs every test. First the default build's (`swift test`: SQLite, long polling). Then, when
# PostgreSQL's server programs are installed (Debian's `postgresql` package), the Cluster build's
# (`swift test --traits Cluster`, the suites it changes or adds), with the storage tests also on a throw-away PostgreSQL cluster
# that this script starts on 127.0.0.1 and removes afterwards, and last a restart of that server
# under a running bot. The server never runs as root: as root, it runs as the `postgres` user.
#
#   deploy/test.sh                 all of it, as CI runs it
#   TEST_DATABASE_URL=postgres://USER@HOST/DB deploy/test.sh    your database instead (tests make
#                                  schemas named t_… in it; the restart test is skipped)
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step within its limit (build included): a test that hangs fails the run in minutes, saying
# which step, instead of holding CI until its own limit with nothing to show.
bounded() {
  local limit=$1
  shift
  local status=0
  timeout --kill-after=30 "$limit" "$@" || status=$?
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "deploy/test.sh: '$*' did not finish within $limit s; a test hangs (the last ones started above are the suspects)" >&2
  fi
  return "$status"
}

bounded 1800 swift test

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  bounded 1800 swift test --traits Cluster --scratch-path .build-cluster
  exit 0
fi
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ]; then
  echo "The Cluster build's tests were skipped: PostgreSQL is not installed (apt-get install postgresql)." >&2
  exit 0
fi

as_server=()
workdir=$(mktemp -d /tmp/telegram-assistant-pg.XXXXXX)
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$workdir"
  as_server=(runuser -u postgres --)
fi
stop() {
  # Connections the server refused for want of slots would fail tests at random: say so.
  local refused
  refused=$(grep -c "too many clients" "$workdir/server.log" 2>/dev/null || true)
  if [ "${refused:-0}" -gt 0 ]; then
    echo "deploy/test.sh: PostgreSQL refused $refused connections (max_connections); tests that failed may have failed on that" >&2
  fi
  "${as_server[@]}" "$bin/pg_ctl" -D "$workdir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap stop EXIT
port=$((20000 + RANDOM % 20000))
"${as_server[@]}" "$bin/initdb" -D "$workdir/data" -U assistant --auth=trust -E UTF8 --no-locale >"$workdir/initdb.log"
# In the cluster's own configuration, so that a test can stop and start it again as it is. The
# suites run in parallel, each store with a pool of up to 8 connections: 150 at once here, more on
# a machine with more cores, so room for several times that.
printf "port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nmax_connections = 1000\nfsync = off\n" \
  "$port" "$workdir" >>"$workdir/data/postgresql.conf"
"${as_server[@]}" "$bin/pg_ctl" -D "$workdir/data" -l "$workdir/server.log" -w start >/dev/null
"$bin/createdb" -h 127.0.0.1 -p "$port" -U assistant assistant_test
export TEST_DATABASE_URL="postgres://assistant@127.0.0.1:$port/assistant_test?sslmode=disable"
# The suites the Cluster build changes or adds; the rest ran above on the same sources, and running
# them again would only double the real-time tests fighting for two cores.
bounded 1800 swift test --traits Cluster --scratch-path .build-cluster \
  --filter 'StoreContractTests|StoreTests|PostgresBotTests|ClusterServerTests|WebhookTests|ReplicaTests|ConfigurationTests|LayeringTests'
# Last and alone: this one stops and starts the server under a running bot.
TEST_POSTGRES_CTL="${as_server[*]} $bin/pg_ctl -D $workdir/data -l $workdir/server.log -w" \
  bounded 600 swift test --traits Cluster --scratch-path .build-cluster --skip-build --filter PostgresRestartTests
