"""The malloc tuning applied at `import charjax`: warm reuse of large buffers, and the
same numbers with and without it."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from charjax import malloc_tuning

pytestmark = pytest.mark.skipif(not malloc_tuning.applied(), reason="not glibc, or opted out")


def _faults_of_a_fresh_80mb_buffer() -> int:
    np.ones(80 << 20, np.uint8)  # allocated and freed: with the tuning its pages stay mapped
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(80 << 20, np.uint8)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_freed_large_buffer_is_reused_without_page_faults():
    # a fresh mapping of 80 MB faults ~20,000 times in 4 kB pages, ~550 with transparent
    # huge pages; reused heap pages do not fault at all
    assert _faults_of_a_fresh_80mb_buffer() < 100


_STEPS = """
import sys
sys.path.insert(0, {tests!r})
import jax, numpy as np
from charjax import malloc_tuning
from test_kernels import _steps
state, _ = _steps("auto", n=2)
np.save({out!r}, np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(state.params)]))
print("tuned", malloc_tuning.applied())
"""


def test_train_steps_are_bit_identical_without_the_tuning(tmp_path):
    outs = {}
    for setting in ("on", "off"):
        out = str(tmp_path / f"{setting}.npy")
        env = dict(os.environ, CHARJAX_MALLOC=setting)
        script = _STEPS.format(tests=os.path.join(ROOT, "tests"), out=out)
        proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"tuned {setting == 'on'}" in proc.stdout
        outs[setting] = np.load(out)
    np.testing.assert_array_equal(outs["on"], outs["off"])
