"""dvp_engine.render."""
