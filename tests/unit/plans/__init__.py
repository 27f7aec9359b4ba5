"""Unit tests of the plan machine and entitlements."""
