"""Plain types every floor shares: records, windows, statuses, money, external ids.

Imports nothing else of the package.
"""
