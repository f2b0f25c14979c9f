"""``nrf-volume``: the command line of :func:`nrf.volumes.query.query_volume`."""

from __future__ import annotations

import argparse
import logging
import sys

from nrf.volumes.query import NSD_STIMULUS_SIZE, VolumeError, query_volume

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nrf-volume",
        description="Evaluate a trained NRF for a folder of images on an MNI152 grid at any resolution; "
                    "write a 4-D NIfTI (X, Y, Z, n_images) and a JSON sidecar.")
    p.add_argument("checkpoint", help="an NRF checkpoint (.pt) written by the train_encoder rule")
    p.add_argument("images", help="a folder of PNG/JPEG images (any size; centre-cropped and resized as NSD's)")
    p.add_argument("out", help="the NIfTI to write (.nii or .nii.gz); the sidecar is OUT.json")
    p.add_argument("--resolution", type=float, default=2.0, help="voxel size in mm (any positive number; "
                   "default 2)")
    p.add_argument("--mask", default="training", help="'training' (default: the training voxels' region, "
                   "dilated by one voxel), 'mni-brain' (nilearn's MNI152 brain mask) or a NIfTI mask in MNI space")
    p.add_argument("--prepared", help="the prepared subject file the model was trained on (default: the "
                   "checkpoint's record)")
    p.add_argument("--features", help="the features file the model was trained on, to read the extractor's "
                   "name (default: the checkpoint's record)")
    p.add_argument("--extractor", help="the extractor's name (default: read off the features file)")
    p.add_argument("--clip-weights", help="CLIP weights (a local file) for the clip_vitb16 extractor")
    p.add_argument("--stimulus-size", type=int, default=None, help="side in px the training stimuli had "
                   f"(default {NSD_STIMULUS_SIZE}, NSD's)")
    p.add_argument("--chunk-points", type=int, default=8192, help="grid points evaluated at a time "
                   "(bounds memory)")
    p.add_argument("--device", default="cpu")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    options = {}
    if args.clip_weights:
        options = {"weights": args.clip_weights, "device": args.device}
    try:
        query_volume(args.checkpoint, args.images, args.out, resolution=args.resolution, mask=args.mask,
                     prepared=args.prepared, features=args.features, extractor=args.extractor,
                     extractor_options=options, stimulus_size=args.stimulus_size, chunk_points=args.chunk_points,
                     device=args.device)
    except VolumeError as error:
        print(f"nrf-volume: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
