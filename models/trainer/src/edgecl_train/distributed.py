"""Multi-GPU data parallelism via `torchrun` (DDP). Not exercised on the CPU-only machine this was
written on; the code path is guarded so a single-process run never touches torch.distributed.

Under `torchrun --nproc_per_node=G -m edgecl_train run ...`, each rank trains on its share of every
stream batch (batch[rank::G], so the stream batch stays the configured size overall), keeps its own
replay memory, and DDP averages the gradients. Rank 0 evaluates, writes reports and exports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "nccl"

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env() -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    # EDGECL_DDP_BACKEND=gloo runs the same code on CPU processes (how the logic is tested without GPUs).
    backend = os.environ.get("EDGECL_DDP_BACKEND", "nccl")
    local = int(os.environ["LOCAL_RANK"])
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise RuntimeError("torchrun with WORLD_SIZE > 1 needs CUDA GPUs for NCCL "
                               "(EDGECL_DDP_BACKEND=gloo runs on CPU)")
        torch.cuda.set_device(local)
    dist.init_process_group(backend)
    return DistInfo(rank=dist.get_rank(), world_size=world, local_rank=local, backend=backend)


def shutdown(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
