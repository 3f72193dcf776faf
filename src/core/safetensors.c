/* safetensors.c — the safetensors reader: maps the file, validates the header
 * strictly (every malformed input is an error naming the file and the tensor), and
 * converts stored values to float32. Also the dtype table and half/bfloat16 bit
 * conversions shared with the writer (safetensors_writer.c). */
#include "core/safetensors.h"
#include "core/str.h"
#include "core/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct dhf_st_file {
    char *path;
    unsigned char *map;         /* whole file */
    size_t map_len;
    bool map_is_malloc;         /* dhf_st_open_memory: map is a malloc'd buffer */
    const unsigned char *data;  /* data region: map + 8 + header length */
    uint64_t data_len;
    dhf_st_info *tensors;       /* sorted by name; names owned */
    int count;
    struct meta_kv { char *key, *value; } *meta; /* sorted by key; owned */
    int meta_count;
};

/* ---- dtypes ---------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t size;
} dtype_table[DHF_ST_NUM_DTYPES] = {
    [DHF_ST_F32] = {"F32", 4}, [DHF_ST_F16] = {"F16", 2}, [DHF_ST_BF16] = {"BF16", 2},
    [DHF_ST_F64] = {"F64", 8}, [DHF_ST_I64] = {"I64", 8}, [DHF_ST_I32] = {"I32", 4},
    [DHF_ST_U8] = {"U8", 1},   [DHF_ST_BOOL] = {"BOOL", 1},
};

static bool dtype_valid(dhf_st_dtype dt) { return (unsigned)dt < DHF_ST_NUM_DTYPES; }

size_t dhf_st_dtype_size(dhf_st_dtype dt) { return dtype_valid(dt) ? dtype_table[dt].size : 0; }

const char *dhf_st_dtype_name(dhf_st_dtype dt)
{
    return dtype_valid(dt) ? dtype_table[dt].name : "?";
}

static bool dtype_lookup(const char *name, dhf_st_dtype *out)
{
    for (int i = 0; i < DHF_ST_NUM_DTYPES; i++) {
        if (strcmp(name, dtype_table[i].name) == 0) {
            *out = (dhf_st_dtype)i;
            return true;
        }
    }
    return false;
}

int dhf_st_dtype_parse(const char *name, dhf_st_dtype *out)
{
    if (name && dtype_lookup(name, out))
        return 0;
    return dhf_err_set("unknown safetensors dtype (expected one of F32 F16 BF16 F64 I64 "
                       "I32 U8 BOOL, got \"%s\")", name ? name : "(null)");
}

/* ---- half / bfloat16 --------------------------------------------------------- */

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float dhf_st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f)
        return bits_to_f32(sign | 0x7f800000u | (mant << 13));
    if (exp != 0)
        return bits_to_f32(sign | ((exp + 112u) << 23) | (mant << 13));
    if (mant == 0)
        return bits_to_f32(sign);
    /* Subnormal half (mant * 2^-24) is a normal float: shift the leading one up to
     * bit 10 and lower the exponent once per shift. */
    uint32_t e = 113;
    while (!(mant & 0x400u)) {
        mant <<= 1;
        e--;
    }
    return bits_to_f32(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

float dhf_st_bf16_to_f32(uint16_t b) { return bits_to_f32((uint32_t)b << 16); }

/* Keeps the low `shift` bits' rounding: nearest, ties to even. */
static uint32_t shift_round_even(uint32_t v, unsigned shift)
{
    uint32_t r = v >> shift;
    uint32_t rem = v & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u)))
        r++;
    return r;
}

uint16_t dhf_st_f32_to_f16(float f)
{
    uint32_t x = f32_to_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: keep it quiet and keep the top payload bits */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x1ffu));
    if (ax >= 0x477ff000u) /* >= 65520 rounds to infinity (65504 is the largest half) */
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) { /* normal half: rebias 127 -> 15, round 13 bits away */
        uint32_t v = ((ax >> 23) - 112u) << 10 | ((ax & 0x7fffffu) >> 13);
        uint32_t rem = ax & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (v & 1u)))
            v++;
        return (uint16_t)(sign | v);
    }
    /* Subnormal half: mantissa = round(|f| * 2^24) = round(m * 2^(e - 126)). */
    uint32_t e = ax >> 23;
    if (e < 102) /* |f| < 2^-25: rounds to zero */
        return sign;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    return (uint16_t)(sign | shift_round_even(m, 126u - e));
}

uint16_t dhf_st_f32_to_bf16(float f)
{
    uint32_t x = f32_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x0040u); /* quiet NaN */
    uint32_t r = x + 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(r >> 16);
}

/* ---- conversion to float32 ---------------------------------------------------- */

/* Little-endian loads through memcpy: tensors are packed, so data may be unaligned. */
static uint64_t load_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void dhf_st_convert_f32(dhf_st_dtype dt, const void *src, float *dst, size_t n)
{
    const unsigned char *p = src;
    switch (dt) {
    case DHF_ST_F32:
        for (size_t i = 0; i < n; i++)
            dst[i] = bits_to_f32((uint32_t)load_le(p + 4 * i, 4));
        break;
    case DHF_ST_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = dhf_st_f16_to_f32((uint16_t)load_le(p + 2 * i, 2));
        break;
    case DHF_ST_BF16:
        for (size_t i = 0; i < n; i++)
            dst[i] = dhf_st_bf16_to_f32((uint16_t)load_le(p + 2 * i, 2));
        break;
    case DHF_ST_F64:
        for (size_t i = 0; i < n; i++) {
            uint64_t u = load_le(p + 8 * i, 8);
            double d;
            memcpy(&d, &u, sizeof d);
            dst[i] = (float)d;
        }
        break;
    case DHF_ST_I64:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(int64_t)load_le(p + 8 * i, 8);
        break;
    case DHF_ST_I32:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(int32_t)(uint32_t)load_le(p + 4 * i, 4);
        break;
    case DHF_ST_U8:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)p[i];
        break;
    case DHF_ST_BOOL:
        for (size_t i = 0; i < n; i++)
            dst[i] = p[i] ? 1.0f : 0.0f;
        break;
    }
}

/* ---- accessors ------------------------------------------------------------------ */

const char *dhf_st_path(const dhf_st_file *f) { return f ? f->path : ""; }
int dhf_st_count(const dhf_st_file *f) { return f ? f->count : 0; }

const dhf_st_info *dhf_st_at(const dhf_st_file *f, int i)
{
    if (!f || i < 0 || i >= f->count)
        return NULL;
    return &f->tensors[i];
}

static int cmp_info_name(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const dhf_st_info *)elem)->name);
}

const dhf_st_info *dhf_st_find(const dhf_st_file *f, const char *name)
{
    if (!f || !name || f->count == 0)
        return NULL;
    return bsearch(name, f->tensors, (size_t)f->count, sizeof *f->tensors, cmp_info_name);
}

int dhf_st_index(const dhf_st_file *f, const char *name)
{
    const dhf_st_info *info = dhf_st_find(f, name);
    return info ? (int)(info - f->tensors) : -1;
}

int dhf_st_get(const dhf_st_file *f, const char *name, const dhf_st_info **out)
{
    if (!f || !name)
        return dhf_err_set("safetensors: NULL file or tensor name");
    const dhf_st_info *info = dhf_st_find(f, name);
    if (!info)
        return dhf_err_set("%s: tensor '%s': not found (file has %d tensors)", f->path,
                           name, f->count);
    *out = info;
    return 0;
}

int dhf_st_metadata_count(const dhf_st_file *f) { return f ? f->meta_count : 0; }

const char *dhf_st_metadata_key(const dhf_st_file *f, int i)
{
    return (f && i >= 0 && i < f->meta_count) ? f->meta[i].key : NULL;
}

const char *dhf_st_metadata_value(const dhf_st_file *f, int i)
{
    return (f && i >= 0 && i < f->meta_count) ? f->meta[i].value : NULL;
}

const char *dhf_st_metadata_get(const dhf_st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->meta_count; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}

int dhf_st_read_f32(const dhf_st_file *f, const char *name, float *dst, size_t count)
{
    const dhf_st_info *info;
    if (dhf_st_get(f, name, &info) != 0)
        return -1;
    if ((uint64_t)count != (uint64_t)info->numel)
        return dhf_err_set("%s: tensor '%s': destination size mismatch (expected %" PRId64
                           " elements, got %zu)", f->path, name, info->numel, count);
    if (count && !dst)
        return dhf_err_set("%s: tensor '%s': NULL destination", f->path, name);
    dhf_st_convert_f32(info->dtype, info->data, dst, count);
    return 0;
}

/* ---- open / validate ---------------------------------------------------------- */

void dhf_st_close(dhf_st_file *f)
{
    if (!f)
        return;
    if (f->map && f->map_is_malloc)
        free(f->map);
    else if (f->map)
        munmap(f->map, f->map_len);
    for (int i = 0; i < f->count; i++)
        free((char *)f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->meta_count; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    free(f->path);
    free(f);
}

static const char *json_kind(const cJSON *j)
{
    if (!j)
        return "nothing";
    if (cJSON_IsObject(j))
        return "an object";
    if (cJSON_IsArray(j))
        return "an array";
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsNumber(j))
        return "a number";
    if (cJSON_IsBool(j))
        return "a boolean";
    if (cJSON_IsNull(j))
        return "null";
    return "an invalid value";
}

/* A JSON number that is an exact non-negative integer below 2^63. Larger
 * integers lose precision in a double; 2^63 itself would not fit int64. */
static bool json_u63(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return false;
    double d = j->valuedouble;
    if (!(d >= 0.0 && d < 9223372036854775808.0))
        return false;
    uint64_t u = (uint64_t)d;
    if ((double)u != d)
        return false;
    *out = u;
    return true;
}

void dhf_format_shape(char *buf, size_t n, const int64_t *shape, int ndim)
{
    if (!n)
        return;
    buf[0] = '\0';
    size_t w = 0;
    int k = snprintf(buf, n, "[");
    w = k > 0 ? (size_t)k : 0;
    for (int i = 0; i < ndim && w < n; i++) {
        k = snprintf(buf + w, n - w, "%s%" PRId64, i ? ", " : "", shape[i]);
        if (k < 0)
            return;
        w += (size_t)k;
    }
    if (w < n)
        snprintf(buf + w, n - w, "]");
}

/* Fills `info` (but not its name) from one header entry; errors name the tensor. */
static int parse_entry(const char *path, const char *name, const cJSON *entry,
                       uint64_t data_len, dhf_st_info *info)
{
    if (!cJSON_IsObject(entry))
        return dhf_err_set("%s: tensor '%s': entry is not a JSON object (got %s)", path,
                           name, json_kind(entry));
    const cJSON *jdtype = NULL, *jshape = NULL, *joffs = NULL;
    for (const cJSON *c = entry->child; c; c = c->next) {
        const cJSON **slot = NULL;
        if (strcmp(c->string, "dtype") == 0)
            slot = &jdtype;
        else if (strcmp(c->string, "shape") == 0)
            slot = &jshape;
        else if (strcmp(c->string, "data_offsets") == 0)
            slot = &joffs;
        else
            return dhf_err_set("%s: tensor '%s': unknown field \"%s\" (expected dtype, "
                               "shape, data_offsets)", path, name, c->string);
        if (*slot)
            return dhf_err_set("%s: tensor '%s': field \"%s\" appears twice", path, name,
                               c->string);
        *slot = c;
    }
    if (!jdtype || !jshape || !joffs)
        return dhf_err_set("%s: tensor '%s': missing field \"%s\"", path, name,
                           !jdtype ? "dtype" : !jshape ? "shape" : "data_offsets");

    if (!cJSON_IsString(jdtype))
        return dhf_err_set("%s: tensor '%s': dtype is not a string (got %s)", path, name,
                           json_kind(jdtype));
    if (!dtype_lookup(jdtype->valuestring, &info->dtype))
        return dhf_err_set("%s: tensor '%s': unknown dtype (expected one of F32 F16 BF16 "
                           "F64 I64 I32 U8 BOOL, got \"%s\")", path, name,
                           jdtype->valuestring);

    if (!cJSON_IsArray(jshape))
        return dhf_err_set("%s: tensor '%s': shape is not an array (got %s)", path, name,
                           json_kind(jshape));
    int ndim = cJSON_GetArraySize(jshape);
    if (ndim > DHF_ST_MAX_DIMS)
        return dhf_err_set("%s: tensor '%s': too many dimensions (expected <= %d, got %d)",
                           path, name, DHF_ST_MAX_DIMS, ndim);
    info->ndim = ndim;
    uint64_t numel = 1;
    bool overflow = false;
    int d = 0;
    for (const cJSON *c = jshape->child; c; c = c->next, d++) {
        uint64_t dim;
        if (!json_u63(c, &dim)) {
            if (cJSON_IsNumber(c))
                return dhf_err_set("%s: tensor '%s': shape[%d] is not a non-negative "
                                   "integer below 2^63 (got %.17g)", path, name, d,
                                   c->valuedouble);
            return dhf_err_set("%s: tensor '%s': shape[%d] is not a non-negative integer "
                               "(got %s)", path, name, d, json_kind(c));
        }
        info->shape[d] = (int64_t)dim;
        if (dim != 0 && numel > UINT64_MAX / dim)
            overflow = true;
        else
            numel *= dim;
    }
    char shape_txt[256];
    dhf_format_shape(shape_txt, sizeof shape_txt, info->shape, ndim);
    /* A zero dimension makes the tensor empty even if other dimensions overflow. */
    for (int i = 0; i < ndim; i++)
        if (info->shape[i] == 0)
            overflow = false, numel = 0;
    size_t esize = dtype_table[info->dtype].size;
    if (overflow || numel > (uint64_t)INT64_MAX || numel > UINT64_MAX / esize)
        return dhf_err_set("%s: tensor '%s': shape %s has too many elements (element count "
                           "or byte size overflows 64 bits)", path, name, shape_txt);
    info->numel = (int64_t)numel;
    info->nbytes = numel * esize;

    uint64_t begin, end;
    if (!cJSON_IsArray(joffs) || cJSON_GetArraySize(joffs) != 2 ||
        !json_u63(joffs->child, &begin) || !json_u63(joffs->child->next, &end))
        return dhf_err_set("%s: tensor '%s': data_offsets must be [begin, end], two "
                           "non-negative integers below 2^63 (got %s)", path, name,
                           cJSON_IsArray(joffs) ? "another array" : json_kind(joffs));
    if (begin > end)
        return dhf_err_set("%s: tensor '%s': data_offsets begin after end (expected begin "
                           "<= end, got [%" PRIu64 ", %" PRIu64 "])", path, name, begin, end);
    if (end > data_len)
        return dhf_err_set("%s: tensor '%s': data_offsets out of range (expected end <= "
                           "data region size %" PRIu64 ", got [%" PRIu64 ", %" PRIu64 "])",
                           path, name, data_len, begin, end);
    if (end - begin != info->nbytes)
        return dhf_err_set("%s: tensor '%s': byte length does not match shape %s of %s "
                           "(expected %" PRIu64 " bytes, got %" PRIu64 ")", path, name,
                           shape_txt, dtype_table[info->dtype].name, info->nbytes,
                           end - begin);
    info->offset = begin;
    return 0;
}

static int cmp_info_by_name(const void *a, const void *b)
{
    return strcmp(((const dhf_st_info *)a)->name, ((const dhf_st_info *)b)->name);
}

static int cmp_info_ptr_by_offset(const void *a, const void *b)
{
    const dhf_st_info *x = *(const dhf_st_info *const *)a;
    const dhf_st_info *y = *(const dhf_st_info *const *)b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    uint64_t xe = x->offset + x->nbytes, ye = y->offset + y->nbytes;
    if (xe != ye)
        return xe < ye ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Tensors must tile the data region exactly: sorted by offset, each begins where
 * the previous one ended, and the last ends at the end of the file. */
static int check_layout(dhf_st_file *f)
{
    if (f->count == 0) {
        if (f->data_len != 0)
            return dhf_err_set("%s: header: %" PRIu64 " data bytes after the header but "
                               "no tensors (expected 0 bytes)", f->path, f->data_len);
        return 0;
    }
    const dhf_st_info **order = malloc((size_t)f->count * sizeof *order);
    if (!order)
        return dhf_err_set("%s: out of memory", f->path);
    for (int i = 0; i < f->count; i++)
        order[i] = &f->tensors[i];
    qsort(order, (size_t)f->count, sizeof *order, cmp_info_ptr_by_offset);
    uint64_t pos = 0;
    const char *prev = NULL;
    int rc = 0;
    for (int i = 0; i < f->count && rc == 0; i++) {
        const dhf_st_info *t = order[i];
        if (t->offset < pos)
            rc = dhf_err_set("%s: tensor '%s': data overlaps tensor '%s' (expected begin "
                             ">= %" PRIu64 ", got %" PRIu64 ")", f->path, t->name, prev,
                             pos, t->offset);
        else if (t->offset > pos)
            rc = dhf_err_set("%s: tensor '%s': gap in the data region before it (expected "
                             "begin %" PRIu64 ", got %" PRIu64 ")", f->path, t->name, pos,
                             t->offset);
        pos = t->offset + t->nbytes;
        prev = t->name;
    }
    if (rc == 0 && pos != f->data_len)
        rc = dhf_err_set("%s: header: tensors do not cover the data region (expected it to "
                         "end at byte %" PRIu64 ", got %" PRIu64 " data bytes)", f->path,
                         pos, f->data_len);
    free(order);
    return rc;
}

static int cmp_meta_key(const void *a, const void *b)
{
    return strcmp(((const struct meta_kv *)a)->key, ((const struct meta_kv *)b)->key);
}

static int parse_metadata(dhf_st_file *f, const cJSON *meta)
{
    if (!cJSON_IsObject(meta))
        return dhf_err_set("%s: header: __metadata__ is not a JSON object (got %s)", f->path,
                           json_kind(meta));
    int n = cJSON_GetArraySize(meta);
    f->meta = calloc((size_t)n + 1, sizeof *f->meta);
    if (!f->meta)
        return dhf_err_set("%s: out of memory", f->path);
    for (const cJSON *c = meta->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return dhf_err_set("%s: header: __metadata__ key '%s': value is not a string "
                               "(got %s)", f->path, c->string, json_kind(c));
        struct meta_kv *kv = &f->meta[f->meta_count++];
        kv->key = dhf_strdup(c->string);
        kv->value = dhf_strdup(c->valuestring);
        if (!kv->key || !kv->value)
            return dhf_err_set("%s: out of memory", f->path);
    }
    qsort(f->meta, (size_t)f->meta_count, sizeof *f->meta, cmp_meta_key);
    for (int i = 1; i < f->meta_count; i++)
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
            return dhf_err_set("%s: header: __metadata__ key '%s' appears twice", f->path,
                               f->meta[i].key);
    return 0;
}

static int parse_header(dhf_st_file *f, const char *text, uint64_t len)
{
    if (memchr(text, '\0', (size_t)len))
        return dhf_err_set("%s: header: not JSON (NUL byte at offset %zu of %" PRIu64 ")",
                           f->path, (size_t)((const char *)memchr(text, '\0', len) - text),
                           len);
    const char *end = NULL;
    /* require_null_terminated: only whitespace (the writer's padding) may follow. */
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root)
        return dhf_err_set("%s: header: not JSON (parse error at byte %td of %" PRIu64 ")",
                           f->path, end ? end - text : (ptrdiff_t)0, len);
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = dhf_err_set("%s: header: not a JSON object (got %s)", f->path, json_kind(root));
        goto done;
    }
    int n = 0;
    const cJSON *meta = NULL;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if (meta) {
                rc = dhf_err_set("%s: header: __metadata__ appears twice", f->path);
                goto done;
            }
            meta = c;
        } else {
            n++;
        }
    }
    f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
    if (!f->tensors) {
        rc = dhf_err_set("%s: out of memory", f->path);
        goto done;
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        if (c == meta)
            continue;
        dhf_st_info *info = &f->tensors[f->count];
        info->name = dhf_strdup(c->string);
        if (!info->name) {
            rc = dhf_err_set("%s: out of memory", f->path);
            goto done;
        }
        f->count++;
        if ((rc = parse_entry(f->path, c->string, c, f->data_len, info)) != 0)
            goto done;
        info->data = f->data + info->offset;
    }
    qsort(f->tensors, (size_t)f->count, sizeof *f->tensors, cmp_info_by_name);
    for (int i = 1; i < f->count; i++) {
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
            rc = dhf_err_set("%s: tensor '%s': name appears twice in the header", f->path,
                             f->tensors[i].name);
            goto done;
        }
    }
    if ((rc = check_layout(f)) != 0)
        goto done;
    if (meta)
        rc = parse_metadata(f, meta);
done:
    cJSON_Delete(root);
    return rc;
}

/* the header and data regions of f->map (size bytes), validated */
static int parse_mapped(dhf_st_file *f, const char *path, uint64_t size)
{
    uint64_t hlen = load_le(f->map, 8);
    if (hlen > size - 8) {
        dhf_err_set("%s: header: header length larger than the file (expected <= %" PRIu64
                    " bytes, got %" PRIu64 ")", path, size - 8, hlen);
        return -1;
    }
    if (hlen > DHF_ST_MAX_HEADER_BYTES) {
        dhf_err_set("%s: header: header too large (expected <= %llu bytes, got %" PRIu64 ")",
                    path, DHF_ST_MAX_HEADER_BYTES, hlen);
        return -1;
    }
    f->data = f->map + 8 + hlen;
    f->data_len = size - 8 - hlen;

    char *text = malloc((size_t)hlen + 1);
    if (!text) {
        dhf_err_set("%s: out of memory for a %" PRIu64 "-byte header", path, hlen);
        return -1;
    }
    memcpy(text, f->map + 8, (size_t)hlen);
    text[hlen] = '\0';
    int rc = parse_header(f, text, hlen);
    free(text);
    return rc;
}

int dhf_st_open_memory(const char *label, void *buf, size_t len, dhf_st_file **out)
{
    *out = NULL;
    dhf_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = dhf_strdup(label))) {
        free(f);
        free(buf);
        return dhf_err_set("%s: out of memory", label);
    }
    f->map = buf;
    f->map_len = len;
    f->map_is_malloc = true;
    if (len < 8) {
        dhf_st_close(f);
        return dhf_err_set("%s: header: shorter than the 8-byte header length", label);
    }
    if (parse_mapped(f, label, len)) {
        dhf_st_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

int dhf_st_open(const char *path, dhf_st_file **out)
{
    if (!path || !out)
        return dhf_err_set("safetensors: NULL path or output");
    dhf_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = dhf_strdup(path))) {
        free(f);
        return dhf_err_set("%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        dhf_err_set("%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dhf_err_set("%s: not a regular file", path);
        close(fd);
        goto fail;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < 8) {
        dhf_err_set("%s: header: file too short for the 8-byte header length (expected >= "
                    "8 bytes, got %" PRIu64 ")", path, size);
        close(fd);
        goto fail;
    }
    if (size > (uint64_t)SIZE_MAX) {
        dhf_err_set("%s: file too large to map (%" PRIu64 " bytes)", path, size);
        close(fd);
        goto fail;
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_err = errno;
    close(fd);
    if (map == MAP_FAILED) {
        dhf_err_set("%s: cannot map: %s", path, strerror(map_err));
        goto fail;
    }
    f->map = map;
    f->map_len = (size_t)size;
    if (parse_mapped(f, path, size))
        goto fail;
    *out = f;
    return 0;
fail:
    dhf_st_close(f);
    return -1;
}
