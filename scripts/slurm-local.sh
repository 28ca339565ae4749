#!/usr/bin/env bash
# A one-host Slurm cluster for the distributed tests (docs/distributed.md): munged, slurmctld and slurmd of Debian's
# slurmd/slurmctld/slurm-client/munge packages, as root, with their configuration, state and logs in one folder.
#   scripts/slurm-local.sh start DIR   start it (or find it running) and print its SLURM_CONF
#   scripts/slurm-local.sh stop DIR    stop the daemons that `start DIR` started
set -euo pipefail
command="${1:?usage: scripts/slurm-local.sh start|stop DIR}"
dir="${2:?usage: scripts/slurm-local.sh start|stop DIR}"
conf="$dir/slurm.conf"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

case "$command" in
  start)
    if [ "$(id -u)" != 0 ]; then echo "slurm-local.sh: the daemons need root" >&2; exit 1; fi
    for tool in munged slurmctld slurmd srun; do
      command -v "$tool" >/dev/null ||
        { echo "slurm-local.sh: no $tool (apt-get install slurmd slurmctld slurm-client munge)" >&2; exit 1; }
    done
    mkdir -p "$dir/state" "$dir/spool"
    if ! munge -n >/dev/null 2>&1; then
      [ -f /etc/munge/munge.key ] || mungekey --create
      mkdir -p /run/munge && chown munge:munge /run/munge
      su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid"
      touch "$dir/started-munged"
    fi
    # Ports other than Slurm's defaults, so that a system Slurm on this host is left alone.
    cat >"$conf" <<EOF
ClusterName=dnft
SlurmctldHost=$(hostname -s)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=$(hostname -s) CPUs=$(nproc) State=UNKNOWN
PartitionName=local Nodes=$(hostname -s) Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
    alive "$dir/slurmctld.pid" || SLURM_CONF="$conf" slurmctld
    alive "$dir/slurmd.pid" || SLURM_CONF="$conf" slurmd
    for _ in $(seq 60); do
      if SLURM_CONF="$conf" sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
        echo "$conf"
        exit 0
      fi
      sleep 0.5
    done
    echo "slurm-local.sh: the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
    exit 1
    ;;
  stop)
    # First let the jobs end (a step's slurmstepd reports its end to slurmctld through munge; one that outlives them
    # retries for ever), then each daemon after the one that depends on it.
    if alive "$dir/slurmctld.pid"; then
      for _ in $(seq 120); do
        [ -z "$(SLURM_CONF="$conf" squeue -h 2>/dev/null)" ] && break
        sleep 0.25
      done
    fi
    stop_daemon() {
      alive "$1" || return 0
      local pid
      pid=$(cat "$1")
      kill "$pid"
      for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
    }
    stop_daemon "$dir/slurmd.pid"
    stop_daemon "$dir/slurmctld.pid"
    if [ -f "$dir/started-munged" ]; then stop_daemon /run/munge/munged.pid; fi
    rm -f "$dir/started-munged"
    ;;
  *)
    echo "usage: scripts/slurm-local.sh start|stop DIR" >&2
    exit 2
    ;;
esac
