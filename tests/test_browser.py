"""JupyterLab as a person uses it: ``jupyter lab notebooks/`` from the project's venv, notebooks
opened in a real (headless) Chromium, "Run > Run All Cells", and checks on what the page shows.

The server runs on the shared smoke baseline (conftest.py's ``smoke_repo``), so the explorer
reads the pipeline's results and the stage notebook reads its stage's outputs. It listens on
127.0.0.1 only, with a token, and its config, data, runtime and settings folders are temporary;
autosave is off, so the notebooks in the shared repository are never written (checked).
Screenshots go to the test's tmp_path and their paths are printed (``pytest -s`` shows them).

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium
(the ``dev`` extra); without a browser the tests skip and say so.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1500,1100",
)
SETTINGS = {  # JupyterLab user settings: never save, every cell in the DOM, start the notebook's kernel, no news
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}
STDOUT = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stdout']"
STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
RUN_TIMEOUT = 900  # s for "Run All Cells": the explorer re-renders HRR's mistakes on a busy 2-core CPU


def _browser_or_skip() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.skip(
            f"no headless browser ({', '.join(missing)} missing): install chromium and chromium-driver "
            "(apt-get install chromium chromium-driver; .ci/run does)"
        )
    pytest.importorskip("selenium", reason="selenium is missing: pip install -e '.[dev]'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ipynb"))}


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter lab exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"jupyter lab did not answer {url} within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def lab(smoke_repo, tmp_path_factory):
    """(base URL, token): ``jupyter lab notebooks/`` started in the smoke repo as README says."""
    _browser_or_skip()
    home = tmp_path_factory.mktemp("jupyter")
    for plugin, values in SETTINGS.items():
        path = home / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    venv = Path(sys.executable).parent
    env = {k: v for k, v in smoke_repo.env.items() if k != "HRR_PROJECT_ROOT"}  # found from notebooks/, as by hand
    env.update(
        VIRTUAL_ENV=str(venv.parent),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        MPLCONFIGDIR=str(home / "mpl"),
        OMP_NUM_THREADS="1",
    )
    port, token = _free_port(), secrets.token_hex(16)
    before = _digests(smoke_repo.root / "notebooks")
    log = home / "lab.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                str(venv / "jupyter"),
                "lab",
                "notebooks/",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            cwd=smoke_repo.root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield base, token
    finally:
        proc.terminate()  # jupyter_server shuts its kernels down on SIGTERM
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert _digests(smoke_repo.root / "notebooks") == before, "JupyterLab wrote into the repository's notebooks"


@pytest.fixture()
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


# ---------------------------------------------------------------- what a person does and sees


def _open(driver, lab, notebook: str) -> None:
    """Open ``notebook`` and wait until its kernel is idle. A "Select Kernel" dialog (JupyterLab asks
    when the kernel list arrives late on a busy machine) is answered as a person would: the
    preselected kernel, which must be the project's Python 3."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, token = lab
    driver.get(f"{base}/lab/tree/{notebook}?token={token}")
    idle = (
        "const i = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');"
        "return i !== null && i.getAttribute('data-status') === 'idle' && !document.querySelector('.jp-Dialog');"
    )

    def ready(d) -> bool:
        for dialog in d.find_elements(By.CSS_SELECTOR, ".jp-Dialog"):
            assert "Select Kernel" in dialog.text and "Python 3" in dialog.text, dialog.text
            dialog.find_element(By.CSS_SELECTOR, ".jp-Dialog-button.jp-mod-accept").click()
        return d.execute_script(idle)

    WebDriverWait(driver, 180).until(ready)
    time.sleep(2)  # a late dialog shows within a moment of the kernel's first idle
    WebDriverWait(driver, 60).until(ready)


def _run_all_cells(driver) -> None:
    """Menu "Run" > "Run All Cells", then wait until every code cell has its execution number."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    menus = driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item")
    next(m for m in menus if m.text.strip() == "Run").click()
    WebDriverWait(driver, 30).until(
        lambda d: [i for i in d.find_elements(By.CSS_SELECTOR, ".lm-Menu-item") if i.text.strip() == "Run All Cells"]
    )[0].click()
    prompts = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt"
    done = (
        "const p = [...document.querySelectorAll(arguments[0])].map(e => e.textContent.trim());"
        "return p.length > 0 && p.every(t => /^\\[\\d+\\]:$/.test(t));"
    )
    WebDriverWait(driver, RUN_TIMEOUT, poll_frequency=2).until(lambda d: d.execute_script(done, prompts))


def _visible(driver, css: str) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, f".jp-NotebookPanel:not(.lm-mod-hidden) {css}")


def _assert_no_errors(driver, notebook: str) -> None:
    stderr = [e.text for e in _visible(driver, STDERR)]
    errors = [t for t in stderr if "Traceback" in t or "Error:" in t]
    assert not errors, f"{notebook}: error output:\n" + "\n".join(errors)


def _loaded_images(driver, at_least: int = 1, css: str = ".jp-OutputArea-output img") -> list[int]:
    """Natural widths of the images in outputs, once ``at_least`` of them have loaded (else what there is)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    script = (
        f"return [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) {css}')]"
        ".map(i => i.complete ? i.naturalWidth : 0);"
    )
    try:
        WebDriverWait(driver, 60).until(lambda d: sum(w > 0 for w in d.execute_script(script)) >= at_least)
    except TimeoutException:
        pass
    return driver.execute_script(script)


def _screenshot(driver, element, path: Path) -> Path:
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", element)
    time.sleep(0.5)
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def _methods_in(table) -> set[str]:
    """The ``method`` column of a rendered pandas table."""
    from selenium.webdriver.common.by import By

    heads = [th.text.strip() for th in table.find_elements(By.CSS_SELECTOR, "thead tr:last-child th")]
    col = heads.index("method")
    return {
        tr.find_elements(By.CSS_SELECTOR, "th, td")[col].text.strip()
        for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    }


def test_explorer_runs_in_jupyterlab_with_dropdowns_tables_and_figures(lab, browser, tmp_path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    _open(browser, lab, "explore.ipynb")
    started = time.monotonic()
    _run_all_cells(browser)
    print(f"explore.ipynb: Run All Cells took {time.monotonic() - started:.0f} s")
    _assert_no_errors(browser, "explore.ipynb")
    streams = "\n".join(e.text for e in _visible(browser, STDOUT))
    assert "reading results from" in streams and "outputs/interactive" not in streams, "the pipeline's results are read"

    widget = _visible(browser, ".widget-interact")
    assert widget, "the metrics view shows its dropdowns (ipywidgets in JupyterLab)"
    selects = {
        s.find_element(By.XPATH, "..").text.split("\n")[0].strip(): s
        for s in widget[0].find_elements(By.CSS_SELECTOR, ".widget-dropdown select")
    }
    assert {"method", "test", "size", "condition"} <= set(selects), list(selects)
    table = widget[0].find_element(By.CSS_SELECTOR, ".widget-output table")
    shown = _methods_in(table)
    assert len(shown) > 1 and _loaded_images(browser, css=".widget-output img"), "the table and its AP bars"
    _screenshot(browser, widget[0], tmp_path / "explore_metrics.png")

    Select(selects["method"]).select_by_visible_text("cnn")
    WebDriverWait(browser, 120, ignored_exceptions=(StaleElementReferenceException,)).until(  # the output is redrawn
        lambda d: (
            (t := widget[0].find_elements(By.CSS_SELECTOR, ".widget-output table")) and _methods_in(t[0]) == {"cnn"}
        )
    )
    assert [w for w in _loaded_images(browser, css=".widget-output img") if w > 0], "the AP bars are redrawn"
    _screenshot(browser, widget[0], tmp_path / "explore_metrics_cnn.png")

    images = _loaded_images(browser, at_least=3)
    assert len(images) >= 3 and all(w > 0 for w in images), f"figures shown (natural widths {images})"
    _screenshot(browser, _visible(browser, ".jp-OutputArea-output img")[-1], tmp_path / "explore_figures.png")


def test_stage_notebook_opened_by_hand_reads_the_pipeline_outputs(lab, browser, tmp_path):
    _open(browser, lab, "04_evaluate.ipynb")
    _run_all_cells(browser)
    _assert_no_errors(browser, "04_evaluate.ipynb")
    streams = "\n".join(e.text for e in _visible(browser, ".jp-OutputArea-output"))
    assert "evaluate@cnn: opened by hand: reading the outputs the pipeline produced" in streams, streams[:2000]
    tables = _visible(browser, ".jp-OutputArea-output table")
    assert tables and "ldm_img2img" in tables[0].text, "the metrics table per test generator"
    assert [w for w in _loaded_images(browser) if w > 0], "the metric bars are shown"
    _screenshot(browser, tables[0], tmp_path / "evaluate.png")


def test_explorer_dropdown_version_does_not_hang_under_papermill(smoke_repo, tmp_path):
    """The default (``use_widgets = True``) explorer run headless, as nbmake or papermill would."""
    import papermill

    out = tmp_path / "explore.ipynb"
    started = time.monotonic()
    papermill.execute_notebook(
        str(smoke_repo.root / "notebooks" / "explore.ipynb"),
        str(out),
        kernel_name="python3",
        cwd=str(smoke_repo.root / "notebooks"),
        progress_bar=False,
        execution_timeout=600,
        parameters={"n_mistakes": 2},
    )
    print(f"explore.ipynb under papermill (dropdowns on) took {time.monotonic() - started:.0f} s")
    outputs = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), "the dropdowns"
