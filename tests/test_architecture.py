"""The package's shape: imports point one way, laws are known only through their records, a short API."""

import ast
import re
from pathlib import Path

import bayes_scaling as bs

ROOT = Path(__file__).resolve().parent.parent  # the source tree (CI installs the package into site-packages)
PACKAGE = ROOT / "bayes_scaling"
README = (ROOT / "README.md").read_text()

# Every module of the package, lowest layer first. A module may import only modules of lower layers
# (at any depth of its code: a function-level import counts like any other).
LAYERS = [
    ["_lapack", "_lazy", "data", "laws", "presets", "_programs", "_stats", "_geometry", "_hmc", "_outputs", "_arviz"],
    ["datasets", "priors", "diagnostics", "_evaluate", "isoflop", "_loo"],
    ["simulate", "_model"],
    ["_sampler"],
    ["result"],
    ["_calibration"],
    ["forecast"],
    ["fit"],
    ["backtest", "compare", "optimal", "sbc", "_corpus"],
    ["design"],
    ["review"],
    ["plots"],
    ["report"],
    ["__init__"],
    ["cli"],
]
LAYER = {module: i for i, layer in enumerate(LAYERS) for module in layer}


def imported(path: Path) -> set[str]:
    """The package's modules that the module at ``path`` imports, anywhere in its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:  # from .x import y
                found.add(node.module.split(".")[0])
            else:  # from . import x, y
                found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bayes_scaling"):
            rest = node.module.split(".")[1:]
            found.add(rest[0] if rest else "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "bayes_scaling":
                    found.add("__init__")
                elif alias.name.startswith("bayes_scaling."):
                    found.add(alias.name.split(".")[1])
    return found


def test_every_module_has_a_layer():
    modules = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert sorted(LAYER) == modules
    assert len(LAYER) == sum(len(layer) for layer in LAYERS)


def test_modules_import_only_lower_layers():
    wrong = []
    for path in PACKAGE.glob("*.py"):
        for other in imported(path):
            if LAYER[other] >= LAYER[path.stem]:
                wrong.append(f"{path.stem} (layer {LAYER[path.stem]}) imports {other} (layer {LAYER[other]})")
    assert not wrong, wrong


def test_the_layer_check_sees_function_level_and_relative_imports(tmp_path):
    code = "from . import fit\ndef f():\n    from .review import review\n    import bayes_scaling.cli\n"
    (tmp_path / "x.py").write_text(code)
    assert imported(tmp_path / "x.py") == {"fit", "review", "cli"}


def law_words() -> set[str]:
    """Every registered law's name and parameter names, but the inputs and the noise scale."""
    words = set(bs.laws.names())
    for name in bs.laws.names():
        words |= set(bs.laws.get(name).params)
    return words - {"N", "D", "C", "sigma"}


def test_no_module_but_laws_branches_on_a_law_or_parameter_name():
    """What a law is (its irreducible term, its optimum ...) is read from its record, never from its name."""
    words, found = law_words(), []
    for path in PACKAGE.glob("*.py"):
        if path.stem == "laws":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                parts = [node.left, *node.comparators]
            elif isinstance(node, ast.Subscript):
                parts = [node.slice]
            else:
                continue
            for part in parts:
                if isinstance(part, ast.Constant) and part.value in words:
                    found.append(f"{path.stem}: line {node.lineno}: {part.value!r}")
    assert not found, found


def sixes(tree: ast.AST) -> list[int]:
    """Lines where 6 multiplies something, is a default argument, or is assigned to a FLOP constant."""
    six = lambda n: isinstance(n, ast.Constant) and type(n.value) in (int, float) and n.value == 6  # noqa: E731
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and (six(node.left) or six(node.right)):
            lines.append(node.lineno)
        elif isinstance(node, ast.arguments) and any(six(d) for d in [*node.defaults, *node.kw_defaults]):
            lines.append(node.lineno if hasattr(node, "lineno") else -1)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and six(node.value):
            names = [
                t.id for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if hasattr(t, "id")
            ]
            if any(("FLOP" in n.upper() or n.lower() in ("k", "flops_per_token")) for n in names):
                lines.append(node.lineno)
    return lines


def test_the_flop_constant_is_stated_once():
    """6 FLOP per parameter-token: one constant in data.py; every other module reads it."""
    stated = {path.stem: sixes(ast.parse(path.read_text())) for path in PACKAGE.glob("*.py")}
    stated = {k: v for k, v in stated.items() if v}
    assert list(stated) == ["data"] and len(stated["data"]) == 1, stated
    assert sixes(ast.parse("def f(k=6.0):\n    return 6 * k\n")) == [-1, 2]  # the check sees both


def test_the_public_api_is_short_and_listed_in_the_readme():
    assert 15 <= len(bs.__all__) <= 24, bs.__all__
    section = README.split("## Public API", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`bs\.(\w+)", section))
    assert set(bs.__all__) <= listed, set(bs.__all__) - listed
    assert listed <= set(bs.__all__), listed - set(bs.__all__)


def test_internal_modules_are_private_and_not_exported():
    public = {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_")}
    # The user-facing modules; all others are underscore modules.
    assert public == {
        "backtest",
        "cli",
        "compare",
        "data",
        "datasets",
        "design",
        "diagnostics",
        "fit",
        "forecast",
        "isoflop",
        "laws",
        "optimal",
        "plots",
        "presets",
        "priors",
        "report",
        "result",
        "review",
        "sbc",
        "simulate",
    }
    for name in bs.__all__:
        assert not name.startswith("_")
