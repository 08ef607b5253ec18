#!/usr/bin/env bash
# Install the ReadyNet agent on a Raspberry Pi or any Debian box (Raspberry Pi OS / Debian 12 or
# newer), offline too: wheels only, into a venv on the system's own python3, then enrolment, the
# systemd service and the first delivery. Run it as root beside deploy/systemd/; see --help.
# Idempotent: a second run with the same arguments changes nothing.
set -euo pipefail

PREFIX=/opt/readynet
CONFIG_DIR=/etc/readynet
STATE_DIR=/var/lib/readynet-agent
UNIT_DIR=/etc/systemd/system
SERVICE_USER=readynet-agent
UNIT=readynet-agent.service
WHEEL=""
WHEELHOUSE=""
INDEX=""
RELEASE=""
COLLECTOR=""
ENROLL_CODE=""
CA_BUNDLE=""
REENROLL=0
START=1
WAIT=150
UNINSTALL=0
PURGE=0

ARGS=("$@")
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEPLOY="$(dirname "$HERE")"

usage() {
  cat <<USAGE
Usage: sudo $0 --wheel FILE | --wheelhouse DIR | --index URL
                  [--collector URL --enroll-code CODE] [options]
       sudo $0 --uninstall [--purge]

Installs the ReadyNet agent:
  1. a virtual environment in $PREFIX on this system's python3 (3.11 or newer),
     with readynet and its dependencies installed from wheels only (nothing is built here);
  2. the system user $SERVICE_USER, which owns the config, the token and the outbox
     ($STATE_DIR);
  3. with --collector and --enroll-code: enrols the agent (readynet-agent enroll), which writes
     $CONFIG_DIR/agent.yaml and its token (mode 600), then checks the config;
  4. $UNIT in $UNIT_DIR, enabled and started once enrolled, and waits for the
     agent's first heartbeat or delivery and prints it.

readynet itself is never installed from an index by name unless --index says which one.
'make dist' builds the wheel and a wheelhouse of its dependencies (dist/wheelhouse).

Where readynet comes from (one at least):
  --wheel FILE         the readynet wheel; its dependencies from the wheelhouse or an index
  --wheelhouse DIR     offline: every wheel from DIR, no index (readynet's too, without --wheel)
  --index URL          readynet==VERSION and its dependencies from this package index
  --release VERSION    with --index: the version to install (default: this checkout's)
  --from PATH          old name of --wheel (a wheel file only)

Enrolment (the code comes from 'readynet-collector agent enroll --school ID'):
  --collector URL      the collector, e.g. https://readynet.district.example
  --enroll-code CODE   the one-time enrolment code; ignored when already enrolled
  --reenroll           enrol again although already enrolled (a new code is needed)
  --ca-bundle FILE     CA certificates to verify the collector with (default: the system's)

Other options:
  --prefix DIR         virtual environment location (default: $PREFIX)
  --no-start           install and enable the service but do not start it
  --wait SECONDS       how long to wait for the first heartbeat or delivery (default: $WAIT)
  --no-wait            start the service and do not wait
  --uninstall          stop and remove the service, the venv and the user; keep
                       $CONFIG_DIR and $STATE_DIR (the outbox)
  --purge              with --uninstall: remove the agent's config, token and outbox too
  -h, --help           show this help and exit

Exit status: 0 done; 1 error (one line, 'install.sh: ...'); 2 bad arguments; 3 installed and
started, but no heartbeat or delivery within --wait (see journalctl -u $UNIT).
Needs: python3 with the venv module (apt-get install python3-venv), systemd.
USAGE
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

usage_error() {
  echo "install.sh: $* (see --help)" >&2
  exit 2
}

need_value() {
  [ "$2" -ge 2 ] || usage_error "$1 needs a value"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --wheel | --from)
      need_value "$1" $#
      WHEEL="$2"
      shift 2
      ;;
    --wheelhouse)
      need_value "$1" $#
      WHEELHOUSE="$2"
      shift 2
      ;;
    --index)
      need_value "$1" $#
      INDEX="$2"
      shift 2
      ;;
    --release)
      need_value "$1" $#
      RELEASE="$2"
      shift 2
      ;;
    --collector)
      need_value "$1" $#
      COLLECTOR="$2"
      shift 2
      ;;
    --enroll-code)
      need_value "$1" $#
      ENROLL_CODE="$2"
      shift 2
      ;;
    --ca-bundle)
      need_value "$1" $#
      CA_BUNDLE="$2"
      shift 2
      ;;
    --reenroll)
      REENROLL=1
      shift
      ;;
    --prefix)
      need_value "$1" $#
      PREFIX="${2%/}"
      shift 2
      ;;
    --no-start)
      START=0
      shift
      ;;
    --wait)
      need_value "$1" $#
      [[ "$2" =~ ^[0-9]+$ ]] || usage_error "--wait needs a number of seconds, not '$2'"
      WAIT="$2"
      shift 2
      ;;
    --no-wait)
      WAIT=0
      shift
      ;;
    --uninstall)
      UNINSTALL=1
      shift
      ;;
    --purge)
      PURGE=1
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage_error "unknown argument: $1"
      ;;
  esac
done

CONFIG="$CONFIG_DIR/agent.yaml"
TOKEN_FILE="$CONFIG_DIR/agent.token"
AGENT="$PREFIX/bin/readynet-agent"

if [ "$PURGE" -eq 1 ] && [ "$UNINSTALL" -eq 0 ]; then
  usage_error "--purge goes with --uninstall"
fi
if [ -n "$ENROLL_CODE" ] && [ -z "$COLLECTOR" ]; then
  usage_error "--enroll-code needs --collector URL"
fi
if [ -n "$COLLECTOR" ] && [ -z "$ENROLL_CODE" ]; then
  usage_error "--collector needs --enroll-code CODE"
fi
if [ "$REENROLL" -eq 1 ] && [ -z "$ENROLL_CODE" ]; then
  usage_error "--reenroll needs --collector URL --enroll-code CODE"
fi
if [ -n "$RELEASE" ] && [ -z "$INDEX" ]; then
  usage_error "--release goes with --index"
fi

systemd_running() {
  command -v systemctl >/dev/null && [ -d /run/systemd/system ]
}

# --- uninstall ------------------------------------------------------------------------------
uninstall() {
  if [ -f "$UNIT_DIR/$UNIT" ]; then
    if systemd_running; then
      systemctl disable --now "$UNIT"
    fi
    echo "==> removing $UNIT_DIR/$UNIT"
    rm -f "$UNIT_DIR/$UNIT"
    if systemd_running; then
      systemctl daemon-reload
    fi
  fi
  if [ -d "$PREFIX" ]; then
    # Only a venv this script could have made: never rm -r a mistyped --prefix such as /usr.
    [ -f "$PREFIX/pyvenv.cfg" ] || die "$PREFIX is not a virtual environment; not removing it"
    echo "==> removing the virtual environment $PREFIX"
    rm -rf "$PREFIX"
  fi
  if id -u "$SERVICE_USER" >/dev/null 2>&1; then
    echo "==> removing the system user $SERVICE_USER"
    userdel "$SERVICE_USER" 2>/dev/null \
      || die "cannot remove the user $SERVICE_USER: does a process of it still run? (ps -u $SERVICE_USER)"
  fi
  if [ "$PURGE" -eq 1 ]; then
    echo "==> purging $CONFIG and its token, and $STATE_DIR (the outbox)"
    rm -f "$CONFIG" "$TOKEN_FILE"
    # The directory may hold the collector's settings too (collector.env): removed only if empty.
    if [ -d "$CONFIG_DIR" ]; then
      rmdir --ignore-fail-on-non-empty "$CONFIG_DIR"
    fi
    rm -rf "$STATE_DIR"
  else
    for kept in "$CONFIG_DIR" "$STATE_DIR"; do
      if [ -e "$kept" ]; then
        echo "==> keeping $kept (--purge removes it)"
      fi
    done
  fi
  echo "==> uninstalled"
}

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
if [ "$UNINSTALL" -eq 1 ]; then
  uninstall
  exit 0
fi

# --- what to install, from where --------------------------------------------------------------
# Wheels only: Bookworm's setuptools (66) cannot build readynet, and a Pi should not compile.
PIP=("$PREFIX/bin/python" -m pip)
PIP_ARGS=(--disable-pip-version-check --no-input --only-binary=:all:)
if [ -n "$WHEELHOUSE" ]; then
  [ -d "$WHEELHOUSE" ] || die "--wheelhouse: no such directory: $WHEELHOUSE"
  WHEELHOUSE="$(realpath "$WHEELHOUSE")"
  if [ -z "$WHEEL" ]; then
    # The newest readynet wheel there (make dist puts it beside its dependencies).
    WHEEL="$(find "$WHEELHOUSE" -maxdepth 1 -name 'readynet-*.whl' | sort -V | tail -n 1)"
    [ -n "$WHEEL" ] || die "no readynet-*.whl in $WHEELHOUSE: pass --wheel FILE ('make dist')"
  fi
  if [ -n "$INDEX" ]; then
    PIP_ARGS+=(--index-url "$INDEX" --find-links "$WHEELHOUSE")
  else
    # Offline: the wheelhouse alone, whatever pip.conf or PIP_* variables add (a mirror, links).
    PIP=(env PIP_CONFIG_FILE=/dev/null "${PIP[@]}" --isolated)
    PIP_ARGS+=(--no-index --find-links "$WHEELHOUSE")
  fi
elif [ -n "$INDEX" ]; then
  PIP_ARGS+=(--index-url "$INDEX")
fi
if [ -n "$WHEEL" ]; then
  [ -f "$WHEEL" ] || die "no such wheel: $WHEEL"
  [[ "$WHEEL" == *.whl ]] || die "not a wheel: $WHEEL (build one with 'make dist')"
  WHEEL="$(realpath "$WHEEL")"
  REQUIREMENT="$WHEEL"
elif [ -n "$INDEX" ]; then
  if [ -z "$RELEASE" ]; then
    [ -f "$DEPLOY/../pyproject.toml" ] || die "--index needs --release VERSION outside a checkout"
    RELEASE="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$DEPLOY/../pyproject.toml")"
  fi
  REQUIREMENT="readynet==$RELEASE"
else
  # The name readynet is not ours on PyPI: whoever registers it would run as root here.
  die "say where readynet comes from: --wheel FILE, --wheelhouse DIR or --index URL"
fi
[ -z "$CA_BUNDLE" ] || [ -f "$CA_BUNDLE" ] || die "--ca-bundle: no such file: $CA_BUNDLE"
[ -f "$DEPLOY/systemd/$UNIT" ] || die "missing $DEPLOY/systemd/$UNIT: keep deploy/ together"

command -v python3 >/dev/null || die "python3 not found: apt-get install python3 python3-venv"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "python3 is $(python3 -V 2>&1); readynet needs 3.11 or newer"
python3 -c 'import venv, ensurepip' 2>/dev/null \
  || die "the python3 venv module is missing: apt-get install python3-venv"

umask 022
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT

# --- the virtual environment ------------------------------------------------------------------
if [ -x "$PREFIX/bin/python" ]; then
  echo "==> virtual environment $PREFIX (exists)"
else
  echo "==> virtual environment in $PREFIX"
  # The venv's own pip (Debian's, bundled) is used as it is: no upgrade from the internet.
  python3 -m venv "$PREFIX"
fi

pip_install() {
  if ! "${PIP[@]}" install "${PIP_ARGS[@]}" "$@" >"$LOG" 2>&1; then
    local missing
    missing="$(sed -n 's/.*No matching distribution found for \([^ ]*\).*/\1/p' "$LOG" | head -n 1)"
    if [ -n "$missing" ] && [ -n "$WHEELHOUSE" ] && [ -z "$INDEX" ]; then
      die "the wheelhouse $WHEELHOUSE has no wheel for $missing: rebuild it with 'make dist'"
    elif [ -n "$missing" ]; then
      die "pip found no wheel for $missing"
    fi
    die "pip install failed: $(grep -m 1 '^ERROR' "$LOG" || tail -n 1 "$LOG")"
  fi
}

# A wheel is installed again only when its content changed (the same version rebuilt).
CHANGED=0
STAMP="$PREFIX/.readynet-wheel.sha256"
if [ -n "$WHEEL" ]; then
  SUM="$(sha256sum "$WHEEL" | cut -d ' ' -f 1)"
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SUM" ] && [ -x "$AGENT" ]; then
    echo "==> $(basename "$WHEEL") is installed already"
  else
    echo "==> pip install $(basename "$WHEEL")${WHEELHOUSE:+ with the wheels in $WHEELHOUSE}"
    pip_install "$REQUIREMENT"
    pip_install --force-reinstall --no-deps "$REQUIREMENT"
    echo "$SUM" >"$STAMP"
    CHANGED=1
  fi
else
  echo "==> pip install $REQUIREMENT from $INDEX"
  pip_install "$REQUIREMENT"
fi
[ -x "$AGENT" ] || die "pip did not install $AGENT"

# --- user, directories ------------------------------------------------------------------------
if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
  echo "==> system user $SERVICE_USER"
  useradd --system --user-group --no-create-home --home-dir "$STATE_DIR" \
    --shell /usr/sbin/nologin --comment "ReadyNet agent" "$SERVICE_USER"
fi
# The unit's StateDirectory= would make it only at the first start; the status and outbox
# commands need it before that. An outbox kept by --uninstall gets the new user's uid.
install -d -m 700 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE_DIR"
chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"

as_agent() {
  runuser -u "$SERVICE_USER" -- "$AGENT" "$@"
}

# Catches an interpreter the service user cannot reach, e.g. a python3 from pyenv under /root.
as_agent --help >/dev/null 2>&1 \
  || die "$SERVICE_USER cannot run $AGENT (is python3 under a private home?)"

install -d -m 755 "$CONFIG_DIR"

enrolled() {
  [ -s "$TOKEN_FILE" ] && return 0
  # An agent.yaml from before enrolment existed, with a token pasted in by hand.
  [ -f "$CONFIG" ] && grep -Eq '^token:[[:space:]]*[^[:space:]#]' "$CONFIG" \
    && ! grep -Eqi '^token:[[:space:]]*"?(changeme|change-me|xxx)?"?[[:space:]]*$' "$CONFIG"
}

# --- enrolment --------------------------------------------------------------------------------
if [ -n "$ENROLL_CODE" ]; then
  if enrolled && [ "$REENROLL" -eq 0 ]; then
    echo "==> enrolled already ($TOKEN_FILE); --reenroll with a new code enrols again"
  else
    echo "==> enrolling with $COLLECTOR"
    ENROLL=(enroll --collector "$COLLECTOR" --code "$ENROLL_CODE" --config "$CONFIG")
    [ -z "$CA_BUNDLE" ] || ENROLL+=(--ca-bundle "$(realpath "$CA_BUNDLE")")
    # As root: the service user may not write /etc/readynet. Ownership is handed over below.
    if ! (umask 077 && "$AGENT" "${ENROLL[@]}") >"$LOG" 2>&1; then
      # readynet-agent enroll says why on a line "error: ..." (the collector's reason).
      reason="$(sed -n 's/^error: //p' "$LOG" | head -n 1)"
      die "enrolment failed: ${reason:-$(tail -n 1 "$LOG")}"
    fi
    cat "$LOG"
  fi
fi
for file in "$CONFIG" "$TOKEN_FILE"; do
  if [ -e "$file" ]; then
    chown "$SERVICE_USER:$SERVICE_USER" "$file"
    chmod 600 "$file"
  fi
done
if enrolled; then
  as_agent check-config --config "$CONFIG" >"$LOG" 2>&1 \
    || die "$CONFIG is not valid: $(sed 's/^error: //' "$LOG" | head -n 1)"
fi

# --- the service ------------------------------------------------------------------------------
# The unit names /opt/readynet; follow --prefix. Replaced only when it differs.
sed "s#/opt/readynet/#$PREFIX/#g" "$DEPLOY/systemd/$UNIT" >"$LOG"
if cmp -s "$LOG" "$UNIT_DIR/$UNIT"; then
  UNIT_CHANGED=0
else
  echo "==> $UNIT_DIR/$UNIT"
  install -m 644 "$LOG" "$UNIT_DIR/$UNIT"
  UNIT_CHANGED=1
  CHANGED=1
fi

STARTED=0
if ! systemd_running; then
  echo "==> systemd is not running here: enable $UNIT yourself on first boot"
elif ! enrolled; then
  [ "$UNIT_CHANGED" -eq 0 ] || systemctl daemon-reload
  echo "==> not enrolled: $UNIT is installed but neither enabled nor started"
else
  [ "$UNIT_CHANGED" -eq 0 ] || systemctl daemon-reload
  if [ "$START" -eq 1 ]; then
    if systemctl is-active --quiet "$UNIT"; then
      # A new wheel or unit under a running service takes effect at a restart.
      if [ "$CHANGED" -eq 1 ]; then
        echo "==> restarting $UNIT"
        systemctl restart "$UNIT"
      fi
      systemctl enable "$UNIT"
    else
      echo "==> enabling and starting $UNIT"
      systemctl enable --now "$UNIT"
    fi
    STARTED=1
  else
    echo "==> enabling $UNIT (--no-start: start it with 'systemctl start $UNIT')"
    systemctl enable "$UNIT"
  fi
fi

if ! enrolled; then
  echo
  echo "Next: enrol this agent with a code from 'readynet-collector agent enroll --school ID':"
  echo "  sudo $0 ${ARGS[*]} --collector URL --enroll-code CODE"
  echo "which also starts the service and waits for its first delivery."
  exit 0
fi

# --- the first heartbeat or delivery ----------------------------------------------------------
# Reads `readynet-agent status --format json`; prints both times once either is known.
FIRST_CONTACT="$(
  cat <<'PY'
import json, sys
status = json.load(sys.stdin)
delivery, heartbeat = status.get("last_delivery_at"), status.get("last_heartbeat_at")
print("last delivery:", delivery or "none yet", "- last heartbeat:", heartbeat or "none yet")
sys.exit(delivery is None and heartbeat is None)
PY
)"

first_contact() {
  as_agent status --config "$CONFIG" --format json 2>/dev/null \
    | "$PREFIX/bin/python" -c "$FIRST_CONTACT" 2>/dev/null
}

if [ "$STARTED" -eq 1 ] && [ "$WAIT" -gt 0 ]; then
  echo "==> waiting up to ${WAIT}s for the agent's first heartbeat or delivery"
  deadline=$((SECONDS + WAIT))
  until contact="$(first_contact)"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "install.sh: installed and started, but no heartbeat or delivery within ${WAIT}s;" \
        "see: journalctl -u $UNIT" >&2
      exit 3
    fi
    sleep 2
  done
  echo "==> the agent reached the collector: $contact"
fi
echo "==> done; the agent logs to: journalctl -u $UNIT"
