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
        "1e-3",
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


@pytest.mark.parametrize("fmt", ["vti", "tif", "npy"])
def test_data_export_reads_back_equal(run_cli, tmp_path, spheres_dataset, fmt):
    from pvae.data.imaging import read_image
    from pvae.data.store import open_dataset

    store = open_dataset(spheres_dataset)
    out = tmp_path / "export"
    code, stdout, _ = run_cli("data", "export", spheres_dataset, "--format", fmt, "--out", out)
    assert code == 0 and f"wrote {len(store)} .{fmt} files" in stdout
    ids = list(store.manifest["sample_id"])
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i}.{fmt}" for i in ids)
    for index, sample_id in enumerate(ids):
        np.testing.assert_array_equal(read_image(out / f"{sample_id}.{fmt}"), store.image(index))
    code, _, err = run_cli("data", "export", spheres_dataset, "--format", fmt, "--out", out)
    assert_one_line_error(code, err, "export", "--overwrite")


def test_data_export_ids_labels_and_voxel_size(run_cli, tmp_path, spheres_dataset, rng):
    from pvae.data.imaging.vti import read_vti_field_data
    from pvae.data.store import open_dataset, write_dataset

    images = rng.random((2, 4, 5, 6)) < 0.5
    k = np.diag([1.0, 2.0, 3.0])
    with write_dataset(tmp_path / "ds", 2, (4, 5, 6), {"command": "test"}) as writer:
        writer.put(0, images[0], "a", source="import", family="imported", params={},
                   voxel_size_m=3e-6, k=k, label_source="csv")  # fmt: skip
        writer.put(1, images[1], "b", source="import", family="imported", params={})
    out = tmp_path / "one"
    code, _, err = run_cli("data", "export", tmp_path / "ds", "--ids", "a", "--out", out)
    assert code == 0, err
    assert [p.name for p in out.iterdir()] == ["a.vti"]
    labels = read_vti_field_data(out / "a.vti")
    assert labels["sample_id"] == "a" and labels["voxel_size_m"] == 3e-6
    assert labels["porosity"] == pytest.approx(images[0].mean())
    np.testing.assert_array_equal(labels["permeability"].reshape(3, 3), k)
    from vtkmodules.vtkIOXML import vtkXMLImageDataReader

    reader = vtkXMLImageDataReader()
    reader.SetFileName(str(out / "a.vti"))
    reader.Update()
    assert reader.GetOutput().GetSpacing() == pytest.approx((3e-6,) * 3)
    code, _, err = run_cli("data", "export", spheres_dataset, "--ids", "nope", "--out",
                           tmp_path / "x")  # fmt: skip
    assert_one_line_error(code, err, "unknown sample ID 'nope'")
    assert not (tmp_path / "x").exists()
    assert len(open_dataset(tmp_path / "ds")) == 2


def test_props_flow_field_writes_velocities_of_the_same_solve(run_cli, tmp_path):
    from pvae.data.imaging import read_vti
    from pvae.data.imaging.vti import read_vti_field_data

    image = np.zeros((6, 10, 8), dtype=bool)  # (z, y, x): a channel open along x and z
    image[:, 2:7, :] = True
    image[1:3, 8, 1:3] = True  # an isolated cavity: pore without flow
    write_image(image, tmp_path / "s.npy")
    out = tmp_path / "flow.vti"
    argv = ["props", tmp_path / "s.npy", "--json", "--tol", "1e-4", "--check-every", "50",
            "--flow-field", out]  # fmt: skip
    code, stdout, err = run_cli(*argv)
    assert code == 0, err
    result = json.loads(stdout)
    structure, fields = read_vti(out)
    np.testing.assert_array_equal(structure, image)
    assert set(fields) == {"velocity_x", "speed_x", "velocity_z", "speed_z"}  # y is blocked
    for axis, column in (("x", 0), ("z", 2)):
        velocity = fields[f"velocity_{axis}"]
        assert velocity.shape == (3, *image.shape) and fields[f"speed_{axis}"].shape == image.shape
        assert not velocity[:, ~image].any() and not velocity[:, 1:3, 8, 1:3].any()
        # the reported K is the field's mean times nu / F (tau = 1, F = 1e-5): one solve
        k = velocity[column].astype(float).mean() / 6 / 1e-5
        assert result["permeability"][column][column] == pytest.approx(k, rel=1e-5)
    labels = read_vti_field_data(out)
    np.testing.assert_allclose(labels["permeability"].reshape(3, 3), result["permeability"])
    assert labels["body_force"] == 1e-5
    code, _, err = run_cli(*argv)
    assert_one_line_error(code, err, "flow.vti", "--overwrite")
    assert run_cli(*argv, "--overwrite")[0] == 0
    code, _, err = run_cli("props", tmp_path / "s.npy", "--flow-field", tmp_path / "f.npy")
    assert_one_line_error(code, err, "f.npy", ".vti")
    code, stdout, _ = run_cli("props", out, "--no-permeability", "--json")  # reads .vti too
    assert json.loads(stdout)["porosity"] == pytest.approx(image.mean())
