/* pickle.c — the restricted checkpoint pickle (pickle.h): values, the reader's opcode
 * loop over a stack and a memo of shared values, the global allow-list, and the
 * protocol-2 writer. */
#include "core/pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/str.h"

#define MAX_DEPTH 200          /* nesting of a loaded tree */
#define MAX_STACK (1 << 20)
#define MAX_MEMO (1 << 22)

/* ---- values ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t bytes;
    const char *storage;
} dtypes[] = {
    [DHF_PV_F32] = { "float32", 4, "FloatStorage" },
    [DHF_PV_F64] = { "float64", 8, "DoubleStorage" },
    [DHF_PV_F16] = { "float16", 2, "HalfStorage" },
    [DHF_PV_BF16] = { "bfloat16", 2, "BFloat16Storage" },
    [DHF_PV_I64] = { "int64", 8, "LongStorage" },
    [DHF_PV_I32] = { "int32", 4, "IntStorage" },
    [DHF_PV_I16] = { "int16", 2, "ShortStorage" },
    [DHF_PV_I8] = { "int8", 1, "CharStorage" },
    [DHF_PV_U8] = { "uint8", 1, "ByteStorage" },
    [DHF_PV_BOOL_T] = { "bool", 1, "BoolStorage" },
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

size_t dhf_dtype_bytes_pv(dhf_pv_dtype dt) { return dtypes[dt].bytes; }

/* storage dtypes with a safetensors dtype, in pairs */
static const struct {
    dhf_pv_dtype pv;
    dhf_st_dtype st;
} st_pairs[] = {
    { DHF_PV_F32, DHF_ST_F32 }, { DHF_PV_F16, DHF_ST_F16 }, { DHF_PV_BF16, DHF_ST_BF16 },
    { DHF_PV_F64, DHF_ST_F64 }, { DHF_PV_I64, DHF_ST_I64 }, { DHF_PV_I32, DHF_ST_I32 },
    { DHF_PV_U8, DHF_ST_U8 },   { DHF_PV_BOOL_T, DHF_ST_BOOL },
};

int dhf_pv_dtype_to_st(dhf_pv_dtype dt, int *st_dtype)
{
    for (size_t k = 0; k < sizeof st_pairs / sizeof st_pairs[0]; k++)
        if (st_pairs[k].pv == dt) {
            *st_dtype = (int)st_pairs[k].st;
            return 0;
        }
    return -1;
}

int dhf_pv_dtype_from_st(int st_dtype, dhf_pv_dtype *dt)
{
    for (size_t k = 0; k < sizeof st_pairs / sizeof st_pairs[0]; k++)
        if ((int)st_pairs[k].st == st_dtype) {
            *dt = st_pairs[k].pv;
            return 0;
        }
    return -1;
}
const char *dhf_pv_dtype_name(dhf_pv_dtype dt) { return dtypes[dt].name; }

const char *dhf_pv_type_name(dhf_pv_type t)
{
    static const char *const n[] = { "None", "bool", "int", "float", "str", "list", "tuple",
                                     "dict", "tensor", "global", "storage" };
    return (unsigned)t < sizeof n / sizeof n[0] ? n[t] : "?";
}

static dhf_pv *pv_new(dhf_pv_type t)
{
    dhf_pv *v = calloc(1, sizeof *v);
    if (v) {
        v->type = t;
        v->refs = 1;
    }
    return v;
}

void dhf_pv_free(dhf_pv *v)
{
    if (!v || --v->refs > 0)
        return;
    for (size_t k = 0; k < v->len && v->items; k++) {
        dhf_pv_free(v->items[k]);
        if (v->values)
            dhf_pv_free(v->values[k]);
    }
    free(v->items);
    free(v->values);
    free(v->s);
    free(v);
}

dhf_pv *dhf_pv_none(void) { return pv_new(DHF_PV_NONE); }

dhf_pv *dhf_pv_bool(bool b)
{
    dhf_pv *v = pv_new(DHF_PV_BOOL);
    if (v)
        v->i = b;
    return v;
}

dhf_pv *dhf_pv_int(int64_t i)
{
    dhf_pv *v = pv_new(DHF_PV_INT);
    if (v)
        v->i = i;
    return v;
}

dhf_pv *dhf_pv_float(double f)
{
    dhf_pv *v = pv_new(DHF_PV_FLOAT);
    if (v)
        v->f = f;
    return v;
}

static dhf_pv *str_n(const char *s, size_t n)
{
    dhf_pv *v = pv_new(DHF_PV_STR);
    if (v && !(v->s = malloc(n + 1))) {
        free(v);
        return NULL;
    }
    if (v) {
        memcpy(v->s, s, n);
        v->s[n] = '\0';
        v->len = n;
    }
    return v;
}

dhf_pv *dhf_pv_str(const char *s) { return str_n(s, strlen(s)); }
dhf_pv *dhf_pv_list(void) { return pv_new(DHF_PV_LIST); }
dhf_pv *dhf_pv_tuple(void) { return pv_new(DHF_PV_TUPLE); }

dhf_pv *dhf_pv_dict(bool ordered)
{
    dhf_pv *v = pv_new(DHF_PV_DICT);
    if (v)
        v->ordered = ordered;
    return v;
}

dhf_pv *dhf_pv_tensor(const char *key, dhf_pv_dtype dt, const int64_t *size, int ndim)
{
    if (ndim < 0 || ndim > DHF_PV_MAX_DIMS || strlen(key) >= sizeof ((dhf_pv *)0)->storage_key)
        return NULL;
    dhf_pv *v = pv_new(DHF_PV_TENSOR);
    if (!v)
        return NULL;
    snprintf(v->storage_key, sizeof v->storage_key, "%s", key);
    v->dtype = dt;
    v->ndim = ndim;
    int64_t n = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        v->size[d] = size[d];
        v->stride[d] = n;
        n *= size[d];
    }
    v->storage_numel = n;
    return v;
}

static int grow(dhf_pv *c)
{
    if (c->len < c->cap)
        return 0;
    size_t cap = c->cap ? 2 * c->cap : 8;
    dhf_pv **it = realloc(c->items, cap * sizeof *it);
    if (!it)
        return -1;
    c->items = it;
    if (c->type == DHF_PV_DICT) {
        dhf_pv **va = realloc(c->values, cap * sizeof *va);
        if (!va)
            return -1;
        c->values = va;
    }
    c->cap = cap;
    return 0;
}

int dhf_pv_append(dhf_pv *seq, dhf_pv *item)
{
    if (!seq || !item || (seq->type != DHF_PV_LIST && seq->type != DHF_PV_TUPLE) ||
        grow(seq)) {
        dhf_pv_free(item);
        return -1;
    }
    seq->items[seq->len++] = item;
    return 0;
}

static bool key_equal(const dhf_pv *a, const dhf_pv *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == DHF_PV_STR)
        return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    if (a->type == DHF_PV_INT || a->type == DHF_PV_BOOL)
        return a->i == b->i;
    return a == b;
}

int dhf_pv_set(dhf_pv *dict, dhf_pv *key, dhf_pv *value)
{
    if (!dict || !key || !value || dict->type != DHF_PV_DICT) {
        dhf_pv_free(key);
        dhf_pv_free(value);
        return -1;
    }
    for (size_t k = 0; k < dict->len; k++)
        if (key_equal(dict->items[k], key)) {      /* Python: a later value wins */
            dhf_pv_free(dict->values[k]);
            dict->values[k] = value;
            dhf_pv_free(key);
            return 0;
        }
    if (grow(dict)) {
        dhf_pv_free(key);
        dhf_pv_free(value);
        return -1;
    }
    dict->items[dict->len] = key;
    dict->values[dict->len++] = value;
    return 0;
}

void dhf_pv_gather(const dhf_pv *t, const void *storage, void *dst)
{
    const size_t eb = dhf_dtype_bytes_pv(t->dtype);
    int64_t numel = 1, idx[DHF_PV_MAX_DIMS] = { 0 };
    for (int d = 0; d < t->ndim; d++)
        numel *= t->size[d];
    for (int64_t k = 0; k < numel; k++) {
        int64_t off = t->offset;
        for (int d = 0; d < t->ndim; d++)
            off += idx[d] * t->stride[d];
        memcpy((char *)dst + (size_t)k * eb, (const char *)storage + (size_t)off * eb, eb);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->size[d])
                break;
            idx[d] = 0;
        }
    }
}

int64_t dhf_pv_numel(const dhf_pv *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->size[d];
    return n;
}

const dhf_pv *dhf_pv_get(const dhf_pv *dict, const char *key)
{
    if (!dict || dict->type != DHF_PV_DICT)
        return NULL;
    for (size_t k = 0; k < dict->len; k++)
        if (dict->items[k]->type == DHF_PV_STR && strcmp(dict->items[k]->s, key) == 0)
            return dict->values[k];
    return NULL;
}

/* ---- reading ----------------------------------------------------------------------- */

/* the allow-list: what a global may name */
enum { G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_REBUILD_PARAMETER, G_STORAGE };

typedef struct {
    const uint8_t *p, *end, *begin;
    const char *what;
    dhf_pv **stack;            /* NULL entries are MARKs */
    size_t sp, scap;
    dhf_pv **memo;
    size_t nmemo;              /* capacity */
    size_t memo_len;           /* highest index set + 1: MEMOIZE's next index */
    bool failed;
} reader;

static int rfail(reader *r, const char *fmt, ...) DHF_PRINTF(2, 3);
static int rfail(reader *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->failed = true;
    return dhf_err_set("%s: at byte %zu: %s", r->what, (size_t)(r->p - r->begin), msg);
}

static int need(reader *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n)
        return rfail(r, "truncated pickle (%zu more bytes expected)", n);
    return 0;
}

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; k--)
        v = (v << 8) | p[k];
    return v;
}

/* an n-byte little-endian argument of the current opcode */
static int read_le(reader *r, int n, uint64_t *v)
{
    if (need(r, (size_t)n))
        return -1;
    *v = le(r->p, n);
    r->p += n;
    return 0;
}

static int push(reader *r, dhf_pv *v)
{
    if (r->sp == r->scap) {
        size_t cap = r->scap ? 2 * r->scap : 64;
        if (cap > MAX_STACK)
            return rfail(r, "stack deeper than %d", MAX_STACK);
        dhf_pv **s = realloc(r->stack, cap * sizeof *s);
        if (!s)
            return rfail(r, "out of memory");
        r->stack = s;
        r->scap = cap;
    }
    r->stack[r->sp++] = v;
    return 0;
}

static int push_value(reader *r, dhf_pv *v)
{
    if (!v)
        return rfail(r, "out of memory");
    if (push(r, v)) {
        dhf_pv_free(v);
        return -1;
    }
    return 0;
}

/* pops a value (not a MARK) */
static dhf_pv *pop(reader *r)
{
    if (r->sp == 0 || !r->stack[r->sp - 1]) {
        rfail(r, r->sp == 0 ? "stack underflow" : "a MARK where a value was expected");
        return NULL;
    }
    return r->stack[--r->sp];
}

static dhf_pv *top(reader *r)
{
    if (r->sp == 0 || !r->stack[r->sp - 1]) {
        rfail(r, r->sp == 0 ? "stack underflow" : "a MARK where a value was expected");
        return NULL;
    }
    return r->stack[r->sp - 1];
}

/* index of the topmost MARK, or -1 */
static long find_mark(reader *r)
{
    for (size_t k = r->sp; k > 0; k--)
        if (!r->stack[k - 1])
            return (long)k - 1;
    rfail(r, "no MARK on the stack");
    return -1;
}

static dhf_pv *global_value(reader *r, const char *module, const char *name)
{
    int id = -1, dt = -1;
    if (!strcmp(module, "collections") && !strcmp(name, "OrderedDict"))
        id = G_ORDERED_DICT;
    else if (!strcmp(module, "torch._utils") && !strcmp(name, "_rebuild_tensor_v2"))
        id = G_REBUILD_TENSOR_V2;
    else if (!strcmp(module, "torch._utils") && !strcmp(name, "_rebuild_parameter"))
        id = G_REBUILD_PARAMETER;
    else if (!strcmp(module, "torch"))
        for (int k = 0; k < N_DTYPES; k++)
            if (!strcmp(name, dtypes[k].storage)) {
                id = G_STORAGE;
                dt = k;
            }
    if (id < 0) {
        rfail(r, "refused global '%s.%s': a checkpoint may name only "
                 "collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
                 "torch._utils._rebuild_parameter and torch.<T>Storage", module, name);
        return NULL;
    }
    dhf_pv *g = pv_new(DHF_PV_GLOBAL_);
    if (!g) {
        rfail(r, "out of memory");
        return NULL;
    }
    g->i = id;
    g->dtype = dt < 0 ? DHF_PV_F32 : (dhf_pv_dtype)dt;
    char full[256];
    snprintf(full, sizeof full, "%s.%s", module, name);
    g->s = dhf_strdup(full);
    return g;
}

/* a tuple's int entries (size / stride) */
static int int_tuple(reader *r, const dhf_pv *t, int64_t *out, int *n, const char *what)
{
    if (!t || (t->type != DHF_PV_TUPLE && t->type != DHF_PV_LIST) || t->len > DHF_PV_MAX_DIMS)
        return rfail(r, "_rebuild_tensor_v2: %s must be a tuple of at most %d ints", what,
                     DHF_PV_MAX_DIMS);
    for (size_t k = 0; k < t->len; k++) {
        if (t->items[k]->type != DHF_PV_INT || t->items[k]->i < 0)
            return rfail(r, "_rebuild_tensor_v2: %s must hold non-negative ints", what);
        out[k] = t->items[k]->i;
    }
    *n = (int)t->len;
    return 0;
}

/* callable(args) for the allow-listed callables */
static dhf_pv *call(reader *r, const dhf_pv *fn, const dhf_pv *args)
{
    if (fn->type != DHF_PV_GLOBAL_) {
        rfail(r, "REDUCE on a %s, not a global", dhf_pv_type_name(fn->type));
        return NULL;
    }
    if (args->type != DHF_PV_TUPLE) {
        rfail(r, "%s: arguments are a %s, not a tuple", fn->s, dhf_pv_type_name(args->type));
        return NULL;
    }
    if (fn->i == G_ORDERED_DICT) {
        if (args->len != 0) {
            rfail(r, "collections.OrderedDict: only OrderedDict() is accepted");
            return NULL;
        }
        dhf_pv *d = dhf_pv_dict(true);
        if (!d)
            rfail(r, "out of memory");
        return d;
    }
    if (fn->i == G_REBUILD_PARAMETER) {
        if (args->len < 1 || args->items[0]->type != DHF_PV_TENSOR) {
            rfail(r, "torch._utils._rebuild_parameter: a tensor argument expected");
            return NULL;
        }
        args->items[0]->refs++;
        return args->items[0];
    }
    if (fn->i != G_REBUILD_TENSOR_V2) {
        rfail(r, "%s is not callable", fn->s);
        return NULL;
    }
    /* (storage, storage_offset, size, stride, requires_grad, backward_hooks[, meta]) */
    if (args->len < 4 || args->items[0]->type != DHF_PV_STORAGE_ ||
        args->items[1]->type != DHF_PV_INT) {
        rfail(r, "torch._utils._rebuild_tensor_v2: expected (storage, offset, size, "
                 "stride, ...)");
        return NULL;
    }
    const dhf_pv *st = args->items[0];
    dhf_pv *t = pv_new(DHF_PV_TENSOR);
    if (!t) {
        rfail(r, "out of memory");
        return NULL;
    }
    snprintf(t->storage_key, sizeof t->storage_key, "%s", st->storage_key);
    t->dtype = st->dtype;
    t->storage_numel = st->storage_numel;
    t->offset = args->items[1]->i;
    int nsize = 0, nstride = 0;
    if (int_tuple(r, args->items[2], t->size, &nsize, "size") ||
        int_tuple(r, args->items[3], t->stride, &nstride, "stride")) {
        dhf_pv_free(t);
        return NULL;
    }
    if (nsize != nstride) {
        rfail(r, "_rebuild_tensor_v2: size has %d dims, stride %d", nsize, nstride);
        dhf_pv_free(t);
        return NULL;
    }
    t->ndim = nsize;
    /* the last element addressed must lie inside the storage */
    int64_t last = t->offset, numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        numel *= t->size[d];
        if (t->size[d] > 0)
            last += (t->size[d] - 1) * t->stride[d];
    }
    if (t->offset < 0 || (numel > 0 && last >= t->storage_numel)) {
        rfail(r, "_rebuild_tensor_v2: the view (offset %lld) reaches past storage '%s' of "
                 "%lld elements", (long long)t->offset, t->storage_key,
                 (long long)t->storage_numel);
        dhf_pv_free(t);
        return NULL;
    }
    return t;
}

/* ('storage', torch.<T>Storage, key, location, numel) -> a storage reference */
static dhf_pv *persistent(reader *r, const dhf_pv *pid)
{
    if (pid->type != DHF_PV_TUPLE || pid->len != 5 || pid->items[0]->type != DHF_PV_STR ||
        strcmp(pid->items[0]->s, "storage") || pid->items[1]->type != DHF_PV_GLOBAL_ ||
        pid->items[1]->i != G_STORAGE || pid->items[2]->type != DHF_PV_STR ||
        pid->items[3]->type != DHF_PV_STR || pid->items[4]->type != DHF_PV_INT ||
        pid->items[4]->i < 0) {
        rfail(r, "persistent id: expected ('storage', torch.<T>Storage, key, location, "
                 "numel)");
        return NULL;
    }
    const char *key = pid->items[2]->s;
    if (!*key || strlen(key) >= sizeof ((dhf_pv *)0)->storage_key || strchr(key, '/') ||
        strstr(key, "..")) {
        rfail(r, "persistent id: storage key '%.80s' is not a plain record name", key);
        return NULL;
    }
    dhf_pv *s = pv_new(DHF_PV_STORAGE_);
    if (!s) {
        rfail(r, "out of memory");
        return NULL;
    }
    snprintf(s->storage_key, sizeof s->storage_key, "%s", key);
    s->dtype = pid->items[1]->dtype;
    s->storage_numel = pid->items[4]->i;
    return s;
}

static int memo_put(reader *r, uint64_t idx)
{
    dhf_pv *v = top(r);
    if (!v)
        return -1;
    if (idx >= MAX_MEMO)
        return rfail(r, "memo index %llu too large", (unsigned long long)idx);
    if (idx >= r->nmemo) {
        size_t n = r->nmemo ? r->nmemo : 64;
        while (n <= idx)
            n *= 2;
        dhf_pv **m = realloc(r->memo, n * sizeof *m);
        if (!m)
            return rfail(r, "out of memory");
        memset(m + r->nmemo, 0, (n - r->nmemo) * sizeof *m);
        r->memo = m;
        r->nmemo = n;
    }
    dhf_pv_free(r->memo[idx]);
    r->memo[idx] = v;
    v->refs++;
    if (idx >= r->memo_len)
        r->memo_len = (size_t)idx + 1;
    return 0;
}

static int memo_get(reader *r, uint64_t idx)
{
    if (idx >= r->nmemo || !r->memo[idx])
        return rfail(r, "memo entry %llu is not set", (unsigned long long)idx);
    r->memo[idx]->refs++;
    return push_value(r, r->memo[idx]);
}

/* whether `target` is `from` or inside it: inserting it would make a cycle, which
 * reference counting could never free */
static bool reaches(const dhf_pv *from, const dhf_pv *target, int depth)
{
    if (from == target)
        return true;
    if (depth > MAX_DEPTH)
        return true;
    for (size_t k = 0; k < from->len && from->items; k++)
        if (reaches(from->items[k], target, depth + 1) ||
            (from->values && reaches(from->values[k], target, depth + 1)))
            return true;
    return false;
}

static int check_insert(reader *r, const dhf_pv *c, const dhf_pv *a, const dhf_pv *b)
{
    if (reaches(a, c, 0) || (b && reaches(b, c, 0)))
        return rfail(r, "a container inserted into itself (a cycle), or nesting deeper "
                        "than %d", MAX_DEPTH);
    return 0;
}

/* items above the topmost MARK into container c (APPENDS, SETITEMS, TUPLE) */
static int collect(reader *r, dhf_pv *c, bool pairs)
{
    long m = find_mark(r);
    if (m < 0)
        return -1;
    size_t n = r->sp - (size_t)m - 1;
    if (pairs && n % 2)
        return rfail(r, "SETITEMS with an odd number of items");
    for (size_t k = 0; k < n; k += pairs ? 2 : 1) {
        dhf_pv *a = r->stack[m + 1 + k], *b = pairs ? r->stack[m + 2 + k] : NULL;
        r->stack[m + 1 + k] = NULL;
        if (pairs)
            r->stack[m + 2 + k] = NULL;
        if (check_insert(r, c, a, b)) {
            for (size_t j = k; j < n; j++)
                dhf_pv_free(r->stack[m + 1 + j]);
            dhf_pv_free(a);
            dhf_pv_free(b);
            r->sp = (size_t)m;
            return -1;
        }
        int rc = pairs ? dhf_pv_set(c, a, b) : dhf_pv_append(c, a);
        if (rc) {
            for (size_t j = k + (pairs ? 2 : 1); j < n; j++)
                dhf_pv_free(r->stack[m + 1 + j]);
            r->sp = (size_t)m;
            return rfail(r, "out of memory");
        }
    }
    r->sp = (size_t)m;
    return 0;
}

static int read_string(reader *r, size_t n, dhf_pv **out)
{
    if (need(r, n))
        return -1;
    *out = str_n((const char *)r->p, n);
    r->p += n;
    return *out ? 0 : rfail(r, "out of memory");
}

/* a newline-terminated line (GLOBAL's module and name) */
static int read_line(reader *r, char *buf, size_t cap)
{
    const uint8_t *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
    if (!nl)
        return rfail(r, "truncated GLOBAL");
    size_t n = (size_t)(nl - r->p);
    if (n >= cap)
        return rfail(r, "GLOBAL name longer than %zu bytes", cap - 1);
    memcpy(buf, r->p, n);
    buf[n] = '\0';
    r->p = nl + 1;
    return 0;
}

/* a loaded tree holds no parsing-only values and is not nested too deeply (cycles
 * through the memo would be infinitely deep) */
static int check_tree(reader *r, const dhf_pv *v, int depth)
{
    if (depth > MAX_DEPTH)
        return rfail(r, "values nested deeper than %d (or a cycle)", MAX_DEPTH);
    if (v->type == DHF_PV_GLOBAL_)
        return rfail(r, "global '%s' left as a value", v->s);
    if (v->type == DHF_PV_STORAGE_)
        return rfail(r, "a storage outside a tensor");
    for (size_t k = 0; k < v->len && v->items; k++)
        if (check_tree(r, v->items[k], depth + 1) ||
            (v->values && check_tree(r, v->values[k], depth + 1)))
            return -1;
    return 0;
}

static int step(reader *r, bool *stop)
{
    if (need(r, 1))
        return -1;
    const uint8_t op = *r->p++;
    dhf_pv *v = NULL, *a = NULL, *b = NULL;
    switch (op) {
    case 0x80:                                   /* PROTO */
        if (need(r, 1))
            return -1;
        if (r->p[0] > 5)
            return rfail(r, "pickle protocol %d (at most 5 known)", r->p[0]);
        r->p++;
        return 0;
    case 0x95:                                   /* FRAME: the length is advisory */
        if (need(r, 8))
            return -1;
        r->p += 8;
        return 0;
    case '.':                                    /* STOP */
        *stop = true;
        return 0;
    case '(':                                    /* MARK */
        return push(r, NULL);
    case '}':
        return push_value(r, dhf_pv_dict(false));
    case ']':
        return push_value(r, dhf_pv_list());
    case ')':
        return push_value(r, dhf_pv_tuple());
    case 'N':
        return push_value(r, dhf_pv_none());
    case 0x88:
    case 0x89:
        return push_value(r, dhf_pv_bool(op == 0x88));
    case 'K':                                    /* BININT1, BININT2, BININT */
    case 'M':
    case 'J': {
        uint64_t u;
        if (read_le(r, op == 'K' ? 1 : op == 'M' ? 2 : 4, &u))
            return -1;
        return push_value(r, dhf_pv_int(op == 'J' ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u));
    }
    case 0x8a: {                                 /* LONG1: little-endian two's complement */
        if (need(r, 1))
            return -1;
        const int n = r->p[0];
        r->p++;
        if (n > 8)
            return rfail(r, "LONG1 of %d bytes does not fit in 64 bits", n);
        if (need(r, (size_t)n))
            return -1;
        uint64_t u = le(r->p, n);
        if (n > 0 && n < 8 && (r->p[n - 1] & 0x80))
            u |= ~(uint64_t)0 << (8 * n);
        r->p += n;
        return push_value(r, dhf_pv_int((int64_t)u));
    }
    case 'G': {                                  /* BINFLOAT: big-endian double */
        if (need(r, 8))
            return -1;
        uint64_t u = 0;
        for (int k = 0; k < 8; k++)
            u = (u << 8) | r->p[k];
        r->p += 8;
        double d;
        memcpy(&d, &u, sizeof d);
        return push_value(r, dhf_pv_float(d));
    }
    case 'X':                                    /* BINUNICODE */
    case 'T':                                    /* BINSTRING */
        if (need(r, 4))
            return -1;
        {
            const size_t n = (size_t)le(r->p, 4);
            r->p += 4;
            if (read_string(r, n, &v))
                return -1;
        }
        return push_value(r, v);
    case 0x8c:                                   /* SHORT_BINUNICODE */
    case 'U':                                    /* SHORT_BINSTRING */
        if (need(r, 1))
            return -1;
        {
            const size_t n = r->p[0];
            r->p++;
            if (read_string(r, n, &v))
                return -1;
        }
        return push_value(r, v);
    case 't':
    case 0x85:
    case 0x86:
    case 0x87: {                                 /* TUPLE, TUPLE1..3 */
        v = dhf_pv_tuple();
        if (!v)
            return rfail(r, "out of memory");
        if (op == 't') {
            if (collect(r, v, false)) {
                dhf_pv_free(v);
                return -1;
            }
            return push_value(r, v);
        }
        const int n = op - 0x84;
        if (r->sp < (size_t)n) {
            dhf_pv_free(v);
            return rfail(r, "stack underflow");
        }
        for (int k = n; k > 0; k--) {
            dhf_pv *it = r->stack[r->sp - (size_t)k];
            if (!it) {
                dhf_pv_free(v);
                return rfail(r, "a MARK inside TUPLE%d", n);
            }
            it->refs++;
            if (dhf_pv_append(v, it)) {
                dhf_pv_free(v);
                return rfail(r, "out of memory");
            }
        }
        for (int k = 0; k < n; k++)
            dhf_pv_free(r->stack[--r->sp]);
        return push_value(r, v);
    }
    case 'a':                                    /* APPEND */
        if (!(a = pop(r)) || !(v = top(r))) {
            dhf_pv_free(a);
            return -1;
        }
        if (v->type != DHF_PV_LIST || check_insert(r, v, a, NULL)) {
            dhf_pv_free(a);
            return r->failed ? -1 : rfail(r, "APPEND to a %s", dhf_pv_type_name(v->type));
        }
        return dhf_pv_append(v, a) ? rfail(r, "out of memory") : 0;
    case 'e': {                                  /* APPENDS */
        long m = find_mark(r);
        if (m < 1 || !r->stack[m - 1] || r->stack[m - 1]->type != DHF_PV_LIST)
            return rfail(r, "APPENDS without a list below its MARK");
        return collect(r, r->stack[m - 1], false);
    }
    case 's':                                    /* SETITEM */
        if (!(b = pop(r)) || !(a = pop(r)) || !(v = top(r))) {
            dhf_pv_free(a);
            dhf_pv_free(b);
            return -1;
        }
        if (v->type != DHF_PV_DICT || check_insert(r, v, a, b)) {
            dhf_pv_free(a);
            dhf_pv_free(b);
            return r->failed ? -1 : rfail(r, "SETITEM on a %s", dhf_pv_type_name(v->type));
        }
        return dhf_pv_set(v, a, b) ? rfail(r, "out of memory") : 0;
    case 'u': {                                  /* SETITEMS */
        long m = find_mark(r);
        if (m < 1 || !r->stack[m - 1] || r->stack[m - 1]->type != DHF_PV_DICT)
            return rfail(r, "SETITEMS without a dict below its MARK");
        return collect(r, r->stack[m - 1], true);
    }
    case 'q':                                    /* BINPUT */
    case 'r': {                                  /* LONG_BINPUT */
        uint64_t idx;
        return read_le(r, op == 'q' ? 1 : 4, &idx) ? -1 : memo_put(r, idx);
    }
    case 0x94:                                   /* MEMOIZE */
        return memo_put(r, r->memo_len);
    case 'h':                                    /* BINGET */
    case 'j': {                                  /* LONG_BINGET */
        uint64_t idx;
        return read_le(r, op == 'h' ? 1 : 4, &idx) ? -1 : memo_get(r, idx);
    }
    case 'c': {                                  /* GLOBAL module\nname\n */
        char module[128], name[128];
        if (read_line(r, module, sizeof module) || read_line(r, name, sizeof name))
            return -1;
        v = global_value(r, module, name);
        return v ? push_value(r, v) : -1;
    }
    case 0x93: {                                 /* STACK_GLOBAL */
        if (!(b = pop(r)) || !(a = pop(r))) {
            dhf_pv_free(b);
            return -1;
        }
        if (a->type != DHF_PV_STR || b->type != DHF_PV_STR) {
            dhf_pv_free(a);
            dhf_pv_free(b);
            return rfail(r, "STACK_GLOBAL: module and name must be strings");
        }
        v = global_value(r, a->s, b->s);
        dhf_pv_free(a);
        dhf_pv_free(b);
        return v ? push_value(r, v) : -1;
    }
    case 'R': {                                  /* REDUCE */
        if (!(a = pop(r)) || !(b = pop(r))) {
            dhf_pv_free(a);
            return -1;
        }
        v = call(r, b, a);
        dhf_pv_free(a);
        dhf_pv_free(b);
        return v ? push_value(r, v) : -1;
    }
    case 'b':                                    /* BUILD */
        if (!(a = pop(r)) || !(v = top(r))) {
            dhf_pv_free(a);
            return -1;
        }
        /* OrderedDict's state (a state_dict's _metadata): kept out of the tree */
        if (v->type == DHF_PV_DICT && (a->type == DHF_PV_DICT || a->type == DHF_PV_NONE)) {
            dhf_pv_free(a);
            return 0;
        }
        {
            const dhf_pv_type ta = a->type;
            dhf_pv_free(a);
            return rfail(r, "BUILD of a %s with a %s state", dhf_pv_type_name(v->type),
                         dhf_pv_type_name(ta));
        }
    case 'Q':                                    /* BINPERSID */
        if (!(a = pop(r)))
            return -1;
        v = persistent(r, a);
        dhf_pv_free(a);
        return v ? push_value(r, v) : -1;
    case '0':                                    /* POP */
        if (!(a = pop(r)))
            return -1;
        dhf_pv_free(a);
        return 0;
    default:
        return rfail(r, "opcode 0x%02x is not accepted in a checkpoint", op);
    }
}

int dhf_pickle_load(const void *data, size_t size, const char *what, dhf_pv **out)
{
    *out = NULL;
    reader r = { .p = data, .begin = data, .end = (const uint8_t *)data + size, .what = what };
    bool stop = false;
    int rc = 0;
    while (!stop && rc == 0)
        rc = step(&r, &stop);
    dhf_pv *v = NULL;
    if (rc == 0 && (r.sp != 1 || !r.stack[0]))
        rc = rfail(&r, "STOP with %zu values on the stack (one expected)", r.sp);
    if (rc == 0) {
        v = r.stack[0];
        r.sp = 0;
        if (check_tree(&r, v, 0)) {
            dhf_pv_free(v);
            v = NULL;
            rc = -1;
        }
    }
    for (size_t k = 0; k < r.sp; k++)
        dhf_pv_free(r.stack[k]);
    free(r.stack);
    for (size_t k = 0; k < r.nmemo; k++)
        dhf_pv_free(r.memo[k]);
    free(r.memo);
    *out = v;
    return rc;
}

/* ---- writing ----------------------------------------------------------------------- */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    bool oom;
} writer;

static void put(writer *w, const void *p, size_t n)
{
    if (w->oom)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w->oom = true;
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void op(writer *w, uint8_t c) { put(w, &c, 1); }

static void put_le(writer *w, uint64_t v, int n)
{
    uint8_t b[8];
    for (int k = 0; k < n; k++)
        b[k] = (uint8_t)(v >> (8 * k));
    put(w, b, (size_t)n);
}

static void w_str(writer *w, const char *s, size_t n)
{
    op(w, 'X');
    put_le(w, n, 4);
    put(w, s, n);
}

static void w_int(writer *w, int64_t i)
{
    if (i >= 0 && i < 256) {
        op(w, 'K');
        put_le(w, (uint64_t)i, 1);
    } else if (i >= 0 && i < 65536) {
        op(w, 'M');
        put_le(w, (uint64_t)i, 2);
    } else if (i >= INT32_MIN && i <= INT32_MAX) {
        op(w, 'J');
        put_le(w, (uint64_t)(uint32_t)(int32_t)i, 4);
    } else {
        op(w, 0x8a);
        op(w, 8);
        put_le(w, (uint64_t)i, 8);
    }
}

static void w_global(writer *w, const char *module, const char *name)
{
    op(w, 'c');
    put(w, module, strlen(module));
    op(w, '\n');
    put(w, name, strlen(name));
    op(w, '\n');
}

static void w_value(writer *w, const dhf_pv *v);

static void w_ints_tuple(writer *w, const int64_t *x, int n)
{
    op(w, '(');
    for (int k = 0; k < n; k++)
        w_int(w, x[k]);
    op(w, 't');
}

static void w_value(writer *w, const dhf_pv *v)
{
    switch (v->type) {
    case DHF_PV_NONE:
        op(w, 'N');
        break;
    case DHF_PV_BOOL:
        op(w, v->i ? 0x88 : 0x89);
        break;
    case DHF_PV_INT:
        w_int(w, v->i);
        break;
    case DHF_PV_FLOAT: {
        uint64_t u;
        memcpy(&u, &v->f, sizeof u);
        op(w, 'G');
        for (int k = 7; k >= 0; k--)
            op(w, (uint8_t)(u >> (8 * k)));
        break;
    }
    case DHF_PV_STR:
        w_str(w, v->s, v->len);
        break;
    case DHF_PV_LIST:
        op(w, ']');
        if (v->len) {
            op(w, '(');
            for (size_t k = 0; k < v->len; k++)
                w_value(w, v->items[k]);
            op(w, 'e');
        }
        break;
    case DHF_PV_TUPLE:
        op(w, '(');
        for (size_t k = 0; k < v->len; k++)
            w_value(w, v->items[k]);
        op(w, 't');
        break;
    case DHF_PV_DICT:
        if (v->ordered) {
            w_global(w, "collections", "OrderedDict");
            op(w, ')');
            op(w, 'R');
        } else {
            op(w, '}');
        }
        if (v->len) {
            op(w, '(');
            for (size_t k = 0; k < v->len; k++) {
                w_value(w, v->items[k]);
                w_value(w, v->values[k]);
            }
            op(w, 'u');
        }
        break;
    case DHF_PV_TENSOR:
        w_global(w, "torch._utils", "_rebuild_tensor_v2");
        op(w, '(');
        op(w, '(');                               /* the persistent id */
        w_str(w, "storage", 7);
        w_global(w, "torch", dtypes[v->dtype].storage);
        w_str(w, v->storage_key, strlen(v->storage_key));
        w_str(w, "cpu", 3);
        w_int(w, v->storage_numel);
        op(w, 't');
        op(w, 'Q');
        w_int(w, v->offset);
        w_ints_tuple(w, v->size, v->ndim);
        w_ints_tuple(w, v->stride, v->ndim);
        op(w, 0x89);                              /* requires_grad False */
        w_global(w, "collections", "OrderedDict"); /* no backward hooks */
        op(w, ')');
        op(w, 'R');
        op(w, 't');
        op(w, 'R');
        break;
    default:
        w->oom = true;                            /* parsing-only values: refused */
        break;
    }
}

int dhf_pickle_dump(const dhf_pv *v, void **data, size_t *size)
{
    writer w = { 0 };
    op(&w, 0x80);
    op(&w, 2);
    w_value(&w, v);
    op(&w, '.');
    if (w.oom) {
        free(w.buf);
        return dhf_err_set("pickle: out of memory (or a value that cannot be written)");
    }
    *data = w.buf;
    *size = w.len;
    return 0;
}
