/* synth_common.c — what the SPair-71k and CUB writers of `dhf synth` share
 * (synth_common.h): per-picture seeds, the parallel picture renderer, atomic JSON and
 * text output and the provenance manifest. The writers call these; synth.c calls the
 * writers, so the dependencies run one way: synth.c -> synth_{spair,cub}.c -> here. */
#include "synth/synth_common.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "core/progress.h"
#include "synth/synth_rng.h"

#ifndef DHF_VERSION
#define DHF_VERSION "unknown"
#endif

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

