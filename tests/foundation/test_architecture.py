"""Every module of the service sits somewhere in the layer contract (pyproject.toml): a new
top-level module that is in no layer and not in the kernel would escape every arrow check."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Not a layer and not the kernel, on purpose: the package marker, and Alembic's scripts
# (env.py imports every model to compare the schema; no module imports them).
OUTSIDE = {"newsletter", "newsletter.migrations"}


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def test_every_top_level_module_is_in_a_layer_or_the_kernel() -> None:
    placed: set[str] = set(OUTSIDE)
    for contract in _contracts():
        if contract["type"] == "layers":
            for layer in contract["layers"]:  # type: ignore[attr-defined]
                placed.update(re.findall(r"[a-z_.]+", str(layer)))
        if str(contract["name"]).startswith("The kernel"):
            placed.update(contract["source_modules"])  # type: ignore[arg-type]
    found = {
        f"newsletter.{path.stem}"
        for path in (ROOT / "newsletter").iterdir()
        if (path.suffix == ".py" or (path / "__init__.py").exists() or path.name == "migrations")
        and path.stem != "__init__"
        and not path.name.startswith((".", "_"))
    } | {"subscribers"}
    assert found - placed == set(), f"in no layer and not in the kernel: {sorted(found - placed)}"
    assert placed - OUTSIDE - found == set(), "the contract names modules that do not exist"


def test_the_kernel_forbids_every_layer() -> None:
    contracts = _contracts()
    layers = next(c for c in contracts if c["type"] == "layers")
    named = {m for layer in layers["layers"] for m in re.findall(r"[a-z_.]+", str(layer))}  # type: ignore[attr-defined]
    kernel = next(c for c in contracts if str(c["name"]).startswith("The kernel"))
    assert named == set(kernel["forbidden_modules"])  # type: ignore[arg-type]
