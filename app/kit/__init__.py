"""Infrastructure shared by every domain: settings, database, errors, logging, auth primitives."""
