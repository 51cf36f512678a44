"""Ports: the protocols the service is written against, one per external capability."""
