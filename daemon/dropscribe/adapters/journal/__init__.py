"""The job journal: the service's memory of jobs, results, calls, uploads and meta, on local SQLite.

The contract it keeps is the port :class:`dropscribe.core.ports.journal.Journal`; ``schema`` holds the
tables and their migrations, ``rows`` how a job is kept in a row, ``sqlite`` the implementation.
"""

from dropscribe.adapters.journal.sqlite import SqliteJournal

__all__ = ["SqliteJournal"]
