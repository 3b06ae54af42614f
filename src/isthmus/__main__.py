"""``python -m isthmus``: the command line."""

from isthmus.cli import main

if __name__ == "__main__":  # not on import (documentation tools import every module)
    raise SystemExit(main())
