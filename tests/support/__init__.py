"""Test and benchmark support, kept out of the shipped package: local AWS emulators
(``support.emulators``) and a fault-injecting loopback proxy (``support.proxy``).

Tests import them as ``support.…`` (``tests`` is on pytest's ``pythonpath``); ``bench/``
puts the ``tests`` directory on ``sys.path`` to do the same.
"""
