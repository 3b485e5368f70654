"""Run figures (wall-clock times, cache hits) are split off a stage's metrics."""

from hrr_core.pipeline.paths import RUN_KEYS, StagePaths, split_run_figures


def test_split_run_figures_takes_timings_at_any_depth_and_keeps_the_rest():
    metrics = {
        "images": 10,
        "families": {"vae": {"psnr_db": 18.3, "fit_seconds": 5.0}, "gan": {"psnr_db": 30.0}},
        "ldm": {"unet": {"steps": 3, "seconds": 0.1}},
    }
    kept, taken = split_run_figures(metrics)
    assert kept == {
        "images": 10,
        "families": {"vae": {"psnr_db": 18.3}, "gan": {"psnr_db": 30.0}},
        "ldm": {"unet": {"steps": 3}},
    }
    assert taken == {"families": {"vae": {"fit_seconds": 5.0}}, "ldm": {"unet": {"seconds": 0.1}}}
    kept, taken = split_run_figures({"m": {"computed": 2, "key": "ab"}}, RUN_KEYS | {"computed"})
    assert kept == {"m": {"key": "ab"}} and taken == {"m": {"computed": 2}}


def test_timings_live_beside_the_reports(tmp_path):
    assert StagePaths(tmp_path).timings("prepare") == tmp_path / "reports" / "timings" / "prepare.json"
