"""Training throughput of NRF's split first layer against concatenation.

Both routes share one model and one batch; each timed step is a forward,
the loss, a backward and an AdamW update. Reports queries (image x voxel
pairs) per second and the ratio split / concatenation, measured in the same
run so machine load cancels out.

    python benchmarks/split_first_layer.py [--device cuda] [--out benchmarks/split_first_layer.md]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from nrf.models.nrf import NRF, NRFConfig
from nrf.training import nrf_loss

SIZES = {
    # name: (tokens, token_dim, embedding, merger_token_dim, merger_dim, depth, width, images, voxels)
    "default (simulated)": (16, 48, 64, 16, 64, 4, 128, 16, 256),
    "default, paper batch": (16, 48, 64, 16, 64, 4, 128, 32, 2000),
    "paper (CLIP, 8 x 4096)": (196, 768, 512, 128, 512, 8, 4096, 32, 2000),
}


def time_route(model, features, coords, target, route: str, steps: int, device) -> float:
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    forward = model.forward if route == "split" else model.forward_concat
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with autocast:
            loss = nrf_loss(forward(features, coords).float(), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sizes", nargs="*", default=list(SIZES)[:2])
    parser.add_argument("--out")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    lines = [
        f"device: {args.device} ({platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads), {args.steps} timed steps after 2 warm-up steps",
        "",
        "| size | batch | split (ms/step) | concat (ms/step) | queries/s split | speed-up split/concat |",
        "|---|---|---|---|---|---|",
    ]
    for name in args.sizes:
        n_tok, d_tok, d_emb, m_tok, m_dim, depth, width, n_img, n_vox = SIZES[name]
        config = NRFConfig(token_dim=d_tok, n_tokens=n_tok, embedding_dim=d_emb, merger_token_dim=m_tok,
                           merger_dim=m_dim, depth=depth, width=width)
        model = NRF(config, init_seed=0).to(device)
        features = {
            "tokens_shallow": torch.randn(n_img, n_tok, d_tok, device=device),
            "tokens_deep": torch.randn(n_img, n_tok, d_tok, device=device),
            "embedding": torch.randn(n_img, d_emb, device=device),
        }
        coords = torch.rand(n_vox, 3, device=device) * 100 - 50
        target = torch.randn(n_img, n_vox, device=device)
        split = time_route(model, features, coords, target, "split", args.steps, device)
        concat = time_route(model, features, coords, target, "concat", args.steps, device)
        lines.append(
            f"| {name} | {n_img} x {n_vox} | {split * 1e3:.1f} | {concat * 1e3:.1f} | "
            f"{n_img * n_vox / split:,.0f} | {concat / split:.2f}x |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
