"""GPU-hours of ``all_tables`` on NSD at the paper's settings, from the DAG's job list and FLOPs.

No GPU figure exists yet, so this is arithmetic, not a timing: every job of
``snakemake -n all_tables --configfile configs/nsd_paper.yaml`` is given the
steps its schedule takes (or its cap), each step and each prediction pass its
matrix FLOPs (NRF: ``split_first_layer.step_flops``, cross-checked with
``torch.utils.flop_counter`` on the meta device; Universal and NRF forward
passes: counted there), and the sum is divided by a stated share of the GPU's
dense bf16 peak. The job list comes from the dry run (``--dry-run FILE`` reads
a saved one; ``--git-rev REV`` runs it on that revision's tree when today's
rules do not parse).

Early stopping decides most of the cost and no run has measured it, so the
estimate takes one assumption, stated: every early-stopped training (patience
5, one validation per epoch) reaches its best validation score after
``--best-epochs`` epochs (default 20) and runs ``patience`` epochs more; the
table gives the total for 5, 20 and 50, and for every job at its step cap.

    python benchmarks/gpu_hours.py --out benchmarks/gpu_hours.md --json benchmarks/gpu_hours.json
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

import split_first_layer as S  # noqa: E402
from nrf.models.nrf import NRF, NRFConfig  # noqa: E402

#: NSD at the paper's settings: nsdgeneral voxels (asserted by nsd.check_voxel_counts), training images
#: (10,000 seen by each of these subjects, less the 1,000 shared), test = validation images (paper
#: protocol; seen_by_all: the 907 shared images every subject saw)
VOXELS = {"subj01": 15724, "subj02": 14278, "subj05": 13039, "subj07": 12682}
N_TRAIN, N_TEST = 9000, 907
#: images whose features are extracted: the union of the four subjects' images
STIMULI = 4 * 9000 + 1000
#: forward FLOPs per image (2 per multiply-add) of the extractors, from their published MAC counts
EXTRACTOR_GFLOP = {"clip_vitb16": 2 * 17.6, "alexnet": 2 * 0.71}
#: image metrics of a decoded image: AlexNet 1.4, Inception v3 11.5, CLIP ViT-L/14 162, EfficientNet-B1 1.4,
#: SwAV ResNet-50 8.2 GFLOP
METRIC_GFLOP = 1.4 + 11.5 + 162 + 1.4 + 8.2
PEAK = {"H100 SXM (dense bf16)": 989.0}


def nrf_config(options: dict, depth=None, width=None) -> NRFConfig:
    o = {k: v for k, v in options.items() if k in NRFConfig.__dataclass_fields__}
    if depth:
        o["depth"] = depth
    if width:
        o["width"] = width
    return NRFConfig(token_dim=768, n_tokens=196, embedding_dim=512, **o)


def nrf_step(c: NRFConfig, batch_images: int, batch_voxels: int) -> float:
    return S.step_flops(c, batch_images, batch_voxels, "per_image", "split")


def nrf_pass(c: NRFConfig, n_img: int, n_vox: int) -> float:
    """One prediction pass (forward) over n_img images at n_vox voxels."""
    return S.step_flops(c, n_img, n_vox, "shared", "split") / 3


def counted_nrf(c: NRFConfig) -> tuple[float, float]:
    """FlopCounterMode on the meta device: (training step 32 x 2,000, forward per query)."""
    with torch.device("meta"):
        model = NRF(c)
        feats = {"tokens_shallow": torch.empty(32, 196, 768), "tokens_deep": torch.empty(32, 196, 768),
                 "embedding": torch.empty(32, 512)}
        with FlopCounterMode(display=False) as fc:
            model(feats, torch.empty(32, 2000, 3)).square().mean().backward()
        step = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            model({k: v[:1] for k, v in feats.items()}, torch.empty(10000, 3))
        return float(step), fc.get_total_flops() / 10000


def counted_universal(options: dict) -> tuple[float, float]:
    """(training step of batch_images x batch_voxels, forward per query) of the Universal encoder."""
    from nrf.models.universal import UniversalConfig, UniversalEncoder

    fields = UniversalConfig.__dataclass_fields__
    o = {k: v for k, v in options.items() if k in fields and k not in ("subjects", "n_voxels")}
    with torch.device("meta"):
        model = UniversalEncoder(UniversalConfig(layer_keys=("tokens_shallow", "tokens_deep"), n_tokens=196,
                                                 token_dim=768, subjects=("s",), n_voxels=(15724,), **o))
        n_img, n_vox = options["batch_images"], options["batch_voxels"]
        feats = {k: torch.empty(n_img, 196, 768, dtype=torch.float16) for k in ("tokens_shallow", "tokens_deep")}
        cols = torch.zeros(n_img, n_vox, dtype=torch.long)
        with FlopCounterMode(display=False) as fc:
            values, keys = model.image_code(feats)
            model.respond(values, keys, model.embeddings["s"][cols]).float().square().mean().backward()
        step = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            values, keys = model.image_code({k: v[:1] for k, v in feats.items()})
            model.respond(values, keys, model.embeddings["s"][cols[:1]])
        return float(step), fc.get_total_flops() / n_vox


def early_stopped(step: float, val_pass: float, n_train: int, batch: int, cap: int, patience: int,
                  best_epochs: int | None, eval_every: int | None = None) -> dict:
    """FLOPs of one training validated every epoch (or every eval_every steps): best_epochs + patience
    epochs, or the step cap (best_epochs None)."""
    epoch = eval_every or max(1, math.ceil(n_train / batch))
    steps = cap if best_epochs is None else min(cap, (best_epochs + patience) * epoch)
    evals = steps // epoch + (1 if steps % epoch else 0)
    return {"steps": steps, "evals": evals, "flop": steps * step + evals * val_pass}


class Job(NamedTuple):
    rule: str
    wildcards: dict
    gpus: int  # the ``gpu`` resource the job declares (rules/common.smk ``gpus()``)


def read_jobs(text: str) -> list[Job]:
    """Every job block of a dry run's output: its rule, wildcards and declared GPUs."""
    jobs = []
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            jobs.append(Job(m.group(1), {}, 0))
            continue
        if not jobs:
            continue
        m = re.match(r"^wildcards: (.*)$", line)
        if m:
            jobs[-1].wildcards.update(dict(kv.split("=", 1) for kv in m.group(1).split(", ")))
        m = re.match(r"^resources: (.*)$", line)
        if m:
            gpu = re.search(r"(?:^|, )gpu=(\d+)", m.group(1))
            jobs[-1] = jobs[-1]._replace(gpus=int(gpu.group(1)) if gpu else 0)
    return jobs


def dry_run(repo: Path) -> str:
    work = Path(tempfile.mkdtemp(prefix="gpu_hours_"))
    cmd = [sys.executable, "-m", "snakemake", "-n", "all_tables", "-s", str(repo / "Snakefile"), "-d", str(work),
           "--configfile", str(repo / "configs/nsd_paper.yaml"), "--cores", "8"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(f"dry run failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    return done.stdout


def job_costs(jobs, cfg: dict, best_epochs: int | None) -> list[dict]:
    """One row per job: rule, what, steps, evaluations, PFLOP."""
    train, adapt, univ = cfg["train"], cfg["adaptation"], cfg["universal"]
    paper = nrf_config(cfg["nrf"])
    step = nrf_step(paper, train["batch_images"], train["batch_voxels"])
    u_step, u_query = counted_universal(univ)
    patience = train["patience"]
    rows = []

    def row(rule, what, flop, steps=0, evals=0):
        rows.append({"rule": rule, "what": what, "steps": steps, "evals": evals, "pflop": flop / 1e15})

    for rule, w, gpus in jobs:
        before = len(rows)
        subject = w.get("subject")
        n_vox = VOXELS.get(subject, VOXELS[cfg["probes"]["subject"]])
        if rule == "train_encoder" and w["model"] == "nrf":
            r = early_stopped(step, nrf_pass(paper, N_TEST, n_vox), N_TRAIN, train["batch_images"],
                              train["max_steps"], patience, best_epochs, train["eval_every"])
            row(rule, f"NRF 8 x 4096, {subject}", r["flop"], r["steps"], r["evals"])
        elif rule == "train_encoder" and w["model"] == "universal":
            steps = univ["max_steps"]  # the authors' recipe: 30 epochs, the lr cut on plateaus, no early stop
            evals = steps // univ["eval_every"]
            row(rule, f"Universal ({univ['variant']}), {subject}", steps * u_step + evals * N_TEST * n_vox * u_query,
                steps, evals)
        elif rule == "train_encoder":
            row(rule, f"{w['model']}, {subject} (closed form or a 512 x voxels linear map: < 0.1 PFLOP)", 0.0)
        elif rule == "train_universal_joint":
            steps = univ["max_steps"] * len(VOXELS)
            evals = steps // (univ["eval_every"] * len(VOXELS))
            row(rule, "Universal joint, 4 subjects", steps * u_step + evals * N_TEST * sum(VOXELS.values()) * u_query,
                steps, evals)
        elif rule == "evaluate_encoder" and w["model"] == "nrf":
            row(rule, f"NRF test prediction, {subject}", nrf_pass(paper, N_TEST, n_vox), 0, 1)
        elif rule in ("evaluate_encoder", "evaluate_universal_joint"):
            flop = N_TEST * n_vox * u_query if "universal" in (w.get("model", "universal")) else 0.0
            row(rule, f"{w.get('model', 'universal_joint')} test prediction, {subject}", flop, 0, 1)
        elif rule == "adapt_cell":
            n = int(w["n"])
            batch = min(train["batch_images"], n)
            s = nrf_step(paper, batch, min(train["batch_voxels"], n_vox))
            val = nrf_pass(paper, N_TEST, n_vox)
            ft = early_stopped(s, val, n, train["batch_images"], adapt["finetune_steps"], patience, best_epochs)
            sc = early_stopped(s, val, n, train["batch_images"], adapt["scratch_steps"], patience, best_epochs)
            bases = len(VOXELS) - 1
            # each finetuned base and the scratch model predict the test set; the bases also the N training images
            preds = (bases + 1) * val + bases * nrf_pass(paper, n, n_vox)
            row(rule, f"{subject} N={n} draw {w['draw']}: {bases} finetunes + scratch", bases * ft["flop"] + sc["flop"]
                + preds, bases * ft["steps"] + sc["steps"], bases * ft["evals"] + sc["evals"] + bases + 1)
        elif rule == "ablation_finetune_strategy":
            n, target = cfg["ablations"]["finetune_n"], cfg["probes"]["target"]
            s = nrf_step(paper, train["batch_images"], train["batch_voxels"])
            val = nrf_pass(paper, N_TEST, VOXELS[target])
            ft = early_stopped(s, val, n, train["batch_images"], adapt["finetune_steps"], patience, best_epochs)
            k = 3 * adapt["draws"]  # 3 strategies (full step FLOPs: an upper bound for the frozen ones)
            row(rule, f"Table 4: 3 strategies x {adapt['draws']} draws, N={n}, {target}", k * (ft["flop"] + val),
                k * ft["steps"], k * (ft["evals"] + 1))
        elif rule == "ablation_architecture":
            c = nrf_config(cfg["nrf"], int(w["depth"]), int(w["width"]))
            cap = cfg["ablations"].get("max_steps") or train["max_steps"]
            r = early_stopped(nrf_step(c, train["batch_images"], train["batch_voxels"]), nrf_pass(c, N_TEST, n_vox),
                              N_TRAIN, train["batch_images"], cap, patience, best_epochs, train["eval_every"])
            row(rule, f"NRF depth {w['depth']} x width {w['width']}, {cfg['probes']['subject']}",
                r["flop"] + nrf_pass(c, N_TEST, n_vox), r["steps"], r["evals"] + 1)
        elif rule == "extract_features":
            ex = w["extractor"]
            row(rule, f"{ex} over {STIMULI:,} images", STIMULI * EXTRACTOR_GFLOP.get(ex, 0.0) * 1e9, 0, 1)
        elif rule == "score_adaptation_decoding":
            # decoded sets scored with the image networks: NRF scratch and the finetune ensemble at every N
            # and draw; for subj07 every one of the 8 methods at Table 3's N as well
            sets = 2 * len(cfg["shots"]) * adapt["draws"] + (8 * adapt["draws"] if subject == "subj07" else 0) + 1
            row(rule, f"{subject}: {sets} sets of {N_TEST} images through the image metrics' networks",
                sets * N_TEST * METRIC_GFLOP * 1e9)
        if gpus and len(rows) == before:
            # a rule that asks for a GPU and is not costed here would drop out of the total unseen
            raise ValueError(f"rule {rule} ({w}) declares gpu={gpus} but gpu_hours.job_costs has no cost for it: "
                             "add its steps and FLOPs before quoting a total")
    return rows


def load_config(repo: Path) -> dict:
    from nrf.config import validate_config

    return validate_config(yaml.safe_load((repo / "configs/nsd_paper.yaml").read_text()),
                           repo / "schemas/config.schema.yaml")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", help="a saved `snakemake -n all_tables --configfile configs/nsd_paper.yaml` output")
    ap.add_argument("--git-rev", help="take the job list from this revision's rules (git archive) instead")
    ap.add_argument("--best-epochs", type=int, default=20)
    ap.add_argument("--share", type=float, default=0.40, help="share of the dense bf16 peak sustained")
    ap.add_argument("--peak", type=float, default=989.0, help="TFLOP/s (H100 SXM dense bf16)")
    ap.add_argument("--out")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    source = "dry run of the working tree"
    if args.dry_run:
        text, source = Path(args.dry_run).read_text(), f"saved dry run {args.dry_run}"
    elif args.git_rev:
        tree = Path(tempfile.mkdtemp(prefix="rules_"))
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.git_rev], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        text, source = dry_run(tree), f"dry run of {args.git_rev}'s tree"
    else:
        text = dry_run(REPO)
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--short", "--", "rules", "Snakefile"],
                               capture_output=True, text=True).stdout.split("\n")
        source = f"dry run of the working tree at {head.stdout.strip()}" + (
            f" with {sum(1 for line in dirty if line.strip())} rule files edited" if any(dirty) else "")
    jobs = read_jobs(text)
    cfg = load_config(REPO)
    rate = args.share * args.peak * 1e12
    runs = {}
    for best in (5, args.best_epochs, 50, None):
        rows = job_costs(jobs, cfg, best)
        runs["cap" if best is None else best] = rows
    rows = runs[args.best_epochs]
    per_rule = {}
    for r in rows:
        agg = per_rule.setdefault(r["rule"], {"jobs": 0, "pflop": 0.0, "steps": 0, "evals": 0})
        agg["jobs"] += 1
        agg["pflop"] += r["pflop"]
        agg["steps"] += r["steps"]
        agg["evals"] += r["evals"]
    paper = nrf_config(cfg["nrf"])
    counted_step, counted_query = counted_nrf(paper)
    result = {
        "source": source, "jobs": len(jobs), "jobs_per_rule": dict(Counter(job.rule for job in jobs)),
        "best_epochs": args.best_epochs, "share": args.share, "peak_tflops": args.peak,
        "nrf_step_tflop": nrf_step(paper, 32, 2000) / 1e12, "nrf_step_tflop_counted": counted_step / 1e12,
        "nrf_query_mflop": nrf_pass(paper, 1, 15724) / 15724 / 1e6, "nrf_query_mflop_counted": counted_query / 1e6,
        "universal_step_tflop": counted_universal(cfg["universal"])[0] / 1e12,
        "universal_query_mflop": counted_universal(cfg["universal"])[1] / 1e6,
        "per_rule": per_rule,
        "totals": {str(k): {"pflop": sum(r["pflop"] for r in v),
                            "gpu_hours": sum(r["pflop"] for r in v) * 1e15 / rate / 3600}
                   for k, v in runs.items()},
        "rows": rows,
    }
    text = render(result, cfg)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


def render(r: dict, cfg: dict) -> str:
    rate = r["share"] * r["peak_tflops"]
    t = cfg["train"]
    lines = [
        "# GPU-hours of `all_tables` on NSD at the paper's settings (estimate, no GPU timing)", "",
        f"Job list: {r['source']} (`snakemake -n all_tables --configfile configs/nsd_paper.yaml`): "
        f"{r['jobs']} jobs. Rate: {r['share']:.0%} of {r['peak_tflops']:g} TFLOP/s (H100 SXM dense bf16) = "
        f"**{rate:.0f} TFLOP/s sustained**, assumed: no GPU run of this pipeline exists yet; the 8 x 4096 MLP's "
        "bf16 matmuls (64,000 x 4,096 x 4,096 per layer) reach well above that alone, and the float32 coordinate "
        "code, element-wise work, the optimiser and chunked evaluation take the rest. "
        "`gpu_paper_scale.sh` measures the real share.", "",
        "## Per step and per query", "",
        f"- NRF 8 x 4096 training step, {t['batch_images']} images x {t['batch_voxels']:,} voxels per image: "
        f"{r['nrf_step_tflop']:.2f} TFLOP (forward x 3; FlopCounterMode on the meta device: "
        f"{r['nrf_step_tflop_counted']:.2f})",
        f"- NRF forward per (image, voxel) query: {r['nrf_query_mflop']:.1f} MFLOP (counted: "
        f"{r['nrf_query_mflop_counted']:.1f}); a validation or test pass over {N_TEST} images x 15,724 voxels = "
        f"{N_TEST * 15724 * r['nrf_query_mflop'] / 1e9:.2f} PFLOP",
        f"- Universal ({cfg['universal']['variant']}) training step, {cfg['universal']['batch_images']} x "
        f"{cfg['universal']['batch_voxels']:,}: {r['universal_step_tflop']:.3f} TFLOP; forward per query "
        f"{r['universal_query_mflop']:.2f} MFLOP (counted)", "",
        "## Schedules", "",
        f"- NRF on a subject's {N_TRAIN:,} training images (train_encoder nrf, ablation_architecture): "
        f"{math.ceil(N_TRAIN / 32)} steps an epoch, a validation pass over the {N_TEST} test images every "
        f"{t['eval_every']} steps, patience {t['patience']}, cap {t['max_steps']:,} steps.",
        f"- Adaptation cells (N = {', '.join(map(str, cfg['shots']))}; {cfg['adaptation']['draws']} draws; every "
        "subject a target): 3 base finetunes and one scratch NRF per cell, each validated on the test images "
        "every epoch of ceil(N / 32) steps (1, 7, 25), patience 5, cap "
        f"{cfg['adaptation']['finetune_steps']:,} steps; the validation passes, not the steps, are most of it "
        "(at N = 20 a step is 24 TFLOP, a validation pass ~2.6 PFLOP).",
        f"- Universal: {cfg['universal']['max_steps']:,} steps (30 epochs, no early stop), x4 jointly.",
        f"- Assumed: an early-stopped training takes its best validation score after **{r['best_epochs']} epochs** "
        f"and runs {t['patience']} more (no measurement exists; the totals below also for 5 and 50, and at the caps).",
        "", f"## Per rule (best after {r['best_epochs']} epochs)", "",
        "| rule | jobs | steps | prediction passes | PFLOP | GPU-hours |", "|---|---|---|---|---|---|"]
    for rule, a in sorted(r["per_rule"].items(), key=lambda kv: -kv[1]["pflop"]):
        lines.append(f"| {rule} | {a['jobs']} | {a['steps']:,} | {a['evals']:,} | {a['pflop']:,.1f} | "
                     f"{a['pflop'] * 1e15 / (rate * 1e12) / 3600:,.2f} |")
    total = r["totals"][str(r["best_epochs"])]
    lines += [f"| **all GPU work** | | | | **{total['pflop']:,.0f}** | **{total['gpu_hours']:,.1f}** |", "",
              "Arithmetic: GPU-hours = PFLOP x 10^15 / (share x peak x 10^12 FLOP/s) / 3,600 s; "
              f"here 1 PFLOP = {1e15 / (rate * 1e12):.2f} s.", "",
              "## Sensitivity to early stopping", "",
              "| every early-stopped training's best epoch | PFLOP | GPU-hours |", "|---|---|---|"]
    for k, v in r["totals"].items():
        label = "at the step caps (never stops early)" if k == "cap" else f"{k}"
        lines.append(f"| {label} | {v['pflop']:,.0f} | {v['gpu_hours']:,.1f} |")
    lines += ["", "Not counted: downloads, preparation and tables (CPU); fWRF, ridge and linear fits (< 0.1 PFLOP "
              "each); the offline decoders (CPU ridge). The adaptation cells' linear models and ensemble fits "
              "are CPU-sized. ablation_finetune_strategy counts full steps for the frozen strategies (an upper "
              "bound). Time not spent on FLOPs (reading features, job start-up, host-device copies) is outside "
              "this estimate."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
