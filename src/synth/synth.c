/* synth.c — `dhf synth` orchestration: options, their validation and the output
 * folders (never clobbering data it did not write); it calls the SPair-71k and CUB
 * writers (synth_spair.c, synth_cub.c), which share synth_common.c. */
#include "synth/synth.h"
#include "synth/synth_common.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fsutil.h"

#define MANIFEST_NAME "dhf_synth.json"

void dhf_synth_defaults(dhf_synth_options *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 0;
    o->n_categories = 0;
    o->images_per_category = 10;
    o->pairs_per_category = 20;
    o->cub_classes = 3;
    o->cub_images_per_class = 6;
    dhf_synth_scene_defaults(&o->scene);
    o->jpeg_quality = 90;
    o->threads = 1;
    o->write_spair = true;
    o->write_cub = true;
}

int dhf_synth_validate(const dhf_synth_options *o)
{
    if (o->images_per_category < 6 || o->images_per_category > 100000)
        return dhf_err_set("--images-per-category must be 6..100000 (trn, val and test each need >= 2 images), "
                           "got %d",
                           o->images_per_category);
    if (o->pairs_per_category < 1)
        return dhf_err_set("--pairs-per-category must be >= 1, got %d", o->pairs_per_category);
    if (o->cub_classes < 1 || o->cub_classes > 999)
        return dhf_err_set("--cub-classes must be 1..999, got %d", o->cub_classes);
    if (o->cub_images_per_class < 2 || o->cub_images_per_class > 100000)
        return dhf_err_set("--cub-images-per-class must be >= 2 (one train, one test), got %d",
                           o->cub_images_per_class);
    if (o->scene.min_size < 32 || o->scene.max_size < o->scene.min_size || o->scene.max_size > 4096)
        return dhf_err_set("image sides must satisfy 32 <= --min-size (%d) <= --max-size (%d) <= 4096",
                           o->scene.min_size, o->scene.max_size);
    if (o->scene.samples < 1 || o->scene.samples > 8)
        return dhf_err_set("supersampling must be 1..8 per axis, got %d", o->scene.samples);
    if (o->jpeg_quality < 1 || o->jpeg_quality > 100)
        return dhf_err_set("JPEG quality must be 1..100, got %d", o->jpeg_quality);
    if (o->threads < 1)
        return dhf_err_set("threads must be >= 1, got %d", o->threads);
    if (o->n_categories < 0 || o->n_categories > DHF_SYNTH_MAX_CATEGORIES)
        return dhf_err_set("at most %d categories, got %d", DHF_SYNTH_MAX_CATEGORIES, o->n_categories);
    for (int i = 0; i < o->n_categories; i++) {
        if (!dhf_synth_category_known(o->categories[i])) {
            int n;
            const char *const *all = dhf_synth_categories(&n);
            char list[256] = "";
            size_t used = 0;
            for (int k = 0; k < n; k++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", all[k]);
            return dhf_err_set("--categories: unknown category '%s' (available: %s)", o->categories[i], list);
        }
        for (int j = 0; j < i; j++)
            if (strcmp(o->categories[i], o->categories[j]) == 0)
                return dhf_err_set("--categories: '%s' given twice", o->categories[i]);
    }
    if (!o->write_spair && !o->write_cub)
        return dhf_err_set("nothing to write: --spair-only and --cub-only exclude each other");
    return 0;
}

/* ---- output folders ------------------------------------------------------------ */

static bool dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return true;
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = false;
            break;
        }
    closedir(d);
    return empty;
}

/* Makes `root` ready for a fresh write: created when missing; when it holds an
 * earlier `dhf synth` output (its manifest), the entries that output consists
 * of are removed so no stale file survives; anything else is refused. */
static int prepare_root(const char *root, const char *const *entries, int n_entries)
{
    if (dhf_path_exists(root) && !dhf_is_dir(root))
        return dhf_err_set("%s exists and is not a directory", root);
    if (dhf_is_dir(root) && !dir_is_empty(root)) {
        char marker[4096];
        if (dhf_path_join(marker, sizeof marker, root, MANIFEST_NAME) != 0)
            return -1;
        if (!dhf_path_exists(marker))
            return dhf_err_set("refusing to write into %s: it is not empty and was not made by `dhf synth` "
                               "(no %s); choose another -o or remove it",
                               root, MANIFEST_NAME);
        for (int i = 0; i < n_entries; i++) {
            char p[4096];
            if (dhf_path_join(p, sizeof p, root, entries[i]) != 0 || dhf_remove_tree(p) != 0)
                return -1;
        }
        if (dhf_remove_tree(marker) != 0)
            return -1;
    }
    return dhf_mkdir_p(root);
}

int dhf_synth_run(const char *out_dir, const dhf_synth_options *o, dhf_synth_summary *summary)
{
    memset(summary, 0, sizeof *summary);
    if (dhf_synth_validate(o) != 0)
        return -1;
    if (dhf_mkdir_p(out_dir) != 0)
        return -1;
    char root[4096];
    if (o->write_spair) {
        static const char *const entries[] = {"JPEGImages", "ImageAnnotation", "PairAnnotation", "Layout"};
        if (dhf_path_join(root, sizeof root, out_dir, "SPair-71k") != 0 || prepare_root(root, entries, 4) != 0 ||
            dhf_synth_write_spair(root, o, summary) != 0)
            return -1;
    }
    if (o->write_cub) {
        static const char *const entries[] = {"images",    "parts",           "images.txt",
                                              "classes.txt", "image_class_labels.txt", "train_test_split.txt",
                                              "bounding_boxes.txt"};
        if (dhf_path_join(root, sizeof root, out_dir, "CUB_200_2011") != 0 || prepare_root(root, entries, 7) != 0 ||
            dhf_synth_write_cub(root, o, summary) != 0)
            return -1;
    }
    return 0;
}
