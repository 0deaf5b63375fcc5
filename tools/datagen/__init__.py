"""The generator of the committed dataset and evalset (development only, not the runtime)."""
