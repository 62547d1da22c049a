"""Server: the byte-capacity LRU of loaded models — pure accounting, O(1) per use; the caller passes the clock."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class Slot:
    """One model's charge against the capacity: its bytes (estimated while it loads, measured once loaded)."""

    size: int
    used: float
    pinned: bool = False


class NoRoom(Exception):
    """A load cannot get room now; `retry_after_s` says when the oldest entry passes the churn guard (None: never,
    the model is larger than what unpinned models could ever free)."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ByteLRU:
    """Models charged by bytes. Unpinned ones sit in least-recently-used order; pinned ones are counted but never
    chosen for eviction. `min_age_s` is the churn guard: a model used that recently is never evicted."""

    def __init__(self, capacity: int, min_age_s: float = 0.0) -> None:
        if capacity <= 0:
            raise ValueError(f"the model cache capacity must be a positive number of bytes, got {capacity}")
        self.capacity = capacity
        self.min_age_s = min_age_s
        self.used = 0
        self.pinned_bytes = 0
        self._lru: OrderedDict[str, Slot] = OrderedDict()  # oldest first
        self._pinned: dict[str, Slot] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._lru or name in self._pinned

    def __len__(self) -> int:
        return len(self._lru) + len(self._pinned)

    def touch(self, name: str, now: float) -> None:
        slot = self._lru.get(name)
        if slot is not None:
            slot.used = now
            self._lru.move_to_end(name)

    def charge(self, name: str, size: int, now: float, pinned: bool = False) -> None:
        """Count `name` at `size` bytes (a load reserves its estimate before it starts). Re-charging resizes."""
        self.release(name)
        slot = Slot(max(0, size), now, pinned)
        (self._pinned if pinned else self._lru)[name] = slot
        self.used += slot.size
        if pinned:
            self.pinned_bytes += slot.size

    def resize(self, name: str, size: int) -> int:
        """The measured size replaces the estimate; returns the change in bytes."""
        slot = self._lru.get(name) or self._pinned.get(name)
        if slot is None:
            return 0
        delta = max(0, size) - slot.size
        slot.size += delta
        self.used += delta
        if slot.pinned:
            self.pinned_bytes += delta
        return delta

    def release(self, name: str) -> int:
        slot = self._lru.pop(name, None) or self._pinned.pop(name, None)
        if slot is None:
            return 0
        self.used -= slot.size
        if slot.pinned:
            self.pinned_bytes -= slot.size
        return slot.size

    def size_of(self, name: str) -> int:
        slot = self._lru.get(name) or self._pinned.get(name)
        return slot.size if slot is not None else 0

    def victims(self, need: int, now: float, keep: frozenset[str] = frozenset()) -> list[str]:
        """The least recently used models whose eviction makes room for `need` more bytes (none if it fits).
        Raises NoRoom when the models old enough to evict cannot free enough. Costs O(models chosen + `keep`):
        the walk stops at the first model inside the churn guard, as every later one was used more recently."""
        over = self.used + need - self.capacity
        if over <= 0:
            return []
        if need > self.capacity - self.pinned_bytes:
            raise NoRoom(
                f"a model of {need} bytes does not fit in the model cache: {self.capacity} bytes, "
                f"{self.pinned_bytes} of them pinned",
                None,
            )
        chosen: list[str] = []
        for name, slot in self._lru.items():
            if name in keep:
                continue
            age = now - slot.used
            if age < self.min_age_s:
                raise NoRoom(
                    f"the model cache is full ({self.used} of {self.capacity} bytes) of models used in the last "
                    f"{self.min_age_s:g} s",
                    self.min_age_s - age,
                )
            chosen.append(name)
            over -= slot.size
            if over <= 0:
                return chosen
        raise NoRoom(f"the model cache is full ({self.used} of {self.capacity} bytes) of models being loaded", 1.0)

    def oldest_age(self, now: float) -> float:
        """Seconds since the least recently used unpinned model was used (0 when there is none)."""
        for slot in self._lru.values():
            return now - slot.used
        return 0.0
