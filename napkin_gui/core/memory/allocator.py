"""The caching allocator's view: reserved = allocated peak + blocks cached but not in use.

PyTorch's CUDACachingAllocator (c10/cuda/CUDACachingAllocator.cpp) rounds requests to 512 B,
carves large requests (> 1 MiB) from 2 MiB-aligned segments of the 20 MiB large pool or
their own cudaMalloc, and keeps freed blocks cached. Large tensors that are freed and then
requested in another size (logits, their gradients, recomputed blocks) leave segments
that the next request cannot reuse: that fragmentation grows with the size of those
transient tensors. Fitted on the H100 runs of shared/groundtruth (2026-11): see
FRAGMENTATION_* below.
"""
from __future__ import annotations

MIB = 2**20

# reserved - peak_allocated ~ FRAGMENTATION_FIXED + FRAGMENTATION_PER_TRANSIENT x (largest
# transient: loss buffers, a recomputed block + its backward, the optimizer's temporaries).
# Least-squares fit over the 102 non-OOM H100 runs of shared/groundtruth (2026-11-25):
# residual median 598 MiB, worst 4.7 GiB (fragmentation is history-dependent; the peak of
# the whole run, first step included, sets max_memory_reserved). A term in the peak itself
# did not help (its coefficient fitted to ~0).
FRAGMENTATION_FIXED_BYTES = 586 * MIB
FRAGMENTATION_PER_TRANSIENT = 0.174


def allocator_slack_bytes(largest_transient_bytes: int) -> int:
    """Reserved-over-allocated bytes at the peak."""
    return int(FRAGMENTATION_FIXED_BYTES + FRAGMENTATION_PER_TRANSIENT * max(0, largest_transient_bytes))
