"""Paged KV-cache accounting for one replica: blocks of `block_size` tokens.

Only counts matter to the simulator (which block holds what does not change timing), so
the manager tracks blocks per request and the total in use. The invariant the engine
relies on: a request holding `c` computed tokens holds exactly ceil(c / block_size)
blocks, and `num_used_blocks <= num_total_blocks` always.
"""

from __future__ import annotations

from dataclasses import dataclass

from clustersim.serving.request import Request


def blocks_for(num_tokens: int, block_size: int) -> int:
    """Blocks needed to hold num_tokens tokens of KV.

    >>> blocks_for(0, 16), blocks_for(1, 16), blocks_for(16, 16), blocks_for(17, 16)
    (0, 1, 1, 2)
    """
    return -(-num_tokens // block_size)


@dataclass(slots=True)
class KVCache:
    """Block counts of one replica's KV cache. Each request's own count lives on the
    request (`num_kv_blocks`), so the hot path does no dictionary lookups."""

    num_total_blocks: int
    block_size: int
    num_used_blocks: int = 0

    @property
    def num_free_blocks(self) -> int:
        return self.num_total_blocks - self.num_used_blocks

    def extra_blocks(self, request: Request, num_tokens: int) -> int:
        """Blocks the request still needs to hold num_tokens tokens in total."""
        return max(0, blocks_for(num_tokens, self.block_size) - request.num_kv_blocks)

    def allocate(self, request: Request, num_tokens: int) -> bool:
        """Grow the request's holding to num_tokens tokens; False (nothing changes) if it does not fit."""
        extra = blocks_for(num_tokens, self.block_size) - request.num_kv_blocks
        if extra <= 0:
            return True
        if extra > self.num_total_blocks - self.num_used_blocks:
            return False
        request.num_kv_blocks += extra
        self.num_used_blocks += extra
        return True

    def free(self, request: Request) -> None:
        """Release every block the request holds (finish, preemption or loss)."""
        self.num_used_blocks -= request.num_kv_blocks
        request.num_kv_blocks = 0
