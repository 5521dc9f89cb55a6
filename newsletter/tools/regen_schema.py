"""Regenerate the initial migration from the models (`make schema`).

The schema has not been released yet, so it is one migration generated from the models; once
released, changes become new revisions instead.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from alembic import command

from newsletter.migrate import MIGRATIONS, alembic_config

TARGET = MIGRATIONS / "versions" / "0001_initial_schema.py"


def main() -> None:
    scratch = Path(tempfile.mkdtemp()) / "schema.db"
    TARGET.unlink(missing_ok=True)
    cfg = alembic_config(f"sqlite:///{scratch}")
    command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
    text = TARGET.read_text()
    text = re.sub(r"Create Date: .*\n", "", text)
    text = re.sub(r"\s*# ### .* ###\n", "\n", text)
    TARGET.write_text(text)
    scratch.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
