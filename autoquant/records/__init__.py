"""Typed, versioned, JSON-serialisable records passed between stages."""

from .model import ModelSpec, QuantSpec
from .node import GPU, AppleSilicon, CgroupLimits, CPUInfo, EngineInstall, MigSlice, Node
from .plan import Candidate, Checkpoint, Estimate, Memory, NodeGroup, Plan, Rejection
from .serde import RecordError, from_dict, to_dict
from .workload import ConcurrencyBin, Workload

__all__ = [
    "GPU", "AppleSilicon", "CPUInfo", "Candidate", "CgroupLimits", "Checkpoint", "ConcurrencyBin",
    "EngineInstall", "Estimate", "Memory", "MigSlice", "ModelSpec", "Node", "NodeGroup", "Plan", "QuantSpec", "RecordError",
    "Rejection", "Workload", "from_dict", "to_dict",
]
