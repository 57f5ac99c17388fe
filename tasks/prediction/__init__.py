"""The predict stage: the champion package (`champion`), what new tracks bring (`inputs`), their
latents (`encoding`), and their place in the collection (`placement`)."""
