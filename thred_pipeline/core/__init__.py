"""Plain types every floor shares: records, windows, statuses, money. Imports nothing else of the package."""
