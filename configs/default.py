# charjax train --config configs/default.py --workdir runs/demo
"""The whole config schema, and the default run: the tutorial model on the embedded
synthetic set, no download needed, under 10 minutes on a 2-core CPU.

Every field charjax reads is defined here, with its meaning; the library reads fields
directly, so a field missing from a config is an error, not a silent default. Other
configs start from `get_config()` and change what they change. Override any field on the
command line, e.g. --config.num_epochs=2 --config.data.synthetic.num_images=6200.

This file imports only ml_collections: loading a config never imports JAX.
"""

import ml_collections
from ml_collections.config_dict import placeholder


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0  # model initialisation, dropout, augmentation draws and batch order
    config.num_epochs = 12  # passes over the training split
    config.batch_size = 128  # global: split over all devices, so a multiple of their count
    config.eval_batch_size = 512  # validation/test batch (rounded up to the device count)
    config.learning_rate = 1e-3  # peak rate of optimizer.schedule
    config.label_smoothing = 0.0  # > 0: train on smoothed targets (metrics stay unsmoothed)
    config.ema_decay = 0.0  # > 0: evaluate an exponential moving average of the weights
    config.precision = "float32"  # or "bf16": bf16 compute, float32 master weights
    config.log_every_steps = 100  # step metrics to the progress bar and TensorBoard; 0: off
    config.ensemble_members = 1  # > 1: train that many seeds into WORKDIR/member-K and vote
    config.keep_best = 2  # best checkpoints kept by validation accuracy (the latest is kept too)
    config.init_from = ""  # another run's workdir: start from its best weights, fresh optimizer

    # How the run drives XLA (charjax/backend.py); set once per process, at start-up.
    # Train steps per jitted call (a lax.scan over the epoch's order); results are the same
    # for any value. 0: auto, 1 on a CPU (a step loop there gains nothing with the oneDNN
    # kernels and runs ~35x slower on XLA's own convolutions), 16 on a GPU (a step is
    # launch-bound there, so fewer dispatches help); an epoch's last call masks the steps
    # past its end.
    config.steps_per_call = 0
    # GPU: XLA's deterministic reductions and scatters (XLA_FLAGS=--xla_gpu_deterministic_ops
    # =true, set before XLA starts), so the same seed gives the same weights bit for bit, at
    # some cost in speed. No effect on a CPU, which is deterministic anyway.
    config.deterministic = True
    # Keep compiled XLA programs in the charjax cache folder (CACHE/xla: $CHARJAX_CACHE or
    # ~/.cache/charjax), so later runs load them instead of compiling (seconds on a CPU, up
    # to half a minute per program on a GPU). False, or CHARJAX_COMPILATION_CACHE=off: compile
    # afresh. A folder set outside charjax (JAX_COMPILATION_CACHE_DIR) is used as it is.
    config.compilation_cache = True

    # optax recipe (charjax/optim.py).
    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adam"  # adam | adamw (the tutorial's Adam)
    config.optimizer.weight_decay = 0.0  # adamw only; decoupled from the gradient
    # constant | cosine (warm-up, then cosine decay) | onecycle
    config.optimizer.schedule = "cosine"
    config.optimizer.warmup_epochs = 0.0  # linear warm-up from 0 over this many epochs
    config.optimizer.final_lr_fraction = 0.01  # cosine/onecycle end at learning_rate * this
    config.optimizer.grad_clip_norm = 0.0  # clip the global gradient norm; 0: no clipping

    # The network (charjax/models.py). `name` picks one (or the tutorial's number 1-3);
    # each model reads only its own block below.
    config.model = ml_collections.ConfigDict()
    config.model.name = "tutorial"  # tutorial (1) | tutorial_bn (2) | compact_vgg (3)
    # How the tutorial model's conv-pool blocks are computed: "auto" is oneDNN kernels on CPU
    # where they load, else XLA's "fast" path (charjax.layers); "flax" (plain
    # nn.Conv/nn.max_pool) on GPU. Same maths and parameters in all, so checkpoints move.
    config.model.impl = "auto"
    config.model.tutorial = ml_collections.ConfigDict()
    # Width of the dense layer before the classifier. The tutorial's is 128 (846,654
    # parameters; configs/tutorial.py keeps it); 256 reads real handwriting better after
    # synthetic training: 62 classes, each in several written forms from three families
    # of sources, fill the narrower layer (benchmarks/RESULTS.md), at ~15 % more step time.
    config.model.tutorial.hidden = 256
    config.model.tutorial.dropout = 0.5  # dropout rate after that layer
    config.model.tutorial_bn = ml_collections.ConfigDict()
    config.model.tutorial_bn.hidden = 1024  # width of the batch-normed dense layer
    config.model.tutorial_bn.dropout = 0.5  # dropout rate after that layer
    config.model.compact_vgg = ml_collections.ConfigDict()
    config.model.compact_vgg.hidden = 256  # width of the batch-normed dense layer
    config.model.compact_vgg.dropout = 0.4  # dropout rate after that layer

    # Where the images come from and how they are split (charjax/datasets/).
    config.data = ml_collections.ConfigDict()
    # A source spec: `charjax --help` lists the registered ones (charjax/datasets/sources.py),
    # e.g. npz:PATH, folder:PATH, tfds:emnist/byclass[:SPLIT]. Each reads its own block below.
    config.data.source = "synthetic"
    # The split is stratified: each class is split by these fractions (rounded per class),
    config.data.val_fraction = 0.1  # share of each class held out for validation
    config.data.test_fraction = 0.1  # share of each class held out for the test
    # or, when both are set, into exactly this many images in all, shared among the classes
    # by size (largest remainder); the fractions are then unused.
    config.data.val_count = placeholder(int)  # None: use val_fraction
    config.data.test_count = placeholder(int)  # None: use test_fraction
    config.data.split_seed = 0  # which images go to which split
    # Another source (same spec syntax) whose images join the training split only, so every
    # batch mixes the two; validation and test stay from `source`. E.g. "synthetic" (drawn
    # as data.synthetic and data.framing say) beside real images. Empty: no mix.
    config.data.train_mix = ""
    # Where generated and decoded sets are cached; empty: $CHARJAX_CACHE or ~/.cache/charjax.
    config.data.cache_dir = ""
    # Where a character sits in the 48x48 frame (charjax/framing.py), stored with the model so
    # predict and serve frame a user's image the same way: "line" keeps size and baseline (o is
    # smaller than O), "fit" scales the ink's box to fill the frame, as EMNIST does. It is
    # how the synthetic set is drawn and how folder:PATH images are cropped ("fit": to the
    # ink); npz and tfds arrays are taken as framed already (EMNIST is "fit").
    config.data.framing = "fit"  # reads real handwriting far better (benchmarks/RESULTS.md)
    # How image files (folder:PATH) become inputs, stored with the model so an older run's are
    # still read as it was trained: 2 is exactly as predict and serve prepare a user's image
    # (charjax.framing.prepare, strokes redrawn); 1 is older runs' (fit kept each image's own
    # stroke width, line resized the whole image).
    config.data.preparation = 2
    config.data.synthetic = ml_collections.ConfigDict()
    config.data.synthetic.num_images = 62 * 2400  # source "synthetic": images, balanced
    config.data.synthetic.seed = 0  # the generator's seed: same seed, same pixels
    # Processes drawing the set: 0 = every core this process may use; the pixels are the same
    # for any number. CHARJAX_WORKERS=N caps it, an explicit value too (the smaller wins).
    config.data.synthetic.workers = 0
    # Bad files (unreadable, unlabelled, outside the charset) stop the load with one error
    # naming the file; True leaves them out and lists them in WORKDIR/skipped_files.txt.
    config.data.skip_bad = False
    config.data.folder = ml_collections.ConfigDict()
    # folder:PATH label regex (re.fullmatch on the file name without its extension) with a
    # named group `label`: one character, or its code (97 or u0061). Empty: the built-in
    # pattern, the name's first token after an optional "label_" (A_0001.png,
    # label_97_0001.png, u0061_0001.png); see charjax/datasets/folder.py.
    config.data.folder.pattern = ""
    # tfds:NAME: where TFDS keeps prepared data (and downloads/manual/gzip.zip for EMNIST);
    # empty: $TFDS_DATA_DIR or ~/tensorflow_datasets.
    config.data.tfds_data_dir = ""

    # Random affine (and elastic) distortion inside the train step (charjax/augment.py): fresh
    # distortions every epoch on top of the generator's own. Broad ranges fixed a priori (the
    # tutorial rotated by up to 15 degrees), not chosen on any real data set.
    config.augment = ml_collections.ConfigDict()
    config.augment.enabled = True  # distort the training images
    config.augment.prob = 1.0  # chance that an image is distorted at all
    config.augment.max_shift = 2.0  # pixels, uniform in [-max, max] per axis
    config.augment.max_rotation = 10.0  # degrees, uniform in [-max, max]
    config.augment.max_shear = 10.0  # degrees of slant, uniform in [-max, max]
    config.augment.zoom_range = (0.9, 1.1)  # scale factor, drawn per axis
    config.augment.elastic = False  # Simard et al. (2003) elastic distortion on top
    config.augment.elastic_alpha = 50.0  # pixels: scale of the smoothed displacement field
    config.augment.elastic_sigma = 6.0  # pixels: std of the Gaussian that smooths it

    # Multi-host runs (charjax/distributed.py); all empty means one process.
    config.distributed = ml_collections.ConfigDict()
    config.distributed.coordinator_address = ""  # host:port of process 0, e.g. 10.0.0.1:1234
    config.distributed.num_processes = 0  # processes in the run (> 1 for multi-host)
    config.distributed.process_id = -1  # this process's index, 0..num_processes-1
    config.distributed.auto_detect = False  # let JAX read SLURM / Open MPI environments
    config.distributed.cpu_collectives = "gloo"  # CPU-only multi-process collectives backend

    # What a run writes besides checkpoints (charjax/reporting/).
    config.report = ml_collections.ConfigDict()
    config.report.tensorboard = True  # event files (and the projector) in WORKDIR/tb
    config.report.plots = True  # curves.png, confusion.png and errors.png in WORKDIR
    config.report.projector_max = 10_000  # validation images in the projector; 0: off
    config.report.projector_every_epochs = 0  # also write it every K epochs; 0: at the end
    config.report.sample_images = 64  # training inputs (after augmentation) in TensorBoard
    config.report.error_images = 64  # worst test mistakes in errors.png
    config.report.confused_pairs = 25  # pairs listed beside the confusion matrix
    config.report.progress = "auto"  # progress bar: auto (bar on a terminal), bar, plain, off
    return config
