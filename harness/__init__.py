"""tunix-rt: a pytest harness that runs fine-tuning milestones as ordered acceptance tests."""
