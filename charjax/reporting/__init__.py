"""What a person sees of a training run: TensorBoard scalars, the embedding projector,
PNG plots and console lines, all written at the edges of training by a `Reporter`.

    One job a module:
      reporter     the Reporter the trainer calls (settings: config.report)
      tensorboard  event files, written with tensorboardX
      projector    penultimate features + sprite + metadata for TensorBoard's projector
      plots        curves.png, confusion.png, errors.png (matplotlib Agg, no pyplot)
"""

from charjax.reporting.reporter import Reporter, model_inputs

__all__ = ["Reporter", "model_inputs"]
