"""The operations console (issue 19): alert inbox, alert / customer / segment pages, operator actions
written to ``alerts.actions``.  ``python -m pipeline console``; see :mod:`pipeline.console.server`."""
