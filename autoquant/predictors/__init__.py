"""Optional outside predictors of serving performance (edges: each imports its package only when loaded).

Each module offers `available() -> bool` (installed, without importing it) and `load() -> Predictor | None`
(autoquant/planner/predictor.py); `aiconfigurator` is NVIDIA AIConfigurator (`pip install 'autoquant[aic]'`).
"""
