#!/usr/bin/env bash
# Start a single-node Slurm on localhost for CI (Debian 12, as root, no systemd needed).
#
#   .ci/slurm/setup.sh [RUNDIR]      default RUNDIR: /tmp/xmhash-slurm
#
# Installs Debian's munge, slurmctld, slurmd and slurm-client when they are missing,
# writes /etc/slurm/slurm.conf for one node (localhost, all CPUs, RAM minus 1 GiB) and
# starts munged, slurmctld and slurmd. Their PIDs go to RUNDIR/*.pid; teardown.sh stops
# exactly those. slurm.conf must sit at the compiled-in path: the Slurm executor's jobstep
# drops SLURM_* variables (SLURM_CONF too) before it calls srun inside a job.
# No accounting database: run Snakemake with `slurm-status-command: squeue`
# (workflow/profiles/slurm-ci/), since `sacct` fails without slurmdbd.
set -euo pipefail
RUNDIR=${1:-/tmp/xmhash-slurm}
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "setup.sh: must run as root (apt-get, munge, slurmd)" >&2; exit 2; }
mkdir -p "$RUNDIR"/{state,spool,log}

# A previous setup still running (same RUNDIR)? Stop it first, by its PIDs.
bash "$HERE/teardown.sh" "$RUNDIR" >/dev/null 2>&1 || true

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null
fi

# nproc obeys OMP_NUM_THREADS, which the test suite sets to 1: count the CPUs without it
CPUS=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
MEM=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
MEM=$(( MEM > 2048 ? MEM - 1024 : MEM ))
mkdir -p /etc/slurm
cat > /etc/slurm/slurm.conf <<CONF
# written by xmhash .ci/slurm/setup.sh: single node, no accounting database
ClusterName=xmhash-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$RUNDIR/state
SlurmdSpoolDir=$RUNDIR/spool
SlurmctldPidFile=$RUNDIR/slurmctld.daemon.pid
SlurmdPidFile=$RUNDIR/slurmd.daemon.pid
SlurmctldLogFile=$RUNDIR/log/slurmctld.log
SlurmdLogFile=$RUNDIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# squeue keeps finished jobs this long; the executor's squeue status needs >= 3x its
# first status delay
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF

# munged forks; its pid file gives the PID
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
rm -f /run/munge/munged.pid
runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
cp /run/munge/munged.pid "$RUNDIR/munged.pid"
munge -n | unmunge >/dev/null

# slurmctld/slurmd in the foreground (-D), backgrounded here, so that $! is their PID
nohup /usr/sbin/slurmctld -D -i >"$RUNDIR/log/slurmctld.out" 2>&1 &
echo $! >"$RUNDIR/slurmctld.pid"
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping | grep -q UP || { echo "setup.sh: slurmctld did not come up, see $RUNDIR/log" >&2; exit 1; }
nohup /usr/sbin/slurmd -D >"$RUNDIR/log/slurmd.out" 2>&1 &
echo $! >"$RUNDIR/slurmd.pid"
for _ in $(seq 150); do sinfo -h -N -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && break; sleep 0.2; done
sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc)' || {
  echo "setup.sh: node not idle: $(sinfo -h -N -o '%t %E')" >&2; exit 1; }
echo "slurm up: $(sinfo -h -o '%P %D %c %m %t') pids: munged=$(cat "$RUNDIR/munged.pid")" \
  "slurmctld=$(cat "$RUNDIR/slurmctld.pid") slurmd=$(cat "$RUNDIR/slurmd.pid")"
