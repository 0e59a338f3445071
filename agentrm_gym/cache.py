"""Kept for the envs' imports: the cache directory lives in :mod:`agentrm_gym.files`."""

from agentrm_gym.files import cache_dir as cache_dir  # noqa: F401
