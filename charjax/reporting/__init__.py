"""What a person sees of a training run: TensorBoard scalars, the embedding projector,
PNG plots and console lines, all written at the edges of training by a `Reporter`.

    reporting.py would have grown four jobs, so it is a small package:
      reporter     the Reporter the trainer calls, and `default_config()` (config.report)
      tensorboard  event files: written with tensorboardX, read back without TensorFlow
      projector    penultimate features + sprite + metadata for TensorBoard's projector
      plots        curves.png, confusion.png, errors.png (matplotlib Agg, no pyplot)
"""

from charjax.reporting.reporter import Reporter, default_config, model_inputs, settings
from charjax.reporting.tensorboard import read_events, read_scalars, summary_tags

__all__ = [
    "Reporter",
    "default_config",
    "model_inputs",
    "read_events",
    "read_scalars",
    "settings",
    "summary_tags",
]
