"""``python -m include.auth sync-roles``: create or update the FAB roles of the compose stack.

Needs the FAB auth manager's tables (``airflow db migrate`` with
``[core] auth_manager = airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager``).
Prints what changed per role; running it again changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.auth", description=__doc__)
    parser.add_argument("command", choices=["sync-roles"])
    parser.parse_args(argv)
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    from include.auth.roles import sync_roles

    with get_application_builder() as appbuilder:
        changes = sync_roles(appbuilder.sm)
    json.dump(changes, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
