/* cmd_data.c — `dhf data check DIR`: verifies a SPair-71k / CUB-200-2011
 * folder (or a folder holding them) and prints per-split, per-category counts;
 * --strict-official also demands the published numbers (Makefile.data runs it
 * after a download). */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "eval/data_check.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dhf data check DIR [--dataset spair|cub|auto] [--strict-official]\n"
            "                          [--full-table] [--threads N]\n\n"
            "Checks a dataset folder: every annotation parses with the required fields,\n"
            "every referenced image exists and decodes at the annotated size, boxes lie\n"
            "inside their images, the split lists name existing files. Prints image and\n"
            "pair counts per category and split.\n\n"
            "DIR is a SPair-71k folder (JPEGImages/, ImageAnnotation/, PairAnnotation/,\n"
            "Layout/), a CUB_200_2011 folder (images.txt, parts/, images/), or a folder\n"
            "holding such folders (e.g. data/ with SPair-71k/ and CUB_200_2011/).\n\n"
            "Options:\n"
            "  --dataset KIND      spair, cub or auto (default: auto-detect)\n"
            "  --strict-official   also require the official numbers: SPair-71k 1,800\n"
            "                      images, 18 categories, 53,340 / 5,384 / 12,234 trn/val/test\n"
            "                      pairs and the per-category test counts; CUB 11,788\n"
            "                      images, 200 classes, 15 parts, 5,994 / 5,794 train/test\n"
            "  --full-table        CUB: one row per class even when there are many\n"
            "  --threads N         accepted for uniformity (the check is single-threaded)\n\n"
            "Exit status: 0 all checks pass, 1 problems found (listed on stderr), 2 usage.\n");
}

static int data_check(int argc, char **argv)
{
    const char *dir = NULL, *kind = NULL;
    dhf_data_check_options opt = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dhf_cli_is_help(a)) {
            usage(stdout);
            return DHF_EXIT_OK;
        } else if (!strcmp(a, "--strict-official")) {
            opt.strict_official = true;
        } else if (!strcmp(a, "--full-table")) {
            opt.full_table = true;
        } else if (!strcmp(a, "--dataset") || !strcmp(a, "--threads")) {
            if (i + 1 >= argc)
                return dhf_cli_usage_error("data", "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--dataset")) {
                if (strcmp(v, "spair") && strcmp(v, "cub") && strcmp(v, "auto"))
                    return dhf_cli_usage_error("data", "--dataset: expected spair, cub or auto, "
                                                       "got '%s'",
                                               v);
                kind = v;
            } else {
                int threads;
                if (dhf_cli_parse_threads(v, &threads) != 0)
                    return dhf_cli_fail("data");
            }
        } else if (a[0] == '-' && a[1]) {
            return dhf_cli_usage_error("data", "unknown option '%s'", a);
        } else if (!dir) {
            dir = a;
        } else {
            return dhf_cli_usage_error("data", "more than one DIR given ('%s', '%s')", dir, a);
        }
    }
    if (!dir)
        return dhf_cli_usage_error("data", "check needs a dataset folder");
    if (dhf_data_check_dir(dir, kind, &opt) != 0)
        return dhf_cli_fail("data check");
    return DHF_EXIT_OK;
}

int dhf_cmd_data(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return DHF_EXIT_USAGE;
    }
    if (dhf_cli_is_help(argv[1])) {
        usage(stdout);
        return DHF_EXIT_OK;
    }
    if (!strcmp(argv[1], "check"))
        return data_check(argc - 1, argv + 1);
    return dhf_cli_usage_error("data", "unknown action '%s' (expected: check)", argv[1]);
}
