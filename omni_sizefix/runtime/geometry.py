"""The target geometry of one request, shared by every hook."""

from __future__ import annotations

from typing import Literal, NamedTuple

Kind = Literal["image", "video"]


class TargetGeometry(NamedTuple):
    """Height and width (pixels, plain ints) one request must be rendered at.

    ``kind`` is None where the caller cannot tell (``build_original_prompt``).
    ``requested`` is the size the host parsed from the client, which differs from
    (height, width) only when the size policy snapped it.

    An immutable record built once per sized request: a named tuple, which builds in about
    a third of a frozen dataclass's time (``benchmarks/overhead.py``).
    """

    height: int
    width: int
    kind: Kind | None = "image"
    requested: tuple[int, int] | None = None

    @property
    def snapped(self) -> bool:
        """True when the size policy changed the client's size."""
        return self.requested is not None and self.requested != (self.height, self.width)

    def mm_processor_kwargs(self) -> dict[str, int]:
        """The ``mm_processor_kwargs`` form of this geometry."""
        return {"target_h": self.height, "target_w": self.width}
