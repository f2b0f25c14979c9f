"""What the workflow derives from several config keys, defined once.

The Snakefile (rules/common.smk) builds its rules from these values and the
settings table (nrf.reporting.settings) prints them, so the two cannot state
different step caps or probe subjects. Torch-free: the Snakefile imports it.
``config`` is the validated one (nrf.config.validate_config: defaults filled).
"""

from __future__ import annotations


def probe_subjects(config: dict) -> tuple[str, str, str | None]:
    """(shuffle subject, base, target): the configured ones where they are run,
    else the first subject (shuffle, base) and the last other one (target; None
    with one subject)."""
    probes, subjects = config["probes"], config["subjects"]
    subject = probes["subject"] if probes["subject"] in subjects else subjects[0]
    base = probes["base"] if probes["base"] in subjects else subjects[0]
    others = [s for s in subjects if s != base]
    target = probes["target"] if probes["target"] in others else (others[-1] if others else None)
    return subject, base, target


def derived(config: dict) -> dict:
    """The values, by name:

    probe_subjects     [shuffle subject, base, target] (:func:`probe_subjects`)
    probe_draws        the probes' draws (probes.draws, else the adaptation cells')
    shuffle_nrf        the shuffle probe's NRF: probes.shuffle_nrf merged over nrf
    shuffle_max_steps  its step cap: probes.shuffle_max_steps, else adaptation.scratch_steps
    shuffle_min_steps  no early stop before it (probes.shuffle_min_steps, else 0)
    table4_n           Table 4's N: ablations.finetune_n, or the largest shot when the data are smaller
    ablation_max_steps Tables 5-6's step cap: ablations.max_steps where set, else train.max_steps
    universal_target   the Universal transfer's held-out subject (else the last subject)
    volume_subject     the subject whose volumes the figures show (the first)
    """
    probes, adaptation = config["probes"], config["adaptation"]
    return {
        "probe_subjects": list(probe_subjects(config)),
        "probe_draws": probes.get("draws", adaptation["draws"]),
        "shuffle_nrf": {**config["nrf"], **(probes.get("shuffle_nrf") or {})},
        "shuffle_max_steps": probes.get("shuffle_max_steps", adaptation["scratch_steps"]),
        "shuffle_min_steps": probes.get("shuffle_min_steps", 0),
        "table4_n": min(config["ablations"]["finetune_n"], max(config["shots"])),
        "ablation_max_steps": config["ablations"].get("max_steps") or config["train"]["max_steps"],
        "universal_target": config["universal"]["transfer_target"] or config["subjects"][-1],
        "volume_subject": config["subjects"][0],
    }
