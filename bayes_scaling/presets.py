"""Named forecast targets: the one place for well-known training runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """A forecast target: a model size N and token count D, or a compute budget C (FLOP) alone.

    With C alone, N and D are split compute-optimally by the fitted law.
    """

    name: str
    N: float | None = None
    D: float | None = None
    C: float | None = None

    def __post_init__(self) -> None:
        if self.C is None and (self.N is None or self.D is None):
            raise ValueError(f"target {self.name!r}: give N and D, or C")
        for key in ("N", "D", "C"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ValueError(f"target {self.name!r}: {key} must be positive, got {value}")


PRESETS: dict[str, Target] = {
    # Brown et al. (2020): 175B parameters, 300B tokens.
    "gpt3": Target("GPT-3", N=175e9, D=300e9),
    # Rae et al. (2021): 280B parameters, 300B tokens.
    "gopher": Target("Gopher", N=280e9, D=300e9),
    # Hoffmann et al. (2022): 70B parameters, 1.4T tokens (5.76e23 FLOP in the paper).
    "chinchilla": Target("Chinchilla", N=70e9, D=1.4e12),
    # About 2.1e25 FLOP (Epoch AI's estimate of GPT-4's training compute), split compute-optimally.
    "gpt4": Target("GPT-4 scale", C=2.1e25),
}


def preset(name: str) -> Target:
    """The named target (``gpt3``, ``gopher``, ``chinchilla``, ``gpt4``)."""
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
