"""Test support: helpers that start real modelplane servers on free loopback ports."""
