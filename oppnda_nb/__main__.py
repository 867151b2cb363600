"""``python -m oppnda_nb``: the command line (see :mod:`oppnda_nb.cli`)."""
import sys
from oppnda_nb.cli import main
sys.exit(main())
