"""The former name of Lucid's command line: ``python -m services`` runs ``python -m lucid``."""
