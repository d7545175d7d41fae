"""Accuracy reference: the tutorial pipeline in Keras on the same split charjax uses.

No augmentation, Adam 1e-3, batch 128, N epochs; the weights of the best validation epoch
are scored on the test split (the tutorial's own procedure). The split is charjax's
stratified split with the config's fractions and seed, so the figures compare directly.
Needs the `bench` extra (tensorflow-cpu, keras) and charjax importable.

    python benchmarks/keras_reference.py --config configs/emnist.py --epochs 15 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/emnist.py")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import keras
    from keras_baseline import build_model

    from charjax import config_files, train

    config = config_files.load(args.config)
    splits = train.load_splits(config)

    def arrays(ds):
        return ds.images.astype(np.float32) / 255.0, ds.labels.astype(np.int32)

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = map(
        arrays, (splits.train, splits.validation, splits.test)
    )
    keras.utils.set_random_seed(args.seed)
    model = build_model()
    best = {"val_accuracy": -1.0}

    class KeepBest(keras.callbacks.Callback):
        """The tutorial's ModelCheckpoint(save_best_only=True), kept in memory."""

        def on_epoch_end(self, epoch, logs=None):
            if logs["val_accuracy"] > best["val_accuracy"]:
                best.update(val_accuracy=float(logs["val_accuracy"]), epoch=epoch + 1,
                            weights=self.model.get_weights())

    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        validation_data=(x_val, y_val), callbacks=[KeepBest()], verbose=2)
    seconds = time.perf_counter() - start
    model.set_weights(best["weights"])
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
    result = {
        "framework": f"keras {keras.__version__}",
        "data": config.data.source,
        "split": [len(y_train), len(y_val), len(y_test)],
        "epochs": args.epochs,
        "best_epoch": best["epoch"],
        "best_val_accuracy": best["val_accuracy"],
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "train_seconds": seconds,
        "val_accuracy_per_epoch": [float(v) for v in history.history["val_accuracy"]],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
