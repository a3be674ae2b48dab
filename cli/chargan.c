/* chargan.c - the command-line tool's entry point: dispatch, help, version.
 * The full manual is docs/chargan.1; the help texts here are its summary. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

static const char overview[] =
    "usage: chargan COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "Train and sample character-level text generators (LSTM, MLE and GAN training).\n"
    "\n"
    "commands:\n"
    "  train CORPUS -o MODEL   train a generator on a UTF-8 text file\n"
    "  sample MODEL            generate text\n"
    "  eval MODEL TEXTFILE     NLL and bits per character of a text, and other metrics\n"
    "  info MODEL              configuration, vocabulary and parameters of a model\n"
    "  plot LOG -o PNG         draw the training curves of a 'train --log' file (gnuplot)\n"
    "  help [COMMAND]          this text, or a command's options\n"
    "\n"
    "  chargan --version, -V   print the version\n"
    "\n"
    "Each command also takes -h/--help.  See chargan(1) for the details.\n";

static const char help_train[] =
    "usage: chargan train CORPUS -o MODEL [OPTIONS]\n"
    "\n"
    "Fits a tokenizer on CORPUS (UTF-8 text; - is standard input), trains a generator by\n"
    "maximum likelihood (and adversarially with --gan) and saves a checkpoint to MODEL.\n"
    "The save is atomic.  Ctrl-C stops at a consistent step, saves, and exits with 130.\n"
    "\n"
    "run:\n"
    "  -o, --output MODEL       where to save the checkpoint (required)\n"
    "  --steps N                MLE steps (default 1000; with only --time and no --gan,\n"
    "                           until then)\n"
    "  --time SECONDS           stop after this long (then save)\n"
    "  --checkpoint-every N     also save every N steps of each phase\n"
    "  --resume CKPT            continue a checkpoint; step counts are totals of the run\n"
    "  --log FILE.jsonl         one JSON object per report\n"
    "  --report-every N         steps between log lines and JSON records (default 100)\n"
    "  -q, --quiet              no progress display\n"
    "model and tokenizer:\n"
    "  --hidden H               LSTM hidden size (default 256)\n"
    "  --embed E                embedding size (default 64)\n"
    "  --layers L               stacked LSTM layers (default 1)\n"
    "  --dropout P              recurrent dropout, 0 <= P < 1 (default 0)\n"
    "  --vocab-cap N            keep at most N ids, reserved ones included (0: all)\n"
    "  --lowercase              fold A-Z and Latin-1 capitals to lower case\n"
    "training:\n"
    "  --batch B                sequences per step (default 32)\n"
    "  --seq T                  characters predicted per sequence (default 64)\n"
    "  --lr X                   Adam learning rate (default 0.002)\n"
    "  --clip X                 clip the global gradient norm (default 5; 0: off)\n"
    "  --seed S                 seed of initialisation, batches and noise (default 1)\n"
    "  --threads N              compute threads (default 1)\n"
    "  --val-fraction F         held-out tail of the corpus (default 0.1)\n"
    "  --val-every N            validate every N steps (default 0: at the end)\n"
    "adversarial training:\n"
    "  --gan reinforce|gumbel   add discriminator pre-training and adversarial rounds\n"
    "  --pretrain-steps N       MLE steps first (another name for --steps)\n"
    "  --d-pretrain-steps N     discriminator pre-training steps (default 100)\n"
    "  --gan-steps N            adversarial rounds (default 1000)\n"
    "  --gan-lr X               Adam rate of the discriminator, and of the generator in\n"
    "                           the rounds (default: --lr; RelGAN uses 1e-4)\n"
    "  --d-steps K              discriminator steps per generator step (default 1)\n"
    "  --mle-weight X           weight of an MLE term in the generator loss (default 0)\n"
    "  --gamma X                reinforce: discount of per-step rewards (default 0.9)\n"
    "  --rollouts K             reinforce: Monte-Carlo rollouts per prefix (default 0)\n"
    "  --beta-start X           gumbel: initial inverse temperature, 1 / tau (default 1)\n"
    "  --beta-max X             gumbel: final inverse temperature, >= --beta-start (default 1)\n"
    "  --anneal exp|linear      gumbel: schedule of beta (default exp)\n"
    "  --anneal-steps N         gumbel: rounds over which beta rises (default --gan-steps)\n"
    "  --loss standard|rsgan    gumbel: GAN loss (default standard)\n"
    "  --gan-feed hard|soft     gumbel: the next input is the hard token or the relaxed\n"
    "                           sample, with the gradient through it (default hard)\n";

static const char help_sample[] =
    "usage: chargan sample MODEL [OPTIONS]\n"
    "\n"
    "Samples text from the generator in MODEL and writes it to standard output.\n"
    "\n"
    "  -n, --chars N            characters per stream after the prime (default 256)\n"
    "  --streams N              independent samples, separated by a blank line (default 1)\n"
    "  --temperature X          > 0; below 1 is more conservative (default 1)\n"
    "  --top-k K                sample among the K most likely characters (0: all)\n"
    "  --top-p P                nucleus sampling, 0 < P <= 1 (default 1: all)\n"
    "  --prime TEXT             text fed to the model first, and printed as it\n"
    "                           reads it (unknown characters as U+FFFD)\n"
    "  --seed S                 the same seed gives the same text (default: from the clock)\n"
    "  --threads N              threads the streams are split across, 1 to 64 (default 1);\n"
    "                           the text is the same for every N (x86-64, AVX2)\n";

static const char help_eval[] =
    "usage: chargan eval MODEL TEXTFILE [OPTIONS]\n"
    "       chargan eval MODEL --oracle ORACLE [OPTIONS]\n"
    "       chargan eval MODEL [TEXTFILE] --sweep T1,T2,... [--csv FILE] [--plot PNG] ...\n"
    "\n"
    "Prints metrics of the generator in MODEL as 'key: value' lines: its negative\n"
    "log-likelihood of TEXTFILE in nats and bits per character, and on request the\n"
    "NLL-oracle, BLEU and self-BLEU of its samples, and the discriminator's accuracy.\n"
    "\n"
    "  --seq N                  NLL in windows of N characters from the start (default 256)\n"
    "  --stream N               NLL of N streams with the state carried along instead\n"
    "  --oracle ORACLE          mean NLL that the generator in ORACLE gives to the samples\n"
    "  --bleu                   BLEU-2..max-n of the samples' first lines against the\n"
    "                           lines of TEXTFILE, and their self-BLEU\n"
    "  --max-n N                highest n-gram order for --bleu, 2 to 8 (default 5)\n"
    "  --samples N              samples for --oracle and --bleu (default 1000)\n"
    "  --length T               tokens per sample (default 100)\n"
    "  --temperature X          sampling temperature (default 1)\n"
    "  --seed S                 sampling seed (default 1)\n"
    "  --discriminator          accuracy of the discriminator of a GAN checkpoint on\n"
    "                           held-out windows of TEXTFILE against generated ones\n"
    "  --d-batches N            batches of each for --discriminator (default 16)\n"
    "  --sweep T1,T2,...        repeat at each temperature (at most 32) and write a CSV\n"
    "                           row per temperature: nll_oracle, nll_test_bpc (the text\n"
    "                           under softmax(logits/T)), bleuN, self_bleuN (N = --max-n,\n"
    "                           default 4 here)\n"
    "  --csv FILE               where --sweep writes its CSV (default and -: stdout)\n"
    "  --plot PNG               draw the sweep's quality against diversity with gnuplot\n";

static const char help_info[] =
    "usage: chargan info MODEL\n"
    "\n"
    "Prints the configuration, the vocabulary, the parameter tensors (name, shape, size)\n"
    "and the total number of weights of each model in the file, and the training state\n"
    "of a trainer checkpoint.\n";

static const char help_plot[] =
    "usage: chargan plot LOG -o PNG [OPTIONS]\n"
    "\n"
    "Draws the training curves of LOG, a file written by 'chargan train --log', into the\n"
    "PNG image PNG with gnuplot: losses, bits per character, discriminator accuracy and\n"
    "throughput against the step, the phases laid end to end.\n"
    "\n"
    "  -o, --output PNG         the image to write (required)\n"
    "  --title TEXT             title above the panels (default: the log's name)\n"
    "  --width N                image width in pixels, 200 to 10000 (default 1200)\n"
    "  --height N               image height in pixels, 200 to 10000 (default 900)\n";

int cli_help(FILE *f, const char *command)
{
    const char *text = NULL;
    if (!command)
        text = overview;
    else if (strcmp(command, "train") == 0)
        text = help_train;
    else if (strcmp(command, "sample") == 0)
        text = help_sample;
    else if (strcmp(command, "eval") == 0)
        text = help_eval;
    else if (strcmp(command, "info") == 0)
        text = help_info;
    else if (strcmp(command, "plot") == 0)
        text = help_plot;
    else if (strcmp(command, "help") == 0)
        text = "usage: chargan help [COMMAND]\n";
    if (!text)
        return -1;
    fputs(text, f);
    return 0;
}

int cli_help_exit(const char *command)
{
    cli_help(stdout, command);
    return cli_flush_stdout() == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

static int print_version(void)
{
    printf("chargan %s\n", CHARGAN_VERSION_STRING);
    /* A different library than the one built against still runs if the
     * major version matches; say so rather than hide it. */
    if (chargan_version_number() != CHARGAN_VERSION_NUMBER)
        printf("libchargan %s (built against %s)\n", chargan_version(), CHARGAN_VERSION_STRING);
    return cli_flush_stdout() == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

/* A standard descriptor closed at start (`chargan ... >&-`) would be taken
 * by the first file the command opens, the --log file, which the summary
 * or the messages would then be written into.  Each closed one is held by
 * /dev/null, opened for the other direction, so that using it fails as
 * using a closed one does (EBADF). */
static void hold_closed_standard_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        int got = open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY);
        if (got >= 0 && got != fd) /* not the lowest free one: cannot be */
            close(got);
    }
}

int main(int argc, char **argv)
{
    hold_closed_standard_fds();
    if (chargan_version_number() / 10000 != CHARGAN_VERSION_MAJOR) {
        cli_error("libchargan %s is not compatible with this program (built against %s)",
                  chargan_version(), CHARGAN_VERSION_STRING);
        return CLI_EXIT_FAILURE;
    }
    if (argc < 2) {
        fputs(overview, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    bool version = strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0;
    bool help = strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0;
    if ((version || help) && argc > 2) {
        cli_error("%s: unexpected argument '%s' (a command's help: chargan COMMAND --help)", cmd,
                  argv[2]);
        return CLI_EXIT_USAGE;
    }
    if (version)
        return print_version();
    if (help)
        return cli_help_exit(NULL);
    if (strcmp(cmd, "help") == 0) {
        if (argc > 3) {
            cli_error("help: unexpected argument '%s'", argv[3]);
            return CLI_EXIT_USAGE;
        }
        const char *topic = argc == 3 ? argv[2] : NULL;
        if (topic && (strcmp(topic, "-h") == 0 || strcmp(topic, "--help") == 0))
            topic = "help"; /* every command takes -h, this one too */
        if (cli_help(stdout, topic) != 0) {
            cli_error("help: unknown command '%s' (see 'chargan help')", argv[2]);
            return CLI_EXIT_USAGE;
        }
        return cli_flush_stdout() == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
    }
    if (strcmp(cmd, "train") == 0)
        return cli_cmd_train(argc, argv);
    if (strcmp(cmd, "sample") == 0)
        return cli_cmd_sample(argc, argv);
    if (strcmp(cmd, "eval") == 0)
        return cli_cmd_eval(argc, argv);
    if (strcmp(cmd, "info") == 0)
        return cli_cmd_info(argc, argv);
    if (strcmp(cmd, "plot") == 0)
        return cli_cmd_plot(argc, argv);
    cli_error("unknown command '%s' (see 'chargan help')", cmd);
    return CLI_EXIT_USAGE;
}
