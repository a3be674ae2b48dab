"""Trainer: adoption of models and optimizers, the Python progress callback
(stop, exceptions), steps, evaluation, checkpoints, adversarial training."""

import gc
import math
import os
import signal
import threading
import time

import chargan
import support

numpy = support.numpy_or_skip()


class TrainerTest(support.TempDirTestCase):
    def setUp(self):
        super().setUp()
        self.text = support.corpus()

    def test_progress_callback(self):
        reports = []
        with support.tiny_trainer(self.text) as tr:
            tr.progress = reports.append
            self.assertEqual(tr.progress, reports.append)
            tr.pretrain_generator(6)
            self.assertEqual(tr.global_step, 6)
        steps = [p.step for p in reports]
        self.assertEqual(steps, [2, 4, 6])
        last = reports[-1]
        self.assertEqual(last.phase, chargan.Phase.MLE)
        self.assertEqual(last.total, 6)
        self.assertEqual(last.global_step, 6)
        self.assertTrue(0 < last.loss < 10)
        self.assertTrue(math.isnan(last.d_loss))
        self.assertGreaterEqual(last.elapsed_s, 0)
        self.assertIn("phase=", repr(last))

    def test_callback_returning_true_cancels(self):
        with support.tiny_trainer(self.text) as tr:
            tr.set_progress(lambda p: p.step >= 4)
            with self.assertRaises(chargan.CancelledError):
                tr.pretrain_generator(100)
            self.assertEqual(tr.global_step, 4)
            tr.set_progress(None)
            tr.pretrain_generator(2)
            self.assertEqual(tr.global_step, 6)

    def test_request_stop(self):
        with support.tiny_trainer(self.text) as tr:
            # made between calls: the next long call stops before its first step
            tr.request_stop()
            with self.assertRaises(chargan.CancelledError) as cm:
                tr.pretrain_generator(10)
            self.assertIn("request_stop", str(cm.exception))
            self.assertEqual(tr.global_step, 0)
            tr.request_stop()
            with self.assertRaises(chargan.CancelledError):
                tr.evaluate()
            tr.pretrain_generator(2)  # the requests were used up
            self.assertEqual(tr.global_step, 2)

            # from another thread, while the call runs
            reported = threading.Event()
            tr.set_progress(lambda p: reported.set())

            def ask():
                reported.wait(60)
                tr.request_stop()

            asker = threading.Thread(target=ask)
            asker.start()
            try:
                with self.assertRaises(chargan.CancelledError):
                    tr.pretrain_generator(10 ** 9)
            finally:
                reported.set()
                asker.join()
            self.assertGreater(tr.global_step, 2)

    def test_a_late_watcher_leaves_the_next_call_alone(self):
        # On a loaded machine the watcher thread may read a Ctrl-C's byte
        # only after the call it was armed for has returned: it must not
        # stop the next one.  Here every read of its pipe is 0.3 s late.
        from chargan import trainer as trainer_module
        real_os = trainer_module.os

        class LateReads:
            def __getattr__(self, name):
                return getattr(real_os, name)

            def read(self, fd, n):
                data = real_os.read(fd, n)
                time.sleep(0.3)
                return data

        def progress(p):
            if p.step == 4:
                os.kill(os.getpid(), signal.SIGINT)

        watcher = trainer_module._SigintWatcher
        saved = watcher._instance
        watcher._instance = None
        trainer_module.os = LateReads()
        try:
            with support.tiny_trainer(self.text, progress=progress) as tr:
                with self.assertRaises(KeyboardInterrupt):
                    tr.pretrain_generator(1000)
                tr.progress = None
                start = time.monotonic()
                steps = 0
                while time.monotonic() - start < 1.0:  # well past the late read
                    tr.pretrain_generator(500)
                    steps += 500
                self.assertGreater(steps, 0)
        finally:
            trainer_module.os = real_os
            watcher._instance = saved

    def test_without_a_watcher_thread_calls_still_run(self):
        # No thread to be had (a thread limit, interpreter shutdown): the
        # call runs, and the SIGINT handler and wakeup fd are left as found.
        from chargan import trainer as trainer_module
        watcher = trainer_module._SigintWatcher
        saved, start = watcher._instance, threading.Thread.start

        def refuse(thread):
            raise RuntimeError("can't start new thread")

        watcher._instance = None
        threading.Thread.start = refuse
        try:
            with support.tiny_trainer(self.text) as tr:
                tr.pretrain_generator(2)
                self.assertEqual(tr.global_step, 2)
            self.assertIsNone(watcher._instance)
            self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)
            self.assertEqual(signal.set_wakeup_fd(-1), -1)
        finally:
            threading.Thread.start = start
            watcher._instance = saved

    def test_callback_exception_is_reraised(self):
        class Boom(Exception):
            pass

        calls = []

        def progress(p):
            calls.append(p.step)
            raise Boom("from the callback at step %d" % p.step)

        with support.tiny_trainer(self.text, progress=progress) as tr:
            with self.assertRaises(Boom) as cm:
                tr.pretrain_generator(50)
            self.assertEqual(str(cm.exception), "from the callback at step 2")
            self.assertEqual(calls, [2])  # the call stopped at once
            self.assertEqual(tr.global_step, 2)
            # the trainer is still consistent and usable
            tr.set_progress(lambda p: None)
            tr.pretrain_generator(2)
            self.assertEqual(tr.global_step, 4)

    def test_keyboard_interrupt_in_callback(self):
        def progress(p):
            raise KeyboardInterrupt

        with support.tiny_trainer(self.text, progress=progress) as tr:
            with self.assertRaises(KeyboardInterrupt):
                tr.pretrain_generator(10)

    def test_ctrl_c_during_a_call_stops_it_and_raises(self):
        # A real SIGINT: Python's own handler would raise on entering the
        # ctypes callback, where the exception is lost.  The signal comes from
        # inside the callback, so it lands at a known step.
        def progress(p):
            if p.step == 4:
                os.kill(os.getpid(), signal.SIGINT)

        with support.tiny_trainer(self.text, progress=progress) as tr:
            with self.assertRaises(KeyboardInterrupt):
                tr.pretrain_generator(1000)
            # stopped before the next step (asked by the watcher thread) or
            # at the next report (by the callback), whichever came first
            stopped = tr.global_step
            self.assertIn(stopped, (4, 5, 6))
            self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)
            tr.pretrain_generator(2)  # and it goes on
            self.assertEqual(tr.global_step, stopped + 2)

    def test_ctrl_c_stops_a_long_call_without_a_callback(self):
        # No callback runs Python code during the call: the library is asked
        # to stop from the SIGINT wakeup fd.  A wakeup fd installed before
        # (as asyncio does) still gets the signal's byte.
        r, w = os.pipe()
        os.set_blocking(w, False)
        os.set_blocking(r, False)
        previous = signal.set_wakeup_fd(w)
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        try:
            with support.tiny_trainer(self.text) as tr:
                timer.start()
                with self.assertRaises(KeyboardInterrupt):
                    tr.pretrain_generator(10 ** 12)
                timer.join()
                stopped = tr.global_step
                self.assertGreater(stopped, 0)
                self.assertLess(stopped, 10 ** 12)
                self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)
                self.assertEqual(signal.set_wakeup_fd(w), w)  # restored
                self.assertIn(signal.SIGINT, os.read(r, 64))
                tr.pretrain_generator(2)  # no request left over
                self.assertEqual(tr.global_step, stopped + 2)
        finally:
            timer.cancel()
            signal.set_wakeup_fd(previous)
            os.close(r)
            os.close(w)

    def test_ctrl_c_stops_the_discriminator_evaluation(self):
        # Its batches of windows check the request too: without the watcher
        # armed around it, this call of 2**32 - 1 batches would run for hours.
        gen = support.tiny_generator(self.text)
        disc = chargan.Model(kind=chargan.DISCRIMINATOR, vocab_size=gen.vocab_size,
                             embed_dim=4, hidden_dim=4)
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        with chargan.Trainer(gen, discriminator=disc, batch=4, seq_len=8,
                             estimator=chargan.Estimator.GUMBEL) as tr:
            tr.set_corpus_text(self.text)
            before = tr.eval_discriminator(3)
            try:
                timer.start()
                started = time.monotonic()
                with self.assertRaises(KeyboardInterrupt):
                    tr.eval_discriminator(2 ** 32 - 1)
                self.assertLess(time.monotonic() - started, 30)
            finally:
                timer.cancel()
            self.assertEqual(tr.eval_discriminator(3), before)  # nothing changed or left over

    def test_ctrl_c_reaches_a_call_nested_in_the_callback(self):
        nested = []

        def progress(p):
            if p.step == 2 and not nested:
                os.kill(os.getpid(), signal.SIGINT)
                try:
                    tr.pretrain_generator(10)
                    nested.append("returned")  # as if all 10 steps had run
                except KeyboardInterrupt:
                    nested.append("raised")
                    raise

        with support.tiny_trainer(self.text, progress=progress) as tr:
            with self.assertRaises(KeyboardInterrupt):
                tr.pretrain_generator(1000)
            self.assertEqual(nested, ["raised"])
            self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)

    def test_ctrl_c_reaches_another_trainers_call_in_the_callback(self):
        # A long call on a second trainer, made from the first one's
        # callback, is stopped too (it ran to its end: the SIGINT handler was
        # the first call's, so the second armed nothing).
        inner_steps = []
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        with support.tiny_trainer(self.text) as inner:
            def progress(p):
                if not inner_steps:
                    timer.start()
                    try:
                        inner.pretrain_generator(300000)  # seconds, unstopped
                    finally:
                        inner_steps.append(inner.global_step)

            with support.tiny_trainer(self.text, progress=progress) as outer:
                started = time.monotonic()
                try:
                    with self.assertRaises(KeyboardInterrupt):
                        outer.pretrain_generator(1000)
                finally:
                    timer.cancel()
                self.assertLess(time.monotonic() - started, 30)
                self.assertEqual(len(inner_steps), 1)
                self.assertLess(inner_steps[0], 300000)
                self.assertLess(outer.global_step, 1000)
                self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)
                self.assertEqual(signal.set_wakeup_fd(-1), -1)  # put back
                inner.pretrain_generator(2)  # no request left over on either
                outer.progress = None
                outer.pretrain_generator(2)

    def test_ctrl_c_before_another_trainers_call_in_the_callback(self):
        # The Ctrl-C comes in the callback before it starts the second
        # trainer's call (or between two of them): that call stops before
        # its first step too, and raises.
        outcomes = []
        with support.tiny_trainer(self.text) as inner:
            def progress(p):
                if outcomes:
                    return
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the watcher has read the signal
                for _ in range(2):
                    before = inner.global_step
                    try:
                        inner.pretrain_generator(100000)
                        outcomes.append(("ran", inner.global_step - before))
                    except KeyboardInterrupt:
                        outcomes.append(("raised", inner.global_step - before))

            with support.tiny_trainer(self.text, progress=progress) as outer:
                with self.assertRaises(KeyboardInterrupt):
                    outer.pretrain_generator(100)
            self.assertEqual(outcomes, [("raised", 0), ("raised", 0)])
            inner.pretrain_generator(2)  # no request left over
            self.assertEqual(inner.global_step, 2)
            self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)

    def test_arguments_that_close_the_owner(self):
        # Converting an argument runs the caller's code; the handle is read
        # after it, so a closed owner is a StateError, not freed memory.
        for call in (lambda g, e: g.param_info(e), lambda g, e: g.stream_nll([3, 4, 5, 6], e),
                     lambda g, e: setattr(self.tr.g_optimizer, "lr", e),
                     lambda g, e: g.tokenizer.id_info(e), lambda g, e: g.tokenizer.lookup(e),
                     lambda g, e: g.save(e), lambda g, e: g.tokenizer.save(e)):
            self.tr = tr = support.tiny_trainer(self.text)
            g = tr.generator

            class Closes:
                def __index__(self):
                    tr.close()
                    return 2

                def __float__(self):
                    tr.close()
                    return 0.01

                def __fspath__(self):
                    tr.close()
                    return "x"

            with self.assertRaises(chargan.StateError):
                call(g, Closes())
            self.assertTrue(tr.closed)

        class Name(str):
            def encode(self, *args):
                self.tr.close()
                return str.encode(self, *args)

        self.tr = tr = support.tiny_trainer(self.text)
        name = Name("out.b")
        name.tr = tr
        with self.assertRaises(chargan.StateError):
            tr.generator.get_param(name)

    def test_closing_or_replacing_inside_the_callback(self):
        with support.tiny_trainer(self.text) as tr:
            tr.progress = lambda p: tr.close()
            with self.assertRaises(chargan.StateError):
                tr.pretrain_generator(10)
            self.assertFalse(tr.closed)
            # a call nested in the callback does not end the guard
            tr.progress = lambda p: (tr.evaluate(), tr.close())
            with self.assertRaises(chargan.StateError):
                tr.pretrain_generator(10)
            self.assertFalse(tr.closed)
            calls = []
            tr.progress = lambda p: setattr(tr, "progress", calls.append)
            tr.pretrain_generator(6)  # the running wrapper outlives its replacement
            self.assertEqual([p.step for p in calls], [4, 6])

    def test_counts_are_checked(self):
        with support.tiny_trainer(self.text) as tr:
            for bad in (-1, -2**63):
                with self.assertRaises(chargan.InvalidArgument):
                    tr.pretrain_generator(bad)
            with self.assertRaises(TypeError):
                tr.pretrain_generator(1.5)
            with self.assertRaises(chargan.InvalidArgument):
                tr.adversarial(-1)
            with self.assertRaises(chargan.InvalidArgument):  # a uint32: 1 once wrapped
                tr.eval_discriminator(2**32 + 1)
            self.assertEqual(tr.global_step, 0)

    def test_adoption(self):
        gen = support.tiny_generator(self.text)
        opt = chargan.Optimizer(lr=1e-2, clip_norm=1.0)
        self.assertTrue(gen.owned and opt.owned)
        tr = chargan.Trainer(gen, g_optimizer=opt, batch=4, seq_len=8)
        self.assertFalse(gen.owned)
        self.assertFalse(opt.owned)
        self.assertIs(tr.generator, gen)
        self.assertIs(tr.g_optimizer, opt)
        self.assertIsNone(tr.discriminator)
        self.assertIsNone(tr.d_optimizer)
        self.assertIn("borrowed from Trainer", repr(gen))
        # a view keeps the trainer alive
        del tr
        gc.collect()
        self.assertFalse(gen.closed)
        self.assertEqual(opt.config.clip_norm, 1.0)
        tr = gen._owner
        # closing a view only detaches it; the trainer still has its model
        gen.close()
        self.assertFalse(tr.generator.closed)
        self.assertIsNot(tr.generator, gen)
        # closing the trainer invalidates every view
        opt_view = tr.g_optimizer
        tr.close()
        self.assertTrue(opt.closed and opt_view.closed)
        with self.assertRaises(chargan.StateError):
            opt.lr = 0.1

    def test_adoption_refusals_leave_ownership(self):
        gen = support.tiny_generator(self.text)
        with self.assertRaises(chargan.InvalidArgument) as cm:
            chargan.Trainer(gen, batch=0)
        self.assertIn("batch", cm.exception.message)
        self.assertTrue(gen.owned)  # failure: still the caller's
        with self.assertRaises(chargan.InvalidArgument):
            chargan.Trainer(gen, discriminator=gen)
        with self.assertRaises(TypeError):
            chargan.Trainer(gen, g_optimizer=gen)
        with self.assertRaises(TypeError):
            chargan.Trainer(gen, progress="not callable")
        self.assertTrue(gen.owned)
        tr = chargan.Trainer(gen, batch=2, seq_len=4)
        with self.assertRaises(chargan.InvalidArgument) as cm:
            chargan.Trainer(gen)
        self.assertIn("owned by another", str(cm.exception))
        tr.close()
        with self.assertRaises(chargan.InvalidArgument):
            chargan.Trainer(gen)  # closed with its trainer

    def test_step_api(self):
        gen = support.tiny_generator(self.text)
        tr = chargan.Trainer(gen, batch=4, seq_len=16, seed=2)
        self.addCleanup(tr.close)
        with self.assertRaises(chargan.StateError) as cm:
            tr.mle_step()
        self.assertIn("corpus", cm.exception.message)
        tr.set_corpus_text(self.text)
        losses = [tr.mle_step() for _ in range(3)]
        self.assertTrue(all(0 < l < 10 for l in losses))
        ids = gen.tokenizer.encode(self.text)[:4 * 17].reshape(4, 17)
        self.assertGreater(tr.mle_step_batch(ids), 0)
        with self.assertRaises(chargan.InvalidArgument):
            tr.mle_step_batch(ids[:, :16])  # a buffer the library could overrun
        nll, bpc = tr.evaluate()
        self.assertAlmostEqual(bpc, nll / math.log(2), places=5)
        self.assertEqual(tr.global_step, 4)
        self.assertEqual(tr.g_optimizer.steps, 4)
        tr.g_optimizer.lr = 5e-4
        self.assertAlmostEqual(tr.g_optimizer.lr, 5e-4)
        self.assertEqual(tr.config.batch, 4)

    def test_corpus_forms(self):
        with support.tiny_trainer(self.text) as tr:
            ids = tr.generator.tokenizer.encode(self.text)
            tr.set_corpus_ids(ids)
            tr.mle_step()
            tr.set_corpus_ids(ids.tolist())
            tr.set_corpus_sequences(ids[:20 * 16].reshape(20, 16))
            tr.mle_step()
            with self.assertRaises(chargan.InvalidArgument):
                tr.set_corpus_text("too short")
            with self.assertRaises(chargan.Utf8Error):
                tr.set_corpus_text(b"\xff" * 100)

    def test_init_output_bias(self):
        with support.tiny_trainer(self.text) as tr:
            tr.init_output_bias()
            bias = tr.generator.get_param("out.b")
            self.assertAlmostEqual(float(numpy.exp(bias.astype(numpy.float64)).sum()), 1.0,
                                   places=5)
            self.assertLess(bias[chargan.ID_START], bias.max() - 5)

    def test_checkpoint_resume_is_bitwise(self):
        path = self.path("run.ckpt")
        with support.tiny_trainer(self.text) as tr:
            tr.pretrain_generator(3)
            tr.save(path)
            tr.pretrain_generator(3)
            expected = tr.generator.params()
        with chargan.Trainer.load(path) as tr:
            self.assertEqual(tr.global_step, 3)
            tr.set_corpus_text(self.text)
            tr.pretrain_generator(3)
            for name, w in tr.generator.params().items():
                numpy.testing.assert_array_equal(w, expected[name], err_msg=name)
            # a trainer checkpoint also loads as a plain model
            with chargan.Model.load(path) as gen:
                self.assertEqual(gen.config, tr.generator.config)
        with self.assertRaises(chargan.FileError) as cm:
            chargan.Trainer.load(self.path("missing.ckpt"))
        self.assertEqual(cm.exception.filename, self.path("missing.ckpt"))
        with support.tiny_trainer(self.text) as tr:
            with self.assertRaises(chargan.RangeError):
                tr.optimizer(2**32)  # the generator's, cached as the discriminator's
            with self.assertRaises(chargan.InvalidArgument):
                tr.optimizer(5)
        with support.tiny_trainer(self.text) as tr, \
                self.assertRaises(chargan.FileError) as cm:
            tr.save(self.path("no/such/dir/x.ckpt"))
        self.assertEqual(cm.exception.filename, self.path("no/such/dir/x.ckpt"))
        self.assertIsInstance(cm.exception, FileNotFoundError)  # a save's errno too

    def test_adversarial(self):
        for estimator, feed in ((chargan.Estimator.REINFORCE, chargan.GumbelFeed.HARD),
                                (chargan.Estimator.GUMBEL, chargan.GumbelFeed.HARD),
                                (chargan.Estimator.GUMBEL, chargan.GumbelFeed.SOFT)):
            with self.subTest(estimator=estimator, feed=feed):
                gen = support.tiny_generator(self.text)
                disc = chargan.Model(kind=chargan.DISCRIMINATOR, vocab_size=gen.vocab_size,
                                     embed_dim=8, hidden_dim=8)
                reports = []
                with chargan.Trainer(gen, discriminator=disc, batch=4, seq_len=8,
                                     estimator=estimator, gumbel_feed=feed, beta_start=2.0,
                                     beta_max=4.0, report_every=1,
                                     progress=reports.append) as tr:
                    self.assertEqual(tr.config.gumbel_feed, feed)
                    self.assertEqual(tr.config.beta_start, 2.0)
                    self.assertIs(tr.discriminator, disc)
                    self.assertIsNotNone(tr.d_optimizer)
                    tr.set_corpus_text(self.text)
                    loss, acc = tr.d_step()
                    self.assertTrue(0 <= acc <= 1 and loss > 0)
                    tr.pretrain_discriminator(1)
                    g_loss, d_loss = tr.gan_step()
                    self.assertTrue(math.isfinite(g_loss) and math.isfinite(d_loss))
                    tr.adversarial(1)
                    self.assertIn(chargan.Phase.ADVERSARIAL, [p.phase for p in reports])
                self.assertTrue(disc.closed)

    def test_collected_without_close(self):
        # Handles freed by __del__, views first or trainer first.
        for _ in range(3):
            tr = support.tiny_trainer(self.text)
            gen = tr.generator
            tr.set_progress(lambda p: None)
            del tr
            gen.sample_text(length=5)
            del gen
            gc.collect()


if __name__ == "__main__":
    support.main()
