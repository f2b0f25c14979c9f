"""Where one default NRF training step spends its time on the CPU (issue 22, item 4).

The default model (width 128, depth 4) at the default batch (16 images x 256
voxels per image), on the simulated default's feature shapes, one thread as
every training job runs. Measured in one process, in this order:

- the step's parts, timed separately over the same steps: batch assembly
  (``TrainingBatches.draw``), forward + loss, backward, optimizer;
- the operators of the whole step (torch.profiler): matrix products, the
  element-wise operators, and the rest; what the operators do not account for
  is Python and autograd overhead;
- a validation pass of the paper protocol (100 test images x 807 voxels), which
  the adaptation cells run once per epoch, as predict() runs it and, as its
  baseline, with one block of pairs per 64 images (before 7738a01);
- the process's page faults per step, with glibc's default allocator settings
  and with nrf.runlog.ALLOCATOR_SETTINGS (they act at process start, so that
  row runs this script again in a child process).

    python benchmarks/nrf_step_profile.py [--steps 100] [--out benchmarks/nrf_step_profile.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nrf.models.nrf import NRF, NRFConfig  # noqa: E402
from nrf.runlog import ALLOCATOR_SETTINGS  # noqa: E402
from nrf.training import loop  # noqa: E402
from nrf.training.loop import EncodingSplit, TrainConfig, TrainingBatches, adamw, evaluate, nrf_loss  # noqa: E402

N_TRAIN, N_TEST, N_VOX = 200, 100, 807  # an adaptation cell at N = 200 on subj01
MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear"}
ELEMENTWISE = {"aten::clamp_min", "aten::threshold_backward", "aten::relu", "aten::add", "aten::add_", "aten::mul",
               "aten::mul_", "aten::sub", "aten::div", "aten::sin", "aten::cos", "aten::sqrt", "aten::lerp_",
               "aten::addcmul_", "aten::addcdiv_", "aten::copy_", "aten::sum", "aten::mean", "aten::pow",
               "aten::fill_", "aten::zero_", "aten::cat", "aten::neg", "aten::rsub", "aten::exp", "aten::sqrt_"}


def build(seed: int = 0):
    rng = np.random.default_rng(seed)
    feats = {"tokens_shallow": rng.standard_normal((N_TRAIN, 16, 20)).astype(np.float16),
             "tokens_deep": rng.standard_normal((N_TRAIN, 16, 20)).astype(np.float16),
             "embedding": rng.standard_normal((N_TRAIN, 200)).astype(np.float32)}
    responses = rng.standard_normal((N_TRAIN, N_VOX)).astype(np.float32)
    coords = rng.uniform(-60, 60, (N_VOX, 3)).astype(np.float32)
    test = EncodingSplit({k: v[:N_TEST] for k, v in feats.items()}, responses[:N_TEST])
    config = NRFConfig(token_dim=20, n_tokens=16, embedding_dim=200, merger_token_dim=16, merger_dim=64, width=128,
                       depth=4, fourier_features=32, fourier_scale=4.0)
    model = NRF(config, init_seed=seed)
    batches = TrainingBatches(feats, responses, coords, n_images=16, n_voxels=256, mode="per_image", device="cpu",
                              seed=seed)
    return model, batches, adamw(list(model.parameters()), TrainConfig(), "cpu"), test, coords


def faults_per_step(steps: int) -> dict:
    """Wall ms, user and system CPU ms, and minor page faults per step, in this process."""
    model, batches, opt, _, _ = build()

    def step():
        feats, coords, target = batches.draw()
        loss = nrf_loss(model(feats, coords), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return {"ms": 1e3 * wall / steps, "user_ms": 1e3 * (r1.ru_utime - r0.ru_utime) / steps,
            "sys_ms": 1e3 * (r1.ru_stime - r0.ru_stime) / steps, "faults": (r1.ru_minflt - r0.ru_minflt) / steps}


def parts(steps: int) -> dict:
    """Milliseconds per step of each part, and the profiler's operator split."""
    model, batches, opt, test, coords = build()
    totals = dict.fromkeys(("draw", "forward", "backward", "optimizer"), 0.0)
    for i in range(steps + 5):
        t0 = time.perf_counter()
        feats, crd, target = batches.draw()
        t1 = time.perf_counter()
        loss = nrf_loss(model(feats, crd), target)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if i >= 5:
            for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                totals[key] += 1e3 * dt / steps
    from torch.profiler import ProfilerActivity, profile

    n_prof = max(10, steps // 5)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(n_prof):
            feats, crd, target = batches.draw()
            loss = nrf_loss(model(feats, crd), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        wall = 1e3 * (time.perf_counter() - t0) / n_prof
    self_ms = {e.key: e.self_cpu_time_total / 1e3 / n_prof for e in prof.key_averages()}
    matmul = sum(v for k, v in self_ms.items() if k in MATMUL)
    elementwise = sum(v for k, v in self_ms.items() if k in ELEMENTWISE)
    ops = sum(v for k, v in self_ms.items() if k.startswith("aten::"))
    totals.update(profiled_ms=wall, matmul=matmul, elementwise=elementwise, other_ops=ops - matmul - elementwise,
                  overhead=max(wall - ops, 0.0), **validation_ms(model, test, coords))
    return totals


def validation_ms(model, test, coords, repeats: int = 5) -> dict:
    """Milliseconds of a validation pass as predict() runs it on the CPU (the
    head over blocks of loop.CPU_PAIRS_PER_BLOCK pairs) and, as the baseline in
    the same process, with one block per 64-image chunk (before 7738a01);
    interleaved so that the machine's load falls on both alike."""
    blocked, whole = [], []
    default = loop.CPU_PAIRS_PER_BLOCK
    try:
        for _ in range(repeats):
            for times, pairs in ((blocked, default), (whole, 10**12)):
                loop.CPU_PAIRS_PER_BLOCK = pairs
                t0 = time.perf_counter()
                evaluate(model, test, coords, TrainConfig())
                times.append(1e3 * (time.perf_counter() - t0))
    finally:
        loop.CPU_PAIRS_PER_BLOCK = default
    return {"eval_ms": float(np.median(blocked)), "eval_one_block_ms": float(np.median(whole))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--faults-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.faults_only:
        print(repr(faults_per_step(args.steps)))
        return
    child = [sys.executable, __file__, "--faults-only", "--steps", str(args.steps)]
    plain_env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_SETTINGS}
    plain = eval(subprocess.run(child, env=plain_env, capture_output=True, text=True, check=True).stdout)
    tuned = eval(subprocess.run(child, env={**plain_env, **ALLOCATOR_SETTINGS}, capture_output=True, text=True,
                                check=True).stdout)
    p = parts(args.steps)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    as_jobs = all(os.environ.get(k) == v for k, v in ALLOCATOR_SETTINGS.items())
    lines = [
        f"One default NRF training step on the CPU ({date}; {platform.machine()}, torch {torch.__version__}, "
        f"1 thread; width 128, depth 4, 16 images x 256 voxels; {args.steps} steps after 5 warm-up steps).", "",
        "| part of a step | ms |", "|---|---|",
        *(f"| {k} | {p[k]:.2f} |" for k in ("draw", "forward", "backward", "optimizer")),
        f"| **whole step** | **{sum(p[k] for k in ('draw', 'forward', 'backward', 'optimizer')):.2f}** |", "",
        f"Operators (torch.profiler, self time, per step of {p['profiled_ms']:.2f} ms under the profiler): "
        f"matrix products {p['matmul']:.2f} ms, element-wise {p['elementwise']:.2f} ms, other operators "
        f"{p['other_ops']:.2f} ms; Python and autograd overhead (the rest) {p['overhead']:.2f} ms.", "",
        f"A validation pass ({N_TEST} test images x {N_VOX} voxels, the paper protocol's per-epoch check): "
        f"{p['eval_ms']:.1f} ms, {p['eval_ms'] / max(p['profiled_ms'], 1e-9):.1f} training steps' worth, with the "
        f"head over blocks of {loop.CPU_PAIRS_PER_BLOCK} pairs; {p['eval_one_block_ms']:.1f} ms with one block per "
        f"64 images, as before 7738a01 ({p['eval_one_block_ms'] / p['eval_ms']:.2f}x; medians of 5, interleaved).",
        "",
        "| allocator | ms / step | user ms | system ms | minor page faults / step |", "|---|---|---|---|---|",
        f"| glibc defaults | {plain['ms']:.2f} | {plain['user_ms']:.2f} | {plain['sys_ms']:.2f} | "
        f"{plain['faults']:.0f} |",
        f"| nrf.runlog.ALLOCATOR_SETTINGS | {tuned['ms']:.2f} | {tuned['user_ms']:.2f} | {tuned['sys_ms']:.2f} | "
        f"{tuned['faults']:.0f} |", "",
        f"Reading: the parts and operators above ran with this process's allocator settings "
        f"({'ALLOCATOR_SETTINGS, as every job gets them' if as_jobs else 'glibc defaults'}). "
        f"Matrix products are {p['matmul'] / p['profiled_ms']:.0%} of a profiled step and Python and autograd "
        f"overhead {p['overhead'] / p['profiled_ms']:.0%}: the step is arithmetic-bound, so training an adaptation "
        "cell's three finetunes as one batched model would save at most the overhead share of their steps; the "
        "default run's cost was cut instead by the allocator (page faults), fewer steps (the adaptation caps) "
        "and fewer processes (benchmarks/default_run.md).",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
