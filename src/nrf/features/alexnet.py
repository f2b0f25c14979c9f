"""AlexNet feature maps for fWRF on NSD (DESIGN.md §1, "Baselines").

torchvision's AlexNet with its ImageNet weights (IMAGENET1K_V1), images
resized to 227 x 227 (bilinear) and ImageNet-normalised. Returned in the
image-block interface (nrf.features.base) so the feature cache and fWRF's
registry entry read it like any extractor:

    tokens_shallow : conv1 (64) and conv2 (192) after ReLU, each
                     average-pooled to AlexNet's 13 x 13 conv5 grid,
                     concatenated: (n, 169, 256)
    tokens_deep    : conv5 (256) after ReLU: (n, 169, 256)
    embedding      : fc7 after ReLU: (n, 4096)

Weights that cannot be had stop the extractor with what to do: it never
falls back to random weights (fWRF's numbers would be meaningless).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nrf.features.base import Extractor

IMAGE_SIZE = 227
GRID = 13
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: torchvision's file name for AlexNet's ImageNet weights
WEIGHTS_FILE = "alexnet-owt-7be5be79.pth"

WEIGHTS_HELP = (
    "To fix: place torchvision's AlexNet ImageNet weights ({file}) in $TORCH_HOME/hub/checkpoints "
    "(torchvision's cache), or set the extractor's weights to the path of that file; or run once where "
    "download.pytorch.org can be reached. fWRF's features are never computed from random weights."
)


def load_alexnet(weights: str = "imagenet"):
    """torchvision's AlexNet in eval mode with ImageNet weights, from
    torchvision's cache ("imagenet") or a local file path; a clear
    RuntimeError when they cannot be loaded."""
    import torchvision  # torchvision: heavy; only building AlexNet needs it

    model = torchvision.models.alexnet(weights=None)
    try:
        if weights == "imagenet":
            state = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        else:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as error:  # offline, missing or foreign file
        raise RuntimeError(
            f"AlexNet ImageNet weights could not be loaded from {weights!r} ({type(error).__name__}: {error}). "
            + WEIGHTS_HELP.format(file=WEIGHTS_FILE)
        ) from error
    return model.eval()


class AlexNetExtractor(Extractor):
    """AlexNet conv1+conv2 / conv5 grids and fc7 (see the module docstring)."""

    name = "alexnet"
    layers = (2, 5)

    def __init__(self, *, weights: str = "imagenet", device: str = "cpu", batch_size: int = 64):
        self.model = load_alexnet(weights).to(device)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)

    @torch.no_grad()
    def extract(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.as_tensor(np.asarray(images)).permute(0, 3, 1, 2).float().div(255.0).to(self.device)
        x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
        x = (x - torch.tensor(MEAN, device=x.device)[:, None, None]) / torch.tensor(STD, device=x.device)[:, None, None]
        maps, feats = {}, self.model.features
        for i, layer in enumerate(feats):
            x = layer(x)
            if i in (1, 4, 11):  # ReLUs after conv1, conv2, conv5
                maps[i] = x
        grid = lambda t: F.adaptive_avg_pool2d(t, GRID).flatten(2).transpose(1, 2)  # noqa: E731
        shallow = torch.cat([grid(maps[1]), grid(maps[4])], dim=2)
        deep = grid(maps[11])
        pooled = torch.flatten(self.model.avgpool(x), 1)
        fc7 = self.model.classifier[:6](pooled)  # dropout (eval: identity), fc6, ReLU, dropout, fc7, ReLU
        return {
            "tokens_shallow": shallow.cpu().numpy().astype(np.float32),
            "tokens_deep": deep.cpu().numpy().astype(np.float32),
            "embedding": fc7.cpu().numpy().astype(np.float32),
        }
