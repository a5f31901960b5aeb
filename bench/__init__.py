"""The dispatcher's benchmark: the real dispatcher and a naive baseline against devstack in simulation mode."""
