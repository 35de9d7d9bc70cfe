"""dvp_engine.network."""
