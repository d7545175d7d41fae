"""The optimizer recipe, all from optax: Adam/AdamW, schedules, clipping.

Every knob is a field of config.optimizer (configs/default.py), plus config.learning_rate
and config.num_epochs for the schedule.
"""

from __future__ import annotations

import ml_collections
import optax

NAMES: tuple[str, ...] = ("adam", "adamw")
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "onecycle")


def learning_rate_schedule(
    config: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.Schedule:
    """Learning rate as a function of the step, for the optimizer and for logging."""
    opt, lr = config.optimizer, config.learning_rate
    total = max(1, config.num_epochs * steps_per_epoch)
    warmup = int(opt.warmup_epochs * steps_per_epoch)
    if opt.schedule == "constant":
        if warmup:
            return optax.join_schedules(
                [optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup]
            )
        return optax.constant_schedule(lr)
    if opt.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, lr, warmup, max(total, warmup + 1), end_value=lr * opt.final_lr_fraction
        )
    if opt.schedule == "onecycle":
        return optax.cosine_onecycle_schedule(
            total, lr, pct_start=max(warmup / total, 0.05),
            final_div_factor=1.0 / max(opt.final_lr_fraction, 1e-6) / 25.0,
        )
    raise ValueError(
        f"unknown optimizer.schedule {opt.schedule!r}; choose constant, cosine or onecycle"
    )


def make_optimizer(
    config: ml_collections.ConfigDict, steps_per_epoch: int = 1
) -> optax.GradientTransformation:
    """The configured optimizer; `steps_per_epoch` only shapes the schedule."""
    opt = config.optimizer
    schedule = learning_rate_schedule(config, steps_per_epoch)
    if opt.name == "adam":
        core = optax.adam(schedule)
    elif opt.name == "adamw":
        core = optax.adamw(schedule, weight_decay=opt.weight_decay)
    else:
        raise ValueError(f"unknown optimizer.name {opt.name!r}; choose adam or adamw")
    if opt.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), core)
    return core
