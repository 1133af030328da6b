"""Server side: strategy wiring with controlled sampling, the round loop, the Flower ServerApp."""
