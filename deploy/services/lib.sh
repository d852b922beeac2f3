# Helpers shared by the service scripts in this folder (sourced, not run).
#   OR1_SERVICES_ENV  env file the scripts write their URLs and credentials into (default var/services.env)

OR1_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OR1_SERVICES_ENV="${OR1_SERVICES_ENV:-$OR1_ROOT/var/services.env}"
_T0=$EPOCHREALTIME

# log TAG MESSAGE...: a line with the seconds since the script started
log() {
  local tag=$1; shift
  awk -v t0="$_T0" -v now="$EPOCHREALTIME" -v tag="$tag" -v msg="$*" \
    'BEGIN { printf "[%s %5.1fs] %s\n", tag, now - t0, msg }'
}

need_root() { [ "$(id -u)" = 0 ] || { echo "$1: run as root (it installs packages and starts daemons)" >&2; exit 1; }; }

# pid_alive PID [COMM]: the process exists, is no zombie (PID 1 here reaps orphans late) and, when COMM is
# given, is that program, so that a stale PID file whose number was reused is not taken for our daemon.
pid_alive() {
  local pid=$1 comm=${2:-} stat
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$(awk '{print $1}' <<<"${stat##*)}")" != Z ] || return 1  # the state follows "(comm)"
  [ -z "$comm" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
}

# pidfile_alive FILE [COMM]
pidfile_alive() { [ -s "$1" ] && pid_alive "$(cat "$1")" "${2:-}"; }

# apt_install PKG...: install the Debian packages that are missing; refresh the package lists only when
# the first attempt fails (a fresh machine may have stale or empty lists). No recommends: they drag in
# systemd, udev and cups helpers.
apt_install() {
  local missing="" p log_file=/tmp/or1-apt.log
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  [ -n "$missing" ] || return 0
  log apt "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends $missing >"$log_file" 2>&1 || {
    apt-get update >>"$log_file" 2>&1
    apt-get install -y --no-install-recommends $missing >>"$log_file" 2>&1
  } || { echo "apt-get install$missing failed; see $log_file" >&2; tail -20 "$log_file" >&2; return 1; }
  log apt "installed:$missing"
}

# env_set KEY VALUE...: replace or add KEY=VALUE lines in the env file (the file stays shell-sourceable,
# so values must not contain spaces or quotes: URLs, paths and JWTs don't).
env_set() {
  mkdir -p "$(dirname "$OR1_SERVICES_ENV")"
  touch "$OR1_SERVICES_ENV"
  local tmp key
  tmp=$(mktemp "$OR1_SERVICES_ENV.XXXXXX")
  cp "$OR1_SERVICES_ENV" "$tmp"
  while [ $# -ge 2 ]; do
    key=$1
    grep -v "^$key=" "$tmp" >"$tmp.new" || true
    printf '%s=%s\n' "$key" "$2" >>"$tmp.new"
    mv "$tmp.new" "$tmp"
    shift 2
  done
  chmod 0600 "$tmp"
  mv "$tmp" "$OR1_SERVICES_ENV"
}
