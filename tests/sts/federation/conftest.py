from tests.sts.conftest import clock, env, keys, world

__all__ = ["clock", "env", "keys", "world"]
