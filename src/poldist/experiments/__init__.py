"""The paper harness: the experiments behind RESULTS.md, apart from the library core.

- :mod:`~poldist.experiments.reproduce`: the paper's single-game experiments on MinAtar and
  online distillation (``poldist reproduce``), one raw record per run;
- :mod:`~poldist.experiments.report` (``poldist report``): RESULTS.md from the raw records, one
  section spec at a time; its numbers in :mod:`~poldist.experiments.report_stats`, its sections in
  ``sections_single_game``, ``sections_multitask``, ``sections_other`` and
  :mod:`~poldist.experiments.study_report`, its figures in :mod:`poldist.plotting`;
- :mod:`~poldist.experiments.bench` (``poldist bench``): speed and memory against bare
  baselines, one module per section (``bench_update``, ``bench_collection``, ``bench_inference``,
  ``bench_ttq``, ``bench_memory``, ``bench_dqn``).

The core (:mod:`poldist.envs`, :mod:`poldist.networks`, :mod:`poldist.teachers`,
:mod:`poldist.memory`, :mod:`poldist.losses`, :mod:`poldist.distillation`,
:mod:`poldist.evaluation`, ...) never imports this package.
"""
