/* dataset.c — dhf_dataset_open, the single entry point the CLI and config use: it
 * dispatches to the SPair-71k, CUB-200-2011, pair-list and subset readers. */
#include "eval/dataset.h"
#include "eval/dataset_common.h"
#include "core/error.h"
#include "core/fsutil.h"

#include <stdio.h>
#include <string.h>

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_set(const char *s) { return s && s[0]; }

static int open_spair(const dhf_dataset_spec *spec, dhf_dataset *ds)
{
    const char *split = is_set(spec->split) ? spec->split : "test";
    if (strcmp(split, "trn") && strcmp(split, "val") && strcmp(split, "test"))
        return dhf_err_set("SPair-71k split '%s': expected trn, val or test", split);
    if (is_set(spec->pair_list) && has_suffix(spec->pair_list, ".json")) {
        char image_root[4096];
        if (dhf_path_join(image_root, sizeof image_root, spec->root, "JPEGImages") != 0)
            return -1;
        if (dhf_pairlist_load(spec->pair_list, image_root, ds) != 0)
            return -1;
        snprintf(ds->name, sizeof ds->name, "spair-71k");
        snprintf(ds->split, sizeof ds->split, "%s", split);
        snprintf(ds->root, sizeof ds->root, "%s", spec->root);
        return 0;
    }
    if (dhf_spair_load(spec->root, split, ds) != 0)
        return -1;
    if (is_set(spec->pair_list) && dhf_subset_from_id_list(ds, spec->pair_list) != 0) {
        dhf_dataset_free(ds);
        return -1;
    }
    return 0;
}

int dhf_dataset_open(const dhf_dataset_spec *spec, dhf_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    if (!spec || !is_set(spec->dataset) || !is_set(spec->root))
        return dhf_err_set("dataset: both a dataset kind and a root folder are required");
    if (spec->pairs_per_category < 0)
        return dhf_err_set("dataset: pairs per category must be >= 0, got %d",
                           spec->pairs_per_category);
    if (strcmp(spec->dataset, "spair") == 0) {
        if (open_spair(spec, ds) != 0)
            return -1;
        if (spec->pairs_per_category > 0 &&
            dhf_subset_per_category(ds, spec->pairs_per_category, spec->seed) != 0) {
            dhf_dataset_free(ds);
            return -1;
        }
        return 0;
    }
    if (strcmp(spec->dataset, "cub") == 0) {
        dhf_cub_options opt = {
            .split = is_set(spec->split) ? spec->split : "test",
            .pairs_per_class = spec->pairs_per_category,
            .seed = spec->seed,
            .pair_list = spec->pair_list,
        };
        if (dhf_cub_load(spec->root, &opt, ds) != 0)
            return -1;
        /* An explicit list can still be thinned per class. */
        if (is_set(spec->pair_list) && spec->pairs_per_category > 0 &&
            dhf_subset_per_category(ds, spec->pairs_per_category, spec->seed) != 0) {
            dhf_dataset_free(ds);
            return -1;
        }
        return 0;
    }
    return dhf_err_set("dataset '%s': expected spair or cub", spec->dataset);
}
