"""Quality of a candidate against a reference on the user's text: perplexity, KL (a lower bound from top-k),
top-1 agreement, delta-p, bits per byte, and a pass/fail against the use case's limits.

scoring is pure; client (prompt log-probabilities per server kind), local (llama-cpp-python servers started
from GGUF files) and run (the session) are the edges."""
