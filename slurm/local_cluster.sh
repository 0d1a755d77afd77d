#!/usr/bin/env bash
# A one-node SLURM cluster on this host, for the launcher's integration tests and for trying the launcher.
#
#   slurm/local_cluster.sh start|stop|status
#
# Installs nothing: it needs Debian's slurm-wlm and munge packages (apt-get install slurm-wlm munge). It writes a
# munge key and a minimal slurm.conf (one partition "local" with this node's CPUs and memory, no accounting) into
# $SLURM_LOCAL_DIR (default /tmp/moe-lens-slurm) and starts munged, slurmctld and slurmd as the current user.
# A requeued job may start again after 10 s (cred_expire; SLURM's default is 120 s).
# Clients find the cluster through SLURM_CONF: `start` prints the export line; `eval "$(slurm/local_cluster.sh env)"`.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/moe-lens-slurm}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-6818}
CONF="$DIR/slurm.conf"
HOST=$(hostname -s)
USER_NAME=$(id -un)

need() {
    command -v "$1" >/dev/null || { echo "local_cluster: $1 not found; install Debian's slurm-wlm and munge" >&2; exit 2; }
}

write_config() {
    local cpus mem_mb
    cpus=$(nproc)
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/munge"
    cat >"$CONF" <<EOF
ClusterName=moelens
SlurmctldHost=$HOST
SlurmUser=$USER_NAME
SlurmdUser=$USER_NAME
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobRequeue=1
MinJobAge=600
KillWait=10
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    need munged; need slurmctld; need slurmd
    write_config
    if ! running "$DIR/munge/munged.pid"; then
        [ -f "$DIR/munge/munge.key" ] || { dd if=/dev/urandom bs=1 count=1024 of="$DIR/munge/munge.key" status=none; chmod 600 "$DIR/munge/munge.key"; }
        chmod 700 "$DIR/munge"
        munged --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
            --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munge.seed" \
            --force
    fi
    running "$DIR/slurmctld.pid" || SLURM_CONF="$CONF" slurmctld -f "$CONF"
    running "$DIR/slurmd.pid" || SLURM_CONF="$CONF" slurmd -f "$CONF"
    for _ in $(seq 60); do  # wait until the node takes jobs
        if SLURM_CONF="$CONF" sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            echo "export SLURM_CONF=$CONF"
            return 0
        fi
        sleep 1
    done
    echo "local_cluster: the node did not become idle within 60 s; logs in $DIR/log" >&2
    SLURM_CONF="$CONF" sinfo >&2 || true
    exit 1
}

stop() {
    for pid in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
        if running "$pid"; then kill "$(cat "$pid")"; fi
    done
    for pid in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge/munged.pid"; do
        for _ in $(seq 20); do running "$pid" || break; sleep 0.5; done
    done
}

status() {
    [ -f "$CONF" ] || { echo "local_cluster: not configured ($CONF missing)"; exit 1; }
    SLURM_CONF="$CONF" sinfo
    SLURM_CONF="$CONF" squeue
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
