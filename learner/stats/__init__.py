"""Pure statistics: Beta posteriors, P(best), the always-valid sequential test."""
