"""Every ``--json`` output parses under a strict parser, with one permeability schema."""

import json

import numpy as np
import pytest

from pvae.cli.options import nest_permeability
from pvae.data.store import open_dataset
from pvae.data.store.layout import SURROGATE


def strict(text: str):
    """Parse like ``jq`` or a browser: NaN and Infinity are errors."""

    def refuse(constant):
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def is_tensor(value) -> bool:
    """A 3x3 nested list of numbers or nulls: the permeability shape of every command."""
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(row, list) and len(row) == 3 for row in value)
        and all(v is None or isinstance(v, int | float) for row in value for v in row)
    )


def test_nest_permeability_groups_components_by_prefix():
    record = {"id": 1, "target_k_xx": 1.0, "target_k_zz": 3.0, "k_xy": 0.5,
              "verified_log10_k_xx": -1.0, "score": None}  # fmt: skip
    nested = nest_permeability(record)
    assert nested["target_permeability"] == [[1.0, None, None], [None, None, None],
                                             [None, None, 3.0]]  # fmt: skip
    assert nested["permeability"][0][1] == 0.5
    assert nested["verified_log10_k_xx"] == -1.0 and nested["id"] == 1
    assert not any(key.startswith(("target_k", "k_")) for key in nested)


def test_every_json_output_is_strict_with_one_tensor_shape(trained_run, tmp_path, run_cli):
    run, data = trained_run
    image = tmp_path / "one.npy"
    np.save(image, open_dataset(data).image(0))
    outputs = {}
    code, out, err = run_cli("props", image, "--json", "--tol", "1e-3", "--max-steps", "4000")
    assert code == 0, err
    outputs["props"] = strict(out)
    code, out, err = run_cli("surrogate", "predict", "--model", data / SURROGATE, data, "--json")
    assert code == 0, err
    outputs["predict"] = strict(out)
    code, out, err = run_cli("data", "info", data, "--json")
    assert code == 0, err
    outputs["info"] = strict(out)
    code, out, err = run_cli("evaluate", "--model", run, "--json", "--fidelity-samples", "0")
    assert code == 0, err
    outputs["evaluate"] = strict(out)
    # a target outside the training data is not attempted: missing values, no Infinity
    code, out, err = run_cli("inverse", "--model", run, "--target", "porosity=0.5", "--target",
                             "k_xx=500", "--out", tmp_path / "inv", "--json")  # fmt: skip
    assert code == 1, err
    outputs["inverse"] = strict(out)
    assert is_tensor(outputs["props"]["permeability"])
    assert all(is_tensor(s["permeability"]) for s in outputs["predict"]["samples"])
    (row,) = outputs["inverse"]
    assert row["status"] == "outside_training_data" and is_tensor(row["target_permeability"])
    assert row["target_permeability"][0][0] == pytest.approx(500.0)
    assert row["target_permeability"][0][1] is None
    assert not [k for k in row if k.startswith(("target_k_", "verified_k_", "critic_k_"))]
