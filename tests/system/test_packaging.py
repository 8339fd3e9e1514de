"""The wheel as a user gets it: built from the checkout, installed with its dependencies into a
fresh virtual environment outside the checkout, and `perf-metrics migrate` run from there
against an empty database. The migrations live at the repository root (migrations/), so this is
what proves the build maps them into the package."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import asyncpg
import pytest
from alembic.script import ScriptDirectory

from tests.pg import scratch_database

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Never part of a build: VCS, local environments, tool caches, build leftovers (a stale build/lib
# would end up in the wheel) and data (benchmark inputs, call logs: hundreds of MB). The rest,
# tests included, is copied, so that the wheel is checked for what it leaves out.
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv*", ".*_cache", ".hypothesis", ".cache", ".perf-metrics", "__pycache__",
    "build", "dist", "*.egg-info", "*.jsonl",
)  # fmt: skip


def _not_copied(folder: str, names: list[str]) -> set[str]:
    skipped = set(_NOT_COPIED(folder, names))
    return skipped | {"data"} if Path(folder) == ROOT / "bench" else skipped


def _run(args: list[str | Path], cwd: Path, timeout: float, **env: str) -> str:
    # Nothing of the dev environment leaks in: no PYTHONPATH, no activated venv.
    clean = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip builds in the source tree, so the wheel is built from a copy of the checkout."""
    source = tmp_path_factory.mktemp("source") / "perf-metrics"
    shutil.copytree(ROOT, source, ignore=_not_copied)
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", out, source], out, 300)
    (built,) = out.glob("perf_metrics-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (from the base interpreter, so the dev venv's packages are not visible) with
    the wheel and its dependencies from the package index."""
    folder = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", folder], folder, 120)
    _run([folder / "bin" / "pip", "install", "--quiet", wheel], folder, 600)
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    assert not tmp_path.resolve().is_relative_to(ROOT)
    return tmp_path


def test_the_wheel_carries_the_migrations_and_nothing_but_the_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "perf_metrics",
        "perf_metrics-0.1.0.dist-info",
    }  # so no tests/, bench/ or top-level migrations/
    migrations = {n.removeprefix("perf_metrics/migrations/") for n in names if "/migrations/" in n}
    versions = {f"versions/{p.name}" for p in (ROOT / "migrations" / "versions").glob("*.py")}
    assert len(versions) >= 6
    assert migrations == {"env.py", "script.py.mako", *versions}


def test_perf_metrics_migrate_from_the_installed_wheel(venv: Path, outside: Path) -> None:
    python = venv / "bin" / "python"
    program = (
        "import json, perf_metrics, perf_metrics.migrate as m\n"
        "print(json.dumps([perf_metrics.__file__, str(m.MIGRATIONS_DIR)]))\n"
    )
    package, migrations_dir = map(Path, json.loads(_run([python, "-c", program], outside, 60)))
    assert package.is_relative_to(venv)
    assert not package.is_relative_to(ROOT)
    assert migrations_dir == package.parent / "migrations"
    # Read from the checkout's scripts by Alembic itself, not through the package's code.
    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    assert head is not None

    with scratch_database() as url:
        out = _run([venv / "bin" / "perf-metrics", "migrate"], outside, 120, DATABASE_URL=url)
        assert json.loads(out) == {"migrated_to": head}
        assert _alembic_version(url) == [head]


def _alembic_version(url: str) -> list[str]:
    async def go() -> list[str]:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            return [r["version_num"] for r in await conn.fetch("SELECT * FROM alembic_version")]
        finally:
            await conn.close()

    return asyncio.run(go())
