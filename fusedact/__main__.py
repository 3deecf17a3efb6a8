"""``python -m fusedact <command>``: see ``fusedact.cli``."""
import sys

from fusedact.cli import main

if __name__ == "__main__":  # spawned worker processes re-import this module
    sys.exit(main())
