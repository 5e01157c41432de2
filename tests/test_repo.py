"""Repository promises: CI runs exactly the README's setup and test commands."""
from __future__ import annotations

import re

from tests.conftest import REPO


def readme_commands() -> list[str]:
    first_block = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert first_block, "README must open with a bash block"
    return [line for line in first_block.group(1).splitlines() if line.strip()]


def test_ci_runs_the_readme_setup_and_test_commands() -> None:
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith(("#", "set ", "cd "))]
    commands = readme_commands()
    assert commands[1] == "python -m pytest"
    assert ci == commands[:2]
