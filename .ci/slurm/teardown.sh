#!/usr/bin/env bash
# Stop what setup.sh started, by the PIDs it recorded in RUNDIR, in reverse order.
#   .ci/slurm/teardown.sh [RUNDIR]
RUNDIR=${1:-/tmp/xmhash-slurm}
if command -v scancel >/dev/null && [ -s "$RUNDIR/slurmctld.pid" ] \
    && kill -0 "$(cat "$RUNDIR/slurmctld.pid")" 2>/dev/null; then
  timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
fi
for name in slurmd slurmctld munged; do
  f="$RUNDIR/$name.pid"
  [ -s "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$f"
done
exit 0
