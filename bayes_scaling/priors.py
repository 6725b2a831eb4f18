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

A file may also describe its law (``name``, ``formula``, ``inputs``, ``parameters``, as the
shipped files do); what it states is checked against the law's record in
:mod:`bayes_scaling.laws` when it is read, so the two cannot disagree.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .laws import Law

if TYPE_CHECKING:
    import numpyro.distributions as dist

#: Each prior's NumPyro distribution (by its name in ``numpyro.distributions``: NumPyro is imported only when a
#: prior is built, which a run whose programs are all stored never does) and arguments.
_DISTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "normal": ("Normal", ("loc", "scale")),
    "lognormal": ("LogNormal", ("loc", "scale")),
    "halfnormal": ("HalfNormal", ("scale",)),
    "truncnormal": ("TruncatedNormal", ("loc", "scale", "low", "high")),
    "uniform": ("Uniform", ("low", "high")),
    "gamma": ("Gamma", ("concentration", "rate")),
    "exponential": ("Exponential", ("rate",)),
    "beta": ("Beta", ("concentration1", "concentration0")),
}


#: Arguments that must be positive.
_POSITIVE = ("scale", "concentration", "rate", "concentration1", "concentration0")


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
        values = {}
        for k in needed:
            try:
                values[k] = float(args[k])
            except (TypeError, ValueError):
                raise ValueError(f"prior {dist!r}: {k} must be a number, got {args[k]!r}") from None
        bad = [k for k in _POSITIVE if k in values and not values[k] > 0]
        if bad:
            raise ValueError(f"prior {dist!r}: {bad[0]} must be positive, got {values[bad[0]]:g}")
        if "low" in values and not values["low"] < values["high"]:
            raise ValueError(f"prior {dist!r}: low ({values['low']:g}) must lie below high ({values['high']:g})")
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "args", tuple((k, values[k]) for k in needed))

    def build(self, args: Mapping[str, Any] | None = None) -> dist.Distribution:
        """The NumPyro distribution this prior names; ``args`` (arrays, as a compiled model reads them)
        replace its arguments' values."""
        import numpyro.distributions

        cls = getattr(numpyro.distributions, _DISTS[self.dist][0])
        return cls(**(dict(self.args) if args is None else args))

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
    pooling : for runs in groups, how each parameter is shared across them (:data:`POOLING`):
        ``"shared"`` (one value), ``"pooled"`` (a population value and a per-group offset of
        learned scale) or ``"separate"`` (one value per group, independent). Parameters not named
        are shared. Read from the file's ``[pooling]`` table.
    extrapolation : priors of the extrapolation-error scale ``kappa`` along each input
        (``{"N": Prior, "D": Prior}``), read from the file's ``[extrapolation]`` table (keys
        ``kappa_N``, ...): learned across real studies (:mod:`bayes_scaling._corpus`). An input
        it does not name takes ``HalfNormal(0.1)``.
    """

    priors: dict[str, Prior]
    df: float = 5.0
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""
    pooling: dict[str, str] = field(default_factory=dict)
    extrapolation: dict[str, Prior] = field(default_factory=dict)

    def with_priors(self, overrides: Mapping[str, Prior | Mapping[str, Any]] | None) -> Spec:
        """A copy with some priors replaced (values are :class:`Prior` or TOML-like dicts)."""
        if not overrides:
            return self
        priors = dict(self.priors)
        for name, value in overrides.items():
            if name not in priors:
                raise ValueError(f"prior override for unknown parameter {name!r}; known: {', '.join(priors)}")
            priors[name] = value if isinstance(value, Prior) else Prior.from_dict(value, f"prior for {name}")
        return replace(self, priors=priors)

    def with_pooling(self, overrides: Mapping[str, str] | None, where: str = "pooling") -> Spec:
        """A copy with some parameters' pooling replaced (``{"alpha": "pooled"}``)."""
        if not overrides:
            return self
        pooling = dict(self.pooling)
        for name, mode in overrides.items():
            pooling[name] = _mode(name, mode, [k for k in self.priors if k != "sigma"], where)
        return replace(self, pooling=pooling)

    def to_json(self) -> str:
        """Priors and likelihood as JSON (what fixes an ungrouped model; pooling is kept apart)."""
        return json.dumps({"priors": {k: v.to_dict() for k, v in self.priors.items()}, "df": self.df})

    @classmethod
    def from_json(cls, text: str, pooling: Mapping[str, str] | None = None) -> Spec:
        raw = json.loads(text)
        priors = {k: Prior.from_dict(v) for k, v in raw["priors"].items()}
        return cls(priors, float(raw["df"]), pooling=dict(pooling or {}))


#: How a parameter may be shared across groups of runs.
POOLING = ("shared", "pooled", "separate")


def _mode(name: str, mode: object, params: list[str], where: str) -> str:
    """A validated pooling mode for parameter ``name``; errors name ``where`` (a file, a flag)."""
    if name not in params:
        raise ValueError(f"{where}: no parameter {name!r} to pool (parameters: {', '.join(params)})")
    if mode not in POOLING:
        raise ValueError(f"{where}: {name} = {mode!r}; pooling is one of {', '.join(POOLING)}")
    return str(mode)


def model_file(name: str) -> Path | resources.abc.Traversable:
    """Locate ``models/<name>.toml``: the packaged copy, else the repository's ``models/``."""
    packaged = resources.files("bayes_scaling") / "_models" / f"{name}.toml"
    if packaged.is_file():
        return packaged
    repo = Path(__file__).resolve().parent.parent / "models" / f"{name}.toml"
    if repo.is_file():
        return repo
    raise ValueError(f"no prior file for law {name!r}: looked for {packaged} and {repo}")


def read_spec(law: Law, path: str | Path | None = None) -> Spec:
    """Read ``law``'s priors from ``path`` or from its default file in ``models/``.

    Parameters
    ----------
    law : the law whose priors these are; names the default file, and every one of its
        parameters (and ``sigma``) must have a prior.
    path : an explicit TOML file (a user's copy of a ``models/`` file).

    Raises
    ------
    ValueError
        Naming the file (and the table or parameter): unreadable TOML, an unknown
        distribution or a bad argument, a prior for a parameter the law does not have, a
        missing prior, or a description (``name``, ``formula``, ``inputs``, ``parameters``)
        that disagrees with the law's record.
    """
    source = Path(path) if path is not None else model_file(law.name)
    try:
        raw = tomllib.loads(source.read_text())
    except FileNotFoundError:
        raise ValueError(f"prior file {source} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"prior file {source}: {err}") from None
    stated = {
        "name": law.name,
        "formula": law.formula,
        "inputs": list(law.inputs),
        "parameters": list(law.params),
    }
    for key, value in stated.items():
        if key in raw and raw[key] != value:
            raise ValueError(f"prior file {source}: {key} = {raw[key]!r}, but law {law.name!r} has {value!r}")
    tables = raw.get("priors", {})
    lik = raw.get("likelihood", {})
    unknown = [k for k in tables if k not in law.params]
    if unknown:
        raise ValueError(
            f"prior file {source}: [priors] {unknown[0]}: law {law.name!r} has no parameter {unknown[0]!r} "
            f"(its parameters: {', '.join(law.params)}; the noise scale is [likelihood] sigma)"
        )
    priors = {k: Prior.from_dict(v, f"{source}: [priors] {k}") for k, v in tables.items()}
    if "sigma" in lik:
        priors["sigma"] = Prior.from_dict(lik["sigma"], f"{source}: [likelihood] sigma")
    missing = [p for p in (*law.params, "sigma") if p not in priors]
    if missing:
        raise ValueError(f"prior file {source}: no prior for {', '.join(missing)}")
    try:
        df = float(lik.get("df", 5.0))
    except (TypeError, ValueError):
        raise ValueError(f"prior file {source}: [likelihood] df must be a number, got {lik['df']!r}") from None
    if not df > 0:
        raise ValueError(f"prior file {source}: [likelihood] df must be positive, got {df}")
    table = raw.get("pooling", {})
    if not isinstance(table, Mapping):
        raise ValueError(f"prior file {source}: [pooling] must be a table of parameter = mode")
    pooling = {
        name: _mode(name, mode, list(law.params), f"prior file {source}: [pooling]") for name, mode in table.items()
    }
    extrapolation = {}
    for key, value in raw.get("extrapolation", {}).items():
        axis = key.removeprefix("kappa_")
        if not key.startswith("kappa_") or axis not in law.axes:
            raise ValueError(
                f"prior file {source}: [extrapolation] {key}: expected kappa_<input> for an input of law "
                f"{law.name!r} ({', '.join(f'kappa_{x}' for x in law.axes)})"
            )
        prior = Prior.from_dict(value, f"{source}: [extrapolation] {key}")
        if prior.dist not in ("lognormal", "halfnormal"):
            raise ValueError(f"prior file {source}: [extrapolation] {key}: kappa takes a lognormal or halfnormal prior")
        extrapolation[axis] = prior
    return Spec(priors, df, raw.get("references", {}), str(source), pooling, extrapolation)


#: What ``priors=`` may be: a Spec, a TOML file, overrides of the law's default priors, or None.
PriorsLike = Spec | str | Path | Mapping[str, Prior | Mapping[str, Any]] | None


def resolve(law: Law, priors: PriorsLike = None, pooling: Mapping[str, str] | None = None) -> Spec:
    """The Spec a fit of ``law`` uses: ``priors`` as given, or the law's defaults with some replaced.

    Parameters
    ----------
    priors : a :class:`Spec`; a TOML path; a mapping from parameter names to :class:`Prior`
        or ``{"dist": ...}`` tables, overriding the law's default priors (for a law without
        a default file, the mapping must name every parameter and ``sigma``); or None for
        the defaults.
    pooling : overrides of the pooling across groups (:class:`Spec`), e.g. ``{"alpha": "pooled"}``.
    """
    return _resolve(law, priors).with_pooling(pooling)


def _resolve(law: Law, priors: PriorsLike) -> Spec:
    if isinstance(priors, Spec):
        return priors
    if isinstance(priors, str | Path):
        return read_spec(law, priors)
    try:
        defaults = read_spec(law)
    except ValueError as err:
        if not priors or not str(err).startswith("no prior file"):
            raise
        built = {k: v if isinstance(v, Prior) else Prior.from_dict(v, f"prior for {k}") for k, v in priors.items()}
        missing = [p for p in (*law.params, "sigma") if p not in built]
        if missing:
            raise ValueError(
                f"law {law.name!r} has no default prior file: give priors for {', '.join(missing)}"
            ) from None
        return Spec(built, source="Python")
    unknown = [k for k in priors or () if k not in defaults.priors]
    if unknown:
        raise ValueError(f"prior for unknown parameter {unknown[0]!r}; known: {', '.join(defaults.priors)}")
    return defaults.with_priors(priors)
