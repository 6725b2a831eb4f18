"""Loading and validating training runs.

Every value is read as NumPy float64 and logged there, before any array reaches JAX:
token counts above 2**31 would overflow JAX's default int32, and FLOP counts near
1e25 lose precision in float32 unless logged first.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

#: FLOP per parameter per training token (forward and backward pass): C = 6·N·D. The one place this
#: package states it; every default that splits or fills compute reads it from here.
FLOPS_PER_PARAM_TOKEN = 6.0


def checked_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as an int, or a ValueError naming it: a non-negative integer (JAX's keys and NumPy's generators
    both take one; a negative seed worked for some fits and stopped others deep inside NumPy)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


def at_ratio(
    flops: np.ndarray | float, tokens_per_param: np.ndarray | float, k: float = FLOPS_PER_PARAM_TOKEN
) -> tuple[np.ndarray, np.ndarray]:
    """Parameters N and tokens D of runs of compute C trained at M tokens per parameter: N = sqrt(C / (k·M)),
    D = M·N (float64; C and M broadcast against each other)."""
    c, m = np.broadcast_arrays(np.asarray(flops, np.float64), np.asarray(tokens_per_param, np.float64))
    if not (np.all(c > 0) and np.all(m > 0)):
        raise ValueError("compute budgets and tokens per parameter must be positive")
    n = np.sqrt(c / (k * m))
    return n, m * n


#: Ranges that every real training run falls in: parameters N, training tokens D, training FLOP C.
#: A value outside is an error (a wrong unit, a wrong column) unless ``allow_unusual`` says it is intended.
PLAUSIBLE = {"N": (1e3, 1e15), "D": (1e3, 1e17), "C": (1e6, 1e33)}
#: Losses above this many nats per token come from no language model trained beyond its first steps
#: (a uniform guess over a 1e8-token vocabulary is 18.4): likely a perplexity or a sum, not a mean loss.
LOSS_MAX = 20.0
#: What each input is, for messages.
_WHAT = {"N": "parameters", "D": "training tokens", "C": "training FLOP"}


class DataWarning(UserWarning):
    """Data that load but look suspicious (duplicate rows, compute far from 6·N·D)."""


class _Law(Protocol):  # what warn_repeats reads of a law (laws.Law; data sits below laws)
    name: str
    inputs: tuple[str, ...]


def warn_repeats(law: _Law, unique: object, seen: object, source: str, noun: str, stacklevel: int = 3) -> None:
    """Warn (:class:`DataWarning`) when runs or targets repeat their data but ``law`` reads every token as fresh.

    Parameters
    ----------
    law : the law; one with the unique-tokens input ``U`` reads repeats, and nothing is said.
    unique, seen : unique tokens U and tokens seen D, broadcastable arrays (a NaN U is a single epoch).
    source, noun : for the message: where the rows come from ("runs.csv", "forecast") and what they are
        ("run(s)", "target(s)").
    """
    if "U" in law.inputs:
        return
    u, d = np.broadcast_arrays(np.asarray(unique, np.float64), np.asarray(seen, np.float64))
    repeated = int(np.sum(u < d * (1 - 1e-9)))  # NaN compares False: a single epoch
    if repeated:
        warnings.warn(
            f"{source}: {repeated} {noun} repeat their data (unique tokens below tokens seen), but law "
            f"{law.name!r} reads every token as fresh; the data-constrained law reads repeats (--law "
            "data-constrained, law='data-constrained')",
            DataWarning,
            stacklevel=stacklevel,
        )


@dataclass(frozen=True)
class Dataset:
    """Validated training runs.

    Attributes
    ----------
    frame : DataFrame with float64 columns ``N`` (parameters), ``D`` (training
        tokens), ``C`` (training FLOP) and ``loss`` (nats/token, or the metric),
        one row per run; runs that repeat their data add ``U`` (unique tokens), runs with known
        embedding parameters ``N_embedding``, runs in groups a text column ``group``.
    source : where the runs came from (a file path or ``"your DataFrame"``).
    columns : the user's column names, ``{"N": ..., "D": ..., "C": ..., "loss": ...}``, and what
        ``N`` counts: ``columns["params"]``, ``"total"`` or ``"non-embedding"`` (absent: total).
    """

    frame: pd.DataFrame
    source: str
    columns: dict[str, str | None]

    def __len__(self) -> int:
        return len(self.frame)

    def logs(self) -> dict[str, np.ndarray]:
        """Natural logs of ``N``, ``D``, ``C`` and ``loss``, float64 arrays of shape (n,)."""
        return {k: np.log(self.frame[k].to_numpy(np.float64)) for k in ("N", "D", "C", "loss")}

    @property
    def counted(self) -> str:
        """What ``N`` counts: ``"total"`` (the default) or ``"non-embedding"``."""
        return self.columns.get("params") or "total"

    @property
    def metric(self) -> str | None:
        """The score's name when the loss column is a score (read with ``metric=True``: the law fits
        ``-log(score)``), else None."""
        return str(self.columns.get("loss") or "score") if self.columns.get("metric") else None

    @property
    def labels(self) -> list[str]:
        """The group labels, sorted; empty when the runs have no groups."""
        return sorted(set(self.frame["group"])) if "group" in self.frame.columns else []

    def drop_highest(self, k: int) -> Dataset:
        """The runs without the ``k`` highest-loss ones (Epoch AI dropped 5 of the Chinchilla runs)."""
        keep = np.ones(len(self), bool)
        keep[np.argsort(self.frame["loss"].to_numpy())[::-1][:k]] = False
        return self.subset(keep)

    def split(self, lengths: Sequence[int]) -> list[Dataset]:
        """Consecutive pieces of ``lengths[i]`` runs each (they must add up to ``len(self)``)."""
        ends = np.cumsum(lengths)
        if ends[-1] != len(self):
            raise ValueError(f"{self.source}: pieces of {int(ends[-1])} runs from {len(self)}")
        if "group" in self.frame.columns:  # mixed column types: slice the frame itself
            pieces = [
                self.frame.iloc[end - n : end].reset_index(drop=True) for n, end in zip(lengths, ends, strict=True)
            ]
            return [Dataset(piece, self.source, self.columns) for piece in pieces]
        values, names = self.frame.to_numpy(), self.frame.columns
        return [
            Dataset(pd.DataFrame(values[end - n : end], columns=names), self.source, self.columns)
            for n, end in zip(lengths, ends, strict=True)
        ]

    def subset(self, mask: np.ndarray) -> Dataset:
        """The runs where boolean ``mask`` (shape (n,)) is true."""
        return Dataset(self.frame[np.asarray(mask)].reset_index(drop=True), self.source, self.columns)


#: How a user names each column :func:`load_data` reads: its keyword, and the command line's flag.
NAMED_BY = {"N": ("n", "--n-col"), "D": ("d", "--d-col"), "C": ("c", "--c-col"), "loss": ("loss", "--loss-col")}


def _require(frame: pd.DataFrame, column: str, source: str, kind: str = "", role: str | None = None) -> None:
    """An error naming the source, the missing column (of ``kind``: ``"group "``, ...) and the columns found; for
    an input or the loss (``role``: a key of :data:`NAMED_BY`), how to name another column, and the columns found
    that may be it: the name in other case, the name and a suffix (an isoflop table's ``loss_star``), the input's
    letter (``N``)."""
    if column not in frame.columns:
        found = ", ".join(map(str, frame.columns))
        hint = ""
        if role is not None:
            keyword, flag = NAMED_BY[role]
            names = {column.lower(), role.lower()}  # 'Loss', 'loss_star'; for N, D, C also a column so named
            like = [
                str(c)
                for c in frame.columns
                if str(c).lower() in names or str(c).lower().startswith(column.lower() + "_")
            ]
            hint = f"; name the column to read with {flag} (load_data(..., {keyword}=...))" + (
                f", perhaps {', '.join(like)}" if like else ""
            )
        raise ValueError(f"{source}: missing {kind}column {column!r} (columns found: {found}){hint}")


def _where(source: str, row: int) -> str:
    """Name a data row for an error message: 0-based row ``row`` of the data."""
    if source == "your DataFrame":
        return f"row {row}"
    return f"row {row + 1} (line {row + 2})"


def _column(frame: pd.DataFrame, column: str, source: str, *, metric: bool = False, blank: bool = False) -> np.ndarray:
    """One validated column as float64: numeric, finite and positive (a metric: in (0, 1]); with ``blank``,
    empty cells are allowed and stay NaN."""
    raw = frame[column]
    if pd.api.types.is_bool_dtype(raw.dtype):
        raise ValueError(f"{source}: column {column!r} holds true/false values, not numbers")
    if pd.api.types.is_numeric_dtype(raw.dtype):
        values = raw.to_numpy(np.float64)  # already numbers: nothing to parse
    else:
        values = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)
        bad = np.isnan(values) & raw.notna().to_numpy()  # NaN from text: "nan"/"inf" (checked next) or not a number
        if bad.any():
            spelled = raw.astype(str).str.strip().str.lower().isin(["nan", "inf", "-inf", "+inf", "infinity"])
            bad &= ~spelled.to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{source}: column {column!r}, {_where(source, row)}: non-numeric value {raw.iloc[row]!r}")
    bad = ~np.isfinite(values)
    if blank:
        bad &= raw.notna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        where = f"{source}: column {column!r}, {_where(source, row)}"
        if np.isnan(values[row]):
            raise ValueError(f"{where}: no value (an empty cell, or NaN): leave the run out or give its value")
        raise ValueError(f"{where}: value is {values[row]} (infinite)")
    bad = values <= 0
    if bad.any():
        row = int(np.argmax(bad))
        where = f"{source}: column {column!r}, {_where(source, row)}"
        if metric:  # a model that scored 0 (a small one, on a hard benchmark): common, and not a typo
            raise ValueError(
                f"{where}: metric {values[row]:g} is not in (0, 1]: the law fits -log(score), infinite at 0; "
                "leave out the runs that scored 0"
            )
        raise ValueError(f"{where}: value {values[row]:g} is not positive")
    if metric:
        bad = values > 1
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"{source}: column {column!r}, {_where(source, row)}: metric {values[row]:g} is not in (0, 1]"
            )
    return values


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV file as a DataFrame (gzip-compressed or not); other kinds of file are named in the error."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder, not a CSV file") from None
    compression = "infer"
    if head.startswith(b"\x1f\x8b"):
        compression = "gzip"  # gzip data, whatever the name says
    elif head.startswith(b"PK\x03\x04"):
        raise ValueError(f"{path}: is a ZIP archive (an Excel .xlsx workbook?), not a CSV file; save it as CSV")
    elif head.startswith(b"\xd0\xcf\x11\xe0"):
        raise ValueError(f"{path}: is an old Excel (.xls) or Office file, not a CSV file; save it as CSV")
    elif head.startswith((b"\x89HDF", b"CDF\x01", b"CDF\x02")):
        raise ValueError(f"{path}: is a netCDF/HDF5 file (a saved result? read it with bayes_scaling.load), not a CSV")
    try:
        # Only empty cells are missing; text such as "n/a" is reported as non-numeric.
        return pd.read_csv(path, keep_default_na=False, na_values=[""], compression=compression)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text CSV file (it holds bytes that are not UTF-8 text)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable CSV file ({err})") from None


def _plausible(values: np.ndarray, key: str, column: str, source: str, allow: bool) -> None:
    """Values of input ``key`` (``N``, ``D``, ``C``) outside :data:`PLAUSIBLE`: an error, or a warning when allowed."""
    lo, hi = PLAUSIBLE[key]
    bad = (values < lo) | (values > hi)
    if not bad.any():
        return
    row = int(np.argmax(bad))
    text = (
        f"{source}: column {column!r}, {_where(source, row)}: {values[row]:g} {_WHAT[key]} lies outside what any "
        f"training run has ({lo:g} to {hi:g}; {int(bad.sum())} row(s))"
    )
    if allow:
        warnings.warn(text, DataWarning, stacklevel=3)
        return
    raise ValueError(
        text + "; check the column's units (--units, or units= in Python), or allow it with --allow-unusual"
        " (allow_unusual=True)"
    )


def _duplicated(rows: np.ndarray) -> np.ndarray:
    """Rows equal to an earlier row (NaN equal to NaN, as pandas), shape (n, k) -> (n,) bool.

    Kept values are positive, so NaN (an input left unknown) becomes -1 for the comparison.
    """
    _, first = np.unique(np.where(np.isnan(rows), -1.0, rows), axis=0, return_index=True)
    dup = np.ones(len(rows), bool)
    dup[first] = False
    return dup


def load_data(
    data: str | Path | pd.DataFrame,
    *,
    n: str = "params",
    d: str = "tokens",
    c: str | None = "flops",
    loss: str = "loss",
    u: str | None = "unique_tokens",
    needs: tuple[str, ...] = ("N", "D"),
    metric: bool = False,
    units: dict[str, float] | None = None,
    min_rows: int = 1,
    flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN,
    group: str | Sequence[str] | None = None,
    allow_unusual: bool = False,
    params: str = "total",
    embedding: str | None = "embedding_params",
    vocab: float | str | None = None,
    width: str | None = None,
    fit_on: str | None = None,
    _batch: np.ndarray | None = None,
) -> Dataset:
    """Read and validate training runs from a CSV path or a DataFrame.

    Parameters
    ----------
    data : CSV path or DataFrame, one row per training run.
    n, d, c, loss : column names of parameters, training tokens, training FLOP and loss
        (or metric). If the ``c`` column is absent (or ``c`` is None), compute is
        ``flops_per_param_token * N * D``.
    needs : the inputs the law reads (``law.inputs``); their columns must be present
        and valid, and so must the compute column whenever it is present. Other input
        columns are read when present (unvalidated, NaN where unreadable) and left NaN
        when absent.
    metric : the ``loss`` column is a score in (0, 1] (a pass rate, an accuracy); the
        loss fitted is ``-log(score)``.
    u : column of unique training tokens, for runs that repeat their data over ``D / U`` epochs
        (read when present or when ``needs`` holds ``"U"``); an empty cell, or no such column, is a
        run that saw each token once (``U = D``). Unique tokens above tokens seen, zero, negative
        or text are errors.
    units : multipliers of input columns, e.g. ``{"C": 1e21, "N": 1e9}`` when FLOP are
        given in units of 1e21 and parameters in billions (unique tokens ``U`` take ``D``'s
        unless given).
    min_rows : reject data with fewer rows (a fit needs its parameter count plus one).
    flops_per_param_token : k in C = k·N·D, used to fill and to check compute.
    group : a column (or several, combined as ``a/b``) that names each run's group: the data set,
        set-up or model family it belongs to; a grouped fit shares, pools or separates each
        parameter across groups. Every run needs a label.
    allow_unusual : values outside what real training runs have (:data:`PLAUSIBLE`: N in
        1e3-1e15, D in 1e3-1e17, C in 1e6-1e33; a loss above :data:`LOSS_MAX` = 20 nats/token
        unless ``metric``) are warnings instead of errors.
    params : what the ``n`` column counts: ``"total"`` (every parameter, embeddings included:
        Hoffmann et al.'s convention) or ``"non-embedding"`` (Kaplan et al.'s).
    embedding, vocab, width : the embedding parameters of each run: a column (``embedding``, read
        when present), or the vocabulary size (a number, or a column) times the model width (a
        column), one embedding matrix (tied input and output embeddings; double ``vocab`` for untied).
    fit_on : the count the law is fitted on, ``"total"`` or ``"non-embedding"`` (default: what
        ``params`` says); the other needs the embedding parameters. The frame's ``N`` is that count,
        its ``N_embedding`` the embedding parameters (when known), and ``columns["params"]`` says which.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        Naming the source, column and first offending row, for a missing column,
        a non-numeric or true/false value, NaN or inf, a zero or negative value (a metric above 1),
        an implausible value (see ``allow_unusual``), too few rows, or a file that is not a CSV.
    """
    if isinstance(data, pd.DataFrame):
        source, frame = "your DataFrame", data
    else:
        source = str(data)
        frame = _read_csv(Path(data))

    names = {"N": n, "D": d, "C": c}
    has_c = c is not None and c in frame.columns
    required = {k for k in needs if k in ("N", "D")}
    if "C" in needs and not has_c:
        required |= {"N", "D"}  # compute comes from 6·N·D
    elif has_c:
        required.add("C")  # a compute column, when given, is always checked: it sets the extrapolation axis
    for role, column in [("loss", loss), *((k, names[k]) for k in ("N", "D", "C") if k in required)]:
        _require(frame, column, source, role=role)

    scale = {"N": 1.0, "D": 1.0, "C": 1.0, **(units or {})}
    out = {"loss": _column(frame, loss, source, metric=metric)}
    for key in ("N", "D", "C"):
        if key in required:
            out[key] = _column(frame, names[key], source) * scale[key]
        elif names[key] is not None and names[key] in frame.columns:
            values = pd.to_numeric(frame[names[key]], errors="coerce").to_numpy(np.float64) * scale[key]
            out[key] = np.where(values > 0, values, np.nan)
        else:
            out[key] = np.full(len(frame), np.nan)
    if metric:
        out["loss"] = -np.log(out["loss"])
        zero = out["loss"] <= 0
        if zero.any():
            row = int(np.argmax(zero))
            raise ValueError(f"{source}: column {loss!r}, {_where(source, row)}: metric 1 leaves no loss -log(score)")
    if not has_c:
        out["C"] = flops_per_param_token * out["N"] * out["D"]
    if "U" in needs or (u is not None and u in frame.columns):
        out["U"] = _unique(frame, u, out["D"], scale.get("U", scale["D"]), source, d)
    for key in ("N", "D", "C"):
        if key in required:
            _plausible(out[key], key, names[key] or "(6·N·D)", source, allow_unusual)
    if not metric and (out["loss"] > LOSS_MAX).any():
        row = int(np.argmax(out["loss"] > LOSS_MAX))
        text = (
            f"{source}: column {loss!r}, {_where(source, row)}: loss {out['loss'][row]:g} is above {LOSS_MAX:g} "
            "nats/token, more than any trained language model; a perplexity (take its log), a loss in bits "
            "(multiply by ln 2) or summed over tokens? A score or accuracy is read with --metric (metric=True)"
        )
        if not allow_unusual:
            raise ValueError(text + "; allow it with --allow-unusual (allow_unusual=True)")
        warnings.warn(text, DataWarning, stacklevel=2)

    if len(frame) < min_rows:
        raise ValueError(f"{source}: {len(frame)} rows, but the model needs at least {min_rows}")

    clean = pd.DataFrame({k: out[k] for k in ("N", "D", "C", "U", "loss") if k in out})
    if group is not None:
        names = [group] if isinstance(group, str) else list(group)
        clean["group"] = _labels(frame, names, source)
        if clean["group"].nunique() == 1:
            warnings.warn(
                f"{source}: group column {' / '.join(map(repr, names))} holds one group "
                f"({clean['group'].iloc[0]!r}): how groups differ, and a new group's forecast, come from the "
                "priors alone; fit without groups, or with runs of several groups",
                DataWarning,
                stacklevel=2,
            )
    numbers = clean.drop(columns="group", errors="ignore").to_numpy(np.float64)
    keys = [] if _batch is None else [_batch]
    if group is not None:
        keys.append(np.unique(clean["group"].to_numpy(), return_inverse=True)[1])
    rows = np.column_stack([*keys, numbers]) if keys else numbers
    dup = _duplicated(rows)
    if dup.any():
        rows = np.flatnonzero(dup)
        warnings.warn(
            f"{source}: {len(rows)} duplicate row(s), first at {_where(source, int(rows[0]))}",
            DataWarning,
            stacklevel=2,
        )
    if has_c:
        ratio = out["C"] / (flops_per_param_token * out["N"] * out["D"])
        far = np.abs(np.log(ratio)) > np.log(1.25)  # NaN where N or D are unknown: no warning
        if far.any():
            row = int(np.argmax(far))
            warnings.warn(
                f"{source}: {int(far.sum())} row(s) have compute more than 25% away from "
                f"{flops_per_param_token:g}·N·D, first at {_where(source, row)} "
                f"(C / ({flops_per_param_token:g}·N·D) = {ratio[row]:.3g})",
                DataWarning,
                stacklevel=2,
            )
    counted = _counts(frame, clean, params, embedding, vocab, width, fit_on, source, n, scale["N"])
    columns = {"N": n, "D": d, "C": c if has_c else None, "loss": loss, "metric": metric, "group": group}
    columns |= {"params": counted[0], "embedding": counted[1]}
    if "U" in out:
        columns["U"] = u if u is not None and u in frame.columns else None
    return Dataset(clean, source, columns)


#: What a parameter count may count.
COUNTS = ("total", "non-embedding")


def _counts(
    frame: pd.DataFrame,
    clean: pd.DataFrame,
    params: str,
    embedding: str | None,
    vocab: float | str | None,
    width: str | None,
    fit_on: str | None,
    source: str,
    n: str,
    scale: float,
) -> tuple[str, str | None]:
    """Set ``clean``'s ``N`` to the count fitted on and add ``N_embedding`` where embeddings are known.

    Returns the count fitted on and where the embedding parameters came from (None: unknown). Errors
    name the file, column and row of an embedding count that is not a positive number, or not below a
    total it is part of.
    """
    for name, value in (("params", params), ("fit_on", fit_on or params)):
        if value not in COUNTS:
            raise ValueError(f"{source}: {name} = {value!r}; a parameter count is one of {', '.join(COUNTS)}")
    fit_on = fit_on or params
    if embedding is not None and embedding in frame.columns:
        if vocab is not None or width is not None:
            raise ValueError(
                f"{source}: give the embedding parameters once: column {embedding!r} or vocabulary size and width"
            )
        emb = _column(frame, embedding, source) * scale
        said = f"column {embedding!r}"
    elif vocab is not None or width is not None:
        if vocab is None or width is None:
            raise ValueError(f"{source}: embedding parameters from vocabulary size and width need both")
        _require(frame, width, source, "width ")
        if isinstance(vocab, str):
            _require(frame, vocab, source, "vocabulary ")
            size, said = _column(frame, vocab, source), f"column {vocab!r} x column {width!r}"
        else:
            if not float(vocab) > 0:
                raise ValueError(f"{source}: vocabulary size {vocab!r} is not a positive number")
            size, said = float(vocab), f"vocabulary {float(vocab):g} x column {width!r}"
        emb = size * _column(frame, width, source)
    else:
        if fit_on != params:
            raise ValueError(
                f"{source}: to fit on {fit_on} parameters when column {n!r} counts {params} ones, give the "
                f"embedding parameters: a column {embedding or 'embedding_params'!r} (--embedding-col) or the "
                "vocabulary size and width (--vocab, --width-col)"
            )
        return fit_on, None
    given = clean["N"].to_numpy()
    if params == "total":
        bad = emb >= given
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"{source}: {said}, {_where(source, row)}: {emb[row]:g} embedding parameters, not fewer than the "
                f"{given[row]:g} parameters in total (column {n!r}); is column {n!r} a non-embedding count "
                "(params='non-embedding', --params-count non-embedding)?"
            )
    total = given if params == "total" else given + emb
    clean["N"] = total if fit_on == "total" else total - emb
    clean["N_embedding"] = emb
    return fit_on, said


def _unique(
    frame: pd.DataFrame, column: str | None, tokens: np.ndarray, scale: float, source: str, d: str
) -> np.ndarray:
    """Unique training tokens per run, float64 (n,): the column's values, ``tokens`` (every token fresh) where a
    cell is empty or there is no column; errors name the row of text, a value not positive or above ``tokens``."""
    if column is None or column not in frame.columns:
        return tokens.copy()
    values = _column(frame, column, source, blank=True) * scale
    above = values > tokens * (1 + 1e-9)  # NaN compares false: an empty cell is a single epoch
    if above.any():
        row = int(np.argmax(above))
        raise ValueError(
            f"{source}: column {column!r}, {_where(source, row)}: {values[row]:g} unique tokens, more than the "
            f"{tokens[row]:g} tokens seen (column {d!r}); unique tokens count each distinct token once"
        )
    return np.where(np.isnan(values), tokens, values)


def _labels(frame: pd.DataFrame, names: list[str], source: str) -> np.ndarray:
    """Each run's group label from the columns ``names`` (several joined by ``/``); errors name column and row."""
    for name in names:
        _require(frame, name, source, "group ")
    parts = []
    for name in names:
        raw = frame[name]
        text = raw.astype(str).str.strip()
        empty = raw.isna().to_numpy() | (text == "").to_numpy() | text.str.lower().isin(["nan", "none"]).to_numpy()
        if empty.any():
            row = int(np.argmax(empty))
            raise ValueError(f"{source}: group column {name!r}, {_where(source, row)}: no group label (empty or NaN)")
        parts.append(text.to_numpy())
    return np.array(["/".join(values) for values in zip(*parts, strict=True)], dtype=object)


def _load_together(frames: Sequence[pd.DataFrame], **options: object) -> list[Dataset] | None:
    """Validate many DataFrames in one pass: ``[load_data(f, **options) for f in frames]``, fast.

    Checking a thousand small frames one by one costs more than fitting them on a GPU.
    Frames with the same columns are concatenated and checked once. Whenever that check
    finds anything to say (an error, a warning, a frame too short), this returns None
    and the caller loads each frame with :func:`load_data`, which says it for the right
    frame and row.

    Returns
    -------
    One Dataset per frame, or None.
    """
    if not frames or not all(isinstance(f, pd.DataFrame) and f.columns.equals(frames[0].columns) for f in frames):
        return None
    lengths = [len(f) for f in frames]
    if min(lengths) < int(options.get("min_rows", 1)):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        try:
            batch = np.repeat(np.arange(len(frames)), lengths)
            whole = load_data(pd.concat(frames, ignore_index=True), **{**options, "min_rows": 1, "_batch": batch})
        except (ValueError, DataWarning):
            return None
    return whole.split(lengths)
