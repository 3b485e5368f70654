import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest

from hrr_core.benchmark.external import build_stage_manifest
from hrr_core.confutil import ConfigError, from_dict
from hrr_core.data.adapters import build_manifest, split_rules
from hrr_core.data.adapters.cocofake import coco_id
from hrr_core.data.manifest import check_no_leakage, read_manifest
from hrr_core.data.walk import BadFile, iter_image_files, probe_image
from hrr_core.schema.benchmark import RealBenchmarkConfig


def cfg(**kw):
    return from_dict(RealBenchmarkConfig, kw, "real_benchmark")


def counts(df):
    return {k: int(v) for k, v in df.groupby(["split", "label"]).size().items()}


# ---------------------------------------------------------------- walk


def test_walk_matches_extensions_case_insensitively_and_skips_others(tmp_path, fx):
    for name in ("a.jpg", "b.JPEG", "c.png", "d.webp", "e.Png"):
        fx.write_image(tmp_path / "x" / "y" / name)
    (tmp_path / "x" / "notes.txt").write_text("no")
    (tmp_path / "x" / "._a.jpg").write_bytes(b"mac fork")
    assert sorted(Path(p).name for p in iter_image_files(tmp_path)) == ["a.jpg", "b.JPEG", "c.png", "d.webp", "e.Png"]


def test_probe_reports_bad_files_and_decode_catches_truncation(tmp_path, fx):
    with pytest.raises(BadFile, match="empty"):
        probe_image(str(fx.write_empty(tmp_path / "e.png")))
    with pytest.raises(BadFile, match="not a readable image"):
        probe_image(str(fx.write_corrupt(tmp_path / "c.jpg")))
    trunc = str(fx.write_truncated_png(tmp_path / "t.png"))
    assert probe_image(trunc).width == 32  # the header alone looks fine
    with pytest.raises(BadFile):
        probe_image(trunc, verify="decode")
    ok = fx.write_image(tmp_path / "ok.webp", (12, 8))
    h = probe_image(str(ok), checksums=True)
    assert (h.width, h.height, h.format) == (12, 8, "webp")
    assert h.sha256 == hashlib.sha256(ok.read_bytes()).hexdigest()


# ---------------------------------------------------------------- ForenSynths


def test_forensynths_4class_preset(tmp_path, fx):
    fx.make_forensynths(tmp_path, n=2)
    df = build_manifest(cfg(source="forensynths", root=str(tmp_path)))
    # train/val: 4 of the 5 classes (dog left out) x 2 labels x 2; test: progan+stylegan x 2 classes + biggan
    assert counts(df) == {
        ("train", 0): 8,
        ("train", 1): 8,
        ("val", 0): 8,
        ("val", 1): 8,
        ("test", 0): 10,
        ("test", 1): 10,
    }
    assert set(df.loc[df.split != "test", "subset"]) == {"car", "cat", "chair", "horse"}
    assert set(df.loc[df.split == "train", "generator"]) == {"progan"}
    assert set(df.loc[df.split == "test", "generator"]) == {"progan", "stylegan", "biggan"}
    assert (df.loc[df.path.str.contains("/0_real/"), "label"] == 0).all()
    assert (df.loc[df.path.str.contains("/1_fake/"), "label"] == 1).all()
    assert sorted(p for p, _ in df.attrs["bad_files"]) == [
        "test/biggan/1_fake/corrupt.jpg",
        "test/biggan/1_fake/empty.png",
    ]
    biggan_real = df[(df.generator == "biggan") & (df.label == 0)]
    assert set(biggan_real["format"]) == {"jpeg"} and set(biggan_real["width"]) == {24}
    assert df["id"].str.startswith("forensynths/").all() and (df["sha256"] == "").all()
    check_no_leakage(df)


def test_forensynths_20class_and_test_override(tmp_path, fx):
    fx.make_forensynths(tmp_path, n=1)
    df = build_manifest(
        cfg(source="forensynths", root=str(tmp_path), preset="forensynths_20class", test_generators=["biggan"])
    )
    assert "dog" in set(df.loc[df.split == "train", "subset"])
    assert set(df.loc[df.split == "test", "generator"]) == {"biggan"}


# ---------------------------------------------------------------- DiffusionForensics


def test_diffusionforensics_dire_preset_and_shared_reals(tmp_path, fx):
    fx.make_diffusionforensics(tmp_path, n=2)
    df = build_manifest(cfg(source="diffusionforensics", root=str(tmp_path)))
    train = df[df.split == "train"]
    assert set(zip(train.subset, train.generator)) == {("lsun_bedroom", "real"), ("lsun_bedroom", "adm")}
    test = df[df.split == "test"]
    assert set(test.generator) == {"real", "adm", "ddpm", "sdv2"}
    assert set(test.subset) == {"lsun_bedroom", "imagenet", "celebahq"}
    assert (df.loc[df.generator == "real", "label"] == 0).all() and (df.loc[df.generator != "real", "label"] == 1).all()
    assert df["path"].str.startswith("images/").all()
    # the format shortcut is there before harmonisation
    assert set(df.loc[df.label == 0, "format"]) == {"jpeg"} and set(df.loc[df.label == 1, "format"]) == {"png"}


def test_diffusionforensics_tree_and_generator_override(tmp_path, fx):
    fx.make_diffusionforensics(tmp_path, n=1)
    df = build_manifest(
        cfg(
            source="diffusionforensics",
            root=str(tmp_path),
            tree="recons",
            train_generators=["ddpm"],
            test_generators=["adm"],
        )
    )
    assert df["path"].str.startswith("recons/").all()
    assert set(df.loc[df.split == "train", "generator"]) == {"real", "ddpm"}
    # celebahq has no adm: its reals are not pulled into the test set
    assert set(df.loc[df.split == "test", "subset"]) == {"lsun_bedroom", "imagenet"}


# ---------------------------------------------------------------- GenImage


def test_genimage_sd14_preset(tmp_path, fx):
    fx.make_genimage(tmp_path, n=40)
    df = build_manifest(cfg(source="genimage", root=str(tmp_path)))
    fit = df[df.split.isin(["train", "val"])]
    assert set(fit.generator) == {"sd14"} and len(fit) == 80 and (df.split == "val").any()
    test = df[df.split == "test"]
    assert set(test.generator) == {"sd14", "adm"} and counts(test) == {("test", 0): 20, ("test", 1): 20}
    assert sorted(p for p, _ in df.attrs["bad_files"]) == [
        "imagenet_ai_0508_adm/val/ai/broken.PNG",
        "imagenet_ai_0508_adm/val/ai/zero.png",
    ]
    reals = df[df.label == 0]
    assert reals["source"].str.startswith("imagenet:n01440764_").sum() == 40
    assert reals["path"].str.endswith(".JPEG").all()
    check_no_leakage(df)


def test_genimage_train_override_gives_the_matrix_row(tmp_path, fx):
    fx.make_genimage(tmp_path, n=8)
    df = build_manifest(cfg(source="genimage", root=str(tmp_path), train_generators=["adm"]))
    assert set(df.loc[df.split != "test", "generator"]) == {"adm"}


# ---------------------------------------------------------------- cocoFake


def test_cocofake_split_by_coco_id_and_balanced(tmp_path, fx):
    fx.make_cocofake(tmp_path)
    df = build_manifest(cfg(source="cocofake", root=str(tmp_path), seed=3))
    check_no_leakage(df)
    assert (df.groupby("source")["split"].nunique() == 1).all()
    per_split = df.groupby(["split", "label"]).size().unstack()
    assert (per_split[0] == per_split[1]).all() and set(per_split.index) == {"train", "val", "test"}
    assert (df.groupby("source")["label"].agg(sorted).map(tuple) == (0, 1)).all()
    sources = set(df.source)
    assert "coco:12" not in sources  # real without fakes
    assert "coco:999999" not in sources  # fakes without real
    assert "coco:101" not in sources  # its picked fake is empty: reported, and the pair dropped
    assert [p.rsplit("/", 1)[0] for p, _ in df.attrs["bad_files"]] == ["fake/val2014/101"]
    assert set(df.loc[df.source.str.match(r"coco:\d$|coco:1[01]$"), "split"]) == {"train"}


def test_cocofake_seed_changes_the_fake_not_the_split(tmp_path, fx):
    fx.make_cocofake(tmp_path, train_ids=range(1, 4), val_ids=range(100, 140))
    a = build_manifest(cfg(source="cocofake", root=str(tmp_path), seed=0))
    b = build_manifest(cfg(source="cocofake", root=str(tmp_path), seed=1))

    def split_of(d):
        return dict(zip(d.source, d.split))

    assert split_of(a) == split_of(b)
    assert set(a.loc[a.label == 1, "path"]) != set(b.loc[b.label == 1, "path"])


def test_cocofake_ids_and_alternative_layouts(tmp_path, fx):
    assert coco_id("real/val2014/COCO_val2014_000000000042.jpg", 0) == "42"
    assert coco_id("fake/val2014/42/42_3.png", 1) == "42" and coco_id("fake/val2014/000042_3.png", 1) == "42"
    fx.write_image(tmp_path / "real" / "validation" / "data" / "000000000042.jpg")  # FiftyOne export
    for k in range(2):
        fx.write_image(tmp_path / "fake" / "val2014" / f"42_{k}.png")  # flat fakes
    df = build_manifest(cfg(source="cocofake", root=str(tmp_path)))
    assert list(df.source) == ["coco:42", "coco:42"] and sorted(df.label) == [0, 1]


def test_forensynths_release_folder_names(tmp_path, fx):
    for top in ("progan_train", "progan_val"):
        fx.write_image(tmp_path / top / "car" / "0_real" / "1.png")
        fx.write_image(tmp_path / top / "car" / "1_fake" / "1.png")
    fx.write_image(tmp_path / "CNN_synth_testset" / "san" / "0_real" / "1.png")
    fx.write_image(tmp_path / "CNN_synth_testset" / "san" / "1_fake" / "1.png")
    df = build_manifest(cfg(source="forensynths", root=str(tmp_path)))
    assert counts(df) == {(s, lab): 1 for s in ("train", "val", "test") for lab in (0, 1)}


# ---------------------------------------------------------------- generic folder and list


def test_folder_tree_and_nested_label_names(tmp_path, fx):
    fx.make_folder_tree(tmp_path, n=3)
    df = build_manifest(cfg(source="folder", root=str(tmp_path)))
    assert counts(df) == {("train", 0): 3, ("train", 1): 3, ("test", 0): 6, ("test", 1): 6}
    assert set(df.loc[df.split == "test", "generator"]) == {"sdxl", "flux"}
    assert set(df.loc[df.generator == "flux", "format"]) == {"webp"}


def test_folder_without_split_goes_to_test(tmp_path, fx):
    fx.write_image(tmp_path / "real" / "a.jpg")
    fx.write_image(tmp_path / "fake" / "b.png")
    df = build_manifest(cfg(source="folder", root=str(tmp_path)))
    assert list(df.split) == ["test", "test"] and list(df.generator) == ["unknown", "unknown"]


def test_csv_list(tmp_path, fx):
    fx.write_image(tmp_path / "imgs" / "a.jpg")
    fx.write_image(tmp_path / "imgs" / "b.png")
    fx.write_empty(tmp_path / "imgs" / "c.png")
    pd.DataFrame(
        {
            "path": ["imgs/a.jpg", "imgs/b.png", "imgs/c.png"],
            "label": ["real", "1", "fake"],
            "split": ["train", "", "test"],
        }
    ).to_csv(tmp_path / "list.csv", index=False)
    df = build_manifest(cfg(source="csv", root=str(tmp_path / "list.csv")))
    assert list(df.label) == [0, 1] and list(df.split) == ["train", "test"]
    assert df.attrs["root"] == str(tmp_path) and df.attrs["bad_files"][0][0] == "imgs/c.png"
    only = build_manifest(cfg(source="csv", root=str(tmp_path / "list.csv"), test_generators=["sdxl"]))
    assert list(only.split) == ["train"]  # the test row's generator (unknown) is filtered out


# ---------------------------------------------------------------- determinism, sampling, config


def test_two_builds_write_identical_manifests(tmp_path, fx):
    fx.make_forensynths(tmp_path / "fs", n=2)
    c = cfg(source="forensynths", root=str(tmp_path / "fs"), checksums=True, harmonise=None)
    for out in ("a", "b"):
        build_stage_manifest(c, tmp_path / out, echo=lambda *_: None)
    p1, p2 = (tmp_path / out / "source" / "manifest.csv" for out in ("a", "b"))
    assert p1.read_bytes() == p2.read_bytes()
    assert (p1.parent / "bad_files.csv").read_text().count("\n") == 3  # header + 2 bad files
    df = read_manifest(p1)
    row = df.iloc[0]
    assert row["sha256"] == hashlib.sha256((tmp_path / "fs" / row["path"]).read_bytes()).hexdigest()


def test_max_per_class_is_deterministic_and_bounded(tmp_path, fx):
    fx.make_genimage(tmp_path, n=40)
    c = cfg(source="genimage", root=str(tmp_path), max_per_class=5, seed=7)
    a, b = build_manifest(c), build_manifest(c)
    assert a.equals(b)
    assert a.groupby(["split", "subset", "generator", "label"]).size().max() == 5


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="preset"):
        cfg(source="genimage", root="x", preset="dire_adm_bedroom")
    with pytest.raises(ConfigError, match="real_benchmark.max_per_class"):
        cfg(source="genimage", root="x", max_per_class=0)
    with pytest.raises(ConfigError, match="real_benchmark.tre"):
        cfg(source="genimage", root="x", tre="dire")
    with pytest.raises(FileNotFoundError, match="root in params.yaml"):
        build_manifest(cfg(source="genimage", root=str(tmp_path / "missing")))
    assert split_rules(cfg(source="genimage", root="x", test_generators=["ADM"]))["test"]["generator"] == ["adm"]


# ---------------------------------------------------------------- presets.yaml


def test_shipped_presets_load_and_every_kind_has_a_default():
    from hrr_core.data.adapters import DEFAULT_PRESETS, KINDS, PRESETS
    from hrr_core.data.adapters.forensynths import FOUR_CLASSES
    from hrr_core.schema.presets import PRESETS_YAML, load_presets

    assert load_presets(KINDS, PRESETS_YAML) == (PRESETS, DEFAULT_PRESETS) and set(DEFAULT_PRESETS) == set(KINDS)
    assert PRESETS["forensynths_4class"]["splits"]["train"]["subset"] == list(FOUR_CLASSES)


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda d: d["presets"]["folder"]["splits"]["train"].update(grup=["train"]),
            "presets.folder.splits.train.grup: unknown key",
        ),
        (
            lambda d: d["presets"]["cocofake"]["splits"]["val"].update(source_range=[0.5, 0.2]),
            "presets.cocofake.splits.val.source_range",
        ),
        (lambda d: d["presets"]["csv"].update(kind="zip"), "presets.csv.kind"),
        (lambda d: d["presets"]["folder"]["splits"].update(holdout={}), "presets.folder.splits"),
        (lambda d: d["defaults"].update(genimage="cocofake"), "defaults.genimage"),
        (lambda d: d["defaults"].pop("csv"), "defaults: got"),
    ],
)
def test_bad_presets_fail_naming_the_file_and_key(tmp_path, edit, words):
    import yaml

    from hrr_core.data.adapters import KINDS
    from hrr_core.schema.presets import PRESETS_YAML, load_presets

    data = yaml.safe_load(PRESETS_YAML.read_text())
    edit(data)
    path = tmp_path / "presets.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=re.escape(f"{path}: {words}")):
        load_presets(KINDS, path)
