"""``python -m fusedact <command>``: see ``fusedact.cli``."""
import sys

from fusedact.cli import main

sys.exit(main())
