"""The rollups: declared in tables.py, folded from the queue of new calls (fold.py, folder.py),
checked and rebuilt against the call log (maintenance.py)."""
