/* cmd_synth.c — `dhf synth`: writes the synthetic benchmark (SPair-71k and
 * CUB-200-2011 layouts) that the demo and the tests run on; see synth/synth.h. */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "synth/synth.h"
#include "synth/synth_shapes.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    dhf_synth_options d;
    dhf_synth_defaults(&d);
    int n_all, n_def;
    const char *const *all = dhf_synth_categories(&n_all);
    const char *const *def = dhf_synth_default_categories(&n_def);
    fprintf(f,
            "Usage: dhf synth [-o DIR] [options]\n\n"
            "Renders a small synthetic keypoint benchmark in the exact SPair-71k and\n"
            "CUB-200-2011 formats: DIR/SPair-71k (JPEGImages, ImageAnnotation,\n"
            "PairAnnotation/{trn,val,test}, Layout/large) and DIR/CUB_200_2011 (images,\n"
            "images.txt, classes, split, boxes, parts). Objects are part-based 3-D\n"
            "templates with named semantic keypoints, drawn under random pose, colours,\n"
            "textures, backgrounds, occluders and truncation. The same seed and options\n"
            "give byte-identical files, whatever --threads. Keypoint names and the\n"
            "conventions are recorded in each folder's dhf_synth.json.\n\n"
            "Options:\n"
            "  -o, --output DIR            parent folder (default: data)\n"
            "  --seed N                    seed (default: %llu)\n"
            "  --categories A,B,...        SPair categories (default:",
            (unsigned long long)d.seed);
    for (int i = 0; i < n_def; i++)
        fprintf(f, "%s%s", i ? "," : " ", def[i]);
    fprintf(f, ";\n                              'all' =");
    for (int i = 0; i < n_all; i++)
        fprintf(f, "%s%s", i ? "," : " ", all[i]);
    fprintf(f,
            ")\n"
            "  --images-per-category N     SPair images per category, >= 6 (default: %d)\n"
            "  --pairs-per-category N      SPair pairs per category and split, at most (default: %d)\n"
            "  --cub-classes N             CUB classes (default: %d)\n"
            "  --cub-images-per-class N    CUB images per class, half train, half test (default: %d)\n"
            "  --min-size N, --max-size N  image side range in pixels, each side drawn\n"
            "                              independently (default: %d..%d)\n"
            "  --spair-only, --cub-only    write one of the two datasets\n"
            "  --jpeg-quality N            1..100 (default: %d)\n"
            "  --antialias N               supersamples per pixel axis, 1..8 (default: %d)\n"
            "  --threads N                 rendering threads (default 0: all cores)\n"
            "  -h, --help                  this text\n\n"
            "An existing DIR/SPair-71k or DIR/CUB_200_2011 is replaced only if an earlier\n"
            "`dhf synth` wrote it (it holds dhf_synth.json); anything else is refused.\n",
            d.images_per_category, d.pairs_per_category, d.cub_classes, d.cub_images_per_class, d.scene.min_size,
            d.scene.max_size, d.jpeg_quality, d.scene.samples);
}

static int parse_int(const char *opt, const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return dhf_err_set("%s: expected an integer in %ld..%ld, got '%s'", opt, lo, hi, s);
    *out = (int)v;
    return 0;
}

int dhf_cmd_synth(int argc, char **argv)
{
    dhf_synth_options o;
    dhf_synth_defaults(&o);
    const char *out_dir = "data";
    char *cat_buf = NULL;
    int threads = 0, rc = DHF_EXIT_OK;
    bool spair_only = false, cub_only = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dhf_cli_is_help(a)) {
            usage(stdout);
            free(cat_buf);
            return DHF_EXIT_OK;
        }
        if (!strcmp(a, "--spair-only")) {
            spair_only = true;
            continue;
        }
        if (!strcmp(a, "--cub-only")) {
            cub_only = true;
            continue;
        }
        static const char *const with_value[] = {
            "-o", "--output", "--seed", "--categories", "--images-per-category", "--pairs-per-category",
            "--cub-classes", "--cub-images-per-class", "--min-size", "--max-size", "--jpeg-quality",
            "--antialias", "--threads"};
        bool known = false;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            known |= strcmp(a, with_value[k]) == 0;
        if (!known) {
            free(cat_buf);
            if (a[0] == '-')
                return dhf_cli_usage_error("synth", "unknown option '%s'", a);
            return dhf_cli_usage_error("synth", "unexpected argument '%s'", a);
        }
        if (i + 1 >= argc) {
            free(cat_buf);
            return dhf_cli_usage_error("synth", "%s needs a value", a);
        }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!v[0]) {
                free(cat_buf);
                return dhf_cli_usage_error("synth", "%s needs a folder", a);
            }
            out_dir = v;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-')
                bad = dhf_err_set("--seed: expected a non-negative integer, got '%s'", v);
            o.seed = s;
        } else if (!strcmp(a, "--categories")) {
            free(cat_buf);
            cat_buf = NULL;
            if (!strcmp(v, "all")) {
                int n;
                const char *const *all = dhf_synth_categories(&n);
                o.n_categories = n < DHF_SYNTH_MAX_CATEGORIES ? n : DHF_SYNTH_MAX_CATEGORIES;
                for (int k = 0; k < o.n_categories; k++)
                    o.categories[k] = all[k];
            } else {
                cat_buf = strdup(v);
                if (!cat_buf)
                    return dhf_cli_usage_error("synth", "out of memory");
                o.n_categories = 0;
                for (char *tok = strtok(cat_buf, ","); tok; tok = strtok(NULL, ",")) {
                    if (o.n_categories >= DHF_SYNTH_MAX_CATEGORIES) {
                        free(cat_buf);
                        return dhf_cli_usage_error("synth", "--categories: at most %d", DHF_SYNTH_MAX_CATEGORIES);
                    }
                    o.categories[o.n_categories++] = tok;
                }
                if (o.n_categories == 0) {
                    free(cat_buf);
                    return dhf_cli_usage_error("synth", "--categories: empty list");
                }
            }
        } else if (!strcmp(a, "--images-per-category")) {
            bad = parse_int(a, v, 6, 100000, &o.images_per_category);
        } else if (!strcmp(a, "--pairs-per-category")) {
            bad = parse_int(a, v, 1, INT_MAX, &o.pairs_per_category);
        } else if (!strcmp(a, "--cub-classes")) {
            bad = parse_int(a, v, 1, 999, &o.cub_classes);
        } else if (!strcmp(a, "--cub-images-per-class")) {
            bad = parse_int(a, v, 2, 100000, &o.cub_images_per_class);
        } else if (!strcmp(a, "--min-size")) {
            bad = parse_int(a, v, 32, 4096, &o.scene.min_size);
        } else if (!strcmp(a, "--max-size")) {
            bad = parse_int(a, v, 32, 4096, &o.scene.max_size);
        } else if (!strcmp(a, "--jpeg-quality")) {
            bad = parse_int(a, v, 1, 100, &o.jpeg_quality);
        } else if (!strcmp(a, "--antialias")) {
            bad = parse_int(a, v, 1, 8, &o.scene.samples);
        } else if (!strcmp(a, "--threads")) {
            bad = dhf_cli_parse_threads(v, &threads);
        }
        if (bad) {
            free(cat_buf);
            return dhf_cli_usage_error("synth", "%s", dhf_err_msg());
        }
    }
    if (spair_only && cub_only) {
        free(cat_buf);
        return dhf_cli_usage_error("synth", "--spair-only and --cub-only exclude each other");
    }
    o.write_spair = !cub_only;
    o.write_cub = !spair_only;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    o.threads = threads;
    if (dhf_synth_validate(&o) != 0) {
        free(cat_buf);
        return dhf_cli_usage_error("synth", "%s", dhf_err_msg());
    }
    dhf_synth_summary sum;
    if (dhf_synth_run(out_dir, &o, &sum) != 0) {
        rc = dhf_cli_fail("synth");
    } else {
        if (o.write_spair)
            printf("synth: %s/SPair-71k: %d images, %d/%d/%d trn/val/test pairs\n", out_dir, sum.spair_images,
                   sum.spair_pairs[0], sum.spair_pairs[1], sum.spair_pairs[2]);
        if (o.write_cub)
            printf("synth: %s/CUB_200_2011: %d images in %d classes\n", out_dir, sum.cub_images, sum.cub_classes);
        printf("synth: seed %llu\n", (unsigned long long)o.seed);
    }
    free(cat_buf);
    return rc;
}
