"""Moved to :mod:`poldist.experiments.bench` (issue 20). This alias keeps ``python -m poldist.bench``
and ``from poldist import bench`` (tests/test_ray_backend.py) working until their users move."""

import sys

from poldist.experiments.bench import *  # noqa: F403
from poldist.experiments.bench import main
from poldist.experiments.bench_collection import bench_ray_collection  # noqa: F401
from poldist.experiments.bench_collection import ray_table as _ray_table  # noqa: F401
from poldist.experiments.bench_common import FULL, QUICK  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
