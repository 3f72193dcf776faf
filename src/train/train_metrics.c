/* train_metrics.c — metrics.jsonl records and its truncation on resume (see
 * train_metrics.h). */
#include "train/train_metrics.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "eval/pck.h"

int dhf_train_metrics_open(dhf_jsonl *log, const char *path, int64_t keep_step, long *kept)
{
    long n_kept = 0;
    if (kept)
        *kept = 0;
    if (dhf_path_exists(path)) {
        char *text = NULL;
        size_t len = 0;
        if (dhf_read_file(path, &text, &len) != 0)
            return -1;
        char *outbuf = malloc(len + 1);
        if (!outbuf) {
            free(text);
            return dhf_err_set("%s: out of memory", path);
        }
        size_t w = 0;
        char *line = text;
        while (line < text + len) {
            char *nl = memchr(line, '\n', (size_t)(text + len - line));
            if (!nl)
                break;   /* no newline: a line cut short by a kill, never complete */
            *nl = '\0';
            cJSON *o = cJSON_Parse(line);
            const cJSON *st = o ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
            if (cJSON_IsNumber(st) && st->valuedouble <= (double)keep_step) {
                size_t n = (size_t)(nl - line);
                memcpy(outbuf + w, line, n);
                outbuf[w + n] = '\n';
                w += n + 1;
                n_kept++;
            }
            cJSON_Delete(o);
            line = nl + 1;
        }
        int rc = dhf_write_file_atomic(path, outbuf, w);
        free(outbuf);
        free(text);
        if (rc != 0)
            return -1;
    }
    if (kept)
        *kept = n_kept;
    return dhf_jsonl_open(log, path, 1);
}

static int write_and_free(dhf_jsonl *log, cJSON *o, bool ok)
{
    if (!ok || !o) {
        cJSON_Delete(o);
        return dhf_err_set("%s: out of memory building a record", log->path);
    }
    int rc = dhf_jsonl_write(log, o);
    cJSON_Delete(o);
    return rc;
}

int dhf_train_metrics_write_train(dhf_jsonl *log, const dhf_train_record *r)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "type", "train") &&
              cJSON_AddNumberToObject(o, "step", (double)r->step) &&
              cJSON_AddNumberToObject(o, "epoch", r->epoch) &&
              dhf_json_add_exact(o, "loss", r->loss) &&
              dhf_json_add_exact(o, "loss_src", r->loss_src) &&
              dhf_json_add_exact(o, "loss_trg", r->loss_trg) &&
              dhf_json_add_exact(o, "lr", r->lr) &&
              cJSON_AddNumberToObject(o, "pairs", r->pairs) &&
              cJSON_AddNumberToObject(o, "keypoints", r->keypoints) &&
              cJSON_AddNumberToObject(o, "steps_per_s", r->steps_per_s) &&
              cJSON_AddNumberToObject(o, "elapsed_s", r->elapsed_s);
    return write_and_free(log, o, ok);
}

int dhf_train_metrics_write_val(dhf_jsonl *log, const dhf_val_record *r)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "type", "val") &&
              cJSON_AddNumberToObject(o, "step", (double)r->step) &&
              dhf_json_add_exact(o, "pck_img", r->val->pck_img) &&
              dhf_json_add_exact(o, "pck_bbox", r->val->pck_bbox) &&
              dhf_json_add_exact(o, "alpha", r->alpha) &&
              cJSON_AddStringToObject(o, "metric", r->metric) &&
              cJSON_AddBoolToObject(o, "best", r->best) &&
              dhf_json_add_exact(o, "best_value", r->best_value) &&
              cJSON_AddNumberToObject(o, "best_step", (double)r->best_step) &&
              cJSON_AddNumberToObject(o, "n_pairs", (double)r->val->n_pairs) &&
              cJSON_AddNumberToObject(o, "n_keypoints", (double)r->val->n_keypoints) &&
              cJSON_AddNumberToObject(o, "seconds", r->val->seconds);
    return write_and_free(log, o, ok);
}
