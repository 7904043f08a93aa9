"""CUDA paths against their CPU counterparts (skipped without a GPU), and the GPU bench's
refusal on a machine without one."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from pvae.data.store import open_dataset
from pvae.physics.lbm import LBMSettings, permeability
from pvae.surrogate import load_surrogate
from pvae.vae.config import ModelConfig
from pvae.vae.model import PVAE

ROOT = Path(__file__).resolve().parents[1]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gpu_bench_refuses_without_cuda(tmp_path):
    done = subprocess.run([str(ROOT / "bench" / "gpu.sh"), "--out", str(tmp_path)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no CUDA device" in done.stderr
    assert not any(tmp_path.iterdir())


@cuda
@pytest.mark.cuda
def test_lbm_cuda_matches_cpu():
    image = open_dataset(ROOT / "data" / "default").image(0)
    settings = LBMSettings(tol=1e-4)
    on_cpu = permeability(image, settings, device="cpu").k
    on_gpu = permeability(image, settings, device="cuda").k
    flows = on_cpu > 0
    assert np.array_equal(flows, on_gpu > 0)
    assert np.allclose(on_gpu[flows], on_cpu[flows], rtol=1e-3)


@cuda
@pytest.mark.cuda
def test_flow_fields_cuda_match_cpu():
    from pvae.physics.lbm import flow_fields

    image = open_dataset(ROOT / "data" / "default").image(0)
    settings = LBMSettings(tol=1e-4)
    for cpu, gpu in zip(flow_fields(image, settings), flow_fields(image, settings, device="cuda"),
                        strict=True):  # fmt: skip
        scale = max(np.abs(cpu.velocity).max(), 1e-30)
        assert np.allclose(gpu.velocity, cpu.velocity, rtol=0, atol=2e-3 * scale)
        assert not gpu.velocity[:, ~image].any()


@cuda
@pytest.mark.cuda
def test_surrogate_cuda_matches_cpu():
    images = open_dataset(ROOT / "data" / "default").images(range(8))
    path = ROOT / "data" / "default" / "surrogate.pt"
    on_cpu = load_surrogate(path, "cpu").predict(images).k
    on_gpu = load_surrogate(path, "cuda").predict(images).k
    flows = on_cpu > 0
    assert np.allclose(np.log10(on_gpu[flows]), np.log10(on_cpu[flows]), atol=1e-3)


@cuda
@pytest.mark.cuda
def test_pvae_forward_and_step_on_cuda():
    torch.manual_seed(0)
    model = PVAE(ModelConfig(latent_dim=8, base_channels=4), (32, 32, 32))
    x = (torch.rand(4, 1, 32, 32, 32) < 0.5).float()
    model.eval()
    with torch.no_grad():
        expected = model(x)
        got = model.to("cuda")(x.to("cuda"))
    for key in ("mu", "logits", "prediction"):
        assert torch.allclose(got[key].cpu(), expected[key], atol=1e-3), key
