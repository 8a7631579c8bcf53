"""Pure numeric functions over sufficient statistics or arrays. No I/O, no store, no files."""
