"""dvp_engine.facemodel."""
