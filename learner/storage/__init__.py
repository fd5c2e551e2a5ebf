"""The learner's storage: the SQL schema, the async store, the per-prompt view and
period analytics."""
