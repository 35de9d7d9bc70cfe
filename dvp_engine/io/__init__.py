"""dvp_engine.io."""
