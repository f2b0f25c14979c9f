"""AlexNet feature maps for fWRF on NSD (DESIGN.md §1, "Baselines").

torchvision's AlexNet with its ImageNet weights (IMAGENET1K_V1), images
resized to 227 x 227 (bilinear) and ImageNet-normalised. fWRF reads the five
conv layers after their ReLU, each at its own resolution (St-Yves & Naselaris
2018 place each voxel's pooling field on every layer's own grid):

    maps/conv1 : (n, 27², 64)   features[2]: after conv1's ReLU and max-pool
    maps/conv2 : (n, 27², 192)  features[4]: after conv2's ReLU, before its max-pool
    maps/conv3 : (n, 13², 384)  features[7]
    maps/conv4 : (n, 13², 256)  features[9]
    maps/conv5 : (n, 13², 256)  features[11]: before the last max-pool

conv1 is tapped after its max-pool (27², not the 56² of its ReLU at 227 px),
as St-Yves' AlexNet fwRF for NSD groups it: the pool keeps the strongest
response of each 3 x 3 neighbourhood, and the map is a quarter the size. The
cache stores every map as float16 with all its channels (0.68 MB an image;
fWRF keeps each layer's ``n_top`` channels of largest training variance when
it fits). The rest of the image-block interface (nrf.features.base), which
nothing reads on NSD:

    tokens_shallow : conv4, as maps/conv4: (n, 169, 256)
    tokens_deep    : conv5, as maps/conv5: (n, 169, 256)
    embedding      : fc7 after ReLU: (n, 4096)

Weights that cannot be had stop the extractor with what to do: it never
falls back to random weights (fWRF's numbers would be meaningless).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nrf.features.base import Extractor, map_key

IMAGE_SIZE = 227
#: fWRF's layers: the index in torchvision's ``features`` whose output each layer's map is
CONV_TAPS = {"conv1": 2, "conv2": 4, "conv3": 7, "conv4": 9, "conv5": 11}
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
    """AlexNet's five conv layers at their own grids and fc7 (see the module docstring)."""

    name = "alexnet"
    layers = (4, 5)
    map_layers = tuple(CONV_TAPS)

    def __init__(self, *, weights: str = "imagenet", device: str = "cpu", batch_size: int = 64):
        self.model = load_alexnet(weights).to(device)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)

    @torch.no_grad()
    def extract(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.as_tensor(np.asarray(images)).permute(0, 3, 1, 2).float().div(255.0).to(self.device)
        x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
        x = (x - torch.tensor(MEAN, device=x.device)[:, None, None]) / torch.tensor(STD, device=x.device)[:, None, None]
        taps, maps = {i: name for name, i in CONV_TAPS.items()}, {}
        for i, layer in enumerate(self.model.features):
            x = layer(x)
            if i in taps:  # (n, C, s, s) -> (n, s², C), row-major over (y, x) like every token grid
                maps[map_key(taps[i])] = x.flatten(2).transpose(1, 2).cpu().numpy().astype(np.float32)
        pooled = torch.flatten(self.model.avgpool(x), 1)
        fc7 = self.model.classifier[:6](pooled)  # dropout (eval: identity), fc6, ReLU, dropout, fc7, ReLU
        return {
            "tokens_shallow": maps[map_key("conv4")],
            "tokens_deep": maps[map_key("conv5")],
            "embedding": fc7.cpu().numpy().astype(np.float32),
            **maps,
        }
