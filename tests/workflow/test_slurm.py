"""The SLURM profile against a real single-node SLURM on 127.0.0.1.

A slice of the simulated DAG (simulate -> prepare -> features -> train ->
predict -> score -> table1) goes through `--profile` derived from
profiles/slurm: every job is submitted with sbatch and run by slurmd. The
table must equal a local run's to the last digit (same seeds, same CPU
arithmetic). SLURM comes from Debian's slurm-wlm + munge (`.ci/run` installs
them); with no systemd, the test starts munged (as the munge user),
slurmctld and `slurmd -N <node>` itself on free ports, from a slurm.conf in a
temporary folder, and stops them by process id. Where that cannot be done
(not root, packages missing, a daemon that does not come up) the test is
skipped with the reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from tiny_workflow import REPO, TINY  # the same tiny config as the local workflow tests

pytestmark = pytest.mark.workflow

NODE = "nrfnode"
PARTITION = "debug"
TARGET = "results/simulated/tables/table1.csv"
# One subject and one model kind keep the slice short; table1 still needs
# both models' scores, so both train through SLURM.
SLICE = {**TINY, "subjects": ["subj01"], "decoding": "none"}
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "setpriv")

SLURM_CONF = """\
ClusterName=nrftest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to squeue for 10 min: the plugin's squeue
# status check needs MinJobAge >= 3 x its first polling interval.
MinJobAge=600
# The node advertises what the profile asks for (8 CPUs per GPU rule, up to
# 32 GB), whatever this machine has; nothing is enforced (no cgroups).
SlurmdParameters=config_overrides
NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 CPUs=16 RealMemory=200000 State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""

CGROUP_CONF = "CgroupPlugin=autodetect\nIgnoreSystemd=yes\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.5)
    return False


class SingleNodeSlurm:
    """munged + slurmctld + slurmd on 127.0.0.1, configured in ``root``.

    ``start()`` returns None when all three are up and the node is idle, or
    the reason they are not; ``stop()`` ends the processes it started.
    """

    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        # The jobstep plugin runs each job through a nested srun with every
        # SLURM_* variable but the job's identity removed, SLURM_CONF too; on a
        # real cluster srun finds /etc/slurm/slurm.conf, here a shim on PATH
        # (first in every job's environment, sbatch --export=ALL) points it
        # at this cluster's file instead.
        shims = root / "bin"
        shims.mkdir()
        srun = shims / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {shutil.which("srun") or "/usr/bin/srun"} "$@"\n')
        srun.chmod(0o755)
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "PATH": f"{shims}:{os.environ['PATH']}"}

    def _log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"

    def start(self) -> str | None:
        if os.geteuid() != 0:
            return "SLURM's slurmd must run as root to launch jobs; not root"
        missing = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
        if missing:
            return f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)"
        if not Path("/etc/munge/munge.key").exists():
            return "no munge key at /etc/munge/munge.key (Debian's munge package creates it)"
        try:
            munge = pwd.getpwnam("munge")
        except KeyError:
            return "no munge user"
        # munged refuses folders others can write to; it runs as munge.
        mdir = self.root / "munge"
        mdir.mkdir(mode=0o700)
        os.chown(mdir, munge.pw_uid, munge.pw_gid)
        self.munge_socket = mdir / "munge.socket"
        for sub in ("state", "spool"):
            (self.root / sub).mkdir()
        host = socket.gethostname().split(".")[0]
        self.conf.write_text(SLURM_CONF.format(
            host=host, root=self.root, node=NODE, partition=PARTITION, munge_socket=self.munge_socket,
            ctld_port=_free_port(), slurmd_port=_free_port(),
        ))
        (self.root / "cgroup.conf").write_text(CGROUP_CONF)

        munged = shutil.which("munged") or "/usr/sbin/munged"
        # setpriv execs munged in place as the munge user, so the process id we
        # hold is munged's own and stop() ends it directly
        as_munge = ["setpriv", f"--reuid={munge.pw_uid}", f"--regid={munge.pw_gid}", "--init-groups"]
        self._spawn("munged", [*as_munge, munged, "--foreground", "--force",
                               f"--socket={self.munge_socket}", f"--pid-file={mdir}/munged.pid",
                               f"--seed-file={mdir}/munged.seed", f"--log-file={mdir}/munged.log"])
        if not _wait(self.munge_socket.exists, 15):
            log = mdir / "munged.log"
            return f"munged did not start: {log.read_text()[-1000:] if log.exists() else ''}"
        self._spawn("slurmctld", [shutil.which("slurmctld") or "/usr/sbin/slurmctld", "-D", "-i", "-f", str(self.conf)])
        if not _wait(lambda: self._query(["scontrol", "ping"]).endswith("is UP"), 30):
            return f"slurmctld did not answer: {self._log('slurmctld')}"
        self._spawn("slurmd", [shutil.which("slurmd") or "/usr/sbin/slurmd", "-D", "-N", NODE, "-f", str(self.conf)])
        if not _wait(lambda: self._query(["sinfo", "-h", "-n", NODE, "-o", "%t"]) in {"idle", "mix"}, 60):
            return (f"node {NODE} never became idle ({self._query(['sinfo', '-h', '-o', '%t %E'])}): "
                    f"{self._log('slurmd')}")
        return None

    def _spawn(self, name: str, cmd: list[str]) -> None:
        out = open(self.root / f"{name}.out", "w")
        self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                            start_new_session=True)

    def _query(self, cmd: list[str]) -> str:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return res.stdout.strip()

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld", "munged"):  # reverse order of start
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def slurm_test_profile(profile_dir: Path) -> Path:
    """profiles/slurm, adapted to the test cluster: its partition, no account,
    no GPUs (the node has none), squeue for status (there is no accounting
    database, and sacct would wait on it), quick first status check, and
    every job's SLURM log kept."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    profile["default-resources"].pop("slurm_account")
    profile["default-resources"]["slurm_partition"] = PARTITION
    for resources in profile["set-resources"].values():
        for key in ("gpu", "cpus_per_gpu", "slurm_partition"):
            resources.pop(key, None)
    profile.update({
        "jobs": 4,
        "latency-wait": 5,
        "slurm-no-account": True,
        "slurm-status-command": "squeue",
        "slurm-init-seconds-before-status-checks": 2,
        "slurm-keep-successful-logs": True,
        "slurm-logdir": "slurm_logs",
    })
    profile_dir.mkdir(parents=True, exist_ok=True)
    (profile_dir / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return profile_dir


def _snakemake(workdir: Path, *args, env=None, timeout=900):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), *args, TARGET]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if shutil.which("sbatch") is None:
        pytest.skip("SLURM not installed (apt-get install slurm-wlm munge); the SLURM profile is not exercised")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.skip("snakemake-executor-plugin-slurm not installed (pip install -e '.[test]')")
    # munged (run as the munge user) must be able to reach its folder, so not
    # under pytest's private tmp root.
    root = Path(tempfile.mkdtemp(prefix="nrf-slurm-"))
    os.chmod(root, 0o755)
    cluster = SingleNodeSlurm(root)
    try:
        reason = cluster.start()
        if reason:
            print(f"SKIP test_slurm: {reason}")
            pytest.skip(f"SLURM could not start here: {reason}")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_slice_through_sbatch_equals_local_run(slurm, tmp_path):
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    for workdir in (on_slurm, local):
        workdir.mkdir()
        (workdir / "config.yaml").write_text(yaml.safe_dump(SLICE))
    profile = slurm_test_profile(tmp_path / "profile")

    result = _snakemake(on_slurm, "--profile", str(profile), env=slurm.env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    ran = _snakemake(local, "--cores", "2")
    assert ran.returncode == 0, ran.stderr[-3000:]

    # Every job of the slice went through sbatch: the plugin writes each
    # job's SLURM output to slurm_logs/rule_<rule>/<wildcards>/<jobid>.log.
    slurm_logs = list((on_slurm / "slurm_logs").rglob("*.log"))
    rules = {p.relative_to(on_slurm / "slurm_logs").parts[0].removeprefix("rule_") for p in slurm_logs}
    assert {"simulate_dataset", "prepare_subject", "extract_features", "train_encoder", "evaluate_encoder",
            "build_table1"} <= rules, sorted(rules)
    job_logs = list((on_slurm / "logs").rglob("*.log"))
    assert len(slurm_logs) == len(job_logs) > 10  # every job of the slice, each through sbatch
    assert all(p.stem.isdigit() for p in slurm_logs)  # named by SLURM job id

    assert (on_slurm / TARGET).read_bytes() == (local / TARGET).read_bytes()


def test_profile_covers_every_gpu_rule_and_names_no_unknown_rule():
    import re

    rules = {m for smk in (REPO / "rules").glob("*.smk") for m in re.findall(r"^rule (\w+):", smk.read_text(), re.M)}
    gpu_rules = {m for smk in (REPO / "rules").glob("*.smk")
                 for m in re.findall(r"^rule (\w+):(?:(?!^rule ).)*?\bgpu=", smk.read_text(), re.M | re.S)}
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    on_gpu = {r for r, res in profile["set-resources"].items() if res.get("gpu")}
    assert {"train_encoder", "evaluate_encoder", "extract_features"} <= gpu_rules
    assert gpu_rules <= on_gpu
    assert set(profile["set-resources"]) <= rules  # no name that matches no rule
    assert all(res.get("cpus_per_gpu", 0) >= 1 for r, res in profile["set-resources"].items() if r in on_gpu)
    # placeholders a user must fill in (docs/CLUSTER.md), runtimes as strings
    assert profile["default-resources"]["slurm_account"] == "YOUR_ACCOUNT"
    assert profile["default-resources"]["slurm_partition"] == "YOUR_PARTITION"
    assert re.fullmatch(r"\d+[hm]", profile["default-resources"]["runtime"])
    assert {"jobs", "latency-wait", "retries"} <= set(profile)
