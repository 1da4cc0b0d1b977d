"""Who acts while the teacher labels: teacher-, student-driven and mixed (DAgger) control."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from poldist.collection import MixedControl, StudentControl, make_controller
from poldist.distillation import DistillConfig, distill
from poldist.errors import PoldistError


class FixedStudent(torch.nn.Module):
    """A 'student' whose greedy action is always ``action`` (of 3)."""

    def __init__(self, action: int):
        super().__init__()
        self.action = action

    def forward(self, obs: torch.Tensor, task: int = 0) -> torch.Tensor:
        out = torch.zeros(len(obs), 3)
        out[:, self.action] = 1.0
        return out


OBS = torch.zeros(4000, 4, 10, 10, dtype=torch.uint8)
TEACHER_OUT = torch.tensor([[1.0, 0.0, 0.0]]).repeat(4000, 1)  # the teacher picks action 0


def test_student_control_acts_with_the_student_not_the_teacher():
    actions = StudentControl(epsilon=0.0).act(OBS, TEACHER_OUT, FixedStudent(2), 0, np.random.default_rng(0))
    assert (actions == 2).all()


def test_mixed_control_decays_beta_linearly_and_mixes_per_step():
    ctl = MixedControl(epsilon=0.0, beta_start=1.0, beta_end=0.2, decay_updates=100)
    assert [ctl.beta(u) for u in (0, 50, 100, 1000)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    rng = np.random.default_rng(0)
    assert (ctl.act(OBS, TEACHER_OUT, FixedStudent(2), 0, rng, updates=0) == 0).all()
    half = ctl.act(OBS, TEACHER_OUT, FixedStudent(2), 0, rng, updates=50)
    assert set(np.unique(half)) == {0, 2} and 0.55 < (half == 0).mean() < 0.65  # beta 0.6


def test_make_controller_reads_the_config_and_refuses_unknown_control():
    ctl = make_controller(DistillConfig(control="mixed", updates=1000, beta_decay=0.25, beta_end=0.1))
    assert isinstance(ctl, MixedControl) and ctl.decay_updates == 250 and ctl.beta_end == 0.1
    refused = r"control \(--control\) must be one of \['teacher', 'student', 'mixed'\], got 'expert'"
    with pytest.raises(PoldistError, match=refused):
        DistillConfig(control="expert").validate()  # the one check: make_controller trusts it
    with pytest.raises(
        PoldistError, match=r"control \(--control\) must be one of \['teacher', 'student', 'mixed'\]"
    ):
        distill(DistillConfig(control="expert"), "/nonexistent/never-created")


# ERD's reverse KL learns more slowly here: where the student is confidently wrong its gradient
# vanishes (mode-seeking); at this budget it is well above chance (1/3), not yet at the teacher.
@pytest.mark.parametrize(
    ("control", "loss", "tau", "least"), [("mixed", "kl", 0.01, 0.8), ("student", "erd", 0.1, 0.55)]
)
def test_student_driven_distillation_learns_the_teacher(
    tmp_path, fast_distill_config, control, loss, tau, least
):
    """Breakout, shipped teacher, net1 student: the student acts (after beta decays, for mixed),
    the teacher labels, and the student agrees with the teacher on fresh teacher states."""
    cfg = fast_distill_config(
        teacher="minatar/breakout", student="net1", control=control, loss=loss, tau=tau, beta_decay=0.5
    )
    summary = distill(cfg, tmp_path / "run")
    assert summary["tasks"][0]["agreement"] >= least, summary["tasks"][0]


def test_student_acts_as_its_module_call_would_with_the_same_draws() -> None:
    """StudentControl's fast path (layer functions, numpy argmax) against ``student(obs)`` and
    :func:`~poldist.evaluation.epsilon_greedy`: the same actions and the same generator state."""
    from poldist.collection import StudentControl
    from poldist.evaluation import epsilon_greedy
    from poldist.fast_teacher import plain_forward
    from poldist.networks import QNetwork, minatar_dqn, student_architecture

    torch.manual_seed(0)
    arch = student_architecture(minatar_dqn(10, 6), "net2")
    multi = QNetwork(replace(arch, n_actions=(6, 3), head_hidden=16))
    obs = torch.randint(0, 2, (64, 10, 10, 10), dtype=torch.uint8)
    for task in (0, 1):
        fast, slow = np.random.default_rng(3), np.random.default_rng(3)
        acted = StudentControl(0.3).act(obs, None, multi, task, fast)
        with torch.no_grad():
            expected = epsilon_greedy(multi(obs, task), 0.3, slow)
        assert np.array_equal(acted, expected) and fast.random() == slow.random()
        assert torch.equal(plain_forward(multi, obs, task), multi(obs, task).detach())
    # fewer channels than the network (a multi-task student on a 4-channel game): zero-padded
    few = obs[:, :4]
    assert torch.equal(plain_forward(multi, few, 1), multi(few, 1).detach())
