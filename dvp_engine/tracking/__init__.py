"""dvp_engine.tracking."""
