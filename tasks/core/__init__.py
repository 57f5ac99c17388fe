"""What every stage shares: the work directory's paths (`workspace`), the one cache policy
(`caching`) and content digests (`hashing`), task runners (`runners`) and the user-error type
(`errors`)."""
