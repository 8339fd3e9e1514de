"""Running the Alembic migrations from code (the CLI, readiness checks, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from perf_metrics.settings import normalize_database_url


def _migrations_dir() -> Path:
    """The Alembic scripts. In a checkout (an editable install, or `src` on PYTHONPATH) they are
    the repository's top-level migrations/, beside src/; in an installed wheel the build has
    mapped that directory into the package (perf_metrics/migrations/, see pyproject.toml)."""
    package = Path(__file__).parent
    installed = package / "migrations"
    # env.py, not the directory: a checkout from before the move may keep a stale, untracked
    # src/perf_metrics/migrations/ holding only __pycache__.
    if (installed / "env.py").is_file():
        return installed
    return package.parents[1] / "migrations"


MIGRATIONS_DIR = _migrations_dir()


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: escape % in passwords.
    config.set_main_option(
        "sqlalchemy.url", normalize_database_url(database_url).replace("%", "%%")
    )
    config.set_main_option(
        "file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d_%%(slug)s"
    )
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


async def current_revision(conn: AsyncConnection) -> str | None:
    exists = (await conn.execute(text("SELECT to_regclass('alembic_version')"))).scalar()
    if exists is None:
        return None
    return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
