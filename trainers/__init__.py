"""Trainers: one small protocol, one step loop, one backend per framework; usable from a plain
script (``trainers.backends.load_trainer``)."""
