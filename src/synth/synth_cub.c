/* synth_cub.c — writes the synthetic birds in the CUB-200-2011 layout:
 * images/<NNN.Class>/<file>.jpg, images.txt, image_class_labels.txt,
 * classes.txt, train_test_split.txt (1 = train), bounding_boxes.txt (x y w h),
 * parts/parts.txt (CUB's 15 part names, same ids) and parts/part_locs.txt
 * (img_id part_id x y visible; invisible parts as 0.0 0.0 0, as in CUB).
 * Classes are fixed bird looks (colours, beak, tail, crest) so they differ the
 * way fine-grained classes do. */
#include "synth/synth.h"
#include "synth/synth_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "synth/synth_rng.h"

typedef struct {
    char name[64];    /* "Crimson_Finch" */
    char folder[80];  /* "001.Crimson_Finch" */
} cub_class;

int dhf_synth_write_cub(const char *root, const dhf_synth_options *o, dhf_synth_summary *summary)
{
    if (dhf_synth_validate(o) != 0)
        return -1;
    const int n_cls = o->cub_classes, per = o->cub_images_per_class, n = n_cls * per;
    cub_class *cls = calloc((size_t)n_cls, sizeof *cls);
    dhf_synth_job *jobs = calloc((size_t)n, sizeof *jobs);
    int *is_train = calloc((size_t)n, sizeof(int));
    int *perm = malloc(sizeof(int) * (size_t)per);
    dhf_synth_text t_images = {0}, t_labels = {0}, t_classes = {0}, t_split = {0}, t_boxes = {0}, t_parts = {0},
                   t_locs = {0};
    int rc = -1;
    char path[4096];
    if (!cls || !jobs || !is_train || !perm) {
        dhf_err_set("out of memory for %d CUB pictures", n);
        goto done;
    }
    const char *kp_names[DHF_SYNTH_MAX_KPS];
    int n_kps;
    if (dhf_synth_keypoint_names("bird", kp_names, &n_kps) != 0)
        goto done;

    snprintf(path, sizeof path, "%s/parts", root);
    if (dhf_mkdir_p(path) != 0)
        goto done;
    for (int c = 0; c < n_cls; c++) {
        dhf_synth_bird_class_name(c, cls[c].name, sizeof cls[c].name);
        snprintf(cls[c].folder, sizeof cls[c].folder, "%03d.%s", c + 1, cls[c].name);
        snprintf(path, sizeof path, "%s/images/%s", root, cls[c].folder);
        if (dhf_mkdir_p(path) != 0)
            goto done;
        /* train/test: half of each class (the larger half to test) by a seeded draw */
        for (int i = 0; i < per; i++)
            perm[i] = i;
        dhf_rng r;
        dhf_rng_seed(&r, dhf_synth_item_seed(o->seed, "cub-split", cls[c].name, 0));
        for (int i = per - 1; i > 0; i--) {
            int j = dhf_rng_below(&r, i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int i = 0; i < per / 2; i++)
            is_train[c * per + perm[i]] = 1;
        for (int i = 0; i < per; i++) {
            dhf_synth_job *j = &jobs[c * per + i];
            int id = c * per + i + 1;
            j->category = "bird";
            j->style = c;
            j->seed = dhf_synth_item_seed(o->seed, "cub", cls[c].name, i);
            if ((size_t)snprintf(j->jpg_path, sizeof j->jpg_path, "%s/images/%s/%s_%04d_%d.jpg", root,
                                 cls[c].folder, cls[c].name, i + 1, id) >= sizeof j->jpg_path) {
                dhf_err_set("output path too long under %s", root);
                goto done;
            }
        }
    }
    if (dhf_synth_render_jobs(jobs, n, o, "synth CUB-200-2011 images") != 0)
        goto done;

    for (int c = 0; c < n_cls; c++)
        dhf_synth_text_printf(&t_classes, "%d %s\n", c + 1, cls[c].folder);
    for (int k = 0; k < n_kps; k++)
        dhf_synth_text_printf(&t_parts, "%d %s\n", k + 1, kp_names[k]);
    for (int i = 0; i < n; i++) {
        const dhf_synth_instance *in = &jobs[i].inst;
        int id = i + 1, c = i / per;
        dhf_synth_text_printf(&t_images, "%d %s/%s\n", id, cls[c].folder, dhf_basename(jobs[i].jpg_path));
        dhf_synth_text_printf(&t_labels, "%d %d\n", id, c + 1);
        dhf_synth_text_printf(&t_split, "%d %d\n", id, is_train[i]);
        dhf_synth_text_printf(&t_boxes, "%d %.1f %.1f %.1f %.1f\n", id, (double)in->bbox[0], (double)in->bbox[1],
                              (double)(in->bbox[2] - in->bbox[0]), (double)(in->bbox[3] - in->bbox[1]));
        for (int k = 0; k < in->n_kps; k++) {
            if (in->kp_state[k] == DHF_KP_VISIBLE)
                dhf_synth_text_printf(&t_locs, "%d %d %.1f %.1f 1\n", id, k + 1, (double)lround(in->kp[k][0]),
                                      (double)lround(in->kp[k][1]));
            else
                dhf_synth_text_printf(&t_locs, "%d %d 0.0 0.0 0\n", id, k + 1);
        }
    }
    struct {
        const char *rel;
        dhf_synth_text *t;
    } files[] = {{"images.txt", &t_images},         {"image_class_labels.txt", &t_labels},
                 {"classes.txt", &t_classes},       {"train_test_split.txt", &t_split},
                 {"bounding_boxes.txt", &t_boxes},  {"parts/parts.txt", &t_parts},
                 {"parts/part_locs.txt", &t_locs}};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        snprintf(path, sizeof path, "%s/%s", root, files[f].rel);
        if (files[f].t->oom) {
            dhf_err_set("out of memory writing %s", path);
            goto done;
        }
        if (dhf_synth_write_text(path, files[f].t->data ? files[f].t->data : "", files[f].t->len) != 0)
            goto done;
    }

    cJSON *m = dhf_synth_manifest(o, "CUB-200-2011");
    if (!m) {
        dhf_err_set("out of memory building the CUB manifest");
        goto done;
    }
    cJSON *names = cJSON_AddArrayToObject(m, "parts");
    for (int k = 0; names && k < n_kps; k++)
        cJSON_AddItemToArray(names, cJSON_CreateString(kp_names[k]));
    cJSON *cj = cJSON_AddArrayToObject(m, "classes");
    for (int c = 0; cj && c < n_cls; c++)
        cJSON_AddItemToArray(cj, cJSON_CreateString(cls[c].folder));
    snprintf(path, sizeof path, "%s/dhf_synth.json", root);
    int mrc = dhf_synth_write_json(path, m);
    cJSON_Delete(m);
    if (mrc != 0)
        goto done;
    if (summary) {
        summary->cub_images = n;
        summary->cub_classes = n_cls;
    }
    rc = 0;
done:
    if (rc != 0)
        dhf_err_wrap("synth CUB-200-2011 into %s", root);
    free(cls);
    free(jobs);
    free(is_train);
    free(perm);
    dhf_synth_text *all[] = {&t_images, &t_labels, &t_classes, &t_split, &t_boxes, &t_parts, &t_locs};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        dhf_synth_text_free(all[i]);
    return rc;
}
