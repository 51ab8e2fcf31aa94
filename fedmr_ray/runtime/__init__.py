"""The Ray runtime: the only package that imports ray."""
