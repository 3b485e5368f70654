"""Two CPU processes (gloo) on the loop's single code path: same weights, one writer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent("""
    import json, os, sys
    import torch
    from torch import nn
    from hrr_core.models.outputs import DetectorOutput
    from hrr_core.training import loop
    from hrr_core.training.loop import TrainConfig, fit, make_loader

    out, rank = sys.argv[1], int(os.environ["RANK"])
    calls = []
    real_save, real_json = loop.save_checkpoint, loop.atomic_write_json
    loop.save_checkpoint = lambda d, *a, **k: (calls.append(str(d)), real_save(d, *a, **k))[1]
    loop.atomic_write_json = lambda p, o: (calls.append(str(p)), real_json(p, o))[1]

    class Set(torch.utils.data.Dataset):
        def __init__(self, n, seed):
            g = torch.Generator().manual_seed(seed)
            self.x = torch.randn(n, 6, generator=g); self.y = (self.x[:, 0] > 0).float()
        def __len__(self): return len(self.x)
        def __getitem__(self, i): return {"inputs": self.x[i], "labels": self.y[i], "ids": f"s{i:03d}"}

    def objective(o, y):
        bce = nn.functional.binary_cross_entropy_with_logits(o.logits, y)
        return {"loss": bce, "bce": bce}

    class Net(nn.Module):
        def __init__(self):
            super().__init__(); self.fc = nn.Linear(6, 1)
        def forward(self, x): return DetectorOutput(logits=self.fc(x).squeeze(-1))

    torch.manual_seed(rank)  # different initial weights per rank: DDP must broadcast rank 0's
    cfg = TrainConfig(epochs=2, batch_size=4, lr=0.1, device=os.environ.get("HRR_TEST_DEVICE", "cpu"), grad_accum=2,
                      ema_decay=0.9)
    model = Net()
    result = fit(model, objective, make_loader(Set(32, 0), cfg, train=True), make_loader(Set(13, 1), cfg, train=False),
                 cfg, out, live=os.path.join(out, "live"))
    torch.save(model.state_dict(), os.path.join(out, f"..", f"weights{rank}.pt"))
    # the same validation in one process, without sharding or gathering (EMA weights, as fit validates)
    from hrr_core.training.checkpoint import load_weights
    from hrr_core.training.loop import ap_acc, predict_loader
    single = Net()
    load_weights(os.path.join(out, "last"), single, ema=True)
    ids, scores, labels = predict_loader(single, make_loader(Set(13, 1), cfg, train=False), "cpu")
    with open(os.path.join(out, "..", f"report{rank}.json"), "w") as fh:
        json.dump({"calls": calls, "steps": result.steps, "history": result.history,
                   "single_ap": ap_acc(scores, labels)["ap"], "n_ids": len(ids)}, fh)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two fresh interpreters importing torch: ~25 s on a busy 2-core machine
@pytest.mark.timeout(300)
def test_two_cpu_processes_agree_and_only_rank0_writes(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "run"
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "OMP_NUM_THREADS": "1",
            "TQDM_DISABLE": "1",
            "PYTHONPATH": str(REPO),
            "DVC_NO_ANALYTICS": "1",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(out)],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [p.communicate(timeout=120)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log
    w0, w1 = (torch.load(tmp_path / f"weights{r}.pt", weights_only=True) for r in range(2))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    r0, r1 = (json.loads((tmp_path / f"report{r}.json").read_text()) for r in range(2))
    assert r1["calls"] == [] and any(c.endswith("last") for c in r0["calls"])
    assert r0["history"] == [{**row, "seconds": r0row["seconds"]} for row, r0row in zip(r1["history"], r0["history"])]
    # 32 samples / (2 ranks x 4 per batch x 2 accumulated) = 2 optimiser steps per epoch
    assert r0["steps"] == 4
    # AP over ranks' shards (13 samples, padded to 16 by the sampler, duplicates dropped) = one-process AP
    assert r0["n_ids"] == 13 and abs(r0["history"][-1]["val/ap"] - r0["single_ap"]) < 1e-6
    assert sorted(os.listdir(out)) == ["best", "history.json", "last", "live"]
    saved = torch.load(out / "last" / "state.pt", weights_only=True)
    assert saved["step"] == 4 and saved["epoch"] == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.timeout(300)
def test_torchrun_launch_on_one_gpu(tmp_path):
    """The multi-GPU launch path (torchrun, NCCL) at world size 1 on one device."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "HRR_TEST_DEVICE": "cuda", "TQDM_DISABLE": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
    done = subprocess.run([*cmd, str(script), str(tmp_path / "run")], env=env, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads((tmp_path / "report0.json").read_text())
    assert report["steps"] == 8 and report["n_ids"] == 13  # 32 samples / (4 per batch x 2 accumulated), 2 epochs
    assert abs(report["history"][-1]["val/ap"] - report["single_ap"]) < 1e-6
