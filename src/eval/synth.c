/* synth.c — `dhf synth` orchestration: options, the output folders (never
 * clobbering data it did not write), the parallel picture renderer shared by
 * the SPair-71k and CUB writers, JSON/text output and the provenance manifest. */
#include "eval/synth.h"
#include "eval/synth_internal.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "core/progress.h"
#include "eval/synth_rng.h"

#ifndef DHF_VERSION
#define DHF_VERSION "unknown"
#endif

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

uint64_t dhf_synth_item_seed(uint64_t seed, const char *ns, const char *name, int index)
{
    uint64_t h = dhf_hash_combine(dhf_mix64(seed), dhf_hash_str(ns));
    h = dhf_hash_combine(h, dhf_hash_str(name));
    return dhf_hash_combine(h, (uint64_t)index);
}

/* ---- output ------------------------------------------------------------------ */

int dhf_synth_write_text(const char *path, const char *text, size_t len)
{
    return dhf_write_file_atomic(path, text, len);
}

int dhf_synth_write_json(const char *path, const cJSON *j)
{
    char *s = cJSON_Print(j);
    if (!s)
        return dhf_err_set("%s: out of memory formatting JSON", path);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return dhf_err_set("%s: out of memory formatting JSON", path);
    }
    t[n] = '\n';
    t[n + 1] = '\0';
    int rc = dhf_write_file_atomic(path, t, n + 1);
    free(t);
    return rc;
}

void dhf_synth_text_printf(dhf_synth_text *t, const char *fmt, ...)
{
    if (t->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->data ? t->data + t->len : NULL, t->data ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = 1;
            return;
        }
        if (t->data && (size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *d = realloc(t->data, cap);
        if (!d) {
            t->oom = 1;
            return;
        }
        t->data = d;
        t->cap = cap;
    }
}

void dhf_synth_text_free(dhf_synth_text *t)
{
    free(t->data);
    memset(t, 0, sizeof *t);
}

cJSON *dhf_synth_manifest(const dhf_synth_options *o, const char *format)
{
    cJSON *m = cJSON_CreateObject();
    if (!m)
        return NULL;
    cJSON_AddStringToObject(m, "generator", "dhf synth");
    cJSON_AddStringToObject(m, "dhf_version", DHF_VERSION);
    cJSON_AddStringToObject(m, "format", format);
    /* JSON numbers are doubles: seeds past 2^53 are kept exact as text */
    if (o->seed < (1ULL << 53))
        cJSON_AddNumberToObject(m, "seed", (double)o->seed);
    else {
        char s[32];
        snprintf(s, sizeof s, "%llu", (unsigned long long)o->seed);
        cJSON_AddStringToObject(m, "seed", s);
    }
    cJSON *opt = cJSON_AddObjectToObject(m, "options");
    if (opt) {
        cJSON_AddNumberToObject(opt, "images_per_category", o->images_per_category);
        cJSON_AddNumberToObject(opt, "pairs_per_category", o->pairs_per_category);
        cJSON_AddNumberToObject(opt, "cub_classes", o->cub_classes);
        cJSON_AddNumberToObject(opt, "cub_images_per_class", o->cub_images_per_class);
        cJSON_AddNumberToObject(opt, "min_size", o->scene.min_size);
        cJSON_AddNumberToObject(opt, "max_size", o->scene.max_size);
        cJSON_AddNumberToObject(opt, "p_truncate", o->scene.p_truncate);
        cJSON_AddNumberToObject(opt, "p_occlude", o->scene.p_occlude);
        cJSON_AddNumberToObject(opt, "supersampling", o->scene.samples);
        cJSON_AddNumberToObject(opt, "jpeg_quality", o->jpeg_quality);
    }
    cJSON *c = cJSON_AddObjectToObject(m, "conventions");
    if (c) {
        cJSON_AddStringToObject(c, "coordinates",
                                "0-based pixels, pixel centres at integers; keypoints are exact projected template "
                                "points rounded to the nearest pixel");
        cJSON_AddStringToObject(c, "bndbox", "object silhouette [x1, y1, x2, y2], inclusive pixels");
        cJSON_AddStringToObject(c, "keypoint_ids",
                                "semantic, never swapped: a mirrored view is the template turned round, far-side "
                                "parts are simply not visible");
        cJSON_AddStringToObject(c, "visibility",
                                "a keypoint is annotated when inside the image, on a part facing the viewer and not "
                                "covered by another part or an occluder");
        cJSON_AddStringToObject(c, "pose",
                                "Frontal/Left/Rear/Right: facing the viewer / image-left / away / image-right "
                                "(90-degree sectors); Unspecified for rotationally symmetric objects");
        cJSON_AddStringToObject(c, "azimuth_id", "0..7, 45-degree bins, 0 = facing the viewer, 2 = facing right");
        cJSON_AddStringToObject(c, "viewpoint_variation",
                                "d = circular azimuth_id difference: 0 if d = 0, 1 if d <= 2, else 2");
        cJSON_AddStringToObject(c, "scale_variation",
                                "r = ratio (>= 1) of sqrt(bndbox areas): 0 if r < 1.5, 1 if r < 2, else 2");
        cJSON_AddStringToObject(c, "truncation", "0 none, 1 source truncated, 2 target, 3 both");
        cJSON_AddStringToObject(c, "occlusion", "0 none, 1 source occluded, 2 target, 3 both");
        cJSON_AddStringToObject(c, "mirror", "1 when one object faces image-left and the other image-right");
        cJSON_AddStringToObject(c, "splits", "image-disjoint per category");
    }
    return m;
}

/* ---- parallel rendering ------------------------------------------------------- */

typedef struct {
    dhf_synth_job *jobs;
    int n, next;
    const dhf_synth_options *o;
    pthread_mutex_t lock;
    dhf_progress progress;
} job_queue;

static void run_one(dhf_synth_job *j, const dhf_synth_options *o)
{
    dhf_image img = {0, 0, NULL};
    dhf_err_clear();
    if (dhf_synth_render_instance(j->category, j->style, j->seed, &o->scene, &img, &j->inst) != 0 ||
        dhf_image_save_jpeg(j->jpg_path, &img, o->jpeg_quality) != 0) {
        j->failed = 1;
        snprintf(j->err, sizeof j->err, "%s", dhf_err_msg());
    }
    dhf_image_free(&img);
}

static void *worker(void *arg)
{
    job_queue *q = arg;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        int i = q->next < q->n ? q->next++ : -1;
        pthread_mutex_unlock(&q->lock);
        if (i < 0)
            break;
        run_one(&q->jobs[i], q->o);
        if (!q->o->quiet) {
            pthread_mutex_lock(&q->lock);
            dhf_progress_step(&q->progress, 1, NULL);
            pthread_mutex_unlock(&q->lock);
        }
    }
    return NULL;
}

int dhf_synth_render_jobs(dhf_synth_job *jobs, int n, const dhf_synth_options *o, const char *label)
{
    job_queue q;
    memset(&q, 0, sizeof q);
    q.jobs = jobs;
    q.n = n;
    q.o = o;
    if (pthread_mutex_init(&q.lock, NULL) != 0)
        return dhf_err_set("synth: cannot create a mutex");
    if (!o->quiet) {
        dhf_progress_begin(&q.progress, label, n);
        dhf_progress_set_unit(&q.progress, "img");
    }
    int n_threads = o->threads < n ? o->threads : n;
    pthread_t tid[64];
    if (n_threads > 64)
        n_threads = 64;
    int started = 0;
    for (int t = 1; t < n_threads; t++) {
        if (pthread_create(&tid[started], NULL, worker, &q) != 0)
            break; /* fewer helpers is fine: the calling thread works too */
        started++;
    }
    worker(&q);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    if (!o->quiet)
        dhf_progress_end(&q.progress);
    pthread_mutex_destroy(&q.lock);
    for (int i = 0; i < n; i++)
        if (jobs[i].failed)
            return dhf_err_set("%s: %s", jobs[i].jpg_path, jobs[i].err);
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
