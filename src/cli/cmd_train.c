/* cmd_train.c — `dhf train`: train the aggregation network on cached features
 * (train/trainer.h), or continue a run with --resume. */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "shim/torch_shim.h"
#include "core/config.h"
#include "core/error.h"
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 256

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf train [CONFIG.yaml ...] [--set key=value ...] [--resume RUN_DIR]\n"
            "                 [--init CKPT]\n"
            "                 [--device cpu|cuda[:N]] [--threads N] [--quiet]\n\n"
            "Trains the Diffusion Hyperfeatures aggregation network on the features cached by\n"
            "`dhf extract` (cache_path; the diffusion model is never run): SPair training\n"
            "pairs (split trn or train_path), AdamW, one shuffled pair per step (batch_size),\n"
            "validation PCK@pck_threshold on the val pairs every val_every_n_steps and at the\n"
            "final step. Writes <output_dir>/<run_name>/: config.resolved.yaml, metrics.jsonl,\n"
            "last.safetensors, best.safetensors (by checkpoint_metric), heatmaps/ (docs/TRAINING.md).\n\n"
            "  CONFIG.yaml          configuration files (defaults < files < --set)\n"
            "  --set key=value      any configuration key, e.g. --set lr=5e-4 --set max_epochs=2\n"
            "  --resume RUN_DIR     continue that run exactly from its last.safetensors, with its\n"
            "                       own configuration; files and --set may change only keys that\n"
            "                       do not change the weights (threads, device, paths, validation)\n"
            "  --init CKPT          a new run starting from CKPT's parameters and, when it has\n"
            "                       them, AdamW moments and step count (e.g. the checkpoint\n"
            "                       `dhf import` made of the paper's weights); same network shape\n"
            "  --device D           cpu, cuda or cuda:N (same as --set device=D)\n"
            "  --threads N          CPU threads (default: the threads key; 0 = all cores); a\n"
            "                       resumed run is bit-exact only with the same thread count\n"
            "  --quiet              no progress bar\n\n"
            "Exit status: 0 done, 1 error (a non-finite loss stops the run and names the step\n"
            "and the last good checkpoint), 2 usage.\n"
            "Environment: DHF_TEST_ABORT_AT_STEP=k exits with status %d right after step k\n"
            "(its log line and checkpoints written), as a crash would (for the resume test).\n",
            DHF_TRAIN_TEST_ABORT_STATUS);
}

int dhf_cmd_train(int argc, char **argv)
{
    const char *files[MAX_ARGS], *sets[MAX_ARGS];
    int n_files = 0, n_sets = 0, threads = -1;
    const char *resume = NULL, *device = NULL, *init = NULL;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dhf_cli_is_help(a)) {
            usage(stdout);
            return DHF_EXIT_OK;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = true;
            continue;
        }
        if (a[0] != '-') {
            if (n_files == MAX_ARGS)
                return dhf_cli_usage_error("train", "too many config files");
            files[n_files++] = a;
            continue;
        }
        if (i + 1 >= argc)
            return dhf_cli_usage_error("train", "%s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--set") == 0) {
            if (n_sets == MAX_ARGS)
                return dhf_cli_usage_error("train", "too many --set options");
            sets[n_sets++] = v;
        } else if (strcmp(a, "--resume") == 0) {
            resume = v;
        } else if (strcmp(a, "--init") == 0) {
            init = v;
        } else if (strcmp(a, "--device") == 0) {
            device = v;
        } else if (strcmp(a, "--threads") == 0) {
            if (dhf_cli_parse_threads(v, &threads) != 0)
                return dhf_cli_usage_error("train", "%s", dhf_err_msg());
        } else {
            return dhf_cli_usage_error("train", "unknown option '%s'", a);
        }
    }

    if (resume && init)
        return dhf_cli_usage_error("train", "--resume continues a run; --init starts a new one: "
                                            "give one of them");
    dhf_config cfg;
    if (resume) {
        if (dhf_train_resume_config(resume, files, n_files, sets, n_sets, &cfg) != 0)
            return dhf_cli_fail("train");
    } else {
        dhf_config_defaults(&cfg);
        for (int i = 0; i < n_files; i++)
            if (dhf_config_load_file(&cfg, files[i]) != 0)
                return dhf_cli_fail("train");
        for (int i = 0; i < n_sets; i++)
            if (dhf_config_set(&cfg, sets[i]) != 0)
                return dhf_cli_usage_error("train", "%s", dhf_err_msg());
    }
    if (device) {
        char buf[128];
        snprintf(buf, sizeof buf, "device=\"%s\"", device);
        if (dhf_config_set(&cfg, buf) != 0)
            return dhf_cli_usage_error("train", "--device: %s", dhf_err_msg());
    }
    if (dhf_config_validate(&cfg) != 0)
        return dhf_cli_fail("train");
    if (dhf_cli_apply_threads(threads >= 0 ? threads : cfg.threads) != 0)
        return dhf_cli_fail("train");
    /* before any large allocation: reuse freed activation buffers across steps
     * (exact-size free lists: no page faults, peak close to the live set) */
    if (dhf_cpu_caching_allocator(true) != DHF_OK) {
        dhf_err_set("%s", dhf_last_error());
        return dhf_cli_fail("train");
    }

    dhf_train_options opt = {
        .config_path = n_files > 0 ? files[0] : NULL,
        .resume_dir = resume,
        .init_from = init,
        .progress = !quiet,
    };
    const char *abort_at = getenv("DHF_TEST_ABORT_AT_STEP");
    if (abort_at && *abort_at)
        opt.abort_at_step = strtoll(abort_at, NULL, 10);

    dhf_train_summary sum;
    int rc = dhf_train_run(&cfg, &opt, &sum);
    if (rc != 0)
        return dhf_cli_fail("train");
    if (sum.steps_done == sum.start_step)
        printf("%s: nothing to do, the run is at step %lld of %lld\n", sum.run_dir,
               (long long)sum.steps_done, (long long)sum.total_steps);
    else
        printf("trained steps %lld..%lld of %lld (%ld training pairs) in %.1f s, final loss %.4f\n",
               (long long)sum.start_step + 1, (long long)sum.steps_done,
               (long long)sum.total_steps, sum.train_pairs, sum.seconds, sum.last_loss);
    if (sum.has_best)
        printf("best val %s@%g %.2f at step %lld (%ld pairs) -> %s/best.safetensors\n",
               sum.best_metric, cfg.pck_threshold, 100.0 * sum.best_value,
               (long long)sum.best_step, sum.val_pairs, sum.run_dir);
    printf("run folder: %s (last.safetensors, metrics.jsonl, heatmaps/)\n", sum.run_dir);
    return DHF_EXIT_OK;
}
