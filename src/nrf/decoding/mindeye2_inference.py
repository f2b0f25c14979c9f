"""MindEye2 inference on assembled inputs (rule ``decode_mindeye2``; GPU, ``envs/mindeye2.yaml``).

Runs MindEye2's own code from the git submodule ``vendor/MindEyeV2`` (``src/models.py``,
``src/utils.py``, ``src/modeling_git.py`` and its copy of Stability AI's
``generative_models``), step for step as its notebooks at the submodule's commit do:

1. ``recon_inference.ipynb``: the subject's ridge and backbone map each input
   to backbone tokens and a blurry latent; the diffusion prior (20 of its 100
   timesteps) turns the backbone tokens into OpenCLIP bigG image tokens
   (256 x 1664); a caption is generated from them (bigG -> CLIP-L converter,
   then GIT ``microsoft/git-large-coco``); SDXL unCLIP (``unclip6``, 38 steps)
   renders the unrefined reconstruction; the VAE ``sd_image_var_autoenc.pth``
   decodes the blurry latent. Outputs are resized to 256 x 256.
2. ``enhanced_recon_inference.ipynb``: SDXL base (``zavychromaxl_v30``) refines
   the unrefined reconstruction (brought back to 768 x 768) image-to-image,
   prompted by the caption: a 25-step schedule entered 13 steps from its end,
   classifier-free guidance 5 against MindEye2's negative prompt.
3. ``final_evaluations.ipynb``: the scored image is 0.75 x enhanced + 0.25 x
   blurry at 256 x 256.

The inputs are one "repeat" per image (``nrf.decoding.mindeye2``), so step 1's
average over an image's three repeats is over one. Everything needs a CUDA
GPU with about 40 GB; nothing here runs in the default workflow or its tests,
which stop at the checkpoint check. Where a file is missing the error names it
before any model is built.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from nrf.decoding.image_metrics import resize
from nrf.decoding.mindeye2 import ENHANCED_WEIGHT, check_checkpoint_dir, read_inputs
from nrf.decoding.reconstructions import (
    Reconstructions,
    to_uint8,
    write_reconstructions,
)

logger = logging.getLogger(__name__)

#: MindEye2's sizes for the 40-session per-subject models (recon_inference.ipynb)
HIDDEN_DIM = 4096
CLIP_SEQ, CLIP_EMB = 256, 1664  # OpenCLIP ViT-bigG/14 image tokens
CLIP_TEXT_SEQ, CLIP_TEXT_EMB = 257, 1024  # CLIP-L tokens GIT reads
PRIOR_TIMESTEPS, PRIOR_SAMPLE_STEPS = 100, 20
UNCLIP_STEPS = 38
BASE_STEPS, IMG2IMG_TIMEPOINT, BASE_CFG = 25, 13, 5.0
CAPTION_MODEL = "microsoft/git-large-coco"
OUT_SIZE = 256  # the scored blend's size (final_evaluations.ipynb)
NEGATIVE_PROMPT = (
    "painting, extra fingers, mutated hands, poorly drawn hands, poorly drawn face, deformed, ugly, blurry, "
    "bad anatomy, bad proportions, extra limbs, cloned face, skinny, glitchy, double torso, extra arms, "
    "extra hands, mangled fingers, missing lips, ugly face, distorted face, extra legs, anime"
)


def vendor_src(repo_root: Path | None = None) -> Path:
    """``vendor/MindEyeV2/src`` of this checkout; a clear error when the submodule is not initialised."""
    root = repo_root or Path(__file__).resolve().parents[3]
    src = root / "vendor" / "MindEyeV2" / "src"
    if not (src / "models.py").is_file() or not (src / "generative_models" / "sgm").is_dir():
        raise FileNotFoundError(
            f"MindEye2's code is not at {src}: the submodule is not initialised. "
            "Run `git submodule update --init vendor/MindEyeV2` (it brings MindEye2's src/ and generative_models/)."
        )
    return src


def blend(enhanced, blurry):
    """MindEye2's scored image: 0.75 enhanced + 0.25 blurry, both at 256 x 256; (n, 3, H, W) in [0, 1]."""

    enhanced = resize(np.asarray(enhanced, dtype=np.float32), OUT_SIZE)
    blurry = resize(np.asarray(blurry, dtype=np.float32), OUT_SIZE)
    return np.clip(ENHANCED_WEIGHT * enhanced + (1 - ENHANCED_WEIGHT) * blurry, 0.0, 1.0)


@contextlib.contextmanager
def _vendor_imports(src: Path):
    """MindEye2's modules importable as its notebooks import them (cwd src/, generative_models on the path)."""
    added = [str(p) for p in (src, src / "generative_models") if str(p) not in sys.path]
    sys.path[:0] = added
    try:
        with contextlib.chdir(src):
            yield
    finally:
        for p in added:
            sys.path.remove(p)


def _build_mindeye(models, n_voxels: int, checkpoint, device):
    class MindEyeModule(torch.nn.Module):
        def forward(self, x):
            return x

    class RidgeRegression(torch.nn.Module):
        def __init__(self, input_sizes, out_features):
            super().__init__()
            self.linears = torch.nn.ModuleList([torch.nn.Linear(n, out_features) for n in input_sizes])

        def forward(self, x, subj_idx):
            return self.linears[subj_idx](x[:, 0]).unsqueeze(1)

    model = MindEyeModule()
    model.ridge = RidgeRegression([n_voxels], HIDDEN_DIM)
    model.backbone = models.BrainNetwork(h=HIDDEN_DIM, in_dim=HIDDEN_DIM, seq_len=1, clip_size=CLIP_EMB,
                                         out_dim=CLIP_EMB * CLIP_SEQ)
    prior = models.PriorNetwork(dim=CLIP_EMB, depth=6, dim_head=52, heads=CLIP_EMB // 52, causal=False,
                                num_tokens=CLIP_SEQ, learned_query_mode="pos_emb")
    model.diffusion_prior = models.BrainDiffusionPrior(net=prior, image_embed_dim=CLIP_EMB,
                                                       condition_on_text_encodings=False, timesteps=PRIOR_TIMESTEPS,
                                                       cond_drop_prob=0.2, image_embed_scale=None)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model.load_state_dict(state.get("model_state_dict", state), strict=True)
    return model.to(device).eval().requires_grad_(False)


def _engine_params(src: Path, config: str) -> dict:
    from omegaconf import OmegaConf  # omegaconf: optional; only MindEye2's configs need it

    return OmegaConf.to_container(OmegaConf.load(src / "generative_models" / "configs" / config),
                                  resolve=True)["model"]["params"]


def _build_unclip(src: Path, checkpoint, device):
    from sgm.models.diffusion import DiffusionEngine  # MindEye2's vendored sgm: only inside _vendor_imports

    p = _engine_params(src, "unclip6.yaml")
    p["first_stage_config"]["target"] = "sgm.models.autoencoder.AutoencoderKL"
    p["sampler_config"]["params"]["num_steps"] = UNCLIP_STEPS
    engine = DiffusionEngine(network_config=p["network_config"], denoiser_config=p["denoiser_config"],
                             first_stage_config=p["first_stage_config"], conditioner_config=p["conditioner_config"],
                             sampler_config=p["sampler_config"], scale_factor=p["scale_factor"],
                             disable_first_stage_autocast=p["disable_first_stage_autocast"])
    engine.eval().requires_grad_(False).to(device)
    engine.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"])
    batch = {"jpg": torch.randn(1, 3, 1, 1, device=device),  # unused by the conditioner, as in MindEye2
             "original_size_as_tuple": torch.ones(1, 2, device=device) * 768,
             "crop_coords_top_left": torch.zeros(1, 2, device=device)}
    return engine, engine.conditioner(batch)["vector"].to(device)


def _build_blurry_decoder(checkpoint, device):
    from diffusers import AutoencoderKL  # diffusers: heavy; only MindEye2's blurry decoder needs it

    autoenc = AutoencoderKL(down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                            block_out_channels=[128, 256, 512, 512], layers_per_block=2, sample_size=256)
    autoenc.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False))
    return autoenc.eval().requires_grad_(False).to(device)


def _build_captioner(converter_checkpoint, device):
    # MindEye2's vendored GIT (reads CLIP-L tokens; importable only inside _vendor_imports) and
    # transformers: heavy, only the captioner needs them
    from modeling_git import GitForCausalLMClipEmb
    from transformers import AutoProcessor

    class CLIPConverter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear1 = torch.nn.Linear(CLIP_SEQ, CLIP_TEXT_SEQ)
            self.linear2 = torch.nn.Linear(CLIP_EMB, CLIP_TEXT_EMB)

        def forward(self, x):
            x = self.linear1(x.permute(0, 2, 1))
            return self.linear2(x.permute(0, 2, 1))

    converter = CLIPConverter()
    converter.load_state_dict(torch.load(converter_checkpoint, map_location="cpu",
                                         weights_only=False)["model_state_dict"], strict=True)
    processor = AutoProcessor.from_pretrained(CAPTION_MODEL)
    git = GitForCausalLMClipEmb.from_pretrained(CAPTION_MODEL).to(device).eval().requires_grad_(False)
    return converter.to(device), processor, git


def _build_refiner(src: Path, checkpoint, device):
    """SDXL base for the enhancement, with the text conditioning of the prompt-less and negative batches."""
    # MindEye2's vendored generative_models (sgm): importable only inside _vendor_imports
    from sgm.models.diffusion import DiffusionEngine
    from sgm.modules.encoders.modules import FrozenCLIPEmbedder, FrozenOpenCLIPEmbedder2

    sampler_config = _engine_params(src, "unclip6.yaml")["sampler_config"]
    sampler_config["params"]["num_steps"] = UNCLIP_STEPS
    p = _engine_params(src, "inference/sd_xl_base.yaml")
    engine = DiffusionEngine(network_config=p["network_config"], denoiser_config=p["denoiser_config"],
                             first_stage_config=p["first_stage_config"], conditioner_config=p["conditioner_config"],
                             sampler_config=sampler_config, scale_factor=p["scale_factor"],
                             disable_first_stage_autocast=p["disable_first_stage_autocast"], ckpt_path=str(checkpoint))
    engine.eval().requires_grad_(False).to(device)
    emb = p["conditioner_config"]["params"]["emb_models"]
    text1 = FrozenCLIPEmbedder(layer=emb[0]["params"]["layer"], layer_idx=emb[0]["params"]["layer_idx"]).to(device)
    text2 = FrozenOpenCLIPEmbedder2(**{k: emb[1]["params"][k] for k in ("arch", "version", "freeze", "layer",
                                                                      "always_return_pooled", "legacy")}).to(device)

    def condition(text):
        return engine.conditioner({"txt": text, "original_size_as_tuple": torch.ones(1, 2, device=device) * 768,
                                   "crop_coords_top_left": torch.zeros(1, 2, device=device),
                                   "target_size_as_tuple": torch.ones(1, 2, device=device) * 1024})

    vector_suffix = condition("")["vector"][:, -1536:].to(device)
    negative = condition(NEGATIVE_PROMPT)
    engine.sampler.guider.scale = BASE_CFG
    return engine, text1, text2, vector_suffix, negative["crossattn"].to(device), negative["vector"].to(device)


def _enhance(refiner, image, prompt: str, device):
    """One img2img refinement of an unrefined reconstruction (1, 3, 768, 768) in [0, 1]."""
    from sgm.util import append_dims  # MindEye2's vendored sgm: only inside _vendor_imports

    engine, text1, text2, vector_suffix, crossattn_uc, vector_uc = refiner
    engine.sampler.num_steps = BASE_STEPS
    z = engine.encode_first_stage(image * 2 - 1)
    tokens, pooled = text2(prompt)
    c = {"crossattn": torch.cat((text1(prompt), tokens), dim=-1), "vector": torch.hstack((pooled, vector_suffix))}
    uc = {"crossattn": crossattn_uc, "vector": vector_uc}
    sigmas = engine.sampler.discretization(engine.sampler.num_steps).to(device)
    init_z = (z + torch.randn_like(z) * append_dims(sigmas[-IMG2IMG_TIMEPOINT], z.ndim)) / torch.sqrt(
        1.0 + sigmas[0] ** 2.0)
    sigmas = sigmas[-IMG2IMG_TIMEPOINT:].repeat(1, 1)
    engine.sampler.num_steps = sigmas.shape[-1] - 1
    noised_z, _, _, _, c, uc = engine.sampler.prepare_sampling_loop(init_z, cond=c, uc=uc,
                                                                    num_steps=engine.sampler.num_steps)

    def denoiser(x, sigma, cond):
        return engine.denoiser(engine.model, x, sigma, cond)

    for t in range(engine.sampler.num_steps):
        noised_z = engine.sampler.sampler_step(sigmas[:, t], sigmas[:, t + 1], denoiser, noised_z, cond=c, uc=uc,
                                               gamma=0)
    return torch.clamp((engine.decode_first_stage(noised_z) + 1.0) / 2.0, 0.0, 1.0)


def run_mindeye2(voxels: np.ndarray, files: dict, *, device: str = "cuda", seed: int = 42,
                 log: logging.Logger = logger) -> dict:
    """Reconstruct every input (n, 1, n_voxels): {"images" (blend), "enhanced", "blurry", "unrefined"}
    as (n, 3, 256, 256) float32 in [0, 1], and "captions" (n,)."""
    if not str(device).startswith("cuda"):
        raise RuntimeError(f"MindEye2 needs a CUDA GPU (about 40 GB); the rule was given device {device!r}")
    src = vendor_src()

    out = {k: [] for k in ("enhanced", "blurry", "unrefined", "captions")}
    with _vendor_imports(src):
        import models  # MindEye2's src/models.py
        import utils  # MindEye2's src/utils.py

        utils.seed_everything(seed)
        model = _build_mindeye(models, voxels.shape[-1], files["model"], device)
        unclip, unclip_vector = _build_unclip(src, files["unclip"], device)
        autoenc = _build_blurry_decoder(files["autoencoder"], device)
        converter, processor, git = _build_captioner(files["converter"], device)
        refiner = _build_refiner(src, files["refiner"], device)
        log.info("MindEye2 built on %s from %s", device, files["model"])
        for i in range(len(voxels)):
            voxel = torch.from_numpy(np.ascontiguousarray(voxels[i:i + 1], dtype=np.float32)).to(device)
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
                backbone, _clip_voxels, blurry_latent = model.backbone(model.ridge(voxel[:, [0]], 0))
                prior_out = model.diffusion_prior.p_sample_loop(backbone.shape, text_cond=dict(text_embed=backbone),
                                                                cond_scale=1.0, timesteps=PRIOR_SAMPLE_STEPS)
                ids = git.generate(pixel_values=converter(prior_out), max_length=20)
                caption = processor.batch_decode(ids, skip_special_tokens=True)[0]
                unrefined = utils.unclip_recon(prior_out[[0]], unclip, unclip_vector, num_samples=1)
                blurry = (autoenc.decode(blurry_latent[0] / 0.18215).sample / 2 + 0.5).clamp(0, 1)
            unrefined = resize(unrefined.float().cpu().numpy(), OUT_SIZE)  # as saved by recon_inference
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16), refiner[0].ema_scope():
                start = torch.from_numpy(resize(unrefined, 768)).to(device)  # as enhanced_recon_inference reads it
                enhanced = _enhance(refiner, start, caption, device)
            out["enhanced"].append(resize(enhanced.float().cpu().numpy(), OUT_SIZE))
            out["blurry"].append(resize(blurry.float().cpu().numpy(), OUT_SIZE))
            out["unrefined"].append(unrefined)
            out["captions"].append(caption)
            log.info("image %d/%d: %r", i + 1, len(voxels), caption)
    result = {k: np.concatenate(v) for k, v in out.items() if k != "captions"}
    result["captions"] = out["captions"]
    result["images"] = blend(result["enhanced"], result["blurry"])
    return result


def reconstruct(inputs_path, checkpoint_dir, subject: str, out_path, *, device: str = "cuda", seed: int = 42,
                log: logging.Logger = logger) -> None:
    """The rule's entry: read the assembled inputs, run MindEye2, write the reconstructions file."""
    files = check_checkpoint_dir(checkpoint_dir, subject)  # before the GPU: names every missing file
    voxels, image_ids, attrs = read_inputs(inputs_path)
    result = run_mindeye2(voxels, files, device=device, seed=seed, log=log)
    write_reconstructions(out_path, Reconstructions(
        images=to_uint8(result["images"]), image_ids=image_ids,
        attrs={"backend": "mindeye2", "subject": subject, "source": attrs.get("source", ""),
               "scaling": attrs.get("scaling", ""), "model": str(files["model"]),
               "blend": f"{ENHANCED_WEIGHT} enhanced + {1 - ENHANCED_WEIGHT:g} blurry at {OUT_SIZE} px",
               "captions": json.dumps(result["captions"])},
    ))
