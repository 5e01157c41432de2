"""Shared command-line plumbing: a user mistake becomes one `error:` line and exit status 2."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from distill.errors import UserError

USER_ERROR_EXIT = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes (unknown option, bad value) are one `error:` line, without the usage block."""

    def error(self, message: str) -> None:
        raise UserError(f"{self.prog}: {message} (see --help)")


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run `main`, turning UserError into a single stderr line, a closed pipe into a quiet stop and
    Ctrl-C into exit 130."""
    try:
        return main(argv) or 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return USER_ERROR_EXIT
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly instead of failing at interpreter exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
