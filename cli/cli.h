/* cli.h - what the files of the chargan command-line tool share.  The tool is
 * written against the public API (chargan.h) only, like any other program. */
#ifndef CHARGAN_CLI_H
#define CHARGAN_CLI_H

#include <chargan.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses, documented in docs/chargan.1. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,     /* a runtime error: I/O, a corrupt file, a library failure */
    CLI_EXIT_USAGE = 2,       /* a bad command line */
    CLI_EXIT_INTERRUPTED = 130 /* SIGINT during training, model saved; 128 + signal number */
};

/* ---- errors (util.c) ---------------------------------------------- */

/* Prints "chargan: <what>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "chargan: <what>: <library message>", the message being the
 * calling thread's last library failure, or the status name if empty. */
void cli_lib_error(chargan_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads a whole file ("-" is stdin; a pipe is fine, a device is refused)
 * into a NUL-terminated buffer the caller frees with free().  On failure
 * prints "chargan: cannot read <what> 'path': <reason>" and returns NULL; a
 * stop signal (cli_signals_install) during a slow read ends it as a failure
 * too. */
char *cli_read_file(const char *path, const char *what, size_t *len);

/* How an output is written: beside itself and renamed into place (models,
 * images: a device or a FIFO there would be replaced, and the temporary's
 * name must fit), or, for text (a CSV), renamed into place too unless a
 * device, a FIFO or a symbolic link is there, or a file in a directory this
 * user cannot write: that is written in place (/dev/null, /dev/stdout). */
enum cli_output { CLI_OUTPUT_RENAMED, CLI_OUTPUT_TEXT };
/* Before any work: refuses (printing "chargan: cannot write <what> 'path':
 * <reason>", returning -1) an output that cannot be written so: a
 * directory, a name without a file name, a directory that is not writable,
 * and for a renamed output anything but a regular file. */
int cli_check_output(const char *path, const char *what, enum cli_output how);

#define CLI_PATH_MAX 4096
/* Creates path + ".tmp-XXXXXX" (written into tmp, CLI_PATH_MAX bytes) with
 * the permissions of a new file; its descriptor, or -1 with errno set. */
int cli_temp_beside(const char *path, char tmp[CLI_PATH_MAX]);
/* Syncs the file or directory at path (one another process wrote, say), or
 * the directory path is in, so that a file just renamed there stays after a
 * crash; 0, or -1 with errno set.  A file its owner may write and not read
 * (an image replacing one of mode 0200) is opened for writing. */
int cli_sync_path(const char *path);
int cli_sync_directory_of(const char *path);

/* A text output (CLI_OUTPUT_TEXT) being written: a failure before
 * cli_text_output_commit() leaves what was at path before. */
typedef struct cli_text_output {
    FILE *f;
    const char *path;
    char tmp[CLI_PATH_MAX]; /* "" when written in place */
} cli_text_output;
/* Opens out->f for path; 0, or -1 after printing "chargan: cannot write
 * <what> 'path': <reason>". */
int cli_text_output_open(cli_text_output *out, const char *path, const char *what);
/* Closes out->f and puts the file in place; on a write error (also one
 * ferror() kept) prints it, removes the temporary and returns -1. */
int cli_text_output_commit(cli_text_output *out, const char *what);
/* Nonzero if both paths are the same string, name the same existing file,
 * or, neither existing, the same name in the same directory ("-", standard
 * input, is no file: only "-" itself is the same). */
int cli_same_file(const char *a, const char *b);

/* Flushes standard output; if it could not be written (a full disk, a
 * closed pipe), prints why and returns -1: a command's result must not be
 * lost silently. */
int cli_flush_stdout(void);

/* Seconds on a monotonic clock. */
double cli_now(void);

/* ---- option parsing (args.c) -------------------------------------- */

typedef enum cli_arg_type {
    CLI_ARG_FLAG,   /* no value; *(int *)dest = 1 */
    CLI_ARG_U32,    /* uint32_t in [ilo, ihi] */
    CLI_ARG_U64,    /* uint64_t in [ilo, ihi] */
    CLI_ARG_FLOAT,  /* float in the range given by flo/fhi and the open flags */
    CLI_ARG_DOUBLE, /* double, same range rules */
    CLI_ARG_STRING, /* const char * pointing into argv */
    CLI_ARG_CHOICE  /* one of choices[]; *(int *)dest = its index */
} cli_arg_type;

typedef struct cli_option {
    const char *name;  /* long name without the dashes: "hidden" */
    char short_name;   /* 'o', or 0 */
    cli_arg_type type;
    void *dest;
    uint64_t ilo, ihi;          /* integer range, inclusive */
    double flo, fhi;            /* real range */
    int lo_open, hi_open;       /* nonzero: that bound is excluded */
    int zero_is_off;            /* 0 turns a feature off: only 0 itself may give 0 */
    const char *const *choices; /* NULL-terminated, for CLI_ARG_CHOICE */
    int seen;                   /* set by the parser when the option was given */
} cli_option;

/* Parses argv[first..argc) against opts.  Positional arguments go to pos[]
 * (at most max_pos, count in *n_pos).  Accepts "--name value", "--name=value",
 * "-x value", "-xvalue", "--" (end of options), "-" as a positional; a value
 * is taken as given even if it starts with '-'.  "-h"/"--help" returns 1.
 * Returns 0 on success, 1 for help, -1 after printing an error that names the
 * option. */
int cli_parse(const char *command, int argc, char **argv, int first, cli_option *opts,
              size_t n_opts, const char **pos, size_t max_pos, size_t *n_pos);

/* Table entries, e.g. CLI_OPT_U32("hidden", 0, &a.hidden, 1, 16384). */
#define CLI_OPT_FLAG(n, s, d) {.name = (n), .short_name = (s), .type = CLI_ARG_FLAG, .dest = (d)}
#define CLI_OPT_STR(n, s, d) {.name = (n), .short_name = (s), .type = CLI_ARG_STRING, .dest = (d)}
#define CLI_OPT_U32(n, s, d, lo, hi)                                                             \
    {.name = (n), .short_name = (s), .type = CLI_ARG_U32, .dest = (d), .ilo = (lo), .ihi = (hi)}
#define CLI_OPT_U64(n, s, d, lo, hi)                                                             \
    {.name = (n), .short_name = (s), .type = CLI_ARG_U64, .dest = (d), .ilo = (lo), .ihi = (hi)}
/* lo_open / hi_open: 1 excludes that bound ("above 0"). */
#define CLI_OPT_FLOAT(n, d, lo, hi, lopen, hopen)                                                \
    {.name = (n), .type = CLI_ARG_FLOAT, .dest = (d), .flo = (lo), .fhi = (hi),                 \
     .lo_open = (lopen), .hi_open = (hopen)}
/* From 0 to hi, 0 meaning off: a number that rounds to 0 as a float is
 * refused rather than turning the feature off (--clip 1e-50). */
#define CLI_OPT_FLOAT_OR_OFF(n, d, hi)                                                           \
    {.name = (n), .type = CLI_ARG_FLOAT, .dest = (d), .flo = 0, .fhi = (hi), .zero_is_off = 1}
#define CLI_OPT_DOUBLE(n, d, lo, hi, lopen, hopen)                                               \
    {.name = (n), .type = CLI_ARG_DOUBLE, .dest = (d), .flo = (lo), .fhi = (hi),                \
     .lo_open = (lopen), .hi_open = (hopen)}
#define CLI_OPT_CHOICE(n, d, ch) {.name = (n), .type = CLI_ARG_CHOICE, .dest = (d), .choices = (ch)}
#define CLI_N_OPTS(table) (sizeof(table) / sizeof((table)[0]))

/* Finds an option by long name (NULL if none); to ask whether it was seen. */
const cli_option *cli_find_option(const cli_option *opts, size_t n_opts, const char *name);

/* Strict number parsing (also for tests of the rules): no leading space or
 * sign, base 10, the whole string consumed, no overflow, within range.
 * Return 0, or -1 with a reason ("expected an integer from 1 to 10") in why. */
int cli_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out, char *why,
                  size_t why_size);
int cli_parse_double(const char *s, double lo, double hi, int lo_open, int hi_open, double *out,
                     char *why, size_t why_size);

/* ---- images drawn by gnuplot (gnuplot.c) ---------------------------- */

/* Writes the gnuplot commands that draw image (a PNG) into script; data
 * files may go into dir, which is removed afterwards.  0, or -1 after
 * printing why. */
typedef int (*cli_gnuplot_writer)(FILE *script, const char *dir, const char *image, void *user);
/* Draws output with gnuplot from the script write_script writes; the image
 * replaces output only once complete.  Errors (gnuplot not on PATH, gnuplot
 * failing or writing nothing, I/O) are printed as "chargan: WHO: ...".
 * Returns 0 or -1. */
int cli_gnuplot_draw(const char *who, const char *output, cli_gnuplot_writer write_script,
                     void *user);
/* Writes s as a gnuplot single-quoted string ('' stands for a quote); the
 * caller rejects newlines, which would end the command. */
void cli_gnuplot_quote(FILE *f, const char *s);
/* dir/name into path (CLI_PATH_MAX bytes); 0, or -1 after printing that
 * the name is too long (WHO: as for cli_gnuplot_draw). */
int cli_gnuplot_path(char path[CLI_PATH_MAX], const char *who, const char *dir, const char *name);

/* ---- progress, signals and the JSONL log (progress.c) --------------- */

typedef struct cli_progress cli_progress;

typedef struct cli_progress_settings {
    int quiet;             /* no progress output at all */
    int tty;               /* draw a bar with \r (else plain log lines) */
    uint64_t log_every;    /* steps between plain log lines and JSONL records */
    FILE *jsonl;           /* one JSON object per report, or NULL */
    int jsonl_replace;     /* jsonl still holds an earlier run's records: emptied
                            * by the first record (or cli_progress_log_start) */
    double deadline;       /* cli_now() value at which to stop, or 0 for none */
} cli_progress_settings;

cli_progress *cli_progress_new(const cli_progress_settings *settings);
void cli_progress_free(cli_progress *pr);
/* The callback to install with chargan_trainer_set_progress(); user = pr.
 * Returns nonzero once a stop signal arrived or the deadline passed. */
int cli_progress_callback(const chargan_progress *p, void *user);
/* Starts a phase: done steps already taken (on resume), total the steps the
 * phase is meant to reach (UINT64_MAX: until the deadline). */
void cli_progress_begin_phase(cli_progress *pr, chargan_phase phase, uint64_t done, uint64_t total);
/* Tells the display that the next library call starts from done steps. */
void cli_progress_begin_call(cli_progress *pr, uint64_t done);
/* Flushes the last report of the phase and ends the bar's line. */
void cli_progress_end_phase(cli_progress *pr);
/* Ends the line of a bar drawn on standard error, if one is: what is
 * written next (cli_error() calls it) starts a line of its own. */
void cli_progress_break_line(void);
/* Writes a final JSONL record for the end-of-run evaluation. */
void cli_progress_log_eval(cli_progress *pr, uint64_t global_step, double val_nll,
                           double val_bpc);
/* Empties a log that jsonl_replace says holds an earlier run's records, if
 * this run has not yet: a run that saves a model owns its log, even with no
 * record in it.  Called by the record writers before their first record. */
void cli_progress_log_start(cli_progress *pr);
/* The errno of the first failed write to the JSONL log, or 0. */
int cli_progress_log_errno(const cli_progress *pr);
/* The latest validation figures a report carried: 1, or 0 if none did. */
int cli_progress_latest_val(const cli_progress *pr, double *val_nll, double *val_bpc);
/* Nonzero if the deadline has passed. */
int cli_progress_time_up(const cli_progress *pr);
const char *cli_phase_name(int phase);

/* SIGINT, SIGTERM and SIGHUP set a flag instead of killing the process (a
 * second of the same kind kills it, once a save in progress is done), and
 * SIGPIPE is ignored (writes to a closed pipe fail instead).  A signal the
 * process inherited as ignored stays ignored. */
void cli_signals_install(void);
/* Around a save: a second stop signal, which would kill the process and
 * leave the save's temporary file behind, is held (a first one still asks
 * to stop).  The release returns the held signal, or 0: the caller reports
 * what it must (a failed save), then dies of it with cli_signals_die_of
 * (its default action, as from a handler: delivered when unblocked). */
void cli_signals_hold(void);
int cli_signals_release(void);
void cli_signals_die_of(int sig);
/* The signal that asked to stop, or 0. */
int cli_stop_signal(void);
/* Makes a stop signal also ask tr to stop (chargan_trainer_request_stop), so
 * that a validation run stops within a batch of windows; NULL withdraws it
 * (before the trainer is freed), waiting out a handler still using it. */
void cli_signals_stop_trainer(chargan_trainer *tr);

/* ---- MPI: `mpirun -np N chargan train` (mpi.c) ------------------------ */

/* Starts MPI if a launcher started this process (and the tool was built with
 * MPI); reads CHARGAN_MPI_TIMEOUT.  0, or -1 after printing why. */
int cli_mpi_init(void);
/* This process's rank and the number of ranks (0 and 1 without MPI). */
int cli_mpi_rank(void);
int cli_mpi_size(void);
/* Makes tr one rank of the run (collective); 0, or -1 after printing why. */
int cli_mpi_attach(chargan_trainer *tr);
/* Nonzero on every rank if flag is nonzero on any (collective); a rank that
 * does not answer in time aborts the job with a message naming step. */
int cli_mpi_any(int flag, uint64_t step);
/* The largest value over the ranks (collective, with cli_mpi_any's timeout):
 * the stop signal all ranks exit with when some of them got none. */
int cli_mpi_max(int value, uint64_t step);
/* Finalises MPI, or aborts the whole job if this rank failed alone (not
 * every_rank: a failure every rank reached together, after a collective
 * vote, ends each rank with its status); returns exit_code. */
int cli_mpi_finish(int exit_code, int every_rank);

/* ---- commands ------------------------------------------------------- */

int cli_cmd_train(int argc, char **argv);
int cli_cmd_sample(int argc, char **argv);
int cli_cmd_eval(int argc, char **argv);
int cli_cmd_info(int argc, char **argv);
int cli_cmd_plot(int argc, char **argv);

/* Prints the help of a command (NULL: the overview) to f; 0, or -1 if unknown. */
int cli_help(FILE *f, const char *command);
/* A command's -h/--help: its help on stdout, and the exit status (1 if
 * stdout could not be written). */
int cli_help_exit(const char *command);

#endif /* CHARGAN_CLI_H */
