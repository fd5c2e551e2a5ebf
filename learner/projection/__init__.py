"""The exactly-once projection: events into SQL in one transaction, with the in-memory
mirrors of its rows, operator commands, decision records and the reward rule."""
