/* spair.c — the SPair-71k official layout reader: Layout/large/<split>.txt names
 * the pairs, PairAnnotation/<split>/<stem>.json holds each one, images live in
 * JPEGImages/<category>/. Required geometry fields are checked strictly; the
 * difficulty attributes and poses are optional (-1 / "" when absent); unknown
 * extra fields (pair_id, filename, ...) are ignored. */
#include "eval/dataset.h"
#include "eval/dataset_common.h"
#include "eval/dataset_json.h"
#include "core/error.h"
#include "core/str.h"
#include "core/fsutil.h"
#include "core/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unknown_category(const char *where, const char *name, char *const *categories, int n)
{
    char list[1024] = "";
    size_t used = 0;
    for (int i = 0; i < n && used < sizeof list - 64; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? " " : "",
                                 categories[i]);
    return dhf_err_set("%s: field 'category': unknown category '%s' (expected one of: %s)", where,
                       name, list);
}

static int check_imname(const char *where, const char *field, const char *name)
{
    if (!name[0] || strchr(name, '/') || strcmp(name, "..") == 0 || strcmp(name, ".") == 0)
        return dhf_err_set("%s: field '%s': expected a file name inside JPEGImages/<category>/, "
                           "got '%s'",
                           where, field, name);
    return 0;
}

static int set_image(const char *root, const char *category, const char *imname, char **key,
                     char **path)
{
    char rel[2048], full[4096];
    if ((size_t)snprintf(rel, sizeof rel, "%s/%s", category, imname) >= sizeof rel)
        return dhf_err_set("image name too long: %s/%s", category, imname);
    if ((size_t)snprintf(full, sizeof full, "%s/JPEGImages/%s", root, rel) >= sizeof full)
        return dhf_err_set("image path too long under %s", root);
    *key = dhf_strdup(rel);
    *path = dhf_strdup(full);
    if (!*key || !*path)
        return dhf_err_set("out of memory");
    return 0;
}

static int read_pair_fields(const cJSON *j, const char *where, const char *stem, const char *root,
                            char *const *categories, int n_categories, dhf_pair *p)
{
    const char *src_im, *trg_im, *category;
    if (!cJSON_IsObject(j))
        return dhf_err_set("%s: expected a JSON object, got %s", where, dhf_dj_type_name(j));
    if (dhf_dj_string(j, where, "src_imname", &src_im) || dhf_dj_string(j, where, "trg_imname", &trg_im) ||
        dhf_dj_string(j, where, "category", &category))
        return -1;
    if (check_imname(where, "src_imname", src_im) || check_imname(where, "trg_imname", trg_im))
        return -1;
    if (!category[0] || strchr(category, '/'))
        return dhf_err_set("%s: field 'category': expected a category name, got '%s'", where,
                           category);
    if (categories && dhf_ds_category_known(categories, n_categories, category) < 0)
        return unknown_category(where, category, categories, n_categories);
    const char *colon = strrchr(stem, ':');
    if (colon && strcmp(colon + 1, category) != 0)
        return dhf_err_set("%s: field 'category' is '%s' but the file name says '%s'", where,
                           category, colon + 1);

    if (dhf_dj_imsize(j, where, "src_imsize", p->src_size) ||
        dhf_dj_imsize(j, where, "trg_imsize", p->trg_size) ||
        dhf_dj_box(j, where, "src_bndbox", p->src_bbox) ||
        dhf_dj_box(j, where, "trg_bndbox", p->trg_bbox))
        return -1;
    if (dhf_ds_check_box(where, "src_bndbox", p->src_bbox, p->src_size) ||
        dhf_ds_check_box(where, "trg_bndbox", p->trg_bbox, p->trg_size))
        return -1;

    double *src = NULL, *trg = NULL;
    int *ids = NULL, n_src, n_trg, n_ids;
    int rc = -1;
    if (dhf_dj_points(j, where, "src_kps", &src, &n_src) ||
        dhf_dj_points(j, where, "trg_kps", &trg, &n_trg) ||
        dhf_dj_int_list(j, where, "kps_ids", &ids, &n_ids))
        goto out;
    if (n_src != n_trg) {
        dhf_err_set("%s: keypoint count mismatch: 'src_kps' has %d, 'trg_kps' has %d", where,
                    n_src, n_trg);
        goto out;
    }
    if (n_ids != n_src) {
        dhf_err_set("%s: field 'kps_ids' has %d entries but 'src_kps' has %d keypoints", where,
                    n_ids, n_src);
        goto out;
    }
    if (n_src == 0) {
        dhf_err_set("%s: field 'src_kps': expected at least one keypoint, got none", where);
        goto out;
    }
    if (dhf_ds_check_points(where, "src_kps", src, n_src, p->src_size) != 0 ||
        dhf_ds_check_points(where, "trg_kps", trg, n_src, p->trg_size) != 0)
        goto out;
    if (dhf_ds_alloc_kps(p, n_src) != 0)
        goto out;
    memcpy(p->src_kps, src, sizeof(double) * 2 * (size_t)n_src);
    memcpy(p->trg_kps, trg, sizeof(double) * 2 * (size_t)n_src);
    memcpy(p->kp_ids, ids, sizeof(int) * (size_t)n_src);

    p->viewpoint_variation = p->scale_variation = p->truncation = p->occlusion = p->mirror = -1;
    p->src_pose[0] = p->trg_pose[0] = '\0';
    if (dhf_dj_opt_int(j, where, "viewpoint_variation", &p->viewpoint_variation) ||
        dhf_dj_opt_int(j, where, "scale_variation", &p->scale_variation) ||
        dhf_dj_opt_int(j, where, "truncation", &p->truncation) ||
        dhf_dj_opt_int(j, where, "occlusion", &p->occlusion) ||
        dhf_dj_opt_int(j, where, "mirror", &p->mirror) ||
        dhf_dj_opt_string(j, where, "src_pose", p->src_pose, sizeof p->src_pose) ||
        dhf_dj_opt_string(j, where, "trg_pose", p->trg_pose, sizeof p->trg_pose))
        goto out;

    if (!(p->id = dhf_strdup(stem)) || !(p->category = dhf_strdup(category))) {
        dhf_err_set("out of memory");
        goto out;
    }
    if (set_image(root, category, src_im, &p->src_key, &p->src_path) ||
        set_image(root, category, trg_im, &p->trg_key, &p->trg_path))
        goto out;
    rc = 0;
out:
    free(src);
    free(trg);
    free(ids);
    return rc;
}

int dhf_spair_read_pair(const char *json_path, const char *root, char *const *categories,
                        int n_categories, dhf_pair *out)
{
    memset(out, 0, sizeof *out);
    cJSON *j;
    if (dhf_dj_parse_file(json_path, &j) != 0)
        return -1;
    char stem[1024];
    const char *base = dhf_basename(json_path);
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".json") == 0)
        n -= 5;
    if (n >= sizeof stem) {
        cJSON_Delete(j);
        return dhf_err_set("%s: file name too long", json_path);
    }
    memcpy(stem, base, n);
    stem[n] = '\0';
    int rc = read_pair_fields(j, json_path, stem, root, categories, n_categories, out);
    cJSON_Delete(j);
    if (rc != 0)
        dhf_pair_free(out);
    return rc;
}

/* Layout/large/<split>.txt: one pair stem per line. */
static int read_layout(const char *path, char ***stems, size_t *n)
{
    if (dhf_ds_read_lines(path, stems, n) != 0)
        return dhf_err_wrap("SPair-71k split list");
    for (size_t i = 0; i < *n; i++)
        if (strchr((*stems)[i], '/')) {
            dhf_err_set("%s: line %zu ('%s') is not a pair file stem", path, i + 1, (*stems)[i]);
            dhf_ds_free_strings(*stems, (int)*n);
            *stems = NULL;
            *n = 0;
            return -1;
        }
    return 0;
}

int dhf_spair_load(const char *root, const char *split, dhf_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    char path[4096], dir[4096];
    if (strcmp(split, "trn") && strcmp(split, "val") && strcmp(split, "test"))
        return dhf_err_set("SPair-71k split '%s': expected trn, val or test", split);
    if (dhf_path_join(dir, sizeof dir, root, "JPEGImages") != 0)
        return -1;
    if (!dhf_is_dir(dir))
        return dhf_err_set("%s: not a SPair-71k folder (no JPEGImages/ inside)", root);
    char **cats;
    int n_cats;
    if (dhf_ds_list_subdirs(dir, &cats, &n_cats) != 0)
        return -1;
    if (n_cats == 0) {
        dhf_ds_free_strings(cats, n_cats);
        return dhf_err_set("%s: no category folders", dir);
    }
    snprintf(ds->name, sizeof ds->name, "spair-71k");
    snprintf(ds->split, sizeof ds->split, "%s", split);
    if (dhf_ds_copy(ds->root, sizeof ds->root, root, "dataset root") != 0 ||
        dhf_ds_copy(ds->image_root, sizeof ds->image_root, dir, "image root") != 0 ||
        dhf_ds_set_categories(ds, cats, n_cats) != 0) {
        dhf_ds_free_strings(cats, n_cats);
        dhf_dataset_free(ds);
        return -1;
    }
    dhf_ds_free_strings(cats, n_cats);

    snprintf(path, sizeof path, "%s/Layout/large/%s.txt", root, split);
    char **stems = NULL;
    size_t n_stems = 0;
    if (read_layout(path, &stems, &n_stems) != 0) {
        dhf_dataset_free(ds);
        return -1;
    }
    if (n_stems == 0) {
        free(stems);
        dhf_dataset_free(ds);
        return dhf_err_set("%s: lists no pairs", path);
    }

    dhf_progress prog;
    char label[64];
    snprintf(label, sizeof label, "reading SPair %s pairs", split);
    dhf_progress_begin(&prog, label, (int64_t)n_stems);
    dhf_progress_set_unit(&prog, "pair");
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; i < n_stems && rc == 0; i++) {
        dhf_pair p;
        if ((size_t)snprintf(path, sizeof path, "%s/PairAnnotation/%s/%s.json", root, split,
                             stems[i]) >= sizeof path) {
            rc = dhf_err_set("pair path too long: %s", stems[i]);
            break;
        }
        if (!dhf_path_exists(path)) {
            rc = dhf_err_set("%s: missing pair annotation listed in Layout/large/%s.txt", path,
                             split);
            break;
        }
        if (dhf_spair_read_pair(path, root, ds->categories, ds->n_categories, &p) != 0) {
            rc = -1;
            break;
        }
        if (dhf_ds_append(ds, &cap, &p) != 0) {
            dhf_pair_free(&p);
            rc = -1;
        }
        dhf_progress_step(&prog, 1, NULL);
    }
    dhf_progress_end(&prog);
    dhf_ds_free_strings(stems, (int)n_stems);
    if (rc != 0) {
        dhf_dataset_free(ds);
        return -1;
    }
    /* Duplicate lines would double-count pairs; ids are the file stems. The
     * check sorts a copy so the pairs keep the Layout file's order. */
    const char **ids = malloc(sizeof(char *) * ds->n_pairs);
    if (!ids) {
        dhf_dataset_free(ds);
        return dhf_err_set("out of memory checking pair ids");
    }
    for (size_t i = 0; i < ds->n_pairs; i++)
        ids[i] = ds->pairs[i].id;
    qsort(ids, ds->n_pairs, sizeof(char *), dhf_ds_cmp_str);
    for (size_t i = 1; i < ds->n_pairs; i++)
        if (strcmp(ids[i], ids[i - 1]) == 0) {
            dhf_err_set("%s/Layout/large/%s.txt: pair '%s' listed twice", root, split, ids[i]);
            free(ids);
            dhf_dataset_free(ds);
            return -1;
        }
    free(ids);
    return dhf_subset_full(ds);
}
