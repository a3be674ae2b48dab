"""chargan.Trainer: MLE pre-training and adversarial training."""

import ctypes
import os
import signal
import threading
import weakref
from ctypes import byref, c_double, c_float, c_int32, c_uint32, c_uint64

from . import _arrays, _ffi, errors
from ._ffi import (_F, _raw, PROGRESS_FN, ModelKind, Phase, ProgressStruct, TrainerConfig,
                   TrainerP, check_int)
from ._handle import Handle, address, fspath, text_bytes
from .model import Model, _ids_2d
from .optimizer import Optimizer


def _steps(steps):
    """A step count: negative ones would wrap to 2**64 - 1 and run for ever."""
    return check_int(steps, c_uint64, "steps", errors.InvalidArgument)


class Progress:
    """What a progress callback receives: a snapshot of chargan_progress.
    Fields the loaded library does not fill are None."""

    __slots__ = [f[0] for f in ProgressStruct._fields_ if f[0] != "struct_size"]

    def __init__(self, ptr):
        size = ptr.contents.struct_size
        base = ctypes.addressof(ptr.contents)
        for name, ctype in ProgressStruct._fields_[1:]:
            field = getattr(ProgressStruct, name)
            value = None
            if field.offset + field.size <= size:
                value = ctype.from_address(base + field.offset).value
            setattr(self, name, value)
        if self.phase is not None:
            try:
                self.phase = Phase(self.phase)
            except ValueError:
                pass

    def __repr__(self):
        return "Progress(%s)" % ", ".join("%s=%r" % (k, getattr(self, k)) for k in self.__slots__)


class _SigintWatcher:
    """Asks the library to stop a long call on Ctrl-C.  Python runs its
    signal handlers only between bytecodes, which a call into C does not
    reach until it returns; its C-level handler does write the signal's
    number to the wakeup fd at once, and this thread, reading that fd, asks
    the trainer to stop (chargan_trainer_request_stop may be called while
    another thread is inside a call).  One per process, started on first
    use; armed for the calls running in the main thread (one, or several
    when a progress callback makes a long call on another trainer).  Bytes
    for other signals go on to the wakeup fd installed before (asyncio's,
    say)."""

    _creating = threading.Lock()
    _instance = None

    @classmethod
    def get(cls):
        """The process's watcher, or None where none can run (a library
        without the call, no thread or pipe to be had)."""
        if not _ffi.has("chargan_trainer_request_stop"):
            return None
        with cls._creating:
            w = cls._instance
            if w is not None and w._pid != os.getpid():  # a fork left the thread behind
                os.close(w._r)
                os.close(w._w)
                w = cls._instance = None
            if w is None:
                try:
                    w = cls._instance = cls()
                except (OSError, RuntimeError):
                    return None
            return w

    def __init__(self):
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._targets = []    # [trainer handle, stop asked] of each armed call, outermost first
        self._synced = False  # the watcher has read up to disarm()'s marker
        self._previous = -1   # the wakeup fd before arm()
        self._r, self._w = os.pipe()
        try:
            os.set_blocking(self._w, False)
            threading.Thread(target=self._run, name="chargan-sigint", daemon=True).start()
        except BaseException:
            os.close(self._r)
            os.close(self._w)
            raise

    def arm(self, h):
        """Until the matching disarm(), a SIGINT asks h's trainer to stop
        (main thread; calls nest, the inner one disarmed first)."""
        with self._cond:
            first = not self._targets
            self._targets.append([h, False])
        if first:
            self._previous = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)

    def disarm(self):
        """Disarms the innermost call: waits until the thread has read every
        byte the signals until now wrote (a marker, 0, follows them down the
        pipe), so that none reaches the next call, and after the outermost
        puts the previous wakeup fd back (Python cannot say whether it warned
        on a full buffer: it does again, Python's default); whether a stop
        was asked."""
        if len(self._targets) == 1:
            signal.set_wakeup_fd(self._previous)
        with self._cond:
            self._synced = False
            try:
                os.write(self._w, b"\0")
                self._cond.wait_for(lambda: self._synced, timeout=10)
            except OSError:
                pass  # a full pipe: only signal numbers fill it, the stop was asked
            return self._targets.pop()[1]

    def _run(self):
        while True:
            data = os.read(self._r, 64)
            with self._cond:
                if signal.SIGINT in data:
                    for target in self._targets:
                        if not target[1]:
                            target[1] = True
                            _raw.chargan_trainer_request_stop(target[0])
                if 0 in data:
                    self._synced = True
                    self._cond.notify_all()
                previous = self._previous
            signals = data.replace(b"\0", b"")
            if previous >= 0 and signals:
                try:
                    os.write(previous, signals)
                except OSError:
                    pass


# The trainers whose running calls a Ctrl-C stops (main thread), outermost
# first: more than one when a progress callback calls another trainer.
_sigint_trainers = []


def _on_sigint(signum, frame):
    for tr in _sigint_trainers:
        tr._interrupted = True


class Trainer(Handle):
    """Trainer(generator, config=None, *, g_optimizer=None, discriminator=None,
    d_optimizer=None, progress=None, **fields); fields are those of
    TrainerConfig (batch, seq_len, val_fraction, seed, threads, report_every,
    estimator, ...).

    On success the trainer adopts generator, discriminator and the optimizers
    (the library frees them with the trainer): the Python objects passed in
    become borrowed views that keep the trainer alive and stop working when it
    is closed.  An optimizer left out is a default Adam; d_optimizer without a
    discriminator raises InvalidArgument.  On failure they stay the caller's.

    progress: a callable taking a Progress, called every report_every steps
    and at the end of each long call; return True to stop the call (it then
    raises CancelledError).  An exception raised inside the callback stops
    the call too and is re-raised from it (so Ctrl-C works at each report).
    """

    _what = "trainer"
    _free = _raw.chargan_trainer_free

    def __init__(self, generator, config=None, *, g_optimizer=None, discriminator=None,
                 d_optimizer=None, progress=None, **fields):
        cfg = (TrainerConfig.copy_of(config, "config") if config is not None
               else TrainerConfig()).update(**fields)
        if progress is not None and not callable(progress):
            raise TypeError("progress must be callable")  # before anything is adopted
        parts = [("generator", generator, Model), ("g_optimizer", g_optimizer, Optimizer),
                 ("discriminator", discriminator, Model), ("d_optimizer", d_optimizer, Optimizer)]
        seen = set()
        for name, obj, cls in parts:
            if obj is None:
                continue
            if not isinstance(obj, cls):
                raise TypeError("%s must be a chargan.%s, not %s"
                                % (name, cls.__name__, type(obj).__name__))
            if not obj.owned:
                raise errors.InvalidArgument(
                    "%s is %s: a trainer can only adopt a %s that owns its handle"
                    % (name, "closed" if obj.closed else "owned by another object", obj._what))
            if id(obj) in seen:
                raise errors.InvalidArgument("%s is passed twice" % name)
            seen.add(id(obj))
        if generator is None:
            raise errors.InvalidArgument("a trainer needs a generator")
        out = TrainerP()
        _F.chargan_trainer_new(byref(cfg), *(obj._h if obj is not None else None
                                              for _, obj, _ in parts), byref(out))
        self._init_handle(out)
        for key, obj, _ in parts:
            if obj is not None:
                obj._adopt(self)
                self._cache[key] = obj
        if progress is not None:
            self.set_progress(progress)

    def _init_handle(self, ptr, owner=None):
        super()._init_handle(ptr, owner)
        self._cache = weakref.WeakValueDictionary()
        self._progress_fn = None   # the Python callable
        self._progress_c = None    # its CFUNCTYPE wrapper: must outlive the library's use
        self._callback_error = None
        self._depth = 0            # library calls of this trainer running (a callback may nest one)
        self._retired = []         # wrappers replaced during a call, kept until it returns
        self._interrupted = False  # Ctrl-C during a call, for the callback to stop it

    @classmethod
    def load(cls, path):
        """Restores a trainer from a checkpoint written by save(); set the
        corpus again (same text) before training."""
        out = TrainerP()
        _F.chargan_trainer_load(fspath(path), byref(out))
        return cls._wrap(out)

    def save(self, path):
        """Writes a checkpoint atomically."""
        self._call(_F.chargan_trainer_save, fspath(path))

    def close(self):
        if getattr(self, "_depth", 0):
            raise errors.StateError("cannot close a trainer while one of its calls runs "
                                    "(from its progress callback, say)")
        super().close()
        self._progress_c = None

    @property
    def config(self):
        cfg = TrainerConfig()
        _F.chargan_trainer_get_config(self._h, byref(cfg))
        return cfg

    # -------------------------------------------------------- borrowed parts

    def _view(self, key, ptr, cls):
        if not ptr:
            return None
        view = self._cache.get(key)
        if view is None or view.closed or address(view._ptr) != address(ptr):
            view = cls._wrap(ptr, owner=self)
            self._cache[key] = view
        return view

    @property
    def generator(self):
        """The generator (a borrowed Model view; the object passed in, if any)."""
        return self._view("generator", _raw.chargan_trainer_generator(self._h), Model)

    @property
    def discriminator(self):
        return self._view("discriminator", _raw.chargan_trainer_discriminator(self._h), Model)

    def optimizer(self, which=ModelKind.GENERATOR):
        """The optimizer of the generator or the discriminator (borrowed)."""
        which = check_int(which, ctypes.c_int, "which")
        if which not in (ModelKind.GENERATOR, ModelKind.DISCRIMINATOR):
            raise errors.InvalidArgument("which must be ModelKind.GENERATOR or DISCRIMINATOR, "
                                         "not %d" % which)
        key = "g_optimizer" if which == ModelKind.GENERATOR else "d_optimizer"
        return self._view(key, _raw.chargan_trainer_optimizer(self._h, which), Optimizer)

    @property
    def g_optimizer(self):
        return self.optimizer(ModelKind.GENERATOR)

    @property
    def d_optimizer(self):
        return self.optimizer(ModelKind.DISCRIMINATOR)

    # -------------------------------------------------------- progress

    def set_progress(self, fn):
        """Installs a progress callable (None removes it); see the class doc."""
        if self._depth and self._progress_c is not None:
            self._retired.append(self._progress_c)  # the running call may still be in it
        if fn is None:
            _F.chargan_trainer_set_progress(self._h, ctypes.cast(None, PROGRESS_FN), None)
            self._progress_fn = self._progress_c = None
            return
        if not callable(fn):
            raise TypeError("progress must be callable")
        this = weakref.ref(self)  # the trampoline must not keep the trainer alive

        def trampoline(ptr, user):
            # Nothing may propagate into C: catch everything, remember it and
            # ask the library to stop; _call() re-raises it.
            tr = this()
            if tr is None or tr._interrupted:
                return 1
            try:
                return 1 if fn(Progress(ptr)) else 0
            except BaseException as e:  # noqa: B902 - KeyboardInterrupt too
                if tr._callback_error is None:
                    tr._callback_error = e
                return 1

        c_fn = PROGRESS_FN(trampoline)
        _F.chargan_trainer_set_progress(self._h, c_fn, None)
        self._progress_fn, self._progress_c = fn, c_fn

    progress = property(lambda self: self._progress_fn, set_progress)

    def request_stop(self):
        """Asks this trainer's running long call (pretrain_generator,
        pretrain_discriminator, adversarial, evaluate, eval_discriminator, or
        else the next one) to stop before its next step or batch of windows;
        that call then raises CancelledError, the steps done kept.  The one
        method that may be called from another thread while a call on this
        trainer runs (the trainer must not be closed meanwhile).
        chargan_trainer_request_stop."""
        _F.chargan_trainer_request_stop(self._h)

    def _call(self, func, *args, stoppable=False):
        """Calls a trainer function; an exception the progress callback raised
        during the call is re-raised in place of the CancelledError.

        Ctrl-C during the call: Python's own handler would raise
        KeyboardInterrupt on entering the callback, outside its try, where
        ctypes can only print and drop it, and not at all before the call
        returns.  So while a callback is installed or a stoppable (long) call
        runs (in the main thread, with the default handler) SIGINT only sets
        a flag, which the callback answers by stopping the call at a
        consistent step, and a stoppable call also asks the library to stop
        (_SigintWatcher), so it stops within a step even without a callback
        or while it validates; KeyboardInterrupt is raised when it returns."""
        h = self._h
        outermost = self._depth == 0
        self._callback_error = None
        handler = signal.getsignal(signal.SIGINT)
        # Python's default handler, or ours for a call on another trainer
        # that this one's call runs inside (from its progress callback)
        catch = (outermost and (stoppable or self._progress_c is not None) and
                 threading.current_thread() is threading.main_thread() and
                 (handler is signal.default_int_handler or handler is _on_sigint))
        install = catch and handler is signal.default_int_handler
        watcher = None
        if catch:
            # a Ctrl-C that came earlier in an enclosing call's callback
            # stops this call too, before its first step
            self._interrupted = any(t._interrupted for t in _sigint_trainers)
            if self._interrupted and stoppable:
                _raw.chargan_trainer_request_stop(h)
            _sigint_trainers.append(self)
        if install:
            previous = signal.signal(signal.SIGINT, _on_sigint)
        self._depth += 1
        try:
            if catch and stoppable:
                w = _SigintWatcher.get()  # None: the flag alone, as with a callback
                if w is not None:
                    w.arm(h)
                    watcher = w
            func(h, *args)
        except errors.CancelledError:
            if self._callback_error is None and not self._interrupted:
                raise
        finally:
            self._depth -= 1
            if outermost:
                self._retired.clear()
            if watcher is not None and watcher.disarm():
                # A request that came after the call's last check is still
                # pending: a call of no steps answers it.
                _raw.chargan_trainer_pretrain_generator(h, 0)
            if install:
                signal.signal(signal.SIGINT, previous)
            if catch:
                _sigint_trainers.remove(self)
            pending, self._callback_error = self._callback_error, None
            # A call nested in the callback raises too (its caller must not
            # go on as if it had run to the end); the outermost one clears.
            interrupted = self._interrupted
            if outermost:
                self._interrupted = False
        if pending is not None:
            raise pending
        if interrupted:
            raise KeyboardInterrupt

    # -------------------------------------------------------- corpus

    def set_corpus_text(self, text):
        """Sets the corpus from text (str or UTF-8 bytes)."""
        data = text_bytes(text)
        self._call(_F.chargan_trainer_set_corpus_text, data, len(data))

    def set_corpus_ids(self, ids):
        """Sets the corpus as one stream of ids."""
        ptr, keep, shape = _arrays.input_buffer(ids, c_int32, (None,), "ids")
        self._call(_F.chargan_trainer_set_corpus_ids, ptr, shape[0])

    def set_corpus_sequences(self, sequences):
        """Sets the corpus as separate sequences, a 2-D [n_seq, seq_len] array
        (seq_len must be the trainer's)."""
        ptr, keep, shape = _ids_2d(sequences)
        self._call(_F.chargan_trainer_set_corpus_sequences, ptr, shape[0], shape[1])

    def init_output_bias(self):
        """Sets the generator's output bias to the log unigram frequencies of
        the corpus's training part (add-one-half smoothed): for a fresh
        generator, before MLE training."""
        self._call(_F.chargan_trainer_init_output_bias)

    # -------------------------------------------------------- training

    def mle_step(self):
        """One MLE step on a random batch; returns its mean NLL (nats)."""
        loss = c_float()
        self._call(_F.chargan_trainer_mle_step, byref(loss))
        return loss.value

    def mle_step_batch(self, ids):
        """One MLE step on ids, a [batch, seq_len + 1] array; returns the loss."""
        cfg = self.config
        want = (cfg.batch, cfg.seq_len + 1)
        try:
            ptr, keep, _ = _arrays.input_buffer(ids, c_int32, want, "ids")
        except ValueError as e:
            raise errors.InvalidArgument(str(e)) from None
        loss = c_float()
        self._call(_F.chargan_trainer_mle_step_batch, ptr, byref(loss))
        return loss.value

    def pretrain_generator(self, steps):
        self._call(_F.chargan_trainer_pretrain_generator, _steps(steps), stoppable=True)

    def d_step(self):
        """One discriminator step; returns (loss, accuracy)."""
        loss, acc = c_float(), c_float()
        self._call(_F.chargan_trainer_d_step, byref(loss), byref(acc))
        return loss.value, acc.value

    def pretrain_discriminator(self, steps):
        self._call(_F.chargan_trainer_pretrain_discriminator, _steps(steps), stoppable=True)

    def gan_step(self):
        """One adversarial round; returns (generator loss, discriminator loss)."""
        g, d = c_float(), c_float()
        self._call(_F.chargan_trainer_gan_step, byref(g), byref(d))
        return g.value, d.value

    def adversarial(self, steps):
        self._call(_F.chargan_trainer_adversarial, _steps(steps), stoppable=True)

    def evaluate(self):
        """(validation NLL in nats/token, bits per token)."""
        nll, bpc = c_double(), c_double()
        self._call(_F.chargan_trainer_evaluate, byref(nll), byref(bpc), stoppable=True)
        return nll.value, bpc.value

    def eval_discriminator(self, n_batches=4):
        """Discriminator accuracy on held-out real vs generated batches."""
        acc = c_double()
        n = check_int(n_batches, c_uint32, "n_batches", errors.InvalidArgument)
        self._call(_F.chargan_trainer_eval_discriminator, n, byref(acc), stoppable=True)
        return acc.value

    @property
    def global_step(self):
        n = c_uint64()
        _F.chargan_trainer_global_step(self._h, byref(n))
        return n.value


__all__ = ["Trainer", "Progress"]
