"""The parts of ``run_chains`` (:mod:`mcgen.run`), one concern per module.

- :mod:`~mcgen._driver.compile`: the cache of compiled functions and compile-time accounting.
- :mod:`~mcgen._driver.steps`: the compiled pieces: chain keys, kernel init, warmup and
  sampling chunks.
- :mod:`~mcgen._driver.positions`: initial positions from the user's ``init``.
- :mod:`~mcgen._driver.placement`: chains across devices and hosts (padding, sharding,
  copying draws to the host).
- :mod:`~mcgen._driver.checkpoint`: atomic, verified checkpoints and the run fingerprint.
- :mod:`~mcgen._driver.store`: draws streamed to a zarr store.
- :mod:`~mcgen._driver.progress`: the progress display drawn between chunks.
"""
