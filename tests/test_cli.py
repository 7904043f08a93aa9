"""The command line: outputs, JSON keys, and one-line errors for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pvae.data.imaging import write_bmp_stack, write_image


def assert_one_line_error(code, err, *fragments):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pvae: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_synth_info_json(run_cli, tmp_path):
    out = tmp_path / "ds"
    code, stdout, _ = run_cli(
        "data",
        "synth",
        "--family",
        "channels",
        "--count",
        "5",
        "--size",
        "16x20x24",
        "--seed",
        "3",
        "--out",
        out,
        "--param",
        "axes=z",
        "--porosity",
        "0.3",
        "0.4",
    )
    assert code == 0 and "wrote 5 channels samples" in stdout
    code, stdout, _ = run_cli("data", "info", out, "--json")
    info = json.loads(stdout)
    assert info["count"] == 5 and info["shape"] == [16, 20, 24] and info["labelled"] == 0
    assert 0.3 <= info["porosity"]["min"] <= info["porosity"]["max"] <= 0.6
    assert info["fingerprint"].startswith("sha256:")
    code, stdout, _ = run_cli("data", "info", out)
    assert code == 0 and "16 x 20 x 24 (z, y, x)" in stdout


def test_props_formats_agree(run_cli, tmp_path, rng):
    image = rng.random((8, 10, 12)) < 0.4
    write_image(image, tmp_path / "s.npy")
    write_image(image, tmp_path / "s.tif")
    write_bmp_stack(image, tmp_path / "bmp")
    for path in ("s.npy", "s.tif", "bmp"):
        code, stdout, _ = run_cli("props", tmp_path / path, "--json")
        result = json.loads(stdout)
        assert code == 0 and result["shape"] == [8, 10, 12]
        assert result["porosity"] == pytest.approx(image.mean())
    code, stdout, _ = run_cli("props", tmp_path / "s.npy")
    assert f"{image.mean():.6f}" in stdout


def test_props_threshold_options(run_cli, tmp_path, rng):
    grey = rng.integers(0, 256, (6, 6, 6)).astype(np.uint8)
    np.save(tmp_path / "g.npy", grey)
    code, _, err = run_cli("props", tmp_path / "g.npy")
    assert_one_line_error(code, err, "g.npy", "distinct grey values", "--threshold")
    code, stdout, _ = run_cli("props", tmp_path / "g.npy", "--threshold", "100", "--json")
    assert json.loads(stdout)["porosity"] == pytest.approx((grey >= 100).mean())
    code, stdout, _ = run_cli(
        "props", tmp_path / "g.npy", "--threshold", "100", "--invert", "--json"
    )
    assert json.loads(stdout)["porosity"] == pytest.approx((grey < 100).mean())


def test_bad_inputs_one_line_each(run_cli, tmp_path, rng):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(
        "data", "import", "--images", tmp_path / "empty", "--out", tmp_path / "o"
    )
    assert_one_line_error(code, err, "empty", "no samples found")
    assert not (tmp_path / "o").exists()
    code, _, err = run_cli("props", tmp_path / "empty")
    assert_one_line_error(code, err, "empty", "no .bmp slices")
    code, _, err = run_cli("data", "info", tmp_path / "empty")
    assert_one_line_error(code, err, "not a pvae dataset")
    code, _, err = run_cli(
        "data", "synth", "--family", "foam", "--count", "0", "--out", tmp_path / "o"
    )
    assert_one_line_error(code, err, "--count 0")
    code, _, err = run_cli(
        "data", "synth", "--family", "foam", "--count", "2", "--out", tmp_path / "o", "--param", "x"
    )
    assert_one_line_error(code, err, "--param x", "KEY=VALUE")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("a user's file")
    code, _, err = run_cli(
        "data", "synth", "--family", "foam", "--count", "2", "--size", "16", "--out",
        tmp_path / "full",
    )  # fmt: skip
    assert_one_line_error(code, err, "full", "exists", "--overwrite")
    assert (tmp_path / "full" / "keep.txt").read_text() == "a user's file"


def test_console_script_exit_status_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not numpy")
    result = subprocess.run(
        [sys.executable, "-m", "pvae", "props", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert_one_line_error(result.returncode, result.stderr, "bad.npy", "not a readable .npy")
    result = subprocess.run(
        [sys.executable, "-m", "pvae", "--debug", "props", str(bad)], capture_output=True, text=True
    )
    assert "Traceback" in result.stderr


def test_props_permeability_and_kozeny_carman(run_cli, tmp_path):
    from pvae.data.microstructures import synthesize_sample

    image, _ = synthesize_sample("spheres", (16, 16, 16), seed=1, index=0)
    write_image(image, tmp_path / "s.npy")
    code, stdout, _ = run_cli(
        "props",
        tmp_path / "s.npy",
        "--json",
        "--kozeny-carman",
        "--tol",
        "1e-4",
        "--check-every",
        "50",
        "--voxel-size",
        "2e-6",
    )
    result = json.loads(stdout)
    k = np.array(result["permeability"])
    assert code == 0 and k.shape == (3, 3) and np.all(np.diag(k) > 0)
    assert np.allclose(k, k.T, atol=0.05 * np.trace(k) / 3)
    assert result["converged"] == [True, True, True] and len(result["steps"]) == 3
    assert np.allclose(np.array(result["permeability_m2"]), k * 4e-12)
    assert result["kozeny_carman"] > 0 and result["specific_surface"] > 0
    code, stdout, _ = run_cli("props", tmp_path / "s.npy", "--json", "--no-permeability")
    assert "permeability" not in json.loads(stdout)
