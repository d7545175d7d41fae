# charjax train --config configs/default.py --workdir runs/demo
"""Default run: the tutorial model on the embedded synthetic set, no download needed.

Sized to finish in under 10 minutes on a 2-core CPU. Override any field on the command
line, e.g. --config.num_epochs=2 --config.data.synthetic.num_images=6200.
"""

import ml_collections

from charjax import augment, distributed, optim, reporting


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_epochs = 12
    config.batch_size = 128
    config.eval_batch_size = 512
    config.learning_rate = 1e-3
    config.optimizer = optim.default_config()  # the tutorial's Adam 1e-3 ...
    config.optimizer.schedule = "cosine"  # ... decayed to 1e-5 over the run
    config.label_smoothing = 0.0
    config.ema_decay = 0.0  # > 0: evaluate an exponential moving average of the weights
    config.precision = "float32"  # or "bf16": bf16 compute, float32 master weights
    config.log_every_steps = 100
    config.ensemble_members = 1  # > 1: train that many seeds into WORKDIR/member-K and vote
    config.keep_best = 2  # best checkpoints kept by validation accuracy (the latest is kept too)
    # Another run's workdir to start from its best weights (the tutorial's reload).
    config.init_from = ""

    config.model = ml_collections.ConfigDict()
    config.model.name = "tutorial"
    config.model.hidden = 128
    config.model.dropout = 0.5
    # "auto": oneDNN kernels on CPU where they load, else XLA's "fast" path; "flax" (plain
    # nn.Conv/nn.max_pool) on GPU. Same maths and parameters in all, so checkpoints move.
    config.model.impl = "auto"

    config.data = ml_collections.ConfigDict()
    config.data.source = "synthetic"  # or npz:PATH, folder:PATH, tfds:emnist/byclass[:SPLIT]
    config.data.val_fraction = 0.1
    config.data.test_fraction = 0.1
    config.data.split_seed = 0
    config.data.cache_dir = ""  # empty: $CHARJAX_CACHE or ~/.cache/charjax
    # Where a character sits in the 48x48 frame (charjax/framing.py), stored with the model so
    # predict and serve frame a user's image the same way: "line" keeps size and baseline (o is
    # smaller than O), "fit" scales the ink's box to fill the frame, as EMNIST does. It is
    # how the synthetic set is drawn and how folder:PATH images are cropped ("fit": to the
    # ink); npz and tfds arrays are taken as framed already (EMNIST is "fit").
    config.data.framing = "fit"  # reads real handwriting far better (benchmarks/RESULTS.md)
    config.data.synthetic = ml_collections.ConfigDict()
    config.data.synthetic.num_images = 62 * 1200
    config.data.synthetic.seed = 0
    # Bad files (unreadable, unlabelled, outside the charset) stop the load with one error
    # naming the file; True leaves them out and lists them in WORKDIR/skipped_files.txt.
    config.data.skip_bad = False
    # folder:PATH — regex (re.fullmatch on the file name without extension) with a named
    # group `label`: one character, or its code (97 or u0061). See charjax/datasets/folder.py.
    config.data.folder = ml_collections.ConfigDict()
    # The default (folder.DEFAULT_PATTERN) takes the name's first token, after an optional
    # "label_": A_0001.png, label_97_0001.png, u0061_0001.png.
    config.data.folder.pattern = (
        r"(?:label_)?(?P<label>u[0-9A-Fa-f]{4}|[0-9]{2,3}|[0-9A-Za-z])(?:[_\-. ].*)?"
    )
    # tfds:NAME — where TFDS keeps prepared data and downloads/manual/gzip.zip for EMNIST;
    # empty: $TFDS_DATA_DIR or ~/tensorflow_datasets.
    config.data.tfds_data_dir = ""

    # Fresh distortions every epoch on top of the generator's own. Broad ranges fixed a priori
    # (the tutorial rotated by up to 15 degrees), not chosen on any real data set.
    config.augment = augment.default_config()
    config.augment.enabled = True
    config.augment.max_rotation = 10.0
    config.augment.max_shear = 10.0
    config.augment.zoom_range = (0.9, 1.1)
    config.augment.max_shift = 2.0

    config.distributed = distributed.default_config()  # multi-host; empty = one process
    # What a run writes besides checkpoints: WORKDIR/tb (TensorBoard, projector) and PNGs.
    config.report = reporting.default_config()
    return config
