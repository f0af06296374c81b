"""Test and benchmark support: local AWS emulators and a fault-injecting loopback proxy."""
