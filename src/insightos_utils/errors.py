"""Errors with the exit status the command line maps them to (contract section 2)."""

from __future__ import annotations


class InsightOSError(Exception):
    """Any failure the command line reports with a message instead of a traceback (exit 1)."""

    exit_status = 1


class InputError(InsightOSError):
    """Bad input a user can fix: a missing file or column, unparseable data, too many bad rows.

    Exit status 2. The message names the file, the column and the rows, and what would fix it.
    """

    exit_status = 2
