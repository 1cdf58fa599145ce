"""CAP: the model, hardened parsing, validation, signatures and serialisation."""
