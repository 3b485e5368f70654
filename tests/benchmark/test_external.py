"""real_benchmark: typed config, prepare on a fixture tree, and the stages prepare -> retrospect ->
train -> evaluate run on a ForenSynths-layout tree with the preset's generators. Configs are
tests/conftest.py's tiny one (``make_params``); only the first test reads the production params.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hrr_core.benchmark.audit import BiasError
from hrr_core.confutil import ConfigError
from hrr_core.data.manifest import MANIFEST_COLUMNS, absolute_paths, read_manifest
from hrr_core.pipeline import evaluate, prepare, retrospect, study, train
from hrr_core.pipeline.common import bind_benchmark
from hrr_core.pipeline.paths import StagePaths
from hrr_core.schema import config_from_dict

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("cnn", "spectrum_lr", "hrr")  # the methods of tests/conftest.py's tiny config


def test_params_default_is_the_embedded_benchmark():
    cfg = config_from_dict(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert cfg.real_benchmark.is_embedded and cfg.real_benchmark.root is None
    manifest = pd.DataFrame({"split": ["train"], "label": [1], "generator": ["progan"]})
    assert bind_benchmark(cfg, manifest) is cfg  # methods keep their embedded train generators


@pytest.mark.parametrize(
    "real, key, words",
    [
        ({"source": "imagenet"}, "real_benchmark.source", "'genimage'"),
        ({"source": "genimage"}, "real_benchmark.root", "real_benchmark.root=/path/to/genimage"),
        ({"source": "genimage", "root": "x", "preset": "forensynths_4class"}, "real_benchmark.preset", "genimage_sd14"),
        ({"source": "folder", "root": "x", "rooot": "y"}, "real_benchmark.rooot", "unknown key"),
        ({"source": "folder", "root": "x", "bias_audit": "ignore"}, "real_benchmark.bias_audit", "'warn', 'fail'"),
        (
            {"source": "folder", "root": "x", "harmonise": {"resize": "stretch"}},
            "real_benchmark.harmonise.resize",
            "'center_crop'",
        ),
        ({"source": "folder", "root": "x", "max_per_class": 0}, "real_benchmark.max_per_class", "positive"),
    ],
)
def test_bad_real_benchmark_values_name_the_key(real, key, words, make_params):
    with pytest.raises(ConfigError) as info:
        config_from_dict(make_params(real_benchmark=real))
    assert info.value.key == key, info.value
    assert words in str(info.value)


def test_real_source_lifts_the_embedded_family_check(make_params):
    cfg = config_from_dict(
        make_params(
            real_benchmark={"source": "folder", "root": "x"}, methods={"cnn": {"train_generators": ["anything"]}}
        )
    )
    manifest = pd.DataFrame(
        {"split": ["train", "train", "test"], "label": [1, 0, 1], "generator": ["sdxl", "sdxl", "flux"]}
    )
    bound = bind_benchmark(cfg, manifest)
    assert {m.train_generators for m in bound.methods.values()} == {("sdxl",)}
    with pytest.raises(ValueError, match="train split holds no fakes"):
        bind_benchmark(cfg, manifest.assign(split="test"))


def test_prepare_without_harmonisation_keeps_absolute_paths_and_warns_or_fails(tmp_path, fx, make_params):

    bench = tmp_path / "GenImage"
    fx.make_genimage(bench, n=8)
    real = {"source": "genimage", "root": str(bench), "harmonise": None}
    cfg = config_from_dict(make_params(real_benchmark=real, benchmark={"out_dir": "data/genimage"}))
    out = prepare.run(cfg, StagePaths(tmp_path), echo=lambda *_: None)
    df = read_manifest(tmp_path / "data" / "genimage" / "manifest.csv")
    assert set(MANIFEST_COLUMNS) <= set(df.columns) and {"quality", "photo", "size", "subset", "benchmark"} <= set(
        df.columns
    )
    assert (
        df["path"].map(lambda p: p.startswith(str(bench))).all()
        and absolute_paths(df).map(lambda p: Path(p).is_file()).all()
    )
    assert out["metrics"]["train_generators"] == ["sd14"] and out["metrics"]["test_generators"] == ["adm", "sd14"]
    assert out["metrics"]["bias_audit_ok"] is False  # JPEG reals vs PNG fakes, as shipped: reported, not fatal
    bad = pd.read_csv(tmp_path / "data" / "genimage" / "source" / "bad_files.csv")
    assert sorted(Path(p).name for p in bad["path"]) == ["broken.PNG", "zero.png"]
    assert "PROBLEMS" in (tmp_path / "reports" / "dataset_card.md").read_text()
    strict = config_from_dict(
        make_params(real_benchmark={**real, "bias_audit": "fail"}, benchmark={"out_dir": "data/genimage"})
    )
    with pytest.raises(BiasError, match="format differs"):
        prepare.run(strict, StagePaths(tmp_path), echo=lambda *_: None)
    assert json.loads((tmp_path / "reports" / "bias_audit.json").read_text())["ok"] is False  # written before failing


def test_dire_preset_trains_on_adm_and_harmonisation_clears_the_audit(tmp_path, fx, make_params):

    fx.make_diffusionforensics(tmp_path / "DiffusionForensics", n=2, trees=("images",))
    real = {
        "source": "diffusionforensics",
        "root": "DiffusionForensics",
        "harmonise": {"resize": "center_crop", "size": 16},
    }
    cfg = config_from_dict(make_params(real_benchmark=real, benchmark={"out_dir": "data/dire"}))
    out = prepare.run(cfg, StagePaths(tmp_path), echo=lambda *_: None)
    assert out["metrics"]["train_generators"] == ["adm"] and out["metrics"]["test_generators"] == [
        "adm",
        "ddpm",
        "sdv2",
    ]
    assert out["metrics"]["bias_audit_ok"] is True  # JPEG reals vs PNG fakes and 24 vs 16 px, removed
    audit = json.loads((tmp_path / "reports" / "bias_audit.json").read_text())["per_generator"]
    assert (audit["sdv2"]["n_real"], audit["adm"]["n_real"]) == (
        2,
        8,
    )  # celebahq reals only; lsun_bedroom (3 splits) + imagenet (test)


@pytest.fixture(scope="module")
def forensynths_run(tmp_path_factory, fx, make_params):
    """prepare -> retrospect -> train -> evaluate of the smoke methods on a ForenSynths tree (relative root)."""

    project = tmp_path_factory.mktemp("project")
    fx.make_forensynths(project / "bench" / "ForenSynths", n=3)
    real = {
        "source": "forensynths",
        "root": "bench/ForenSynths",
        "harmonise": {"resize": "center_crop", "size": 32},
    }  # spectrum_lr needs >= 32 px
    cfg = config_from_dict(make_params(real_benchmark=real, benchmark={"out_dir": "data/forensynths"}))
    prepared = prepare.run(cfg, StagePaths(project), echo=lambda *_: None)
    retrospect.run(cfg, StagePaths(project), echo=lambda *_: None)
    for method in METHODS:
        train.run(cfg, StagePaths(project), method)
        evaluate.run(cfg, StagePaths(project), method)
    return project, prepared


def test_real_benchmark_prepare_writes_one_harmonised_manifest(forensynths_run):
    project, prepared = forensynths_run
    df = read_manifest(project / "data" / "forensynths" / "manifest.csv")
    assert df["path"].str.startswith("harmonised/").all() and absolute_paths(df).map(lambda p: Path(p).is_file()).all()
    assert set(df["format"]) == {"jpeg"} and set(df["width"]) == {32} and set(df["quality"]) == {96}
    assert sorted(set(df.loc[df["split"] == "train", "subset"])) == ["car", "cat", "chair", "horse"]  # 4-class preset
    metrics = json.loads((project / "metrics" / "prepare.json").read_text())
    assert metrics["train_generators"] == ["progan"] and metrics["test_generators"] == ["biggan", "progan", "stylegan"]
    assert metrics["bias_audit_ok"] is True and metrics["bad_files"] == 2  # biggan's empty + corrupt fakes
    assert (project / "figures" / "sample_grid.png").stat().st_size > 1000
    assert (
        "# Real benchmark (forensynths, preset `forensynths_4class`)"
        in (project / "reports" / "dataset_card.md").read_text()
    )


def test_retrospection_covers_the_preset_train_sets_and_every_test_image(forensynths_run):
    project, _ = forensynths_run
    retro = json.loads((project / "metrics" / "retrospect.json").read_text())
    assert retro["ldm"]["n_train_images"] == 12  # train reals of the 4 classes (3 each)
    run = json.loads((project / "reports" / "timings" / "retrospect.json").read_text())
    assert run["methods"]["hrr"]["computed"] == 24 + 24 + 30  # progan train + val, the whole test split
    assert "computed" not in retro["methods"]["hrr"] and "ms_per_image" in run["methods"]["hrr"]
    timings = json.loads((project / "reports" / "timings" / "prepare.json").read_text())
    assert set(timings) == {"manifest_s", "harmonise_s", "walk_s", "probe_s"}


@pytest.mark.parametrize("method", METHODS)
def test_methods_train_on_the_preset_and_evaluate_every_test_set(forensynths_run, method):
    project, _ = forensynths_run
    train = json.loads((project / "metrics" / "train" / f"{method}.json").read_text())
    assert train["train_generators"] == ["progan"] and train["n_train"] == 24  # 4 classes x 3 x (real + fake)
    card = json.loads((project / "models" / method / "detector.json").read_text())
    assert card["train_generators"] == ["progan"]
    ev = json.loads((project / "metrics" / "evaluate" / f"{method}.json").read_text())
    assert {"progan", "stylegan", "biggan"} <= set(ev)
    assert ev["mean"]["ap"] == pytest.approx(np.mean([ev[g]["ap"] for g in ("progan", "stylegan", "biggan")]), abs=1e-3)
    results = pd.read_csv(project / "results" / method / "results.csv", dtype={"size": str})
    overall = results[results["size"] == "all"]
    assert sorted(overall["test"]) == ["biggan", "progan", "stylegan"] and set(overall["train"]) == {"progan"}
    assert dict(zip(overall["test"], overall["n"])) == {"progan": 12, "stylegan": 12, "biggan": 6}
    assert sorted(p.stem for p in (project / "plots" / "roc" / method).glob("*.csv")) == [
        "biggan",
        "progan",
        "stylegan",
    ]


def test_study_runs_on_a_real_benchmark_and_drops_absent_cross_train_families(forensynths_run, make_params):

    project, _ = forensynths_run
    real = {"source": "forensynths", "root": "bench/ForenSynths", "harmonise": {"resize": "center_crop", "size": 32}}
    cfg = config_from_dict(make_params(real_benchmark=real, benchmark={"out_dir": "data/forensynths"}))
    notes = []
    out = study.run(cfg, StagePaths(project), "spectrum_lr", echo=notes.append)
    assert any("have no training fakes" in n for n in notes)  # the embedded cross_train families are not in ForenSynths
    assert any(
        "rescale 0.5 skipped" in n for n in notes
    )  # 16 px is below what spectrum_lr accepts: reported, not crashed
    assert list(out["metrics"]["matrix"]) == ["progan"] and out["metrics"]["train_generators"] == ["progan"]
    assert {"clean", "jpeg", "harmonise"} <= set(out["study"]["condition"])
