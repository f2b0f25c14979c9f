"""AdamW and a linear learning-rate decay for the NRF and linear trainers,
without ``torch.optim.Optimizer``'s start-up cost.

Constructing or stepping any ``torch.optim.Optimizer`` imports
``torch._dynamo`` (its methods are wrapped to disable the compiler), and that
import costs as much CPU as importing torch itself: about 2 s in every
training job of the default run (``benchmarks/default_run.md``). The update
itself is PyTorch's: :class:`AdamW` holds the same state (``step``,
``exp_avg``, ``exp_avg_sq``) and calls the same function,
``torch.optim.adam.adam`` with decoupled weight decay, with the arguments
``torch.optim.AdamW.step`` passes it, so the weights equal PyTorch's bit for
bit (unit test), fused or not. :class:`LinearDecay` sets the learning rate as
``torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(0.0, 1.0 - t / total))``
does, with the same float expression.

The Universal Brain Encoder keeps ``torch.optim.Adam`` and
``ReduceLROnPlateau`` (AMSGrad and the plateau cuts, as its authors'), and
``train.compile`` imports the compiler anyway.
"""

from __future__ import annotations

import torch
from torch.optim.adam import adam  # the functional update, free of torch._dynamo when not compiling


class AdamW:
    """AdamW over one parameter group (PyTorch's defaults: betas (0.9, 0.999),
    eps 1e-8).

    Like ``torch.optim.AdamW``: ``defaults`` and ``param_groups`` hold the
    hyperparameters (a scheduler sets ``param_groups[0]["lr"]``), ``state``
    the per-parameter moments, parameters without a gradient are skipped, and
    a ``found_inf`` attribute (a one-element float tensor, 1.0 = skip) is
    handed to the fused kernel, as ``GradScaler`` does.
    """

    def __init__(self, params, *, lr: float, weight_decay: float = 1e-2, betas=(0.9, 0.999), eps: float = 1e-8,
                 fused: bool | None = None):
        params = list(params)
        if not params:
            raise ValueError("AdamW got an empty parameter list")
        if lr < 0 or weight_decay < 0 or eps < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"AdamW: invalid lr {lr}, weight_decay {weight_decay}, betas {betas} or eps {eps}")
        self.defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "fused": fused}
        self.param_groups = [dict(self.defaults, params=params)]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.detach_().zero_()

    def _state(self, p: torch.Tensor, fused: bool) -> dict[str, torch.Tensor]:
        state = self.state.get(p)
        if state is None:
            # as torch.optim.Adam._init_group: the step count on the host unless fused
            step = (torch.zeros((), dtype=torch.float32, device=p.device) if fused
                    else torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype() == torch.float64
                                      else torch.float32))
            state = self.state[p] = {"step": step,
                                     "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                     "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        return state

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            fused = bool(group["fused"])
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdamW does not support sparse gradients")
                state = self._state(p, fused)
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if not params:
                continue
            beta1, beta2 = group["betas"]
            adam(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False,
                 has_complex=any(torch.is_complex(p) for p in params), beta1=beta1, beta2=beta2, lr=group["lr"],
                 weight_decay=group["weight_decay"], eps=group["eps"], maximize=False, foreach=None,
                 capturable=False, differentiable=False, fused=group["fused"], grad_scale=None,
                 found_inf=getattr(self, "found_inf", None), decoupled_weight_decay=True)


class LinearDecay:
    """The learning rate of every group falls linearly from its initial value
    to 0 over ``total`` steps; call :meth:`step` after each optimizer step."""

    def __init__(self, optimizer: AdamW, total: int):
        self.optimizer, self.total, self.last_step = optimizer, int(total), 0
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]

    def step(self) -> None:
        self.last_step += 1
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base_lr * max(0.0, 1.0 - self.last_step / self.total)
