"""poldist: Policy Distillation (Rusu et al., 2015) for reinforcement learning.

Modules read like the paper: :mod:`poldist.envs`, :mod:`poldist.networks`,
:mod:`poldist.teachers`, :mod:`poldist.memory`, :mod:`poldist.losses`,
:mod:`poldist.distillation`, :mod:`poldist.evaluation`, :mod:`poldist.checkpoints`,
:mod:`poldist.dqn` (teacher training) and :mod:`poldist.cli`.
"""

__version__ = "0.1.0"
