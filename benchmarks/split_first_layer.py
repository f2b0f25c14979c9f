"""NRF training throughput: split first layer vs concatenation, and the GPU arithmetic.

Both routes share one model and one batch; each timed step is a forward, the
loss, a backward and an AdamW update (bf16 autocast on CUDA, float32 on CPU,
or as --precisions says). Reports queries (image x voxel pairs) per second
and the ratio split / concatenation, measured in the same run so machine load
cancels out, in both voxel-sampling modes:

* shared    : one set of ``voxels`` for all images of the step, so the
              coordinate half of the first layer is computed once per voxel;
* per_image : every image draws its own ``voxels``, so the coordinate half is
              computed once per (image, voxel) pair, as the authors sample.

For each row it counts the step's matrix FLOPs (forward x 3 for forward +
backward), and, given the device's peak (--peak-tflops; H100/H200 bf16 dense
~989 TFLOP/s, found from the device name), the fraction of peak reached. At
the paper's size it also times chunked inference (no grad, 64 images x 4,096
voxels a chunk, the evaluation and test-prediction path) and estimates one
subject's full training plus evaluation: ``epochs`` x 282 steps (9,000 images
/ 32) plus one validation pass (1,000 images x 15,724 voxels) per epoch and a
final test prediction, for a few numbers of epochs early stopping may take.

    python benchmarks/split_first_layer.py [--device cuda] [--sizes "paper (CLIP, 8 x 4096)"] \
        [--modes shared per_image] [--out benchmarks/split_first_layer.md] [--json result.json]

On a CPU, `--sizes tiny --steps 2` checks the script in seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from contextlib import nullcontext
from datetime import datetime, timezone

import torch

from nrf.models.nrf import NRF, NRFConfig
from nrf.training.loop import nrf_loss

SIZES = {
    # name: (tokens, token_dim, embedding, merger_token_dim, merger_dim, depth, width, images, voxels)
    "tiny": (4, 8, 8, 4, 16, 3, 32, 4, 32),
    "default (simulated)": (16, 48, 64, 16, 64, 4, 128, 16, 256),
    "default, paper batch": (16, 48, 64, 16, 64, 4, 128, 32, 2000),
    "paper (CLIP, 8 x 4096)": (196, 768, 512, 128, 512, 8, 4096, 32, 2000),
}
PAPER = "paper (CLIP, 8 x 4096)"
MODES = ("shared", "per_image")
ROUTES = ("split", "concat")
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by device-name substring, the first match counts
# (H100 PCIe and NVL before the SXM's plain "H100"); TF32 (fp32 precision) is half of each.
PEAK_BF16 = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H200 NVL", 835.0), ("GH200", 989.0), ("H200", 989.0),
             ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0), ("L40", 181.0), ("A10", 125.0), ("L4", 121.0))
PEAK_BF16_TFLOPS = dict(PEAK_BF16)


def peak_tflops(name: str, precision: str = "bf16") -> float | None:
    """The device's dense peak for ``precision`` (bf16, or fp32 as TF32), from its name; None if unknown."""
    peak = next((v for k, v in PEAK_BF16 if k in name), None)
    return None if peak is None else peak if precision == "bf16" else peak / 2
# The paper's subject: 9,000 training images in batches of 32, one validation
# pass per epoch over ~1,000 images at ~15,724 voxels (subj01), then the test set.
TRAIN_IMAGES, BATCH_IMAGES, VAL_IMAGES, N_VOXELS = 9_000, 32, 1_000, 15_724


def model_config(size) -> NRFConfig:
    n_tok, d_tok, d_emb, m_tok, m_dim, depth, width, _, _ = size
    return NRFConfig(token_dim=d_tok, n_tokens=n_tok, embedding_dim=d_emb, merger_token_dim=m_tok,
                     merger_dim=m_dim, depth=depth, width=width)


def step_flops(c: NRFConfig, n_img: int, n_vox: int, mode: str, route: str) -> float:
    """Matrix-multiply FLOPs of one training step (2 per multiply-add; backward = 2 x forward)."""
    pairs = n_img * n_vox
    merger = 2 * n_img * 2 * (c.n_tokens * c.token_dim * c.merger_token_dim
                              + c.n_tokens * c.merger_token_dim * c.merger_dim)
    if route == "concat":
        first = 2 * pairs * (c.image_dim + c.coord_dim) * c.width
    else:
        coord_rows = n_vox if mode == "shared" else pairs
        first = 2 * (n_img * c.image_dim + coord_rows * c.coord_dim) * c.width
    head = 2 * pairs * ((c.depth - 2) * c.width * c.width + c.width)
    return 3.0 * (merger + first + head)


def forward(model: NRF, features, coords, mode: str, route: str) -> torch.Tensor:
    """(n_img, n_vox) predictions; coords (n_vox, 3) shared or (n_img, n_vox, 3) per image."""
    if mode == "shared":
        return model(features, coords) if route == "split" else model.forward_concat(features, coords)
    n_img, n_vox = coords.shape[:2]
    flat = coords.reshape(-1, 3)
    if route == "split":  # image part once per image, coordinate part once per pair (as NRF.forward)
        crd = model.coord_code(flat).view(n_img, n_vox, -1)
        return model.forward_codes(model.image_code(features), crd)
    g = model.image_embedding(features)
    c = model.coord_features(flat).view(n_img, n_vox, -1)
    pairs = torch.cat([g[:, None, :].expand(n_img, n_vox, -1), c.to(g.dtype)], dim=-1)
    return model.head(model.predictor[0](pairs))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _autocast(device, precision):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def time_step(model, features, coords, target, mode, route, steps, device, precision) -> float:
    """Seconds per training step, after two warm-up steps."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for i in range(steps + 2):
        if i == 2:
            _sync(device)
            start = time.perf_counter()
        with _autocast(device, precision):
            pred = forward(model, features, coords, mode, route)
        loss = nrf_loss(pred.float(), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    _sync(device)
    return (time.perf_counter() - start) / steps


@torch.no_grad()
def time_inference(model, features, device, precision, n_vox: int, repeats: int = 3) -> float:
    """Queries per second of chunked prediction (all images x n_vox voxels), split route."""
    model.eval()
    coords = torch.rand(n_vox, 3, device=device) * 100 - 50
    n_img = len(features["embedding"])
    for i in range(repeats + 1):
        if i == 1:
            _sync(device)
            start = time.perf_counter()
        with _autocast(device, precision):
            img = model.image_code(features)
            for j in range(0, n_vox, 4096):
                model.forward_codes(img, model.coord_code(coords[j: j + 4096])).float()
    _sync(device)
    model.train()
    return repeats * n_img * n_vox / (time.perf_counter() - start)


def make_batch(size, mode, device, seed=0):
    n_tok, d_tok, d_emb, *_, n_img, n_vox = size
    g = torch.Generator(device="cpu").manual_seed(seed)
    features = {  # float16 tokens, as the cache stores them
        "tokens_shallow": torch.randn(n_img, n_tok, d_tok, generator=g).half().to(device),
        "tokens_deep": torch.randn(n_img, n_tok, d_tok, generator=g).half().to(device),
        "embedding": torch.randn(n_img, d_emb, generator=g).to(device),
    }
    shape = (n_vox, 3) if mode == "shared" else (n_img, n_vox, 3)
    coords = (torch.rand(*shape, generator=g) * 100 - 50).to(device)
    target = torch.randn(n_img, n_vox, generator=g).to(device)
    return features, coords, target


def device_info(device) -> tuple[str, float | None]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return name, peak_tflops(name)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)", None


def estimate_subject(step_s: float, infer_qps: float, epochs: int) -> dict:
    steps_per_epoch = math.ceil(TRAIN_IMAGES / BATCH_IMAGES)
    train_s = epochs * steps_per_epoch * step_s
    eval_s = (epochs + 1) * VAL_IMAGES * N_VOXELS / infer_qps  # one pass per epoch + the test set
    return {"epochs": epochs, "steps": epochs * steps_per_epoch, "train_min": train_s / 60,
            "eval_min": eval_s / 60, "total_min": (train_s + eval_s) / 60}


def required_throughput(epochs: int, mode: str, budget_min: float = 15.0) -> dict:
    """The arithmetic behind the 15-minute target, independent of any device:
    one subject's FLOPs (``epochs`` x 282 split-route steps, a validation pass
    per epoch and a test prediction, each pass 1,000 x 15,724 forward queries)
    and the sustained TFLOP/s that fits them in ``budget_min`` minutes."""
    c = model_config(SIZES[PAPER])
    steps = epochs * math.ceil(TRAIN_IMAGES / BATCH_IMAGES)
    train = steps * step_flops(c, BATCH_IMAGES, 2000, mode, "split")
    passes = (epochs + 1) * step_flops(c, VAL_IMAGES, N_VOXELS, "shared", "split") / 3  # forward only
    total = train + passes
    return {"epochs": epochs, "mode": mode, "steps": steps, "pflop": total / 1e15,
            "tflops_needed": total / (budget_min * 60) / 1e12}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sizes", nargs="*", default=["default (simulated)", "default, paper batch"])
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument("--precisions", nargs="*", default=None, choices=["bf16", "fp32"],
                        help="default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--peak-tflops", type=float, help="device peak for the precision (default: by name)")
    parser.add_argument("--epochs", nargs="*", type=int, default=[10, 20, 40],
                        help="epochs early stopping may take, for the per-subject estimate")
    parser.add_argument("--batch", nargs=2, type=int, metavar=("IMAGES", "VOXELS"),
                        help="override every size's batch (e.g. a small paper-size check on a CPU)")
    parser.add_argument("--infer", nargs=2, type=int, default=[64, N_VOXELS], metavar=("IMAGES", "VOXELS"),
                        help="paper-size inference timing: images x voxels (default 64 x 15,724)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 makes CPU timings steadier)")
    parser.add_argument("--out")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precisions = args.precisions or (["bf16"] if device.type == "cuda" else ["fp32"])
    if device.type == "cuda":
        torch.backends.cuda.matmul.fp32_precision = "tf32"  # fp32 rows use TF32 tensor cores, as training does
    name, peak = device_info(device)
    peak = args.peak_tflops or peak
    result = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "device": name,
              "torch": torch.__version__, "steps": args.steps, "load_avg_1min": os.getloadavg()[0],
              "peak_tflops": peak, "rows": [], "inference": [],
              "estimates": []}
    result["target"] = [required_throughput(e, m) for m in args.modes for e in args.epochs]
    for size_name in args.sizes:
        size = SIZES[size_name] if not args.batch else (*SIZES[size_name][:-2], *args.batch)
        config = model_config(size)
        n_img, n_vox = size[-2:]
        model = NRF(config, init_seed=0).to(device)
        for precision in precisions:
            for mode in args.modes:
                features, coords, target = make_batch(size, mode, device)
                times = {}
                for route in ROUTES:
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    t = time_step(model, features, coords, target, mode, route, args.steps, device, precision)
                    flops = step_flops(config, n_img, n_vox, mode, route)
                    row = {"size": size_name, "precision": precision, "mode": mode, "route": route,
                           "batch": f"{n_img} x {n_vox}", "ms_per_step": t * 1e3, "queries_per_s": n_img * n_vox / t,
                           "tflop_per_step": flops / 1e12, "tflops": flops / t / 1e12}
                    if peak:
                        row["fraction_of_peak"] = row["tflops"] / peak
                    if device.type == "cuda":
                        row["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
                    times[route] = t
                    result["rows"].append(row)
                result["rows"][-2]["speed_up_split_vs_concat"] = times["concat"] / times["split"]
            if size_name == PAPER or device.type == "cpu":
                n_infer, v_infer = args.infer if size_name == PAPER else (n_img, n_vox)
                features, _, _ = make_batch((*size[:-2], n_infer, v_infer), "shared", device)
                qps = time_inference(model, features, device, precision, v_infer)
                result["inference"].append({"size": size_name, "precision": precision, "queries_per_s": qps})
                if size_name == PAPER and not args.batch:  # the estimate assumes the paper's batch
                    for mode in args.modes:
                        split = next(r for r in result["rows"] if r["size"] == PAPER and r["mode"] == mode
                                     and r["route"] == "split" and r["precision"] == precision)
                        for epochs in args.epochs:
                            est = estimate_subject(split["ms_per_step"] / 1e3, qps, epochs)
                            result["estimates"].append({"precision": precision, "mode": mode, **est})
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()

    text = render(result)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


def render(result) -> str:
    peak = result["peak_tflops"]
    lines = [f"device: {result['device']}, torch {result['torch']}, {result['steps']} timed steps after 2 "
             f"warm-up steps ({result['date']}, load average {result['load_avg_1min']:.1f}); "
             f"peak used for the fraction: "
             f"{f'{peak:g} TFLOP/s' if peak else 'unknown (CPU)'}", "",
             "| size | precision | voxel sampling | batch | route | ms/step | queries/s | TFLOP/step | TFLOP/s | "
             "of peak | device peak mem (GB) | split/concat |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        frac = f"{r['fraction_of_peak']:.0%}" if "fraction_of_peak" in r else "–"
        mem = f"{r['peak_mem_gb']:.1f}" if "peak_mem_gb" in r else "–"
        ratio = f"**{r['speed_up_split_vs_concat']:.2f}x**" if "speed_up_split_vs_concat" in r else ""
        lines.append(f"| {r['size']} | {r['precision']} | {r['mode']} | {r['batch']} | {r['route']} | "
                     f"{r['ms_per_step']:.1f} | {r['queries_per_s']:,.0f} | {r['tflop_per_step']:.3g} | "
                     f"{r['tflops']:.3g} | {frac} | {mem} | {ratio} |")
    if result["inference"]:
        lines += ["", "Chunked inference (no grad, split route, chunks of 4,096 voxels):", "",
                  "| size | precision | queries/s |", "|---|---|---|"]
        lines += [f"| {r['size']} | {r['precision']} | {r['queries_per_s']:,.0f} |" for r in result["inference"]]
    if result["estimates"]:
        lines += ["", f"One subject at the paper's size, split route: {TRAIN_IMAGES:,} training images in batches "
                  f"of {BATCH_IMAGES} ({math.ceil(TRAIN_IMAGES / BATCH_IMAGES)} steps an epoch), a validation pass "
                  f"({VAL_IMAGES:,} images x {N_VOXELS:,} voxels) every epoch and one test prediction:", "",
                  "| precision | voxel sampling | epochs until early stop | steps | training (min) | "
                  "evaluation (min) | total (min) |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {e['precision']} | {e['mode']} | {e['epochs']} | {e['steps']:,} | {e['train_min']:.1f} | "
                  f"{e['eval_min']:.1f} | **{e['total_min']:.1f}** |" for e in result["estimates"]]
    reference = peak or PEAK_BF16_TFLOPS["H200"]
    lines += ["", f"What the 15-minute target asks of the device (arithmetic, no timing): one subject's FLOPs at the "
              f"paper's size and the sustained throughput that fits them in 15 minutes, as a share of "
              f"{'this device' if peak else 'an H200'}'s dense bf16 peak ({reference:g} TFLOP/s):", "",
              "| voxel sampling | epochs until early stop | steps | PFLOP | TFLOP/s needed | of peak |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {t['mode']} | {t['epochs']} | {t['steps']:,} | {t['pflop']:.0f} | {t['tflops_needed']:.0f} | "
              f"{t['tflops_needed'] / reference:.0%} |" for t in result["target"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
