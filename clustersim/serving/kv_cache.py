"""Paged KV-cache accounting for one replica: blocks of `block_size` tokens.

Only counts matter to the simulator (which block holds what does not change timing), so
the manager tracks blocks per request and the total in use. The invariant the engine
relies on: a request holding `c` computed tokens holds exactly ceil(c / block_size)
blocks, and `num_used_blocks <= num_total_blocks` always.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def blocks_for(num_tokens: int, block_size: int) -> int:
    """Blocks needed to hold num_tokens tokens of KV.

    >>> blocks_for(0, 16), blocks_for(1, 16), blocks_for(16, 16), blocks_for(17, 16)
    (0, 1, 1, 2)
    """
    return -(-num_tokens // block_size)


@dataclass(slots=True)
class KVCache:
    """Block counts of one replica's KV cache."""

    num_total_blocks: int
    block_size: int
    num_used_blocks: int = 0
    _held: dict[int, int] = field(default_factory=dict)

    @property
    def num_free_blocks(self) -> int:
        return self.num_total_blocks - self.num_used_blocks

    def num_held(self, request_id: int) -> int:
        return self._held.get(request_id, 0)

    def extra_blocks(self, request_id: int, num_tokens: int) -> int:
        """Blocks request_id still needs to hold num_tokens tokens in total."""
        return max(0, blocks_for(num_tokens, self.block_size) - self._held.get(request_id, 0))

    def allocate(self, request_id: int, num_tokens: int) -> bool:
        """Grow request_id's holding to num_tokens tokens; False (nothing changes) if it does not fit."""
        extra = self.extra_blocks(request_id, num_tokens)
        if extra > self.num_free_blocks:
            return False
        if extra:
            self._held[request_id] = self._held.get(request_id, 0) + extra
            self.num_used_blocks += extra
        return True

    def free(self, request_id: int) -> None:
        """Release every block request_id holds (finish, preemption or loss)."""
        self.num_used_blocks -= self._held.pop(request_id, 0)
