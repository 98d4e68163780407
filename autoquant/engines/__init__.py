"""What autoquant knows about engines: EngineSpec records (from autoquant/data/engines.yaml) and `compat`,
the only place engine x format x method x device rules are evaluated. Pure: no I/O here."""

from autoquant.engines.compat import Verdict, capability_tuple, compat
from autoquant.engines.spec import EngineSpec, KernelChoice, specs_from_data

__all__ = ["EngineSpec", "KernelChoice", "Verdict", "capability_tuple", "compat", "specs_from_data"]
