"""Re-weighting answers to the class mix of the data they were read from (EM, no labels)."""

import numpy as np
import pytest

from charjax import evaluate


def _tie_problem(mix: np.ndarray, n: int = 20_000, seed: int = 0):
    """Images of three kinds of class 0/1/2: class 0 is drawn clear (A) or ambiguous (M)
    half the time each; class 1 clear (B) 45 %, ambiguous 55 %; class 2 always clear (Z).
    Returns the posteriors a model trained on balanced classes would give, and labels."""
    likelihood = np.array([[0.5, 0.0, 0.5, 0.0],    # p(A, B, M, Z | class 0)
                           [0.0, 0.45, 0.55, 0.0],  # class 1
                           [0.0, 0.0, 0.0, 1.0]])   # class 2
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=mix)
    kinds = np.array([rng.choice(4, p=likelihood[c]) for c in labels])
    posterior = likelihood.T / likelihood.T.sum(1, keepdims=True)  # uniform training mix
    return posterior[kinds], labels


def test_a_skewed_mix_is_found_and_breaks_the_ties_toward_the_commoner_class():
    mix = np.array([0.6, 0.2, 0.2])
    probabilities, labels = _tie_problem(mix)
    adapted, estimated = evaluate.adapt_to_class_mix(probabilities, np.ones(3))
    np.testing.assert_allclose(estimated, mix, atol=0.02)
    np.testing.assert_allclose(adapted.sum(1), 1.0, rtol=1e-9)
    before = (probabilities.argmax(1) == labels).mean()
    after = (adapted.argmax(1) == labels).mean()
    # ambiguous images go to class 1 before (0.524 > 0.476), to the commoner class 0 after
    assert before == pytest.approx(0.7, abs=0.02) and after == pytest.approx(0.89, abs=0.02)


def test_the_training_mix_is_divided_out():
    """A model trained on the data's own mix needs no change."""
    mix = np.array([0.6, 0.2, 0.2])
    probabilities, _ = _tie_problem(np.full(3, 1 / 3))
    skewed = probabilities * mix
    skewed /= skewed.sum(1, keepdims=True)  # as if trained with `mix` on balanced data
    _, estimated = evaluate.adapt_to_class_mix(skewed, mix * 1000)
    np.testing.assert_allclose(estimated, 1 / 3, atol=0.02)


def test_a_class_the_training_never_saw_is_refused():
    with pytest.raises(ValueError, match="positive counts"):
        evaluate.adapt_to_class_mix(np.full((4, 3), 1 / 3), np.array([5, 0, 5]))
