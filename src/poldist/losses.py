"""The paper's three distillation losses (Rusu et al., 2015, section 4.1), and one later one.

Each is a pure function ``loss(student_out, teacher_out) -> scalar``:

- ``student_out``: ``(B, A)`` raw student outputs (logits / Q-estimates).
- ``teacher_out``: ``(B, A)`` teacher outputs (Q-values of a DQN, or policy logits).

Per-example losses are summed over actions and averaged over the batch, so the
scale does not depend on the batch size (nor, for KL, on the action count).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from poldist.errors import PoldistError

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def nll_loss(student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the teacher's greedy action: ``-log softmax(q_S)[argmax q_T]``."""
    return F.cross_entropy(student_out, teacher_out.argmax(dim=1))


def mse_loss(student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
    """Squared error on all outputs: ``|| q_T - q_S ||^2`` per example, batch mean."""
    return (teacher_out - student_out).pow(2).sum(dim=1).mean()


def kl_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, tau: float = 0.01) -> torch.Tensor:
    """``KL(softmax(q_T / tau) || softmax(q_S))`` per example, batch mean.

    The temperature sharpens the *teacher only* (the paper's definition); the student
    is read at temperature 1. Computed with ``log_softmax`` throughout, so a tau that
    makes the teacher one-hot stays finite (``0 * log 0`` terms contribute 0).
    """
    log_p_t = F.log_softmax(teacher_out.float() / tau, dim=1)
    log_p_s = F.log_softmax(student_out.float(), dim=1)
    p_t = log_p_t.exp()
    # where p_t underflows to 0 its term is 0, whatever log_p_t says
    terms = torch.where(p_t > 0, p_t * (log_p_t - log_p_s), torch.zeros_like(p_t))
    return terms.sum(dim=1).mean()


def erd_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, tau: float = 0.01) -> torch.Tensor:
    """Expected entropy-regularised distillation, per state: ``KL(softmax(q_S) || softmax(q_T / tau))``.

    Czarnecki et al. (2019), *Distilling Policy Distillation*: on states the *student* visits,
    the student minimises the reverse KL to the teacher, the expectation over its own actions
    taken exactly rather than sampled; ``= -H(pi_S) - sum_a pi_S(a) log pi_T(a)``, an entropy
    bonus plus the teacher's log-likelihood as reward. This is the per-state term of their update
    (horizon 0): the replay memory holds states, not trajectories, so the policy-gradient term
    through future states is left out. Mode-seeking where the paper's KL is mode-covering.
    Pair it with ``control="student"`` or ``"mixed"``.
    """
    log_p_t = F.log_softmax(teacher_out.float() / tau, dim=1)
    log_p_s = F.log_softmax(student_out.float(), dim=1)
    return (log_p_s.exp() * (log_p_s - log_p_t)).sum(dim=1).mean()


def _tempered(loss: Callable[..., torch.Tensor]) -> Callable[[float], Loss]:
    def factory(tau: float) -> Loss:
        if tau <= 0:
            raise PoldistError(f"KL temperature must be positive, got tau={tau}")
        return partial(loss, tau=tau)

    return factory


# name -> factory(tau); the keys are the configs' loss choices (config.LOSS_CHOICES), checked there
LOSSES: dict[str, Callable[[float], Loss]] = {
    "kl": _tempered(kl_loss),
    "nll": lambda tau: nll_loss,
    "mse": lambda tau: mse_loss,
    "erd": _tempered(erd_loss),
}


def make_loss(name: str, tau: float = 0.01) -> Loss:
    """The loss called ``name`` (a key of :data:`LOSSES`: ``kl``, ``nll``, ``mse`` or ``erd``);
    ``tau``: the teacher's temperature (KL and ERD only; it must be positive)."""
    return LOSSES[name](tau)
