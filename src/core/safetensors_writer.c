/* safetensors_writer.c — the safetensors writer: collects tensors (copied or
 * borrowed) and "__metadata__", then writes one file atomically with tensors
 * sorted by name, packed back to back, and the header space-padded to 8 bytes. */
#include "core/safetensors.h"
#include "core/str.h"
#include "core/error.h"
#include "core/fsutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    dhf_st_dtype dtype;
    int ndim;
    int64_t shape[DHF_ST_MAX_DIMS];
    uint64_t nbytes;
    const void *data;
    void *owned;        /* the copy behind `data` when added by dhf_st_writer_add */
} writer_entry;

struct dhf_st_writer {
    writer_entry *entries;
    int count, cap;
    struct meta_kv { char *key, *value; } *meta;
    int meta_count, meta_cap;
};

int dhf_st_writer_new(dhf_st_writer **w)
{
    if (!w)
        return dhf_err_set("safetensors writer: NULL output");
    *w = calloc(1, sizeof **w);
    if (!*w)
        return dhf_err_set("safetensors writer: out of memory");
    return 0;
}

void dhf_st_writer_free(dhf_st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->count; i++) {
        free(w->entries[i].name);
        free(w->entries[i].owned);
    }
    free(w->entries);
    for (int i = 0; i < w->meta_count; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->meta);
    free(w);
}

int dhf_st_writer_count(const dhf_st_writer *w) { return w ? w->count : 0; }

typedef enum { ADD_COPY, ADD_BORROW, ADD_ADOPT } add_mode;

static int writer_add(dhf_st_writer *w, const char *name, dhf_st_dtype dt,
                      const int64_t *shape, int ndim, const void *data, add_mode mode)
{
    if (!w || !name)
        return dhf_err_set("safetensors writer: NULL writer or tensor name");
    if (strcmp(name, "__metadata__") == 0)
        return dhf_err_set("safetensors writer: tensor '%s': name is reserved", name);
    size_t esize = dhf_st_dtype_size(dt);
    if (esize == 0)
        return dhf_err_set("safetensors writer: tensor '%s': invalid dtype (expected "
                           "0..%d, got %d)", name, DHF_ST_NUM_DTYPES - 1, (int)dt);
    if (ndim < 0 || ndim > DHF_ST_MAX_DIMS || (ndim > 0 && !shape))
        return dhf_err_set("safetensors writer: tensor '%s': bad rank (expected 0..%d "
                           "with a shape, got %d)", name, DHF_ST_MAX_DIMS, ndim);
    /* Byte size with overflow checks; the header stores integers as doubles, so
     * everything must stay below 2^53 to be written exactly. */
    const uint64_t exact_limit = (uint64_t)1 << 53;
    uint64_t nbytes = esize;
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (uint64_t)shape[i] >= exact_limit)
            return dhf_err_set("safetensors writer: tensor '%s': shape[%d] out of range "
                               "(expected 0 <= d < 2^53, got %" PRId64 ")", name, i,
                               shape[i]);
        if (shape[i] == 0)
            empty = true;
        else if (nbytes > exact_limit / (uint64_t)shape[i])
            return dhf_err_set("safetensors writer: tensor '%s': too large (byte size "
                               "over 2^53)", name);
        else
            nbytes *= (uint64_t)shape[i];
    }
    if (empty)
        nbytes = 0;
    if (nbytes > SIZE_MAX)
        return dhf_err_set("safetensors writer: tensor '%s': too large for memory", name);
    if (nbytes && !data)
        return dhf_err_set("safetensors writer: tensor '%s': NULL data for %" PRIu64
                           " bytes", name, nbytes);
    for (int i = 0; i < w->count; i++)
        if (strcmp(w->entries[i].name, name) == 0)
            return dhf_err_set("safetensors writer: tensor '%s': added twice", name);
    if (w->count == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        writer_entry *e = realloc(w->entries, (size_t)cap * sizeof *e);
        if (!e)
            return dhf_err_set("safetensors writer: out of memory");
        w->entries = e;
        w->cap = cap;
    }
    writer_entry *e = &w->entries[w->count];
    memset(e, 0, sizeof *e);
    e->name = dhf_strdup(name);
    if (!e->name)
        return dhf_err_set("safetensors writer: out of memory");
    if (mode == ADD_ADOPT) {
        e->owned = (void *)data;
    } else if (mode == ADD_COPY && nbytes) {
        e->owned = malloc((size_t)nbytes);
        if (!e->owned) {
            free(e->name);
            return dhf_err_set("safetensors writer: tensor '%s': out of memory copying %"
                               PRIu64 " bytes", name, nbytes);
        }
        memcpy(e->owned, data, (size_t)nbytes);
        data = e->owned;
    }
    e->dtype = dt;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        e->shape[i] = shape[i];
    e->nbytes = nbytes;
    e->data = nbytes ? data : NULL;
    w->count++;
    return 0;
}

int dhf_st_writer_add(dhf_st_writer *w, const char *name, dhf_st_dtype dt,
                      const int64_t *shape, int ndim, const void *data)
{
    return writer_add(w, name, dt, shape, ndim, data, ADD_COPY);
}

int dhf_st_writer_add_borrowed(dhf_st_writer *w, const char *name, dhf_st_dtype dt,
                               const int64_t *shape, int ndim, const void *data)
{
    return writer_add(w, name, dt, shape, ndim, data, ADD_BORROW);
}

int dhf_st_writer_add_owned(dhf_st_writer *w, const char *name, dhf_st_dtype dt,
                            const int64_t *shape, int ndim, void *data)
{
    if (writer_add(w, name, dt, shape, ndim, data, ADD_ADOPT) != 0) {
        free(data);
        return -1;
    }
    return 0;
}

int dhf_st_writer_set_metadata(dhf_st_writer *w, const char *key, const char *value)
{
    if (!w || !key || !value)
        return dhf_err_set("safetensors writer: NULL writer, metadata key or value");
    for (int i = 0; i < w->meta_count; i++) {
        if (strcmp(w->meta[i].key, key) == 0) {
            char *v = dhf_strdup(value);
            if (!v)
                return dhf_err_set("safetensors writer: out of memory");
            free(w->meta[i].value);
            w->meta[i].value = v;
            return 0;
        }
    }
    if (w->meta_count == w->meta_cap) {
        int cap = w->meta_cap ? 2 * w->meta_cap : 8;
        struct meta_kv *m = realloc(w->meta, (size_t)cap * sizeof *m);
        if (!m)
            return dhf_err_set("safetensors writer: out of memory");
        w->meta = m;
        w->meta_cap = cap;
    }
    char *k = dhf_strdup(key), *v = dhf_strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return dhf_err_set("safetensors writer: out of memory");
    }
    w->meta[w->meta_count].key = k;
    w->meta[w->meta_count].value = v;
    w->meta_count++;
    return 0;
}

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp(((const writer_entry *)a)->name, ((const writer_entry *)b)->name);
}

static int cmp_meta_key(const void *a, const void *b)
{
    return strcmp(((const struct meta_kv *)a)->key, ((const struct meta_kv *)b)->key);
}

/* "[a, b, ...]" of exact integers, kept raw so cJSON does not go through doubles. */
static void int_list(char *buf, size_t n, const uint64_t *v, int count)
{
    size_t w = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < count && w < n; i++)
        w += (size_t)snprintf(buf + w, n - w, "%s%" PRIu64, i ? "," : "", v[i]);
    if (w < n)
        snprintf(buf + w, n - w, "]");
}

/* The header JSON (unpadded), malloc'd; tensors and metadata must already be
 * sorted (a byte-stable header for the same content). */
static char *build_header(const dhf_st_writer *w)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    if (w->meta_count) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; meta && i < w->meta_count; i++)
            if (!cJSON_AddStringToObject(meta, w->meta[i].key, w->meta[i].value))
                meta = NULL;
        if (!meta) {
            cJSON_Delete(root);
            return NULL;
        }
    }
    uint64_t offset = 0;
    for (int i = 0; i < w->count; i++) {
        const writer_entry *e = &w->entries[i];
        char shape_txt[DHF_ST_MAX_DIMS * 24 + 4], offs_txt[64];
        uint64_t dims[DHF_ST_MAX_DIMS], offs[2] = {offset, offset + e->nbytes};
        for (int d = 0; d < e->ndim; d++)
            dims[d] = (uint64_t)e->shape[d];
        int_list(shape_txt, sizeof shape_txt, dims, e->ndim);
        int_list(offs_txt, sizeof offs_txt, offs, 2);
        cJSON *t = cJSON_AddObjectToObject(root, e->name);
        if (!t || !cJSON_AddStringToObject(t, "dtype", dhf_st_dtype_name(e->dtype)) ||
            !cJSON_AddRawToObject(t, "shape", shape_txt) ||
            !cJSON_AddRawToObject(t, "data_offsets", offs_txt)) {
            cJSON_Delete(root);
            return NULL;
        }
        offset += e->nbytes;
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

int dhf_st_writer_save(dhf_st_writer *w, const char *path)
{
    if (!w || !path)
        return dhf_err_set("safetensors writer: NULL writer or path");
    if (w->count > 1)
        qsort(w->entries, (size_t)w->count, sizeof *w->entries, cmp_entry_name);
    if (w->meta_count > 1)
        qsort(w->meta, (size_t)w->meta_count, sizeof *w->meta, cmp_meta_key);
    /* Total data size must stay exactly representable in the header (< 2^53). */
    uint64_t total = 0;
    for (int i = 0; i < w->count; i++) {
        total += w->entries[i].nbytes;
        if (total >= ((uint64_t)1 << 53))
            return dhf_err_set("%s: tensor '%s': data region over 2^53 bytes", path,
                               w->entries[i].name);
    }
    char *text = build_header(w);
    if (!text)
        return dhf_err_set("%s: out of memory building the safetensors header", path);
    size_t hlen = strlen(text);
    size_t padded = (hlen + 7) & ~(size_t)7;
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)padded >> (8 * i));

    dhf_atomic_file af;
    if (dhf_atomic_open(&af, path) != 0) {
        free(text);
        return -1;
    }
    bool ok = fwrite(lenbuf, 1, 8, af.fp) == 8 && fwrite(text, 1, hlen, af.fp) == hlen;
    for (size_t i = hlen; ok && i < padded; i++)
        ok = fputc(' ', af.fp) != EOF;
    for (int i = 0; ok && i < w->count; i++) {
        const writer_entry *e = &w->entries[i];
        if (e->nbytes)
            ok = fwrite(e->data, 1, (size_t)e->nbytes, af.fp) == (size_t)e->nbytes;
    }
    free(text);
    if (!ok) {
        int err = errno;
        dhf_atomic_abort(&af);
        return dhf_err_set("%s: write failed: %s", path, strerror(err));
    }
    return dhf_atomic_commit(&af);
}
