"""§1 accuracy ``A = μ(G_0) = μ({k : δ_k > 0})``: a tie ``δ_k = 0`` is an ERROR.

Every case below has ties of positive weight, so counting ``δ ≥ 0`` instead of ``δ > 0`` changes the
value by at least one sample's weight and fails deterministically (no randomness is involved in the
hand cases; the property test is derandomized by ``conftest.py`` and pinned by ``@example``).
"""

from fractions import Fraction

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from lightning_stability import theory
from tests.theory.exact_oracles import exact_accuracy


def _t(values):
    return torch.tensor(values, dtype=torch.float64)


@pytest.mark.parametrize(
    "margins, weights, expected",
    [
        # one tie among four, unweighted: only the strictly positive margin counts
        ([0.0, 1.0, -1.0, 0.0], None, Fraction(1, 4)),
        # all ties: nothing is classified correctly
        ([0.0, 0.0, 0.0], None, Fraction(0)),
        ([0.0], None, Fraction(0)),
        # negative zero is a tie too
        ([-0.0, 2.0], None, Fraction(1, 2)),
        # the smallest positive double is correct, the smallest negative one is not
        ([5e-324, -5e-324, 0.0, 0.0], None, Fraction(1, 4)),
        # weighted: mass of the strictly positive margins over the total
        ([0.0, 2.0, -1.0], [5.0, 1.0, 2.0], Fraction(1, 8)),
        ([0.0, 0.5, 0.0, 3.0], [1.0, 2.0, 3.0, 2.0], Fraction(4, 8)),
        # a weighted tie that carries almost all the mass
        ([0.0, 1.0], [1000.0, 1.0], Fraction(1, 1001)),
        # weighted, all ties
        ([0.0, 0.0], [3.0, 1.0], Fraction(0)),
        # zero-weight samples are ignored, whatever their margin (here a tie and a wrong one)
        ([0.0, -5.0, 3.0, 0.0], [0.0, 0.0, 1.0, 1.0], Fraction(1, 2)),
        ([7.0, 0.0], [0.0, 1.0], Fraction(0)),
        ([0.0, 7.0], [0.0, 2.0], Fraction(1)),
        # normalisation: scaling the weights changes nothing
        ([0.0, 1.0, 1.0, -2.0], [4.0, 4.0, 4.0, 4.0], Fraction(1, 2)),
    ],
)
def test_accuracy_exact_values(margins, weights, expected):
    d = _t(margins)
    w = None if weights is None else _t(weights)
    assert exact_accuracy(d, w) == expected  # the oracle agrees with the hand value
    got = theory.accuracy(d, weights=w)
    assert isinstance(got, float)
    assert got == pytest.approx(float(expected), abs=1e-15)


def test_accuracy_ties_are_errors_from_logits():
    """A logit tie between the true class and another gives δ = 0 and counts as misclassified."""
    logits = _t(
        [
            [2.0, 2.0, 0.0],  # tie with class 1 -> error
            [3.0, 1.0, 3.0],  # tie with class 2 -> error
            [5.0, 4.0, 4.0],  # strict maximum -> correct
            [1.0, 1.0, 1.0],  # all equal -> error
        ]
    )
    targets = torch.tensor([0, 0, 0, 2])
    d = theory.margins(logits, targets)
    assert d.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert theory.accuracy(d) == 0.25
    assert theory.accuracy(d, weights=_t([1.0, 1.0, 2.0, 0.0])) == 0.5


def test_accuracy_agrees_with_good_mass_cdf_and_certify_on_ties():
    d = _t([0.0, 0.0, 1.5, -0.5, 0.0, 2.0, 3.0, -1.0])
    w = _t([1.0, 2.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    for weights, expected in ((None, 3 / 8), (w, 3 / 8)):
        assert theory.accuracy(d, weights=weights) == pytest.approx(expected, abs=1e-15)
        assert theory.good_mass(d, 0.0, weights=weights) == pytest.approx(expected, abs=1e-15)
        assert 1.0 - theory.margin_cdf(d, 0.0, weights=weights) == pytest.approx(expected, abs=1e-15)
        report = theory.certify(d, 3, weights=weights, zetas=(0.5,), tau_fractions=(0.25,), gammas=(1.0,))
        assert report.accuracy == pytest.approx(expected, abs=1e-15)


MARGIN_VALUES = st.one_of(
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300, 0.5, -0.5, 1.0, -1.0, 3.0]),
    st.floats(-10, 10, allow_nan=False),
)


@st.composite
def margins_and_weights(draw):
    n = draw(st.integers(1, 12))
    d = draw(st.lists(MARGIN_VALUES, min_size=n, max_size=n))
    w = draw(st.one_of(st.none(), st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    if w is not None and sum(w) == 0:
        w[0] = 1
    return d, w


@given(margins_and_weights())
@example(([0.0, 0.0, 0.0, 0.0], None))  # all ties
@example(([0.0, 1.0, 1.0, 1.0], None))  # the tie case of Condition A
@example(([0.0, -0.0, 2.0], [1, 1, 0]))  # zero weight on the only correct sample
@example(([0.0, 3.0, -2.0], [4, 1, 0]))  # a heavy tie
@example(([5e-324, 0.0, -5e-324], [1, 1, 1]))
def test_accuracy_matches_exact_oracle(case):
    d, w = case
    margins = _t(d)
    weights = None if w is None else _t([float(x) for x in w])
    expected = exact_accuracy(margins, weights)
    got = theory.accuracy(margins, weights=weights)
    assert got == pytest.approx(float(expected), abs=1e-14)
    assert 0.0 <= got <= 1.0
    # the defining identity A = μ(G_0) = 1 − F(0)
    assert got == pytest.approx(theory.good_mass(margins, 0.0, weights=weights), abs=1e-14)
