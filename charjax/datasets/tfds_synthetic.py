"""The synthetic set as a TFDS dataset: `tfds:synthetic`, prepared offline into array_record.

For pipelines that want TFDS's random-access data source rather than a numpy array; the
pixels are exactly `charjax.datasets.synthetic.generate(num_images, seed, framing)`. Each
(num_images, seed, framing, generator version) is its own builder config, so changing any
of them prepares a new set instead of serving a stale one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from charjax import charset
from charjax.datasets import synthetic


@dataclasses.dataclass(eq=False, kw_only=True)
class SyntheticConfig(tfds.core.BuilderConfig):
    num_images: int
    seed: int
    framing: str


def make_config(num_images: int, seed: int, framing: str) -> SyntheticConfig:
    name = f"v{synthetic.GENERATOR_VERSION}_{framing}_n{num_images}_seed{seed}"
    return SyntheticConfig(name=name, num_images=num_images, seed=seed, framing=framing)


class CharjaxSynthetic(tfds.core.GeneratorBasedBuilder):
    """charjax's synthetic characters, one 'train' split; labels in 0-9A-Za-z order."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "48x48 uint8 tensors from synthetic.generate."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Synthetic handwriting-like characters (charjax.datasets.synthetic).",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=charset.IMAGE_SHAPE, dtype=np.uint8),
                "label": tfds.features.ClassLabel(names=list(charset.CLASSES)),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager  # nothing to download
        return {"train": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[int, dict]]:
        cfg = self.builder_config
        data = synthetic.generate(cfg.num_images, cfg.seed, cfg.framing)
        for i, (image, label) in enumerate(zip(data.images, data.labels, strict=True)):
            yield i, {"image": image, "label": int(label)}
