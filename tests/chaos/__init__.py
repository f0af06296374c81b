"""The fault-injection suite: the product under a hostile network, kills and failing handlers."""
