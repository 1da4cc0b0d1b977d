"""The three distillation losses against values computed by hand (math.exp / math.log)."""

from __future__ import annotations

import math

import pytest
import torch

from poldist.config import DistillConfig, OnlineConfig
from poldist.errors import PoldistError
from poldist.losses import kl_loss, make_loss, mse_loss, nll_loss

# Two examples, three actions.
STUDENT = [[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]]
TEACHER = [[0.5, 0.1, 0.2], [1.0, 3.0, 2.0]]  # argmax: action 0, action 1


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def _log_softmax(row: list[float]) -> list[float]:
    log_z = math.log(sum(math.exp(x) for x in row))
    return [x - log_z for x in row]


def _kl_row(student: list[float], teacher: list[float], tau: float) -> float:
    log_p = _log_softmax([q / tau for q in teacher])
    log_q = _log_softmax(student)
    return sum(math.exp(lp) * (lp - lq) for lp, lq in zip(log_p, log_q))


def test_log_softmax_helper_is_right() -> None:
    # softmax([0, ln 2, ln 3]) = [1/6, 2/6, 3/6]
    got = _log_softmax([0.0, math.log(2), math.log(3)])
    assert got == pytest.approx([math.log(1 / 6), math.log(2 / 6), math.log(3 / 6)])


def test_nll_simple_case_by_hand() -> None:
    # student softmax = [1/6, 1/3, 1/2]; teacher's best action is 2 -> -log(1/2) = ln 2
    student = _t([[0.0, math.log(2), math.log(3)]])
    teacher = _t([[0.0, 1.0, 5.0]])
    assert nll_loss(student, teacher).item() == pytest.approx(math.log(2), rel=1e-6)


def test_nll_matches_hand_values() -> None:
    row0 = -_log_softmax(STUDENT[0])[0]
    row1 = -_log_softmax(STUDENT[1])[1]
    expected = (row0 + row1) / 2
    # spelled out for row 0: -(1 - log(e^1 + e^2 + e^3))
    assert row0 == pytest.approx(-(1.0 - math.log(math.e + math.e**2 + math.e**3)))
    assert nll_loss(_t(STUDENT), _t(TEACHER)).item() == pytest.approx(expected, rel=1e-6)


def test_mse_matches_hand_values() -> None:
    # row 0: (0.5-1)^2 + (0.1-2)^2 + (0.2-3)^2 = 0.25 + 3.61 + 7.84 = 11.70
    # row 1: (1-0)^2 + (3+1)^2 + (2-0.5)^2 = 1 + 16 + 2.25 = 19.25
    expected = (11.70 + 19.25) / 2
    assert mse_loss(_t(STUDENT), _t(TEACHER)).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("tau", [1.0, 0.5, 0.1])
def test_kl_matches_hand_values(tau: float) -> None:
    expected = (_kl_row(STUDENT[0], TEACHER[0], tau) + _kl_row(STUDENT[1], TEACHER[1], tau)) / 2
    got = kl_loss(_t(STUDENT), _t(TEACHER), tau=tau).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_kl_simple_case_by_hand() -> None:
    # teacher [0, ln 3] at tau 1 -> p = [1/4, 3/4]; student [0, 0] -> q = [1/2, 1/2]
    # KL = 1/4 log(1/2) + 3/4 log(3/2)
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    got = kl_loss(_t([[0.0, 0.0]]), _t([[0.0, math.log(3)]]), tau=1.0).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_kl_one_hot_teacher_is_finite_and_equals_nll() -> None:
    tau = 1e-4
    teacher = _t([[1.0, 2.0, 0.5], [3.0, 0.0, 1.0]])  # best actions 1 and 0, gaps >= 1
    student = _t(STUDENT).requires_grad_()
    loss = kl_loss(student, teacher, tau=tau)
    assert torch.isfinite(loss)
    expected = (-_log_softmax(STUDENT[0])[1] - _log_softmax(STUDENT[1])[0]) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.isfinite(student.grad).all()
    # gradient of -log softmax(s)[a] is softmax(s) - onehot(a), halved by the batch mean
    soft0 = [math.exp(x) for x in _log_softmax(STUDENT[0])]
    expected_grad0 = [(soft0[0]) / 2, (soft0[1] - 1) / 2, soft0[2] / 2]
    assert student.grad[0].tolist() == pytest.approx(expected_grad0, rel=1e-5)


def test_kl_paper_tau_on_large_q_values_is_finite() -> None:
    # tau = 0.01 on raw Q-values of a few hundred: logits of 1e4..1e5 must not overflow
    teacher = _t([[250.0, 310.0, 120.0], [-80.0, 40.0, 39.0]])
    loss = kl_loss(_t(STUDENT), teacher, tau=0.01)
    assert torch.isfinite(loss)
    expected = (-_log_softmax(STUDENT[0])[1] - _log_softmax(STUDENT[1])[1]) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_kl_temperature_applies_to_teacher_only() -> None:
    tau = 0.5
    # a student whose logits are the teacher's Q / tau matches the sharpened teacher exactly
    teacher = _t(TEACHER)
    assert kl_loss(teacher / tau, teacher, tau=tau).item() == pytest.approx(0.0, abs=1e-6)
    # and the value is not the one obtained by also dividing the student by tau
    got = kl_loss(_t(STUDENT), teacher, tau=tau).item()
    wrong = sum(_kl_row([s / tau for s in st], tq, tau) for st, tq in zip(STUDENT, TEACHER)) / 2
    right = sum(_kl_row(st, tq, tau) for st, tq in zip(STUDENT, TEACHER)) / 2
    assert abs(right - wrong) > 0.1
    assert got == pytest.approx(right, rel=1e-5)


@pytest.mark.parametrize(
    "loss",
    [nll_loss, mse_loss, lambda s, t: kl_loss(s, t, tau=0.5)],
    ids=["nll", "mse", "kl"],
)
def test_losses_are_batch_means(loss) -> None:
    s, t = _t(STUDENT), _t(TEACHER)
    single = loss(s, t).item()
    doubled = loss(torch.cat([s, s]), torch.cat([t, t])).item()
    assert doubled == pytest.approx(single, rel=1e-6)
    # the mean of the per-example losses, not their sum
    per_example = [loss(s[i : i + 1], t[i : i + 1]).item() for i in range(2)]
    assert single == pytest.approx(sum(per_example) / 2, rel=1e-6)


def test_kl_of_identical_distributions_is_zero() -> None:
    logits = _t(TEACHER)
    assert kl_loss(logits, logits.clone(), tau=1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_is_positive_for_different_distributions() -> None:
    assert kl_loss(_t(STUDENT), _t(TEACHER), tau=1.0).item() > 0.01


def test_make_loss_returns_the_named_loss() -> None:
    s, t = _t(STUDENT), _t(TEACHER)
    assert make_loss("nll")(s, t).item() == pytest.approx(nll_loss(s, t).item())
    assert make_loss("mse")(s, t).item() == pytest.approx(mse_loss(s, t).item())
    kl = make_loss("kl", tau=0.5)(s, t).item()
    assert kl == pytest.approx(kl_loss(s, t, tau=0.5).item())
    assert kl != pytest.approx(kl_loss(s, t, tau=0.01).item())


def test_unknown_loss_name_is_refused_by_the_config_in_one_line() -> None:
    refused = r"loss \(--loss\) must be one of \['kl', 'nll', 'mse', 'erd'\], got 'bogus'"
    with pytest.raises(PoldistError, match=refused):
        DistillConfig(loss="bogus").validate()
    with pytest.raises(PoldistError, match=r"loss \(--loss\) must be one of .*got 'bogus'"):
        OnlineConfig(loss="bogus").validate()
    with pytest.raises(KeyError):  # past the config, an unknown name is a programming error
        make_loss("bogus")


@pytest.mark.parametrize("tau", [0.0, -0.5])
def test_make_loss_kl_nonpositive_tau_raises(tau: float) -> None:
    with pytest.raises(PoldistError, match="tau"):
        make_loss("kl", tau=tau)


def test_erd_is_the_reverse_kl_by_hand() -> None:
    """ERD per state: sum_a pi_S(a) (log pi_S(a) - log pi_T(a)), pi_T = softmax(q_T / tau)."""
    tau = 0.5
    want = 0.0
    for s_row, t_row in zip(STUDENT, TEACHER):
        log_s, log_t = _log_softmax(s_row), _log_softmax([q / tau for q in t_row])
        want += sum(math.exp(ls) * (ls - lt) for ls, lt in zip(log_s, log_t))
    got = make_loss("erd", tau=tau)(_t(STUDENT), _t(TEACHER)).item()
    assert got == pytest.approx(want / 2, rel=1e-5)
    # it is not the paper's (forward) KL, and it is zero when the two policies are equal
    assert got != pytest.approx(kl_loss(_t(STUDENT), _t(TEACHER), tau=tau).item(), rel=1e-3)
    same = make_loss("erd", tau=1.0)(_t(TEACHER), _t(TEACHER)).item()
    assert same == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(PoldistError, match="temperature"):
        make_loss("erd", tau=0.0)
