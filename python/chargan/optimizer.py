"""chargan.Optimizer: Adam/AdamW, SGD or RMSprop."""

from ctypes import byref, c_uint64

from ._ffi import _F, _raw, OptimizerConfig, OptimizerP
from ._handle import Handle


class Optimizer(Handle):
    """Optimizer(config=None, **fields): fields are those of OptimizerConfig
    (kind, lr, beta1, beta2, eps, weight_decay, momentum, rho, clip_norm).
    Passed to a Trainer it is adopted, like a Model."""

    _what = "optimizer"
    _free = _raw.chargan_optimizer_free

    def __init__(self, config=None, **fields):
        if config is not None and "kind" in fields:
            # the kind chooses the defaults the config was filled with
            raise TypeError("give kind to the OptimizerConfig, not beside it")
        cfg = (OptimizerConfig.copy_of(config, "config") if config is not None
               else OptimizerConfig(kind=fields.pop("kind", 0)))
        cfg.update(**fields)
        out = OptimizerP()
        _F.chargan_optimizer_new(byref(cfg), byref(out))
        self._init_handle(out)

    @property
    def config(self):
        cfg = OptimizerConfig()
        _F.chargan_optimizer_get_config(self._h, byref(cfg))
        return cfg

    @property
    def lr(self):
        return self.config.lr

    @lr.setter
    def lr(self, value):
        lr = float(value)
        _F.chargan_optimizer_set_lr(self._h, lr)

    @property
    def steps(self):
        """Number of steps taken."""
        n = c_uint64()
        _F.chargan_optimizer_steps(self._h, byref(n))
        return n.value
