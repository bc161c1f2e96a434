"""Model definitions, the registry of named models, packaged-weight loaders and training recipes."""
