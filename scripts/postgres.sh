#!/usr/bin/env bash
# PostgreSQL for the tests and benchmarks: a server on 127.0.0.1:5432 where user postgres signs
# in from localhost without a password (each test session creates a throwaway database).
#   - already so: does nothing (this is the common case, and the script only reads then);
#   - no server installed: installs Debian's `postgresql` (root, or it prints the apt-get line)
#     and, since it just installed it, trusts 127.0.0.1 and ::1 for postgres in pg_hba.conf;
#   - cluster stopped: starts it with pg_ctlcluster (no systemd needed), then waits for it.
# An existing installation's authentication is never changed: if postgres needs a password
# there, it says which line would do and fails. Used by `make services` and .ci/run.
set -euo pipefail

HOST=127.0.0.1
PORT=${READYNET_POSTGRES_PORT:-5432} # another port only to try this script on a spare cluster
WAIT_S=30
MARK="# ReadyNet (scripts/postgres.sh): the tests sign in as postgres from localhost"

ready() { pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; }
signs_in() { psql -h "$HOST" -p "$PORT" -U postgres -d postgres -w -tAqc 'SELECT 1' >/dev/null 2>&1; }
say() { echo "postgres.sh: $*" >&2; }

# "version name status" of the cluster on $PORT, if any.
cluster_on_port() {
  pg_lsclusters --no-header 2>/dev/null | awk -v port="$PORT" '$3 == port { print $1, $2, $4; exit }'
}

install_server() {
  if [ "$(id -u)" -ne 0 ]; then
    say "PostgreSQL is not installed; run: sudo apt-get install -y postgresql"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql
}

# Only for a cluster this script created by installing the package: first match wins.
trust_localhost() {
  local hba=$1
  grep -qxF "$MARK" "$hba" && return 0
  {
    echo "$MARK"
    echo "host all postgres 127.0.0.1/32 trust"
    echo "host all postgres ::1/128 trust"
    cat "$hba"
  } >"$hba.readynet" && cat "$hba.readynet" >"$hba" && rm -f "$hba.readynet"
}

main() {
  if ready && signs_in; then
    exit 0
  fi
  local installed_now=false
  if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    install_server
    installed_now=true
  fi
  local version name status
  read -r version name status <<<"$(cluster_on_port)"
  if [ -z "${version:-}" ]; then
    say "no PostgreSQL cluster on port $PORT (pg_lsclusters); create one with: pg_createcluster --port $PORT <version> main"
    exit 1
  fi
  if $installed_now; then
    trust_localhost "/etc/postgresql/$version/$name/pg_hba.conf"
    if [ "$status" = online ]; then pg_ctlcluster "$version" "$name" reload; fi
  fi
  if [ "$status" != online ]; then
    say "starting PostgreSQL $version/$name"
    pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start
  fi
  local waited=0
  until ready; do
    if [ "$waited" -ge "$WAIT_S" ]; then
      say "PostgreSQL $version/$name did not answer on $HOST:$PORT within $WAIT_S s"
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  if ! signs_in; then
    say "PostgreSQL $version/$name answers on $HOST:$PORT, but user postgres cannot sign in" \
      "without a password; this script leaves an existing installation's authentication alone." \
      "For the tests, add at the top of /etc/postgresql/$version/$name/pg_hba.conf:" \
      "'host all postgres 127.0.0.1/32 trust', then: pg_ctlcluster $version $name reload"
    exit 1
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
