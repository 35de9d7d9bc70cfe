"""dvp_engine.cli."""
