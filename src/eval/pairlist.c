/* pairlist.c — the paper code's pair-list JSON (annotations/spair_71k_*.json in
 * the authors' repository): a list of objects with source/target paths relative
 * to the JPEGImages folder, integer points, category and [l, t, r, b] boxes.
 * Image sizes are not in this format; they are filled in (and boxes checked
 * against them) by dhf_dataset_resolve_images. */
#include "eval/dataset.h"
#include "eval/dataset_common.h"
#include "eval/dataset_json.h"
#include "core/error.h"
#include "core/str.h"
#include "core/fsutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "dir/2008_007494.jpg" -> "2008_007494" */
static void stem_of(const char *path, char *out, size_t cap)
{
    const char *base = dhf_basename(path);
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, base, n);
    out[n] = '\0';
}

/* A bare file name (the authors' 6-pair demo list) is looked up in the
 * category's folder when that folder exists, else directly under image_root;
 * its key is always "<category>/<name>" so caches see one identity. */
static int resolve_image(const char *image_root, const char *category, const char *rel,
                         char **key, char **path)
{
    char k[2048], full[4096], catdir[4096];
    if (strchr(rel, '/')) {
        if (dhf_ds_copy(k, sizeof k, rel, "image path") != 0 ||
            dhf_path_join(full, sizeof full, image_root, rel) != 0)
            return -1;
    } else {
        if ((size_t)snprintf(k, sizeof k, "%s/%s", category, rel) >= sizeof k)
            return dhf_err_set("image path too long: %s/%s", category, rel);
        if (dhf_path_join(catdir, sizeof catdir, image_root, category) != 0)
            return -1;
        if (dhf_path_join(full, sizeof full, dhf_is_dir(catdir) ? catdir : image_root, rel) != 0)
            return -1;
    }
    *key = dhf_strdup(k);
    *path = dhf_strdup(full);
    if (!*key || !*path)
        return dhf_err_set("out of memory");
    return 0;
}

static int read_entry(const cJSON *e, const char *where, int index, const char *image_root,
                      char *const *categories, int n_categories, dhf_pair *p)
{
    const char *src, *trg, *category;
    if (!cJSON_IsObject(e))
        return dhf_err_set("%s: expected an object, got %s", where, dhf_dj_type_name(e));
    if (dhf_dj_string(e, where, "source_path", &src) ||
        dhf_dj_string(e, where, "target_path", &trg) ||
        dhf_dj_string(e, where, "category", &category))
        return -1;
    if (!src[0] || !trg[0])
        return dhf_err_set("%s: field '%s': expected an image path, got an empty string", where,
                           src[0] ? "target_path" : "source_path");
    if (!category[0] || strchr(category, '/'))
        return dhf_err_set("%s: field 'category': expected a category name, got '%s'", where,
                           category);
    if (categories && dhf_ds_category_known(categories, n_categories, category) < 0) {
        char list[1024] = "";
        size_t used = 0;
        for (int i = 0; i < n_categories && used < sizeof list - 64; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? " " : "",
                                     categories[i]);
        return dhf_err_set("%s: field 'category': unknown category '%s' (expected one of the "
                           "folders in %s: %s)",
                           where, category, image_root, list);
    }
    if (dhf_dj_box(e, where, "source_bounding_box", p->src_bbox) ||
        dhf_dj_box(e, where, "target_bounding_box", p->trg_bbox))
        return -1;

    double *sp = NULL, *tp = NULL;
    int ns, nt, rc = -1;
    if (dhf_dj_points(e, where, "source_points", &sp, &ns) ||
        dhf_dj_points(e, where, "target_points", &tp, &nt))
        goto out;
    if (ns != nt) {
        dhf_err_set("%s: keypoint count mismatch: 'source_points' has %d, 'target_points' has %d",
                    where, ns, nt);
        goto out;
    }
    if (ns == 0) {
        dhf_err_set("%s: field 'source_points': expected at least one keypoint, got none", where);
        goto out;
    }
    if (dhf_ds_alloc_kps(p, ns) != 0)
        goto out;
    memcpy(p->src_kps, sp, sizeof(double) * 2 * (size_t)ns);
    memcpy(p->trg_kps, tp, sizeof(double) * 2 * (size_t)ns);
    for (int k = 0; k < ns; k++)
        p->kp_ids[k] = k;

    p->viewpoint_variation = p->scale_variation = p->truncation = p->occlusion = p->mirror = -1;
    if (dhf_dj_opt_int(e, where, "viewpoint_variation", &p->viewpoint_variation) ||
        dhf_dj_opt_int(e, where, "scale_variation", &p->scale_variation) ||
        dhf_dj_opt_int(e, where, "truncation", &p->truncation) ||
        dhf_dj_opt_int(e, where, "occlusion", &p->occlusion) ||
        dhf_dj_opt_int(e, where, "mirror", &p->mirror) ||
        dhf_dj_opt_string(e, where, "source_pose", p->src_pose, sizeof p->src_pose) ||
        dhf_dj_opt_string(e, where, "target_pose", p->trg_pose, sizeof p->trg_pose))
        goto out;

    char s_stem[512], t_stem[512], id[1200];
    stem_of(src, s_stem, sizeof s_stem);
    stem_of(trg, t_stem, sizeof t_stem);
    snprintf(id, sizeof id, "%d-%s-%s:%s", index + 1, s_stem, t_stem, category);
    if (!(p->id = dhf_strdup(id)) || !(p->category = dhf_strdup(category))) {
        dhf_err_set("out of memory");
        goto out;
    }
    if (resolve_image(image_root, category, src, &p->src_key, &p->src_path) ||
        resolve_image(image_root, category, trg, &p->trg_key, &p->trg_path))
        goto out;
    rc = 0;
out:
    free(sp);
    free(tp);
    return rc;
}

static int add_used_category(char ***v, int *n, const char *name)
{
    if (dhf_ds_category_known(*v, *n, name) >= 0)
        return 0;
    char **nv = realloc(*v, sizeof(char *) * (size_t)(*n + 1));
    if (!nv)
        return dhf_err_set("out of memory");
    *v = nv;
    if (!(nv[*n] = dhf_strdup(name)))
        return dhf_err_set("out of memory");
    (*n)++;
    return 0;
}

int dhf_pairlist_load(const char *json_path, const char *image_root, dhf_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    cJSON *root;
    if (dhf_dj_parse_file(json_path, &root) != 0)
        return -1;
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return dhf_err_set("%s: expected a JSON list of pairs, got %s", json_path,
                           dhf_dj_type_name(root));
    }
    if (cJSON_GetArraySize(root) == 0) {
        cJSON_Delete(root);
        return dhf_err_set("%s: the pair list is empty", json_path);
    }
    snprintf(ds->name, sizeof ds->name, "pairlist");
    if (dhf_ds_copy(ds->root, sizeof ds->root, image_root, "image root") != 0 ||
        dhf_ds_copy(ds->image_root, sizeof ds->image_root, image_root, "image root") != 0) {
        cJSON_Delete(root);
        return -1;
    }

    /* With category folders present they are the category set; without (a
     * flat demo folder, or images not downloaded yet) the list defines it. */
    char **folders = NULL, **used = NULL;
    int n_folders = 0, n_used = 0;
    if (dhf_is_dir(image_root) && dhf_ds_list_subdirs(image_root, &folders, &n_folders) != 0) {
        cJSON_Delete(root);
        return -1;
    }
    size_t cap = 0;
    int index = 0, rc = 0;
    for (const cJSON *e = root->child; e && rc == 0; e = e->next, index++) {
        char where[4200];
        snprintf(where, sizeof where, "%s: element %d", json_path, index);
        dhf_pair p;
        memset(&p, 0, sizeof p);
        if (read_entry(e, where, index, image_root, n_folders ? folders : NULL, n_folders, &p) != 0 ||
            add_used_category(&used, &n_used, p.category) != 0 || dhf_ds_append(ds, &cap, &p) != 0) {
            dhf_pair_free(&p);
            rc = -1;
        }
    }
    cJSON_Delete(root);
    if (rc == 0)
        rc = n_folders ? dhf_ds_set_categories(ds, folders, n_folders)
                       : dhf_ds_set_categories(ds, used, n_used);
    dhf_ds_free_strings(folders, n_folders);
    dhf_ds_free_strings(used, n_used);
    if (rc != 0) {
        dhf_dataset_free(ds);
        return -1;
    }
    dhf_subset_update_hash(ds);
    snprintf(ds->subset.name, sizeof ds->subset.name, "list:%.240s", dhf_basename(json_path));
    snprintf(ds->subset.list_path, sizeof ds->subset.list_path, "%s", json_path);
    return 0;
}
