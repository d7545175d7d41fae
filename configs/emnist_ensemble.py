# charjax train --config configs/emnist_ensemble.py --workdir runs/emnist_ensemble
"""An ensemble of compact_vgg members on real handwriting, trained in one command.

Each member is configs/emnist_vgg.py with its own seed (seed + K) in WORKDIR/member-K, on
the same split (EMNIST ByClass 30k, stratified, val 0.1, test 0.2, split_seed 0). The run
ends by scoring the members together on the test split, by mean probability and by
majority vote (WORKDIR/metrics.json). An interrupted run resumes member by member.
Re-score any set of runs with: charjax eval --workdir A --workdir B ... [--vote].
"""

import ml_collections

from charjax_configs import emnist_vgg


def get_config() -> ml_collections.ConfigDict:
    config = emnist_vgg.get_config()
    config.ensemble_members = 5
    return config
