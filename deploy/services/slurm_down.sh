#!/usr/bin/env bash
# Stop what slurm_up.sh started: cancel the jobs, then stop slurmrestd, slurmd, slurmctld and munged by
# their PID files (never by name), SIGKILL after 10 s. The token keys leave the env file.
#   SLURM_KEEP_MUNGE=1  leave munged running
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_root slurm_down
unset SLURM_JWT || true
RUN=/run/slurm
tag=slurm_down

stop_pidfile() {  # stop_pidfile NAME PIDFILE
  local name=$1 pf=$2 pid
  if ! pidfile_alive "$pf" "$name"; then log $tag "$name: not running"; rm -f "$pf"; return 0; fi
  pid=$(cat "$pf")
  kill -TERM "$pid"
  for _ in $(seq 100); do pid_alive "$pid" || break; sleep 0.1; done
  if pid_alive "$pid"; then kill -KILL "$pid"; log $tag "$name: killed (pid $pid)"; else log $tag "$name: stopped (pid $pid)"; fi
  rm -f "$pf"
}

# Jobs first, so that no slurmstepd or job process outlives slurmd.
if pidfile_alive $RUN/slurmctld.pid slurmctld; then
  jobs=$(squeue -h -o '%i' 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    log $tag "cancelling jobs: $(echo $jobs)"
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 100); do [ -z "$(squeue -h -t PD,R,CG,S -o '%i' 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi
stop_pidfile slurmrestd $RUN/slurmrestd.pid
stop_pidfile slurmd $RUN/slurmd.pid
stop_pidfile slurmctld $RUN/slurmctld.pid
[ "${SLURM_KEEP_MUNGE:-0}" = 1 ] || stop_pidfile munged /run/munge/munged.pid
if [ -f "$OR1_SERVICES_ENV" ]; then
  grep -v -E '^(SLURM_REST_[A-Z]+|SLURM_JWT_KEY_FILE|SLURM_PARTITION)=' "$OR1_SERVICES_ENV" >"$OR1_SERVICES_ENV.new" || true
  mv "$OR1_SERVICES_ENV.new" "$OR1_SERVICES_ENV"
fi
