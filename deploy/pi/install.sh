#!/usr/bin/env bash
# Install the ReadyNet agent on a Raspberry Pi (Raspberry Pi OS / Debian 12 or newer).
# Run it as root from a checkout of the repository; see --help.
set -euo pipefail

PREFIX=/opt/readynet
CONFIG_DIR=/etc/readynet
UNIT_DIR=/etc/systemd/system
SERVICE_USER=readynet-agent
SOURCE=""
START=1

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEPLOY="$(dirname "$HERE")"

usage() {
  cat <<USAGE
Usage: sudo $0 [--from PATH] [--prefix DIR] [--no-start]

Installs the ReadyNet agent:
  1. a Python virtual environment in $PREFIX with 'readynet[agent]' in it,
     from PyPI, or from PATH (a source checkout or a wheel) with --from;
  2. the system user $SERVICE_USER, which owns the config and the outbox;
  3. $CONFIG_DIR/agent.yaml from deploy/agent.example.yaml, mode 600,
     only if it does not exist yet (an existing config is never touched);
  4. readynet-agent.service in $UNIT_DIR, enabled, and started once the
     config holds a real token (the daemon plans tests and polls devices).

Then put the collector URL and the token from
  readynet-collector agent enroll --school ID --name NAME
into $CONFIG_DIR/agent.yaml; the agent refuses the placeholder token.

Options:
  --from PATH    install readynet from this directory or wheel instead of PyPI
  --prefix DIR   virtual environment location (default: $PREFIX)
  --no-start     install and enable the service but do not start it
  -h, --help     show this help and exit

Needs: python3 (3.11 or newer) with the venv module (apt-get install python3-venv).
USAGE
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --from)
      [ $# -ge 2 ] || die "--from needs a path"
      SOURCE="$2"
      shift 2
      ;;
    --prefix)
      [ $# -ge 2 ] || die "--prefix needs a directory"
      PREFIX="$2"
      shift 2
      ;;
    --no-start)
      START=0
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      die "unknown argument: $1"
      ;;
  esac
done

placeholder_token() {
  grep -Eq '^token:[[:space:]]*"?changeme"?[[:space:]]*$' "$CONFIG_DIR/agent.yaml"
}

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
command -v python3 >/dev/null || die "python3 not found: apt-get install python3 python3-venv"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "python3 is $(python3 -V 2>&1); readynet needs 3.11 or newer"
python3 -c 'import venv, ensurepip' 2>/dev/null \
  || die "the python3 venv module is missing: apt-get install python3-venv"
EXAMPLE="$DEPLOY/agent.example.yaml"
for file in "$EXAMPLE" "$DEPLOY/systemd/readynet-agent.service"; do
  [ -f "$file" ] || die "missing $file: run this script from a checkout of the repository"
done

if [ -n "$SOURCE" ]; then
  [ -e "$SOURCE" ] || die "--from: no such file or directory: $SOURCE"
  SOURCE="$(realpath "$SOURCE")"
  REQUIREMENT="${SOURCE}[agent]"
else
  REQUIREMENT="readynet[agent]"
fi

umask 022
echo "==> virtual environment in $PREFIX"
python3 -m venv "$PREFIX"
"$PREFIX/bin/python" -m pip install --quiet --upgrade pip
echo "==> pip install '$REQUIREMENT'"
"$PREFIX/bin/python" -m pip install --quiet --upgrade "$REQUIREMENT"
[ -x "$PREFIX/bin/readynet-agent" ] || die "pip did not install $PREFIX/bin/readynet-agent"

if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
  echo "==> system user $SERVICE_USER"
  useradd --system --user-group --no-create-home --home-dir /var/lib/readynet-agent \
    --shell /usr/sbin/nologin --comment "ReadyNet agent" "$SERVICE_USER"
fi

# Catches an interpreter the service user cannot reach, e.g. a python3 from pyenv under /root.
runuser -u "$SERVICE_USER" -- "$PREFIX/bin/readynet-agent" --help >/dev/null \
  || die "$SERVICE_USER cannot run $PREFIX/bin/readynet-agent (is python3 under a private home?)"

install -d -m 755 "$CONFIG_DIR"
if [ -e "$CONFIG_DIR/agent.yaml" ]; then
  echo "==> keeping the existing $CONFIG_DIR/agent.yaml"
else
  echo "==> $CONFIG_DIR/agent.yaml from the example (mode 600)"
  install -m 600 -o "$SERVICE_USER" -g "$SERVICE_USER" "$EXAMPLE" "$CONFIG_DIR/agent.yaml"
fi

echo "==> systemd units in $UNIT_DIR"
for unit in readynet-agent.service; do
  # The units name /opt/readynet; follow --prefix.
  sed "s#/opt/readynet/#${PREFIX%/}/#g" "$DEPLOY/systemd/$unit" >"$UNIT_DIR/$unit.tmp"
  chmod 644 "$UNIT_DIR/$unit.tmp"
  mv "$UNIT_DIR/$unit.tmp" "$UNIT_DIR/$unit"
done
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  # With the placeholder token the daemon would only stop with a config error, again and again.
  if [ "$START" -eq 1 ] && ! placeholder_token; then
    systemctl enable --now readynet-agent.service
  else
    systemctl enable readynet-agent.service
  fi
else
  echo "==> systemd is not running here: enable readynet-agent.service on first boot yourself"
fi

if placeholder_token; then
  echo
  echo "Next: set collector_url and token in $CONFIG_DIR/agent.yaml (the token comes from"
  echo "'readynet-collector agent enroll'); until then every round stops with a config error."
  echo "Then try a round by hand:  sudo -u $SERVICE_USER $PREFIX/bin/readynet-agent once"
  echo "and start the daemon:       systemctl start readynet-agent.service"
fi
echo "==> done; the agent logs to: journalctl -u readynet-agent.service"
