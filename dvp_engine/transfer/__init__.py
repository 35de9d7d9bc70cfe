"""dvp_engine.transfer."""
