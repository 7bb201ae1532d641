#!/usr/bin/env bash
# A single-node Slurm for the real-Slurm tests (tests/slurm_cluster.py calls it).
#
#   scripts/slurm_cluster.sh start   # munged + slurmctld + slurmd on this machine, once `sinfo` shows the node idle
#   scripts/slurm_cluster.sh stop    # stop exactly the daemons `start` started (their PIDs), nothing else
#   scripts/slurm_cluster.sh check   # exit 0 when a cluster can be started here, else 3 and why
#
# Needs root and Debian's packages (slurmctld slurmd slurm-client munge; .ci/run installs them).
# No systemd: the daemons are started by hand. The configuration must be /etc/slurm/slurm.conf
# (Slurm's client commands read it there); this script writes it only when the file is absent or
# is its own (first line below), and never touches another Slurm's configuration. Jobs run as
# the calling user; there is no slurmdbd, so `sacct` says accounting storage is disabled, as on
# clusters without accounting. Exit 3 with one line on stderr: no cluster can be started here.
set -euo pipefail

MARK="# gcpbench test cluster (scripts/slurm_cluster.sh)"
CONF=/etc/slurm/slurm.conf
STATE=${GCPBENCH_SLURM_STATE:-/run/gcpbench-slurm}
PIDS=$STATE/started.pids

cannot() { echo "$*" >&2; exit 3; }

check() {
    [ "$(id -u)" = 0 ] || cannot "a test Slurm needs root (to start munged, slurmctld and slurmd)"
    grep -qs '^ID=debian' /etc/os-release || cannot "a test Slurm is set up on Debian only (this is not Debian)"
    local missing=""
    for tool in slurmctld slurmd munged sbatch scontrol squeue sinfo; do
        command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
    done
    [ -z "$missing" ] || cannot "Slurm is not installed (missing:$missing); as root: apt-get install --no-install-recommends slurmctld slurmd slurm-client munge (.ci/run does it)"
    if [ -e "$CONF" ] && [ "$(head -n1 "$CONF")" != "$MARK" ]; then
        cannot "$CONF belongs to another Slurm; the test cluster leaves it alone"
    fi
}

pid_of() {  # pid_of FILE NAME: the PID that daemon NAME writes to FILE (waits up to 5 s)
    local pid
    for _ in $(seq 50); do
        pid=$(cat "$1" 2>/dev/null || true)
        if alive "$pid" "$2"; then echo "$pid"; return; fi
        sleep 0.1
    done
    echo "$2 did not start; see $STATE/$2.log" >&2
    return 1
}

alive() {  # alive PID NAME: the process PID exists and runs NAME
    [ -n "${1:-}" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

write_conf() {
    local node
    node=$(slurmd -C | head -n1)  # its own line: no socket / core mismatch
    mkdir -p /etc/slurm "$STATE/ctld" "$STATE/spool"
    cat >"$CONF.tmp" <<EOF
$MARK
ClusterName=gcpbench
SlurmctldHost=$(hostname -s)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
KillWait=2
MinJobAge=600
SlurmctldParameters=preempt_send_user_signal
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=urgent Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
EOF
    mv "$CONF.tmp" "$CONF"
}

start_munge() {  # munged as user munge, unless one runs already
    if pgrep -x munged >/dev/null; then return; fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    runuser -u munge -- munged
    local pid
    pid=$(pid_of /run/munge/munged.pid munged)
    echo "munged $pid" >>"$PIDS"
}

start() {
    check
    mkdir -p "$STATE"
    if scontrol ping 2>/dev/null | grep -q UP && [ -e "$PIDS" ]; then
        echo "a test Slurm runs already (scripts/slurm_cluster.sh stop ends it)"
        exit 0
    fi
    : >"$PIDS"
    write_conf
    start_munge
    local daemon pid
    for daemon in slurmctld slurmd; do
        "$daemon"
        pid=$(pid_of "$STATE/$daemon.pid" "$daemon") || { stop; exit 1; }
        echo "$daemon $pid" >>"$PIDS"
    done
    for _ in $(seq 100); do
        if sinfo -h -N -o %t 2>/dev/null | grep -qx idle; then
            echo "test Slurm up: $(sinfo -h -N -p debug -o '%N, %c CPUs, %t')"
            exit 0
        fi
        sleep 0.1
    done
    echo "the test Slurm did not come up; its logs: $STATE/slurmctld.log, $STATE/slurmd.log" >&2
    stop
    exit 1
}

stop() {  # the daemons in $PIDS (all at once, then wait for each); then the configuration this script wrote
    [ -e "$PIDS" ] || return 0
    local name pid
    while read -r name pid; do
        if alive "$pid" "$name"; then kill "$pid"; fi
    done <"$PIDS"
    while read -r name pid; do
        for _ in $(seq 100); do alive "$pid" "$name" || break; sleep 0.1; done
    done <"$PIDS"
    rm -f "$PIDS"
    if [ -e "$CONF" ] && [ "$(head -n1 "$CONF")" = "$MARK" ]; then rm -f "$CONF"; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    check) check ;;
    *) echo "usage: $0 start|stop|check" >&2; exit 2 ;;
esac
