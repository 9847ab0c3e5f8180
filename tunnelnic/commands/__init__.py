"""Subcommands of the ``tunnelnic`` command line, one module each (see :mod:`tunnelnic.cli`)."""
