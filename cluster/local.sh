#!/usr/bin/env bash
# A one-machine Ray cluster bound to 127.0.0.1, for `ray job submit` against localhost.
#
#   cluster/local.sh start [extra `ray start` options]   # head on 127.0.0.1; prints the env to submit with
#   eval "$(cluster/local.sh env)"                        # RAY_ADDRESS, RAY_AUTH_MODE=token, RAY_AUTH_TOKEN_PATH
#   ray job submit --working-dir . -- python jobs/build_kb.py ...
#   cluster/local.sh status
#   cluster/local.sh stop                                 # stops this head's processes, and nothing else
#
# Settings (environment):
#   AMELI_CLUSTER_DIR            state: token, head record, Ray's temp dir (default /tmp/ameli-ray-cluster-$UID;
#                                short on purpose: Ray's socket paths under it must fit in 107 bytes)
#   AMELI_CLUSTER_PORT           GCS port (6379)
#   AMELI_CLUSTER_DASHBOARD_PORT dashboard and job API port (8265)
#   AMELI_CLUSTER_NUM_CPUS       CPUs the head offers (NUM_CPUS, else all cores)
#   AMELI_VENV                   the venv whose `ray` and `python` the head runs (.venv)
#   AMELI_CLUSTER_STOP_GRACE_S   seconds each stop phase waits before SIGKILL (10)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${AMELI_CLUSTER_DIR:-/tmp/ameli-ray-cluster-$(id -u)}"
[[ "$STATE" = /* ]] || STATE="$PWD/$STATE"
RECORD="$STATE/head.env"
TOKEN="$STATE/auth_token"
TEMP_DIR="$STATE/ray"
VENV="${AMELI_VENV:-.venv}"
[[ "$VENV" = /* ]] || VENV="$REPO/$VENV"
GRACE="${AMELI_CLUSTER_STOP_GRACE_S:-10}"

# Without it Ray binds the machine's external address as well as loopback.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0

die() { echo "local.sh: $*" >&2; exit 1; }

# Every process of the head is in one session: `ray start` runs under setsid and Ray starts no
# sessions of its own, so the session id names exactly this head's processes (workers and job
# drivers included), never another Ray on the machine.
session_pids() {  # live (non-zombie) processes of session $1
  ps -eo pid=,sid=,stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ { print $1 }'
}
comm_of() { cat "/proc/$1/comm" 2>/dev/null || true; }
has_marker() { grep -qzx "AMELI_LOCAL_CLUSTER_ID=$2" "/proc/$1/environ" 2>/dev/null; }

# Reads the record as data (never sourced: in a shared /tmp it could be someone else's file).
read_record() {
  local key value
  HEAD_ID="" HEAD_SID="" HEAD_GCS="" HEAD_DASHBOARD="" HEAD_TOKEN="" HEAD_TEMP_DIR=""
  [[ -f "$RECORD" && -O "$RECORD" ]] || return 1
  while IFS="=" read -r key value; do
    case "$key" in
      HEAD_ID | HEAD_SID | HEAD_GCS | HEAD_DASHBOARD | HEAD_TOKEN | HEAD_TEMP_DIR) printf -v "$key" "%s" "$value" ;;
    esac
  done <"$RECORD"
  [[ "$HEAD_SID" =~ ^[0-9]+$ && -n "$HEAD_ID" ]]
}

# The recorded session is ours only while one of its processes still carries the random id we
# started the head with: once all of them are gone, the number can belong to someone else's session.
head_pids() {
  local p ours=""
  read_record || return 0
  for p in $(session_pids "$HEAD_SID"); do
    if has_marker "$p" "$HEAD_ID"; then ours=1; break; fi
  done
  [[ -n "$ours" ]] && session_pids "$HEAD_SID"
  return 0
}

print_env() {
  read_record
  # The job client sends the token only with RAY_AUTH_MODE=token (Ray 2.60 never switches it on by
  # itself); RAY_AUTH_TOKEN would take precedence over the token file, so it is cleared.
  echo "export RAY_ADDRESS=$HEAD_DASHBOARD"
  echo "export RAY_AUTH_MODE=token"
  echo "export RAY_AUTH_TOKEN_PATH=$HEAD_TOKEN"
  echo "unset RAY_AUTH_TOKEN"
}

# Sends SIGTERM to the processes of session $1 that pass filter $2, waits up to $GRACE s, then SIGKILL.
stop_phase() {
  local sid="$1" filter="$2" p pids=() i
  for p in $(session_pids "$sid"); do
    case "$filter:$(comm_of "$p")" in
      raylet:raylet | gcs:gcs_server) pids+=("$p") ;;
      rest:raylet | rest:gcs_server) ;;
      rest:*) pids+=("$p") ;;
    esac
  done
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local alive=() live
  for ((i = 0; i < GRACE * 10; i++)); do
    live=" $(session_pids "$sid" | tr '\n' ' ') "
    alive=()
    for p in "${pids[@]}"; do
      if [[ "$live" == *" $p "* ]]; then alive+=("$p"); fi
    done
    ((${#alive[@]})) || return 0
    sleep 0.1
  done
  echo "local.sh: ${#alive[@]} process(es) ignored SIGTERM for ${GRACE}s; sending SIGKILL" >&2
  kill -KILL "${alive[@]}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    [[ -z "$(session_pids "$sid")" ]] && return 0
    sleep 0.1
  done
}

cmd_start() {
  local port="${AMELI_CLUSTER_PORT:-6379}" dport="${AMELI_CLUSTER_DASHBOARD_PORT:-8265}"
  local cpus="${AMELI_CLUSTER_NUM_CPUS:-${NUM_CPUS:-$(nproc)}}" ray="ray" id p sid=""
  if [[ -n "$(head_pids)" ]]; then
    echo "local.sh: a head started by this script is already running ($RECORD):" >&2
    print_env
    return 0
  fi
  rm -f "$RECORD"
  # Ray refuses socket paths over 107 bytes; its session folder and socket name add 64 to TEMP_DIR.
  ((${#TEMP_DIR} <= 43)) || die "Ray's socket paths under $TEMP_DIR would exceed 107 bytes; set AMELI_CLUSTER_DIR to a shorter path"
  mkdir -p -m 700 "$STATE"
  [[ -O "$STATE" ]] || die "$STATE is not owned by you"
  chmod 700 "$STATE"
  if [[ ! -s "$TOKEN" ]]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$TOKEN")
  fi
  # Token auth on explicitly: left unset, `ray start --head` enables it only if some token
  # already exists (e.g. ~/.ray/auth_token from an earlier ray.init()), so it would depend on history.
  export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$TOKEN"
  unset RAY_AUTH_TOKEN RAY_ADDRESS  # a stale RAY_ADDRESS from an earlier `env` must not steer `ray start`
  if [[ -x "$VENV/bin/ray" ]]; then
    # The job entrypoint's `python` is looked up on the head's PATH: this makes it the venv's.
    export PATH="$VENV/bin:$PATH"
    ray="$VENV/bin/ray"
  fi
  command -v "$ray" >/dev/null || die "no ray: install the project (make install) or set AMELI_VENV"
  id="$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"
  export AMELI_LOCAL_CLUSTER_ID="$id"
  if ! setsid --wait "$ray" start --head --node-ip-address=127.0.0.1 --dashboard-host=127.0.0.1 \
    --port="$port" --dashboard-port="$dport" --include-dashboard=true --num-cpus="$cpus" \
    --temp-dir="$TEMP_DIR" --disable-usage-stats "$@" </dev/null >"$STATE/start.log" 2>&1; then
    tail -n 20 "$STATE/start.log" >&2
    # a failed start can leave some processes behind: stop exactly those (they carry our id)
    for p in $(ps -eo pid=); do
      if has_marker "$p" "$id"; then kill -KILL "$p" 2>/dev/null || true; fi
    done
    die "ray start failed (log: $STATE/start.log)"
  fi
  for p in $(ps -eo pid=); do
    if has_marker "$p" "$id" && [[ "$(comm_of "$p")" == gcs_server ]]; then
      sid="$(ps -o sid= -p "$p" | tr -d ' ')"
      break
    fi
  done
  [[ -n "$sid" ]] || die "ray start returned but no GCS of this head is running (log: $STATE/start.log)"
  cat >"$RECORD" <<EOF
HEAD_ID=$id
HEAD_SID=$sid
HEAD_GCS=127.0.0.1:$port
HEAD_DASHBOARD=http://127.0.0.1:$dport
HEAD_TOKEN=$TOKEN
HEAD_TEMP_DIR=$TEMP_DIR
EOF
  echo "Ray head on 127.0.0.1:$port, dashboard and job API on http://127.0.0.1:$dport (token auth; token in $TOKEN)"
  echo "Logs: $TEMP_DIR/session_latest/logs. Stop it with: cluster/local.sh stop"
  echo "Submit jobs from a shell with these variables: eval \"\$(cluster/local.sh env)\""
  print_env
}

cmd_env() {
  [[ -n "$(head_pids)" ]] || die "no head started by this script is running (state: $STATE); run: cluster/local.sh start"
  print_env
}

cmd_status() {
  local pids
  pids="$(head_pids)"
  if [[ -z "$pids" ]]; then
    echo "no head started by this script is running (state: $STATE)"
    return 1
  fi
  read_record
  echo "running: $(wc -w <<<"$pids") processes, GCS $HEAD_GCS, dashboard $HEAD_DASHBOARD, session $HEAD_SID"
}

cmd_stop() {
  if [[ -z "$(head_pids)" ]]; then
    if [[ -f "$RECORD" && -O "$RECORD" ]]; then
      rm -f "$RECORD"
      echo "the head recorded in $STATE is no longer running; nothing stopped, record removed"
    else
      echo "no head started by this script is running (state: $STATE); nothing stopped"
    fi
    return 0
  fi
  read_record
  local n
  n="$(head_pids | wc -l)"
  # `ray stop` would stop every Ray on the machine; this stops the recorded session only, in
  # `ray stop`'s order: raylet (its workers follow), then the rest, then the GCS last.
  stop_phase "$HEAD_SID" raylet
  stop_phase "$HEAD_SID" rest
  stop_phase "$HEAD_SID" gcs
  stop_phase "$HEAD_SID" rest  # anything the GCS or raylet started on its way out
  [[ -z "$(session_pids "$HEAD_SID")" ]] || die "processes of session $HEAD_SID are still running: $(session_pids "$HEAD_SID" | tr '\n' ' ')"
  rm -f "$RECORD"
  echo "stopped the head at $HEAD_GCS ($n processes); logs kept in $HEAD_TEMP_DIR"
}

sub="${1:-}"
[[ $# -gt 0 ]] && shift
case "$sub" in
  start) cmd_start "$@" ;;
  env) cmd_env ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  *) echo "usage: $0 start [ray start options] | env | status | stop" >&2; exit 2 ;;
esac
