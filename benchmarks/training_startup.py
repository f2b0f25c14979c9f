"""Start-up CPU of a training job: torch.optim's AdamW against nrf.training.optim's (issue 22).

Every training job of the pipeline is a fresh Python process. Constructing or
stepping any ``torch.optim`` optimizer imports ``torch._dynamo``; the NRF and
linear trainers now step AdamW through PyTorch's functional update without it
(``nrf.training.optim``, bit-identical weights). This script starts fresh
processes in alternation, each importing torch and nrf, building the default
NRF, constructing the optimizer (with the linear trainer's learning-rate
decay) and taking one step, and reports the median wall and CPU seconds
(user + system) of each route and their ratio, measured in the same run.

    python benchmarks/training_startup.py [--repeats 7] [--out benchmarks/training_startup.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import sys
sys.path.insert(0, {src!r})
import torch
torch.set_num_threads(1)
from nrf.models.nrf import NRF, NRFConfig
model = NRF(NRFConfig(token_dim=20, n_tokens=16, embedding_dim=200, merger_token_dim=16, merger_dim=64, width=128,
                      depth=4, fourier_features=32, fourier_scale=8.0), init_seed=0)
if {route!r} == "torch.optim":
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.015)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(0.0, 1.0 - t / 100))
else:
    from nrf.training.optim import AdamW, LinearDecay
    opt = AdamW(model.parameters(), lr=3e-3, weight_decay=0.015)
    sched = LinearDecay(opt, 100)
feats = {{"tokens_shallow": torch.randn(4, 16, 20), "tokens_deep": torch.randn(4, 16, 20),
          "embedding": torch.randn(4, 200)}}
loss = model(feats, torch.rand(4, 8, 3) * 100).square().mean()
loss.backward()
opt.step()
sched.step()
print("dynamo" if "torch._dynamo" in sys.modules else "no dynamo")
"""

ROUTES = ("torch.optim", "nrf.training.optim")


def one_process(route: str) -> tuple[float, float, str]:
    """(wall s, CPU s, whether torch._dynamo was imported) of one fresh process on ``route``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD.format(src=str(REPO / "src"), route=route)], check=True,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout.strip()


def measure(repeats: int) -> dict[str, dict]:
    """Median wall and CPU seconds per route, the routes alternating so that both see the same machine."""
    runs = {route: [] for route in ROUTES}
    one_process(ROUTES[0])  # warm the file cache
    for _ in range(repeats):
        for route in ROUTES:
            runs[route].append(one_process(route))
    return {route: {"wall": statistics.median(r[0] for r in rs), "cpu": statistics.median(r[1] for r in rs),
                    "dynamo": rs[0][2]} for route, rs in runs.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    res = measure(args.repeats)
    old, new = res["torch.optim"], res["nrf.training.optim"]
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Start-up of one training process ({date}; {platform.machine()}, {os.cpu_count()} CPUs visible; "
             f"medians of {args.repeats} fresh processes per route, alternating): import torch and nrf, build the "
             "default NRF, construct AdamW and the linear decay, one step.", "",
             "| route | wall (s) | CPU (s) | torch._dynamo |", "|---|---|---|---|"]
    for route in ROUTES:
        r = res[route]
        lines.append(f"| {route} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['dynamo']} |")
    lines += ["", f"nrf.training.optim: **{old['cpu'] / new['cpu']:.2f}x** less CPU per process "
                  f"({old['cpu'] - new['cpu']:.2f} s saved), {old['wall'] / new['wall']:.2f}x less wall time."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
