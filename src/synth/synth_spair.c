/* synth_spair.c — writes the synthetic benchmark in the SPair-71k layout:
 * JPEGImages/, ImageAnnotation/ (one JSON per image, kps as an id -> [x, y] or
 * null dictionary), PairAnnotation/{trn,val,test}/ (one JSON per pair with
 * every field SPair pair files carry) and Layout/large/{trn,val,test}.txt.
 * Conventions and attribute definitions: synth.h. */
#include "synth/synth.h"
#include "synth/synth_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "synth/synth_rng.h"

static const char *const SPLITS[3] = {"trn", "val", "test"};

typedef struct {
    const char *category;
    int n_kps;
    const char *kp_names[DHF_SYNTH_MAX_KPS];
    int first_job;           /* jobs[first_job + i] is image i */
    int *split_members[3];   /* image indices per split, ascending */
    int split_count[3];
} cat_state;

static void image_name(char *buf, size_t n, const char *category, int index)
{
    snprintf(buf, n, "%s_%06d", category, index + 1);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

static void shuffle(int *v, int n, dhf_rng *r)
{
    for (int i = n - 1; i > 0; i--) {
        int j = dhf_rng_below(r, i + 1);
        int t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static cJSON *int_array(const int *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static int rounded(double v)
{
    return (int)lround(v);
}

static int write_image_annotation(const char *root, const cat_state *cs, int index, const dhf_synth_instance *in)
{
    char name[128], path[4096];
    image_name(name, sizeof name, cs->category, index);
    snprintf(path, sizeof path, "%s/ImageAnnotation/%s/%s.json", root, cs->category, name);
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return dhf_err_set("%s: out of memory", path);
    char file[160];
    snprintf(file, sizeof file, "%s.jpg", name);
    cJSON_AddStringToObject(j, "filename", file);
    cJSON_AddStringToObject(j, "src_database", "dhf synth");
    cJSON_AddStringToObject(j, "src_annotation", "dhf synth (exact template geometry)");
    cJSON_AddStringToObject(j, "src_image", "procedural rendering");
    cJSON_AddNumberToObject(j, "image_width", in->width);
    cJSON_AddNumberToObject(j, "image_height", in->height);
    cJSON_AddNumberToObject(j, "image_depth", 3);
    cJSON_AddStringToObject(j, "category", cs->category);
    cJSON_AddStringToObject(j, "pose", in->pose);
    cJSON_AddNumberToObject(j, "truncated", in->truncated);
    cJSON_AddNumberToObject(j, "occluded", in->occluded);
    cJSON_AddNumberToObject(j, "difficult", 0);
    cJSON_AddItemToObject(j, "bndbox", int_array(in->bbox, 4));
    cJSON *kps = cJSON_AddObjectToObject(j, "kps");
    for (int k = 0; kps && k < in->n_kps; k++) {
        char id[16];
        snprintf(id, sizeof id, "%d", k);
        if (in->kp_state[k] == DHF_KP_VISIBLE) {
            int xy[2] = {rounded(in->kp[k][0]), rounded(in->kp[k][1])};
            cJSON_AddItemToObject(kps, id, int_array(xy, 2));
        } else {
            cJSON_AddNullToObject(kps, id);
        }
    }
    cJSON_AddNumberToObject(j, "azimuth_id", in->azimuth_id);
    int rc = dhf_synth_write_json(path, j);
    cJSON_Delete(j);
    return rc;
}

static int circular_bin_diff(int a, int b)
{
    int d = abs(a - b) % 8;
    return d > 4 ? 8 - d : d;
}

static bool faces_left(double az)
{
    return sin(az * M_PI / 180.0) < -0.38; /* more than 22.5 deg toward image-left */
}

static bool faces_right(double az)
{
    return sin(az * M_PI / 180.0) > 0.38;
}

static int write_pair(const char *root, const char *split, int pair_id, const char *stem, const cat_state *cs,
                      int a, int b, const dhf_synth_instance *sa, const dhf_synth_instance *sb)
{
    char path[4096], an[128], bn[128], af[160], bf[160];
    snprintf(path, sizeof path, "%s/PairAnnotation/%s/%s.json", root, split, stem);
    image_name(an, sizeof an, cs->category, a);
    image_name(bn, sizeof bn, cs->category, b);
    snprintf(af, sizeof af, "%s.jpg", an);
    snprintf(bf, sizeof bf, "%s.jpg", bn);
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return dhf_err_set("%s: out of memory", path);
    cJSON_AddNumberToObject(j, "pair_id", pair_id);
    cJSON_AddStringToObject(j, "filename", stem);
    cJSON_AddStringToObject(j, "src_imname", af);
    cJSON_AddStringToObject(j, "trg_imname", bf);
    int src_size[3] = {sa->width, sa->height, 3}, trg_size[3] = {sb->width, sb->height, 3};
    cJSON_AddItemToObject(j, "src_imsize", int_array(src_size, 3));
    cJSON_AddItemToObject(j, "trg_imsize", int_array(trg_size, 3));
    cJSON_AddItemToObject(j, "src_bndbox", int_array(sa->bbox, 4));
    cJSON_AddItemToObject(j, "trg_bndbox", int_array(sb->bbox, 4));
    cJSON_AddStringToObject(j, "category", cs->category);
    cJSON_AddStringToObject(j, "src_pose", sa->pose);
    cJSON_AddStringToObject(j, "trg_pose", sb->pose);
    cJSON *sk = cJSON_AddArrayToObject(j, "src_kps");
    cJSON *tk = cJSON_AddArrayToObject(j, "trg_kps");
    cJSON *ids = cJSON_AddArrayToObject(j, "kps_ids");
    for (int k = 0; sk && tk && ids && k < sa->n_kps; k++) {
        if (sa->kp_state[k] != DHF_KP_VISIBLE || sb->kp_state[k] != DHF_KP_VISIBLE)
            continue;
        int s[2] = {rounded(sa->kp[k][0]), rounded(sa->kp[k][1])};
        int t[2] = {rounded(sb->kp[k][0]), rounded(sb->kp[k][1])};
        cJSON_AddItemToArray(sk, int_array(s, 2));
        cJSON_AddItemToArray(tk, int_array(t, 2));
        char id[16];
        snprintf(id, sizeof id, "%d", k); /* SPair writes ids as strings, the keys of "kps" */
        cJSON_AddItemToArray(ids, cJSON_CreateString(id));
    }
    bool symmetric = strcmp(sa->pose, "Unspecified") == 0;
    int mirror = !symmetric && ((faces_left(sa->azimuth_deg) && faces_right(sb->azimuth_deg)) ||
                                (faces_right(sa->azimuth_deg) && faces_left(sb->azimuth_deg)));
    int d = circular_bin_diff(sa->azimuth_id, sb->azimuth_id);
    int vp = symmetric ? 0 : (d == 0 ? 0 : (d <= 2 ? 1 : 2));
    double area_a = (double)(sa->bbox[2] - sa->bbox[0] + 1) * (sa->bbox[3] - sa->bbox[1] + 1);
    double area_b = (double)(sb->bbox[2] - sb->bbox[0] + 1) * (sb->bbox[3] - sb->bbox[1] + 1);
    double ratio = sqrt(area_a / area_b);
    if (ratio < 1)
        ratio = 1 / ratio;
    int sv = ratio < 1.5 ? 0 : (ratio < 2.0 ? 1 : 2);
    cJSON_AddNumberToObject(j, "mirror", mirror);
    cJSON_AddNumberToObject(j, "viewpoint_variation", vp);
    cJSON_AddNumberToObject(j, "scale_variation", sv);
    cJSON_AddNumberToObject(j, "truncation", (sa->truncated ? 1 : 0) + (sb->truncated ? 2 : 0));
    cJSON_AddNumberToObject(j, "occlusion", (sa->occluded ? 1 : 0) + (sb->occluded ? 2 : 0));
    int rc = dhf_synth_write_json(path, j);
    cJSON_Delete(j);
    return rc;
}

static int common_visible(const dhf_synth_instance *a, const dhf_synth_instance *b)
{
    int n = 0;
    for (int k = 0; k < a->n_kps; k++)
        n += a->kp_state[k] == DHF_KP_VISIBLE && b->kp_state[k] == DHF_KP_VISIBLE;
    return n;
}

/* Whether the images perm[off..off+n) hold at least one pair with a keypoint
 * visible in both. */
static bool split_has_pair(const int *perm, int off, int n, const dhf_synth_job *jobs)
{
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            if (a != b && common_visible(&jobs[perm[off + a]].inst, &jobs[perm[off + b]].inst) > 0)
                return true;
    return false;
}

/* Image-disjoint split of one category: test gets about half, val a fifth,
 * trn the rest, each at least 2 images (n >= 6 is validated). Of up to 64
 * seeded shuffles the first that gives every split a usable pair is kept (else
 * the one that serves the most splits), so a small set rarely ends up with an
 * empty split. jobs[i] is image i of this category. */
static int split_category(cat_state *cs, int n, uint64_t seed, const dhf_synth_job *jobs)
{
    int n_val = n / 5 > 2 ? n / 5 : 2;
    int n_trn = 3 * n / 10 > 2 ? 3 * n / 10 : 2;
    int n_test = n - n_val - n_trn;
    int counts[3] = {n_trn, n_val, n_test};
    int offs[3] = {n_test + n_val, n_test, 0}; /* test first, then val, then trn */
    int *perm = malloc(sizeof(int) * (size_t)n), *best = malloc(sizeof(int) * (size_t)n);
    if (!perm || !best) {
        free(perm);
        free(best);
        return dhf_err_set("out of memory splitting '%s'", cs->category);
    }
    for (int i = 0; i < n; i++)
        perm[i] = i;
    dhf_rng r;
    dhf_rng_seed(&r, dhf_synth_item_seed(seed, "spair-split", cs->category, 0));
    int best_ok = -1;
    for (int attempt = 0; attempt < 64 && best_ok < 3; attempt++) {
        shuffle(perm, n, &r);
        int ok = 0;
        for (int s = 0; s < 3; s++)
            ok += split_has_pair(perm, offs[s], counts[s], jobs);
        if (ok > best_ok) {
            best_ok = ok;
            memcpy(best, perm, sizeof(int) * (size_t)n);
        }
    }
    for (int s = 0; s < 3; s++) {
        cs->split_members[s] = malloc(sizeof(int) * (size_t)counts[s]);
        if (!cs->split_members[s]) {
            free(perm);
            free(best);
            return dhf_err_set("out of memory splitting '%s'", cs->category);
        }
        memcpy(cs->split_members[s], best + offs[s], sizeof(int) * (size_t)counts[s]);
        qsort(cs->split_members[s], (size_t)counts[s], sizeof(int), cmp_int);
        cs->split_count[s] = counts[s];
    }
    free(perm);
    free(best);
    return 0;
}

static int make_dirs(const char *root, const cat_state *cats, int n_cats)
{
    char p[4096];
    for (int c = 0; c < n_cats; c++) {
        snprintf(p, sizeof p, "%s/JPEGImages/%s", root, cats[c].category);
        if (dhf_mkdir_p(p) != 0)
            return -1;
        snprintf(p, sizeof p, "%s/ImageAnnotation/%s", root, cats[c].category);
        if (dhf_mkdir_p(p) != 0)
            return -1;
    }
    for (int s = 0; s < 3; s++) {
        snprintf(p, sizeof p, "%s/PairAnnotation/%s", root, SPLITS[s]);
        if (dhf_mkdir_p(p) != 0)
            return -1;
    }
    snprintf(p, sizeof p, "%s/Layout/large", root);
    return dhf_mkdir_p(p);
}

static int write_manifest(const char *root, const dhf_synth_options *o, const cat_state *cats, int n_cats,
                          const int pair_counts[3])
{
    cJSON *m = dhf_synth_manifest(o, "SPair-71k");
    if (!m)
        return dhf_err_set("out of memory building the SPair manifest");
    cJSON *cj = cJSON_AddObjectToObject(m, "categories");
    for (int c = 0; cj && c < n_cats; c++) {
        const cat_state *cs = &cats[c];
        cJSON *e = cJSON_AddObjectToObject(cj, cs->category);
        if (!e)
            continue;
        cJSON *names = cJSON_AddArrayToObject(e, "keypoints");
        for (int k = 0; names && k < cs->n_kps; k++)
            cJSON_AddItemToArray(names, cJSON_CreateString(cs->kp_names[k]));
        cJSON *sp = cJSON_AddObjectToObject(e, "split_images");
        for (int s = 0; sp && s < 3; s++) {
            cJSON *a = cJSON_AddArrayToObject(sp, SPLITS[s]);
            for (int i = 0; a && i < cs->split_count[s]; i++) {
                char name[128];
                image_name(name, sizeof name, cs->category, cs->split_members[s][i]);
                cJSON_AddItemToArray(a, cJSON_CreateString(name));
            }
        }
    }
    cJSON *pc = cJSON_AddObjectToObject(m, "pairs");
    for (int s = 0; pc && s < 3; s++)
        cJSON_AddNumberToObject(pc, SPLITS[s], pair_counts[s]);
    char path[4096];
    snprintf(path, sizeof path, "%s/dhf_synth.json", root);
    int rc = dhf_synth_write_json(path, m);
    cJSON_Delete(m);
    return rc;
}

int dhf_synth_write_spair(const char *root, const dhf_synth_options *o, dhf_synth_summary *summary)
{
    if (dhf_synth_validate(o) != 0)
        return -1;
    const char *names[DHF_SYNTH_MAX_CATEGORIES];
    int n_cats;
    if (o->n_categories > 0) {
        n_cats = o->n_categories;
        memcpy(names, o->categories, sizeof(char *) * (size_t)n_cats);
    } else {
        const char *const *def = dhf_synth_default_categories(&n_cats);
        memcpy(names, def, sizeof(char *) * (size_t)n_cats);
    }
    qsort(names, (size_t)n_cats, sizeof(char *), cmp_str_ptr); /* SPair lists categories alphabetically */

    const int n_img = o->images_per_category;
    cat_state cats[DHF_SYNTH_MAX_CATEGORIES];
    memset(cats, 0, sizeof cats);
    dhf_synth_job *jobs = calloc((size_t)n_cats * (size_t)n_img, sizeof *jobs);
    int *cand = NULL;
    dhf_synth_text layout[3];
    memset(layout, 0, sizeof layout);
    int rc = -1;
    if (!jobs) {
        dhf_err_set("out of memory for %d pictures", n_cats * n_img);
        goto done;
    }
    for (int c = 0; c < n_cats; c++) {
        cats[c].category = names[c];
        cats[c].first_job = c * n_img;
        if (dhf_synth_keypoint_names(names[c], cats[c].kp_names, &cats[c].n_kps) != 0)
            goto done;
    }
    if (make_dirs(root, cats, n_cats) != 0)
        goto done;
    for (int c = 0; c < n_cats; c++)
        for (int i = 0; i < n_img; i++) {
            dhf_synth_job *j = &jobs[cats[c].first_job + i];
            char name[128];
            image_name(name, sizeof name, names[c], i);
            j->category = names[c];
            j->style = -1;
            j->seed = dhf_synth_item_seed(o->seed, "spair", names[c], i);
            if ((size_t)snprintf(j->jpg_path, sizeof j->jpg_path, "%s/JPEGImages/%s/%s.jpg", root, names[c], name) >=
                sizeof j->jpg_path) {
                dhf_err_set("output path too long under %s", root);
                goto done;
            }
        }
    if (dhf_synth_render_jobs(jobs, n_cats * n_img, o, "synth SPair-71k images") != 0)
        goto done;
    for (int c = 0; c < n_cats; c++) {
        for (int i = 0; i < n_img; i++)
            if (write_image_annotation(root, &cats[c], i, &jobs[cats[c].first_job + i].inst) != 0)
                goto done;
        if (split_category(&cats[c], n_img, o->seed, &jobs[cats[c].first_job]) != 0)
            goto done;
    }

    /* pairs: ids run over trn, then val, then test; categories alphabetical */
    int pair_id = 1, pair_counts[3] = {0, 0, 0};
    for (int s = 0; s < 3; s++) {
        for (int c = 0; c < n_cats; c++) {
            const cat_state *cs = &cats[c];
            int m = cs->split_count[s];
            free(cand);
            cand = malloc(sizeof(int) * 2 * (size_t)(m * m + 1));
            if (!cand) {
                dhf_err_set("out of memory pairing '%s'", cs->category);
                goto done;
            }
            int n_cand = 0;
            for (int a = 0; a < m; a++)
                for (int b = 0; b < m; b++) {
                    int ia = cs->split_members[s][a], ib = cs->split_members[s][b];
                    if (ia == ib || common_visible(&jobs[cs->first_job + ia].inst, &jobs[cs->first_job + ib].inst) < 1)
                        continue;
                    cand[2 * n_cand] = ia;
                    cand[2 * n_cand + 1] = ib;
                    n_cand++;
                }
            /* draw K of the candidates (partial Fisher-Yates), then list them in (src, trg) order */
            dhf_rng r;
            char ns[32];
            snprintf(ns, sizeof ns, "spair-pairs-%s", SPLITS[s]);
            dhf_rng_seed(&r, dhf_synth_item_seed(o->seed, ns, cs->category, 0));
            int k = n_cand < o->pairs_per_category ? n_cand : o->pairs_per_category;
            for (int i = 0; i < k; i++) {
                int j = i + dhf_rng_below(&r, n_cand - i);
                int t0 = cand[2 * i], t1 = cand[2 * i + 1];
                cand[2 * i] = cand[2 * j];
                cand[2 * i + 1] = cand[2 * j + 1];
                cand[2 * j] = t0;
                cand[2 * j + 1] = t1;
            }
            for (int i = 1; i < k; i++) { /* insertion sort of the chosen k by (src, trg) */
                int x0 = cand[2 * i], x1 = cand[2 * i + 1], q = i - 1;
                while (q >= 0 && (cand[2 * q] > x0 || (cand[2 * q] == x0 && cand[2 * q + 1] > x1))) {
                    cand[2 * q + 2] = cand[2 * q];
                    cand[2 * q + 3] = cand[2 * q + 1];
                    q--;
                }
                cand[2 * q + 2] = x0;
                cand[2 * q + 3] = x1;
            }
            for (int i = 0; i < k; i++) {
                int a = cand[2 * i], b = cand[2 * i + 1];
                char an[128], bn[128], stem[512];
                image_name(an, sizeof an, cs->category, a);
                image_name(bn, sizeof bn, cs->category, b);
                snprintf(stem, sizeof stem, "%06d-%s-%s:%s", pair_id, an, bn, cs->category);
                if (write_pair(root, SPLITS[s], pair_id, stem, cs, a, b, &jobs[cs->first_job + a].inst,
                               &jobs[cs->first_job + b].inst) != 0)
                    goto done;
                dhf_synth_text_printf(&layout[s], "%s\n", stem);
                pair_id++;
                pair_counts[s]++;
            }
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/Layout/large/%s.txt", root, SPLITS[s]);
        if (layout[s].oom) {
            dhf_err_set("out of memory writing %s", path);
            goto done;
        }
        if (dhf_synth_write_text(path, layout[s].data ? layout[s].data : "", layout[s].len) != 0)
            goto done;
    }
    if (write_manifest(root, o, cats, n_cats, pair_counts) != 0)
        goto done;
    if (summary) {
        summary->spair_images = n_cats * n_img;
        for (int s = 0; s < 3; s++)
            summary->spair_pairs[s] = pair_counts[s];
    }
    rc = 0;
done:
    if (rc != 0)
        dhf_err_wrap("synth SPair-71k into %s", root);
    free(jobs);
    free(cand);
    for (int s = 0; s < 3; s++)
        dhf_synth_text_free(&layout[s]);
    for (int c = 0; c < n_cats; c++)
        for (int s = 0; s < 3; s++)
            free(cats[c].split_members[s]);
    return rc;
}
