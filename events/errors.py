"""The root of every exception the ``events`` package raises."""

from __future__ import annotations


class EventsError(Exception):
    """Base of every ``events`` failure: bus errors and undecodable events alike."""
