"""The planner: pure functions from (ModelSpec, Node, Workload) to a Plan or an Estimate.

`plan()` enumerates engine x method x TP/PP x KV dtype, gates each with the data-driven rules
(autoquant/data/engines.yaml), estimates memory, speed, quality and cost, filters by fit, SLOs and
the quality floor, and ranks by the objective. `estimate()` evaluates one fixed configuration.
No I/O beyond reading the packaged YAML data.
"""

from autoquant.planner.decide import estimate, plan

__all__ = ["estimate", "plan"]
