/* progress.c - the training display (a bar redrawn in place on a terminal,
 * plain log lines otherwise), the JSONL log, and stop signals.
 *
 * The trainer calls back after every step (report_every = 1) so that Ctrl-C
 * and --time stop within one step; this file aggregates those reports into
 * the intervals the user asked for (--report-every) and throttles redraws. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* A field of chargan_progress may be read only if the library's struct has it. */
#define HAS_FIELD(p, f) ((p)->struct_size >= offsetof(chargan_progress, f) + sizeof((p)->f))
#define FIELD(p, f, dflt) (HAS_FIELD(p, f) ? (p)->f : (dflt))

struct cli_progress {
    cli_progress_settings s;
    double run_t0;

    int phase;
    uint64_t total;      /* UINT64_MAX: until the deadline */
    uint64_t done;       /* steps of this phase done, resumed ones included */
    uint64_t first_done; /* done when the phase began in this process */
    uint64_t call_base;  /* done when the current library call began */
    double phase_t0;
    double last_draw;
    double call_elapsed; /* the library's elapsed_s at the last callback */

    /* accumulated since the last log record */
    uint64_t log_from;
    int logged_any;
    double loss_sum;
    uint64_t loss_n;
    double dloss_sum, dacc_sum;
    uint64_t dloss_n, dacc_n;
    double tok_sum, tok_time;

    /* latest values */
    uint64_t global_step;
    double val_nll, val_bpc;
    double d_loss, d_accuracy;
    double loss;
    double rate; /* smoothed characters per second, for the bar */
    int log_errno; /* the first failed write to the JSONL log, or 0 */
    /* loss, d_loss and d_accuracy above are smoothed the same way */
};

const char *cli_phase_name(int phase)
{
    switch (phase) {
    case CHARGAN_PHASE_MLE: return "mle";
    case CHARGAN_PHASE_DISCRIMINATOR: return "discriminator";
    case CHARGAN_PHASE_ADVERSARIAL: return "adversarial";
    case CHARGAN_PHASE_EVAL: return "eval";
    }
    return "unknown";
}

/* Short phase labels for the bar, where columns are scarce. */
static const char *phase_label(int phase)
{
    switch (phase) {
    case CHARGAN_PHASE_MLE: return "mle";
    case CHARGAN_PHASE_DISCRIMINATOR: return "disc";
    case CHARGAN_PHASE_ADVERSARIAL: return "gan";
    case CHARGAN_PHASE_EVAL: return "eval";
    }
    return "?";
}

cli_progress *cli_progress_new(const cli_progress_settings *settings)
{
    cli_progress *pr = calloc(1, sizeof *pr);
    if (!pr)
        return NULL;
    pr->s = *settings;
    if (pr->s.log_every == 0)
        pr->s.log_every = 100;
    pr->run_t0 = cli_now();
    pr->val_nll = pr->val_bpc = NAN;
    pr->d_loss = pr->d_accuracy = NAN;
    pr->loss = NAN;
    return pr;
}

void cli_progress_free(cli_progress *pr)
{
    free(pr);
}

int cli_progress_time_up(const cli_progress *pr)
{
    return pr->s.deadline > 0 && cli_now() >= pr->s.deadline;
}

void cli_progress_begin_phase(cli_progress *pr, chargan_phase phase, uint64_t done, uint64_t total)
{
    pr->phase = (int)phase;
    pr->total = total;
    pr->done = pr->first_done = pr->call_base = pr->log_from = done;
    pr->logged_any = 0;
    pr->phase_t0 = cli_now();
    pr->last_draw = 0;
    pr->call_elapsed = 0;
    pr->loss_sum = pr->dloss_sum = pr->dacc_sum = pr->tok_sum = pr->tok_time = 0;
    pr->loss_n = pr->dloss_n = pr->dacc_n = 0;
    pr->loss = pr->d_loss = pr->d_accuracy = NAN;
    pr->rate = 0;
}

void cli_progress_begin_call(cli_progress *pr, uint64_t done)
{
    pr->call_base = done;
    pr->call_elapsed = 0;
}

static void fmt_duration(char *buf, size_t size, double s)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, size, "?");
        return;
    }
    unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%lu:%02lu", t / 60, t % 60);
}

static void fmt_rate(char *buf, size_t size, double r)
{
    if (r >= 1e6)
        snprintf(buf, size, "%.2fM", r / 1e6);
    else if (r >= 1e3)
        snprintf(buf, size, "%.1fk", r / 1e3);
    else
        snprintf(buf, size, "%.0f", r);
}

/* Seconds left, from the step rate of this process and from the deadline. */
static double eta_seconds(const cli_progress *pr, double now)
{
    double eta = INFINITY;
    uint64_t ran = pr->done - pr->first_done;
    double spent = now - pr->phase_t0;
    if (pr->total != UINT64_MAX && ran > 0 && spent > 0)
        eta = (double)(pr->total - (pr->done < pr->total ? pr->done : pr->total)) *
              (spent / (double)ran);
    if (pr->s.deadline > 0 && pr->s.deadline - now < eta)
        eta = pr->s.deadline > now ? pr->s.deadline - now : 0;
    return eta;
}

/* The terminal's width (80 if it does not say), read at every draw so that
 * a resized window is followed. */
static int terminal_columns(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

/* Whether a bar is drawn on standard error's current line (no newline
 * after it yet): a message must then start on a line of its own. */
static int bar_on_line;

void cli_progress_break_line(void)
{
    if (bar_on_line) {
        fputc('\n', stderr);
        bar_on_line = 0;
    }
}

/* The bar's fields after the phase and its steps, in the order shown; the
 * lowest rank goes first when the line is too narrow for all. */
enum { F_LOSS, F_D_LOSS, F_ACCURACY, F_VAL, F_RATE, F_ETA, N_BAR_FIELDS };
static const int field_rank[N_BAR_FIELDS] = {
    [F_LOSS] = 5, [F_D_LOSS] = 2, [F_ACCURACY] = 1, [F_VAL] = 3, [F_RATE] = 0, [F_ETA] = 4};

/* Drops whole fields, lowest rank first, until room (the columns left after
 * the phase and steps) holds them; returns their width. */
static int fit_fields(char field[N_BAR_FIELDS][40], int room)
{
    for (;;) {
        int width = 0, drop = -1;
        for (int f = 0; f < N_BAR_FIELDS; f++) {
            width += (int)strlen(field[f]);
            if (field[f][0] && (drop < 0 || field_rank[f] < field_rank[drop]))
                drop = f;
        }
        if (width <= room || drop < 0)
            return width;
        field[drop][0] = '\0';
    }
}

static void draw_bar(cli_progress *pr, double now)
{
    char field[N_BAR_FIELDS][40] = {{0}}, steps[48], num[32];
    if (isfinite(pr->loss))
        snprintf(field[F_LOSS], sizeof field[F_LOSS], " loss %.4f", pr->loss);
    if (isfinite(pr->d_loss))
        snprintf(field[F_D_LOSS], sizeof field[F_D_LOSS], " d %.3f", pr->d_loss);
    if (isfinite(pr->d_accuracy))
        snprintf(field[F_ACCURACY], sizeof field[F_ACCURACY], " acc %.2f", pr->d_accuracy);
    if (isfinite(pr->val_bpc))
        snprintf(field[F_VAL], sizeof field[F_VAL], " val %.3f bpc", pr->val_bpc);
    fmt_rate(num, sizeof num, pr->rate);
    snprintf(field[F_RATE], sizeof field[F_RATE], " %s ch/s", num);
    fmt_duration(num, sizeof num, eta_seconds(pr, now));
    snprintf(field[F_ETA], sizeof field[F_ETA], " ETA %s", num);
    if (pr->total == UINT64_MAX)
        snprintf(steps, sizeof steps, "%llu", (unsigned long long)pr->done);
    else
        snprintf(steps, sizeof steps, "%llu/%llu", (unsigned long long)pr->done,
                 (unsigned long long)pr->total);

    /* The fraction done: by steps, or by time when only a deadline bounds it. */
    double frac = 0;
    if (pr->total != UINT64_MAX && pr->total > 0)
        frac = (double)pr->done / (double)pr->total;
    else if (pr->s.deadline > pr->run_t0)
        frac = (now - pr->run_t0) / (pr->s.deadline - pr->run_t0);
    if (frac > 1)
        frac = 1;
    if (frac < 0)
        frac = 0;

    /* One column short of the width: a line that fills it would wrap on
     * some terminals.  The phase and steps always; then whole fields that
     * fit, and the bar (8 to 30 marks) in what room is left. */
    char line[512];
    int cols = terminal_columns() - 1;
    int head = snprintf(line, sizeof line, "%s %s", phase_label(pr->phase), steps);
    int fields = fit_fields(field, cols - head);
    int bar = cols - head - fields - 3;
    if (bar > 30)
        bar = 30;
    size_t k = (size_t)head;
    if (bar >= 8) {
        int fill = (int)(frac * bar + 0.5);
        line[k++] = ' ';
        line[k++] = '[';
        for (int i = 0; i < bar; i++)
            line[k++] = i < fill ? '#' : '.';
        line[k++] = ']';
    }
    for (int f = 0; f < N_BAR_FIELDS; f++)
        for (const char *c = field[f]; *c; c++)
            line[k++] = *c;
    line[k] = '\0';
    if ((int)k > cols) /* a terminal narrower than the phase and steps */
        line[cols > 0 ? cols : 0] = '\0';
    /* \r and erase-to-end-of-line: redraw in place. */
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    bar_on_line = 1;
    pr->last_draw = now;
}

void cli_progress_log_start(cli_progress *pr)
{
    if (!pr->s.jsonl || !pr->s.jsonl_replace)
        return;
    pr->s.jsonl_replace = 0;
    /* Only a regular file has records to drop: a pipe or a terminal
     * given as the log has none, and cannot be truncated. */
    struct stat sb;
    int fd = fileno(pr->s.jsonl);
    if (fstat(fd, &sb) == 0 && !S_ISREG(sb.st_mode))
        return;
    if (fflush(pr->s.jsonl) != 0 || ftruncate(fd, 0) != 0 || fseek(pr->s.jsonl, 0, SEEK_SET) != 0) {
        if (pr->log_errno == 0)
            pr->log_errno = errno ? errno : EIO;
    }
}

/* Each record reaches the file at once (a crash loses none); the first
 * failure is kept for the end of the run, which reports it. */
static void log_flush(cli_progress *pr)
{
    if (fflush(pr->s.jsonl) != 0 && pr->log_errno == 0)
        pr->log_errno = errno ? errno : EIO;
}

static void json_number(FILE *f, const char *key, double v)
{
    if (isfinite(v))
        fprintf(f, ",\"%s\":%.9g", key, v);
    else
        fprintf(f, ",\"%s\":null", key);
}

/* One log record for the steps since the last one: a plain line on stderr when
 * not drawing a bar, and a JSON object in the log file. */
static void report(cli_progress *pr, double now)
{
    double loss = pr->loss_n ? pr->loss_sum / (double)pr->loss_n : NAN;
    double dloss = pr->dloss_n ? pr->dloss_sum / (double)pr->dloss_n : NAN;
    double dacc = pr->dacc_n ? pr->dacc_sum / (double)pr->dacc_n : NAN;
    double rate = pr->tok_time > 0 ? pr->tok_sum / pr->tok_time : NAN;
    double elapsed = now - pr->run_t0;

    if (!pr->s.quiet && !pr->s.tty) {
        char steps[64], eta[32], line[384];
        if (pr->total == UINT64_MAX)
            snprintf(steps, sizeof steps, "%llu", (unsigned long long)pr->done);
        else
            snprintf(steps, sizeof steps, "%llu/%llu", (unsigned long long)pr->done,
                     (unsigned long long)pr->total);
        fmt_duration(eta, sizeof eta, eta_seconds(pr, now));
        size_t n = (size_t)snprintf(line, sizeof line, "%s step %s:", cli_phase_name(pr->phase),
                                    steps);
        if (isfinite(loss))
            n += (size_t)snprintf(line + n, sizeof line - n, " loss %.4f", loss);
        if (isfinite(dloss) && n < sizeof line)
            n += (size_t)snprintf(line + n, sizeof line - n, " d_loss %.4f", dloss);
        if (isfinite(dacc) && n < sizeof line)
            n += (size_t)snprintf(line + n, sizeof line - n, " d_acc %.3f", dacc);
        if (isfinite(pr->val_bpc) && n < sizeof line)
            n += (size_t)snprintf(line + n, sizeof line - n, " val_bpc %.4f", pr->val_bpc);
        if (isfinite(rate) && n < sizeof line)
            n += (size_t)snprintf(line + n, sizeof line - n, " %.0f chars/s", rate);
        if (n < sizeof line)
            snprintf(line + n, sizeof line - n, " elapsed %.1fs eta %s", elapsed, eta);
        fprintf(stderr, "%s\n", line);
        fflush(stderr);
    }
    if (pr->s.jsonl) {
        FILE *f = pr->s.jsonl;
        cli_progress_log_start(pr);
        fprintf(f, "{\"phase\":\"%s\",\"step\":%llu,\"global_step\":%llu",
                cli_phase_name(pr->phase), (unsigned long long)pr->done,
                (unsigned long long)pr->global_step);
        json_number(f, "loss", loss);
        json_number(f, "val_nll", pr->val_nll);
        json_number(f, "val_bpc", pr->val_bpc);
        json_number(f, "d_loss", dloss);
        json_number(f, "d_accuracy", dacc);
        json_number(f, "tokens_per_s", rate);
        json_number(f, "elapsed", elapsed);
        fputs("}\n", f);
        log_flush(pr);
    }
    pr->log_from = pr->done;
    pr->logged_any = 1;
    pr->loss_sum = pr->dloss_sum = pr->dacc_sum = pr->tok_sum = pr->tok_time = 0;
    pr->loss_n = pr->dloss_n = pr->dacc_n = 0;
}

int cli_progress_callback(const chargan_progress *p, void *user)
{
    cli_progress *pr = user;
    double now = cli_now();
    uint64_t done = pr->call_base + FIELD(p, step, 0);
    uint64_t delta = done > pr->done ? done - pr->done : 0;

    /* The library's values are means since its last report: weight them by
     * the steps they cover, so a log interval gets the exact mean. */
    double loss = FIELD(p, loss, NAN);
    double d_loss = FIELD(p, d_loss, NAN);
    double d_acc = FIELD(p, d_accuracy, NAN);
    if (delta > 0) {
        /* The bar shows averages over about the last 20 steps: one step's
         * loss is too noisy to read. */
        double a = 1 - pow(0.95, (double)delta);
        if (isfinite(loss)) {
            pr->loss_sum += loss * (double)delta;
            pr->loss_n += delta;
            pr->loss = isfinite(pr->loss) ? pr->loss + a * (loss - pr->loss) : loss;
        }
        if (isfinite(d_loss)) {
            pr->dloss_sum += d_loss * (double)delta;
            pr->dloss_n += delta;
            pr->d_loss = isfinite(pr->d_loss) ? pr->d_loss + a * (d_loss - pr->d_loss) : d_loss;
        }
        if (isfinite(d_acc)) {
            pr->dacc_sum += d_acc * (double)delta;
            pr->dacc_n += delta;
            pr->d_accuracy = isfinite(pr->d_accuracy)
                                 ? pr->d_accuracy + a * (d_acc - pr->d_accuracy)
                                 : d_acc;
        }
    }
    double elapsed = FIELD(p, elapsed_s, NAN);
    double tps = FIELD(p, tokens_per_s, NAN);
    if (isfinite(elapsed)) {
        double dt = elapsed - pr->call_elapsed;
        if (dt > 0 && isfinite(tps) && tps >= 0) {
            pr->tok_sum += tps * dt;
            pr->tok_time += dt;
            /* Smooth the bar's rate over about a second of reports. */
            double a = dt >= 1 ? 1 : dt;
            pr->rate = pr->rate > 0 ? pr->rate + a * (tps - pr->rate) : tps;
        }
        pr->call_elapsed = elapsed;
    }
    double val_nll = FIELD(p, val_nll, NAN);
    if (isfinite(val_nll)) {
        pr->val_nll = val_nll;
        pr->val_bpc = FIELD(p, val_bpc, NAN);
    }
    pr->global_step = FIELD(p, global_step, pr->global_step);
    pr->done = done;

    if (!pr->s.quiet && pr->s.tty && now - pr->last_draw >= 0.1)
        draw_bar(pr, now);
    if (pr->done / pr->s.log_every > pr->log_from / pr->s.log_every)
        report(pr, now);

    return cli_stop_signal() != 0 || (pr->s.deadline > 0 && now >= pr->s.deadline);
}

void cli_progress_end_phase(cli_progress *pr)
{
    double now = cli_now();
    if (pr->done > pr->log_from || !pr->logged_any)
        report(pr, now);
    if (!pr->s.quiet && pr->s.tty) {
        draw_bar(pr, now);
        cli_progress_break_line();
        fflush(stderr);
    }
}

void cli_progress_log_eval(cli_progress *pr, uint64_t global_step, double val_nll,
                           double val_bpc)
{
    if (!pr->s.jsonl)
        return;
    FILE *f = pr->s.jsonl;
    cli_progress_log_start(pr);
    fprintf(f, "{\"phase\":\"eval\",\"step\":%llu,\"global_step\":%llu",
            (unsigned long long)global_step, (unsigned long long)global_step);
    json_number(f, "val_nll", val_nll);
    json_number(f, "val_bpc", val_bpc);
    json_number(f, "elapsed", cli_now() - pr->run_t0);
    fputs("}\n", f);
    log_flush(pr);
}

int cli_progress_latest_val(const cli_progress *pr, double *val_nll, double *val_bpc)
{
    if (!isfinite(pr->val_nll))
        return 0;
    *val_nll = pr->val_nll;
    *val_bpc = pr->val_bpc;
    return 1;
}

int cli_progress_log_errno(const cli_progress *pr)
{
    return pr->log_errno;
}

/* ---- signals ------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

/* The trainer a stop signal asks to stop, and the handlers that may be
 * using it: the handler can run on any thread, OpenBLAS's included. */
_Static_assert(ATOMIC_POINTER_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "signal handlers need lock-free atomics");
static _Atomic(chargan_trainer *) stop_trainer;
static atomic_int handlers_running;

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define N_STOP_SIGNALS (sizeof stop_signals / sizeof stop_signals[0])

/* Each stop signal's first delivery asks to stop; a second of the same kind
 * kills, as its default action would, unless a save is running (saving):
 * then it is held, and the release hands it to the caller.  The handler
 * decides, instead of a handler swapped in and out around the save: a
 * signal between two sigaction calls could otherwise be taken for the
 * wrong one. */
static volatile sig_atomic_t got_first[N_STOP_SIGNALS];
static atomic_int saving, held_signal;

void cli_signals_die_of(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(sig, &sa, NULL);
    raise(sig); /* from its handler, blocked: delivered, and fatal, when it returns */
}

static void on_stop_signal(int sig)
{
    size_t i = 0;
    while (i + 1 < N_STOP_SIGNALS && stop_signals[i] != sig)
        i++;
    if (got_first[i]) {
        if (atomic_load(&saving)) {
            atomic_store(&held_signal, sig);
            /* a release that has already looked would miss it: die now */
            if (atomic_load(&saving))
                return;
        }
        cli_signals_die_of(sig);
        return;
    }
    got_first[i] = 1;
    stop_signal = sig;
    atomic_fetch_add(&handlers_running, 1);
    chargan_trainer *tr = atomic_load(&stop_trainer);
    if (tr)
        chargan_trainer_request_stop(tr);
    atomic_fetch_sub(&handlers_running, 1);
}

void cli_signals_stop_trainer(chargan_trainer *tr)
{
    atomic_store(&stop_trainer, tr);
    /* A handler that read the old trainer has counted itself first. */
    while (atomic_load(&handlers_running) > 0)
        ;
}

void cli_signals_hold(void)
{
    atomic_store(&held_signal, 0);
    atomic_store(&saving, 1);
}

int cli_signals_release(void)
{
    atomic_store(&saving, 0);
    return atomic_load(&held_signal);
}

void cli_signals_install(void)
{
    /* A closed terminal (SIGHUP) stops training as SIGTERM does; a reader of
     * the progress that went away (SIGPIPE) only makes those writes fail:
     * neither may lose the run. */
    struct sigaction pipe_old;
    if (sigaction(SIGPIPE, NULL, &pipe_old) == 0 && pipe_old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < N_STOP_SIGNALS; i++) {
        struct sigaction old;
        if (sigaction(stop_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue; /* e.g. started with nohup: keep ignoring */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        /* one handler at a time: a first and a second must not interleave */
        sigemptyset(&sa.sa_mask);
        for (size_t k = 0; k < N_STOP_SIGNALS; k++)
            sigaddset(&sa.sa_mask, stop_signals[k]);
        sigaction(stop_signals[i], &sa, NULL);
    }
}

int cli_stop_signal(void)
{
    return (int)stop_signal;
}
