"""AnonChat's own mutation runner (`make mutate`, `python -m tests.mutation`).

Line coverage says which code the tests run; mutants say which of it they would notice
changing. Kept in-tree rather than using mutmut or cosmic-ray so the operators, the
"each source file against its own test folder" table and the equivalent-mutant list are
ours to review. Nothing here is a test: no file is named ``test_*.py``.
"""
