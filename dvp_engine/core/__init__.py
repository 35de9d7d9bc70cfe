"""dvp_engine.core."""
