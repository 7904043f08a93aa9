"""The architecture as a rule: imports only point down the stack.

Every import in pvae/, tune/ and analysis/ (module level and inside functions alike) is
read from the source and checked against the layer order of the data flow. A module may
import its own layer and the layers below it, never one above; only tune/ imports Ray.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# lowest first; a name matches itself and everything below it in the package tree
LAYERS = (
    ("pvae.core",),  # errors, warnings, atomic writes, progress, provenance, device, nn parts
    ("pvae.physics",),  # porosity, connectivity, Lattice Boltzmann
    ("pvae.data",),  # store, imaging, microstructures, splits, symmetry, default dataset
    ("pvae.surrogate",),  # the CNN permeability surrogate and its labelling
    ("pvae.vae",),  # the pVAE: model, training, bundles, evaluation, fidelity
    ("pvae.design",),  # latent tools, interpolation, inverse design
    ("tune",),  # everything Ray
    ("analysis",),  # study results to a production model
    ("pvae.cli", "pvae.__main__", "tune.tune_vae", "pvae"),  # commands and entry points
)
RAY_LAYERS = {"tune", "pvae.cli"}  # the only ones that may import ray (the CLI: via tune)


def layer(module: str) -> int | None:
    """Index in :data:`LAYERS` of a module, the longest matching prefix; None outside."""
    best = None
    for index, names in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                if best is None or len(name) > len(best[1]):
                    best = (index, name)
    return None if best is None else best[0]


def imports(path: Path):
    """(line, imported module, names) of every absolute import in a file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = sorted(p for top in ("pvae", "tune", "analysis") for p in (ROOT / top).rglob("*.py"))


def test_layers_cover_every_module():
    assert SOURCES
    assert [module_name(p) for p in SOURCES if layer(module_name(p)) is None] == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_the_stack(path):
    me = module_name(path)
    mine = layer(me)
    upward = []
    for line, target, names in imports(path):
        if target == "pvae" and set(names) <= {"__version__"}:
            continue  # the version constant of the package root
        theirs = layer(target)
        if theirs is not None and theirs > mine:
            upward.append(f"{path.name}:{line} imports {target} ({LAYERS[theirs][0]})")
        if target.split(".")[0] == "ray" and LAYERS[mine][0] not in RAY_LAYERS:
            upward.append(f"{path.name}:{line} imports {target} outside tune/")
    assert not upward, f"{me} ({LAYERS[mine][0]}): " + "; ".join(upward)


def test_the_rule_catches_an_upward_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from tune.study import run_study\n")
    assert [t for _, t, _ in imports(probe)] == ["tune.study"]
    assert layer("tune.study") > layer("pvae.data.store.reader") > layer("pvae.core.errors")
    assert layer("tune.tune_vae") == layer("pvae.cli.data") == len(LAYERS) - 1
