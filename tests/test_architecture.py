"""The layering rules of the project, checked on the source tree."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_ui_layer_imports_streamlit():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "lucid").rglob("*.py")
        if "streamlit" in _imports(p) and p.relative_to(ROOT).parts[1] != "ui"
    ]
    assert offenders == []


def test_nothing_unpickles():
    offenders = []
    for p in ROOT.rglob("*.py"):
        if ".venv" in p.parts or p.relative_to(ROOT).parts[0] == "tests":  # tests pickle their own objects
            continue
        text = p.read_text()
        if "pickle.load" in text or "torch.load(" in text and "weights_only=True" not in text:
            offenders.append(str(p.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.parametrize("entry", ["lucid", "services"])
def test_cli_unknown_domain_lists_valid_ones(entry):
    """``python -m lucid`` and its former name ``python -m services`` answer alike."""
    out = subprocess.run(
        [sys.executable, "-m", entry, "astrology", "score", "x.csv", "--out", "y.csv"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 2
    assert "unknown domain 'astrology'" in out.stderr and "Valid domains:" in out.stderr


def test_no_pages_folder_beside_app():
    """A folder named pages/ beside app.py switches Streamlit to serving each file in it directly,
    around app.py's navigation and sign-in; pages live in app_pages/ instead."""
    assert not (ROOT / "pages").exists()
    from lucid.ui.catalogue import HOME, available_pages

    assert HOME.exists and len(available_pages()) == 5


def _edits_sys_path(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(
        isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
        for node in ast.walk(tree)
    )


def test_benchmarks_run_as_modules_without_editing_sys_path():
    """``python -m bench.bench_x`` from the repository root finds lucid (installed) and the test
    helpers (``tests.live_app``, ``tests.load``) without a path of their own."""
    benches = sorted((ROOT / "bench").glob("bench_*.py"))
    assert len(benches) >= 9
    assert [p.name for p in benches if _edits_sys_path(p)] == []
    assert "python -m bench.$$m" in (ROOT / "Makefile").read_text()


def test_the_tests_package_is_this_checkout_s():
    """A dependency installs a top-level ``tests`` package into site-packages; ours is a regular
    package (tests/__init__.py) so that ``tests.live_app`` resolves here, not there."""
    import tests
    from tests import live_app

    assert Path(tests.__file__).resolve() == ROOT / "tests" / "__init__.py"
    assert Path(live_app.__file__).resolve() == ROOT / "tests" / "live_app.py"
