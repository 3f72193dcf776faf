/* cmd_table1.c — `dhf table1 CONFIG.yaml`: the paper's Table 1 from one file, a
 * resumable plan of extract / train / eval stages (experiment/table1.h). */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "shim/torch_shim.h"
#include "core/config.h"
#include "core/error.h"
#include "experiment/table1.h"
#include "extract/extract_run.h"
#include "train/trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 256

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf table1 CONFIG.yaml [CONFIG.yaml ...] [--rows a,b,...] [--dry-run]\n"
            "                  [--set key=value ...] [--threads N] [--quiet]\n\n"
            "Reproduces the paper's Table 1: every Diffusion Hyperfeatures row and its\n"
            "ablations on SPair-71k (PCK@0.1 img and bbox) and CUB-200-2011 (PCK@0.1 img,\n"
            "the SPair-trained networks). One configuration names the models (model_id =\n"
            "SD-1.5, table1.model_sd21), the data (data_root, table1.cub_root), the pairs\n"
            "(table1.test_pairs: the paper's 360-pair subset by default, or full) and any key\n"
            "of extract / train / eval. The work is planned as stages (feature caches per\n"
            "model x feature setting x split, training runs, evaluations); the plan is\n"
            "printed with what is already done, and only the missing stages run. A stage is\n"
            "done when its record in <out>/stages/ matches its configuration and its output\n"
            "exists; a training run killed midway resumes exactly. Writes <out>/table1.md,\n"
            "table1.json, per_category/, heatmaps/ (<out> = table1.out_dir, default\n"
            "<output_dir>/table1). docs/TABLE1.md explains the rows and the protocol.\n\n"
            "  --rows a,b,...   run only these rows (the report shows every finished row)\n"
            "  --dry-run        print the plan, run nothing\n"
            "  --set key=value  any configuration key (repeatable)\n"
            "  --threads N      CPU threads (default: the threads key; 0 = all cores)\n"
            "  --quiet          no progress bars\n\n"
            "Rows:\n");
    dhf_table1_rows_help(f);
    fprintf(f, "\nExit status: 0 done, 1 error (the stage and the cause), 2 usage.\n"
               "Environment (tests): DHF_TEST_ABORT_AT_STEP=k exits with status %d after\n"
               "training step k, DHF_TEST_ABORT_AFTER=k with status %d after k extracted\n"
               "images, as a crash would.\n",
            DHF_TRAIN_TEST_ABORT_STATUS, DHF_EXTRACT_TEST_ABORT_STATUS);
}

int dhf_cmd_table1(int argc, char **argv)
{
    const char *files[MAX_ARGS], *sets[MAX_ARGS];
    int n_files = 0, n_sets = 0, threads = -1;
    dhf_table1_options opt = {.progress = true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dhf_cli_is_help(a)) {
            usage(stdout);
            return DHF_EXIT_OK;
        } else if (strcmp(a, "--dry-run") == 0) {
            opt.dry_run = true;
        } else if (strcmp(a, "--quiet") == 0) {
            opt.progress = false;
            setenv("DHF_PROGRESS", "0", 1);   /* the loaders report progress too */
        } else if (strcmp(a, "--rows") == 0 || strcmp(a, "--set") == 0 ||
                   strcmp(a, "--threads") == 0) {
            if (i + 1 >= argc)
                return dhf_cli_usage_error("table1", "%s needs a value", a);
            const char *v = argv[++i];
            if (strcmp(a, "--rows") == 0) {
                opt.rows = v;
            } else if (strcmp(a, "--set") == 0) {
                if (n_sets == MAX_ARGS)
                    return dhf_cli_usage_error("table1", "too many --set options");
                sets[n_sets++] = v;
            } else if (dhf_cli_parse_threads(v, &threads) != 0) {
                return dhf_cli_usage_error("table1", "%s", dhf_err_msg());
            }
        } else if (a[0] == '-') {
            return dhf_cli_usage_error("table1", "unknown option '%s'", a);
        } else {
            if (n_files == MAX_ARGS)
                return dhf_cli_usage_error("table1", "too many config files");
            files[n_files++] = a;
        }
    }
    if (n_files == 0)
        return dhf_cli_usage_error("table1", "a CONFIG.yaml is required");
    dhf_config cfg;
    dhf_config_defaults(&cfg);
    for (int i = 0; i < n_files; i++)
        if (dhf_config_load_file(&cfg, files[i]) != 0)
            return dhf_cli_fail("table1");
    for (int i = 0; i < n_sets; i++)
        if (dhf_config_set(&cfg, sets[i]) != 0)
            return dhf_cli_usage_error("table1", "%s", dhf_err_msg());
    if (dhf_config_validate(&cfg) != 0)
        return dhf_cli_fail("table1");
    if (dhf_cli_apply_threads(threads >= 0 ? threads : cfg.threads) != 0)
        return dhf_cli_fail("table1");
    /* extraction and training allocate the same large temporaries again and again */
    if (dhf_cpu_caching_allocator(true) != DHF_OK) {
        dhf_err_set("%s", dhf_last_error());
        return dhf_cli_fail("table1");
    }
    const char *e = getenv("DHF_TEST_ABORT_AT_STEP");
    if (e && *e)
        opt.abort_at_step = strtoll(e, NULL, 10);
    e = getenv("DHF_TEST_ABORT_AFTER");
    if (e && *e)
        opt.abort_after = atoi(e);

    dhf_table1_summary sum;
    int rc = dhf_table1_run(&cfg, &opt, &sum);
    if (rc == -2)
        return dhf_cli_usage_error("table1", "%s", dhf_err_msg());
    if (rc != 0)
        return dhf_cli_fail("table1");
    if (opt.dry_run)
        printf("dry run: %d of %d stages done, %d to run\n", sum.done_before, sum.stages,
               sum.stages - sum.done_before);
    else
        printf("table1: %d stages, %d were done, %d run now -> %s\n", sum.stages,
               sum.done_before, sum.ran, sum.out_dir);
    return DHF_EXIT_OK;
}
