"""``python -m nrf.volumes``: the ``nrf-volume`` command line."""

from nrf.volumes.cli import main

raise SystemExit(main())
