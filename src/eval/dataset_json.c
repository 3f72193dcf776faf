/* dataset_json.c — strict, message-rich field access for annotation JSON
 * (SPair pair files, the paper's pair lists). */
#include "eval/dataset_json.h"
#include "core/error.h"
#include "core/fsutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *dhf_dj_type_name(const cJSON *item)
{
    if (!item)
        return "nothing";
    if (cJSON_IsNull(item))
        return "null";
    if (cJSON_IsBool(item))
        return "a boolean";
    if (cJSON_IsNumber(item))
        return "a number";
    if (cJSON_IsString(item))
        return "a string";
    if (cJSON_IsArray(item))
        return "an array";
    if (cJSON_IsObject(item))
        return "an object";
    return "an invalid value";
}

int dhf_dj_parse_file(const char *path, cJSON **out)
{
    char *text;
    size_t len;
    if (dhf_read_file(path, &text, &len) != 0)
        return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        int line = 1;
        const char *stop = (end && end >= text && end <= text + len) ? end : text + len;
        for (const char *c = text; c < stop; c++)
            line += *c == '\n';
        free(text);
        return dhf_err_set("%s: invalid JSON near line %d", path, line);
    }
    free(text);
    *out = root;
    return 0;
}

static const cJSON *field_of(const cJSON *obj, const char *where, const char *field)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!it)
        dhf_err_set("%s: missing required field '%s'", where, field);
    return it;
}

static int wrong_type(const char *where, const char *field, const char *expected,
                      const cJSON *got)
{
    return dhf_err_set("%s: field '%s': expected %s, got %s", where, field, expected,
                       dhf_dj_type_name(got));
}

/* JSON numbers used as integers must be integral and fit an int. */
static int as_int(const cJSON *it, int *out)
{
    if (!cJSON_IsNumber(it))
        return -1;
    double v = it->valuedouble;
    if (!isfinite(v) || v != floor(v) || v < -2147483648.0 || v > 2147483647.0)
        return -1;
    *out = (int)v;
    return 0;
}

static int as_finite(const cJSON *it, double *out)
{
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return -1;
    *out = it->valuedouble;
    return 0;
}

int dhf_dj_string(const cJSON *obj, const char *where, const char *field, const char **out)
{
    const cJSON *it = field_of(obj, where, field);
    if (!it)
        return -1;
    if (!cJSON_IsString(it) || !it->valuestring)
        return wrong_type(where, field, "a string", it);
    *out = it->valuestring;
    return 0;
}

int dhf_dj_int(const cJSON *obj, const char *where, const char *field, int *out)
{
    const cJSON *it = field_of(obj, where, field);
    if (!it)
        return -1;
    if (as_int(it, out) != 0)
        return cJSON_IsNumber(it)
                   ? dhf_err_set("%s: field '%s': expected an integer, got %g", where, field,
                                 it->valuedouble)
                   : wrong_type(where, field, "an integer", it);
    return 0;
}

int dhf_dj_box(const cJSON *obj, const char *where, const char *field, double out[4])
{
    const cJSON *it = field_of(obj, where, field);
    if (!it)
        return -1;
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 4)
        return cJSON_IsArray(it)
                   ? dhf_err_set("%s: field '%s': expected 4 numbers [x1, y1, x2, y2], got %d "
                                 "elements",
                                 where, field, cJSON_GetArraySize(it))
                   : wrong_type(where, field, "an array [x1, y1, x2, y2]", it);
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetArrayItem(it, i);
        if (as_finite(v, &out[i]) != 0)
            return dhf_err_set("%s: field '%s': element %d: expected a number, got %s", where,
                               field, i, dhf_dj_type_name(v));
    }
    if (out[0] > out[2] || out[1] > out[3])
        return dhf_err_set("%s: field '%s': expected x1 <= x2 and y1 <= y2, got [%g, %g, %g, %g]",
                           where, field, out[0], out[1], out[2], out[3]);
    return 0;
}

int dhf_dj_imsize(const cJSON *obj, const char *where, const char *field, int out[2])
{
    const cJSON *it = field_of(obj, where, field);
    if (!it)
        return -1;
    int n = cJSON_IsArray(it) ? cJSON_GetArraySize(it) : -1;
    if (n != 2 && n != 3)
        return n < 0 ? wrong_type(where, field, "an array [W, H, C]", it)
                     : dhf_err_set("%s: field '%s': expected [W, H] or [W, H, C], got %d "
                                   "elements",
                                   where, field, n);
    for (int i = 0; i < n; i++) {
        int v;
        const cJSON *e = cJSON_GetArrayItem(it, i);
        if (as_int(e, &v) != 0 || v <= 0)
            return dhf_err_set("%s: field '%s': element %d: expected a positive integer, got %s",
                               where, field, i, dhf_dj_type_name(e));
        if (i < 2)
            out[i] = v;
    }
    return 0;
}

int dhf_dj_points(const cJSON *obj, const char *where, const char *field, double **xy, int *n)
{
    *xy = NULL;
    *n = 0;
    const cJSON *it = field_of(obj, where, field);
    if (!it)
        return -1;
    if (!cJSON_IsArray(it))
        return wrong_type(where, field, "an array of [x, y]", it);
    int count = cJSON_GetArraySize(it);
    double *pts = count ? malloc(sizeof(double) * 2 * (size_t)count) : NULL;
    if (count && !pts)
        return dhf_err_set("%s: out of memory reading '%s'", where, field);
    int i = 0;
    for (const cJSON *p = it->child; p; p = p->next, i++) {
        if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) != 2 ||
            as_finite(cJSON_GetArrayItem(p, 0), &pts[2 * i]) != 0 ||
            as_finite(cJSON_GetArrayItem(p, 1), &pts[2 * i + 1]) != 0) {
            free(pts);
            return dhf_err_set("%s: field '%s': element %d: expected [x, y] with two numbers, "
                               "got %s",
                               where, field, i, dhf_dj_type_name(p));
        }
    }
    *xy = pts;
    *n = count;
    return 0;
}

int dhf_dj_int_list(const cJSON *obj, const char *where, const char *field, int **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    const cJSON *it = field_of(obj, where, field);
    if (!it)
        return -1;
    if (!cJSON_IsArray(it))
        return wrong_type(where, field, "an array of integers", it);
    int count = cJSON_GetArraySize(it);
    int *out = count ? malloc(sizeof(int) * (size_t)count) : NULL;
    if (count && !out)
        return dhf_err_set("%s: out of memory reading '%s'", where, field);
    int i = 0;
    for (const cJSON *e = it->child; e; e = e->next, i++) {
        int ok = as_int(e, &out[i]) == 0;
        if (!ok && cJSON_IsString(e) && e->valuestring && e->valuestring[0]) {
            char *end;
            long v = strtol(e->valuestring, &end, 10);
            ok = *end == '\0' && v >= -2147483647L && v <= 2147483647L;
            out[i] = (int)v;
        }
        if (!ok) {
            free(out);
            return dhf_err_set("%s: field '%s': element %d: expected an integer (number or "
                               "numeric string), got %s",
                               where, field, i, dhf_dj_type_name(e));
        }
    }
    *ids = out;
    *n = count;
    return 0;
}

int dhf_dj_opt_int(const cJSON *obj, const char *where, const char *field, int *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!it || cJSON_IsNull(it))
        return 0;
    int v;
    if (cJSON_IsBool(it)) {
        *out = cJSON_IsTrue(it) ? 1 : 0;
        return 0;
    }
    if (as_int(it, &v) != 0)
        return wrong_type(where, field, "an integer", it);
    *out = v;
    return 0;
}

int dhf_dj_opt_string(const cJSON *obj, const char *where, const char *field, char *out,
                      size_t cap)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!it || cJSON_IsNull(it))
        return 0;
    if (!cJSON_IsString(it) || !it->valuestring)
        return wrong_type(where, field, "a string", it);
    if (strlen(it->valuestring) >= cap)
        return dhf_err_set("%s: field '%s': value longer than %zu characters", where, field,
                           cap - 1);
    strcpy(out, it->valuestring);
    return 0;
}
