"""``python -m optproof``: the command line."""

import sys

from .cli import main

if __name__ == "__main__":  # importing the module (API docs inspect it) runs nothing
    sys.exit(main())
