"""Priors and likelihood settings, read from the declarative TOML files in ``models/``.

A prior file looks like::

    [priors]
    E = { dist = "lognormal", loc = 0.5, scale = 0.5 }
    alpha = { dist = "truncnormal", loc = 0.35, scale = 0.25, low = 0.0, high = 2.0 }

    [likelihood]
    df = 5.0                                        # Student-t degrees of freedom
    sigma = { dist = "halfnormal", scale = 0.1 }    # scale of the noise on log loss

Lookup order for a family's file: an explicit path, the copy packaged in the wheel
(``bayes_scaling/_models``), then the repository's ``models/`` folder.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpyro.distributions as dist

_DISTS: dict[str, tuple[type, tuple[str, ...]]] = {
    "normal": (dist.Normal, ("loc", "scale")),
    "lognormal": (dist.LogNormal, ("loc", "scale")),
    "halfnormal": (dist.HalfNormal, ("scale",)),
    "truncnormal": (dist.TruncatedNormal, ("loc", "scale", "low", "high")),
    "uniform": (dist.Uniform, ("low", "high")),
    "gamma": (dist.Gamma, ("concentration", "rate")),
    "exponential": (dist.Exponential, ("rate",)),
    "beta": (dist.Beta, ("concentration1", "concentration0")),
}


@dataclass(frozen=True)
class Prior:
    """A named distribution with numeric arguments, e.g. ``Prior("lognormal", loc=0.5, scale=0.5)``."""

    dist: str
    args: tuple[tuple[str, float], ...]

    def __init__(self, dist: str, **args: float) -> None:
        if dist not in _DISTS:
            raise ValueError(f"unknown prior distribution {dist!r}; known: {', '.join(_DISTS)}")
        needed = _DISTS[dist][1]
        missing = [k for k in needed if k not in args]
        extra = [k for k in args if k not in needed]
        if missing or extra:
            raise ValueError(
                f"prior {dist!r} takes arguments {', '.join(needed)}; "
                f"missing {missing or 'none'}, unexpected {extra or 'none'}"
            )
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "args", tuple((k, float(args[k])) for k in needed))

    def build(self) -> dist.Distribution:
        """The NumPyro distribution this prior names."""
        cls, _ = _DISTS[self.dist]
        return cls(**dict(self.args))

    def scaled(self, factor: float) -> Prior:
        """The same prior with its scale argument multiplied by ``factor`` (for sensitivity checks)."""
        args = dict(self.args)
        for key in ("scale",):
            if key in args:
                args[key] *= factor
        return Prior(self.dist, **args)

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.dist, **dict(self.args)}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], where: str = "prior") -> Prior:
        if not isinstance(spec, Mapping) or "dist" not in spec:
            raise ValueError(f"{where}: expected a table with a 'dist' key, got {spec!r}")
        args = {k: v for k, v in spec.items() if k != "dist"}
        try:
            return cls(spec["dist"], **args)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None


@dataclass(frozen=True)
class Spec:
    """Everything the model needs besides the law: priors, likelihood, references.

    Attributes
    ----------
    priors : one :class:`Prior` per law parameter, plus ``sigma`` (noise scale on log loss).
    df : Student-t degrees of freedom of the likelihood on log loss.
    references : published parameter values, ``{source: {param: value}}``.
    source : where the spec was read from.
    """

    priors: dict[str, Prior]
    df: float = 5.0
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""

    def with_priors(self, overrides: Mapping[str, Prior | Mapping[str, Any]] | None) -> Spec:
        """A copy with some priors replaced (values are :class:`Prior` or TOML-like dicts)."""
        if not overrides:
            return self
        priors = dict(self.priors)
        for name, value in overrides.items():
            if name not in priors:
                raise ValueError(f"prior override for unknown parameter {name!r}; known: {', '.join(priors)}")
            priors[name] = value if isinstance(value, Prior) else Prior.from_dict(value, f"prior for {name}")
        return Spec(priors, self.df, self.references, self.source)

    def to_json(self) -> str:
        return json.dumps({"priors": {k: v.to_dict() for k, v in self.priors.items()}, "df": self.df})

    @classmethod
    def from_json(cls, text: str) -> Spec:
        raw = json.loads(text)
        return cls({k: Prior.from_dict(v) for k, v in raw["priors"].items()}, float(raw["df"]))


def model_file(name: str) -> Path | resources.abc.Traversable:
    """Locate ``models/<name>.toml``: the packaged copy, else the repository's ``models/``."""
    packaged = resources.files("bayes_scaling") / "_models" / f"{name}.toml"
    if packaged.is_file():
        return packaged
    repo = Path(__file__).resolve().parent.parent / "models" / f"{name}.toml"
    if repo.is_file():
        return repo
    raise ValueError(f"no prior file for law {name!r}: looked for {packaged} and {repo}")


def read_spec(law_name: str, path: str | Path | None = None, params: tuple[str, ...] | None = None) -> Spec:
    """Read a law's priors from ``path`` or from its default file in ``models/``.

    Parameters
    ----------
    law_name : the law's registry name; names the default file.
    path : an explicit TOML file (a user's copy of a ``models/`` file).
    params : the law's parameter names; every one (and ``sigma``) must have a prior.
    """
    source = Path(path) if path is not None else model_file(law_name)
    try:
        raw = tomllib.loads(source.read_text())
    except FileNotFoundError:
        raise ValueError(f"prior file {source} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"prior file {source}: {err}") from None
    tables = raw.get("priors", {})
    lik = raw.get("likelihood", {})
    priors = {k: Prior.from_dict(v, f"{source}: [priors] {k}") for k, v in tables.items()}
    if "sigma" in lik:
        priors["sigma"] = Prior.from_dict(lik["sigma"], f"{source}: [likelihood] sigma")
    needed = (*(params or ()), "sigma")
    missing = [p for p in needed if p not in priors]
    if missing:
        raise ValueError(f"prior file {source}: no prior for {', '.join(missing)}")
    df = float(lik.get("df", 5.0))
    if not df > 0:
        raise ValueError(f"prior file {source}: [likelihood] df must be positive, got {df}")
    return Spec(priors, df, raw.get("references", {}), str(source))
