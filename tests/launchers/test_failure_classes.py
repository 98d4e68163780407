"""Which startup failures a retry with the next ranked candidate may fix."""

import pytest

from autoquant.launchers.process import classify_failure


@pytest.mark.parametrize("text,kind", [
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.00 GiB", "out_of_memory"),
    ("ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization`",
     "out_of_memory"),
    ("ggml_backend_cuda_buffer_type_alloc_buffer: failed to allocate CUDA0 buffer of size 123", "out_of_memory"),
    ("ValueError: The quantization method fp8 is not supported for the current GPU. Minimum capability: 89. "
     "Current capability: 80.", "unsupported"),
    ("RuntimeError: CUDA error: no kernel image is available for execution on the device", "unsupported"),
    ("OSError: meta-llama/x is not a local folder and is not a valid model identifier", None),
    ("vllm serve: error: unrecognized arguments: --bogus", None),
])
def test_classify(text, kind):
    assert classify_failure("INFO starting\n" + text + "\nINFO exiting") == kind
