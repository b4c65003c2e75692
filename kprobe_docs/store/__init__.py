"""Results files: their schema, writing, reading, importing."""
