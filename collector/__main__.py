"""`python -m collector` is `readynet-collector`."""

from collector.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
