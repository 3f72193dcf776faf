/* checkpoint.c — owns the checkpoint format of checkpoint.h: writing parameters,
 * AdamW moments and __metadata__ through the atomic safetensors writer, and the
 * strict load that checks everything before it restores anything. */
#include "train/checkpoint.h"
#include "core/str.h"

#include "core/error.h"
#include "core/hash.h"
#include "core/safetensors.h"
#include "core/torch/st_tensor.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DHF_VERSION
#define DHF_VERSION "unknown"
#endif

#define NAME_CAP 512

enum { OWN_CONFIG = 0, OWN_TRAINER = 1, OWN_FEATURES = 2 };

void dhf_ckpt_meta_init(dhf_ckpt_meta *m)
{
    if (!m)
        return;
    memset(m, 0, sizeof *m);
    m->best_step = -1;
    snprintf(m->rng.algorithm, sizeof m->rng.algorithm, "splitmix64");
}

void dhf_ckpt_meta_free(dhf_ckpt_meta *m)
{
    if (!m)
        return;
    for (int i = 0; i < 3; i++)
        free(m->owned_[i]);
    dhf_ckpt_meta_init(m);
}

static bool same_shape(const int64_t *a, int na, const int64_t *b, int nb)
{
    if (na != nb)
        return false;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* Strict decimal parsers: the whole string, no sign for u64, no overflow. */
static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_i64(const char *s, int64_t *out)
{
    if (!s || !((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')))
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Save                                                                      */
/* ------------------------------------------------------------------------ */

static int set_meta(dhf_st_writer *w, const char *key, const char *value)
{
    return dhf_st_writer_set_metadata(w, key, value);
}

static int set_meta_i64(dhf_st_writer *w, const char *key, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return set_meta(w, key, buf);
}

static int set_meta_u64(dhf_st_writer *w, const char *key, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return set_meta(w, key, buf);
}

static int write_metadata(dhf_st_writer *w, const dhf_ckpt_meta *m, bool with_optim,
                          const char *path)
{
    if (m->rng.num_words < 0 || m->rng.num_words > DHF_CKPT_RNG_WORDS)
        return dhf_err_set("%s: rng: %d state words (expected 0..%d)", path, m->rng.num_words,
                           DHF_CKPT_RNG_WORDS);
    if (m->has_cache && (m->cache.num_steps < 0 || m->cache.num_steps > DHF_CACHE_ID_MAX_STEPS ||
                         m->cache.num_layers < 0 || m->cache.num_layers > DHF_CACHE_ID_MAX_LAYERS))
        return dhf_err_set("%s: cache identity: %d steps / %d layers out of range", path,
                           m->cache.num_steps, m->cache.num_layers);
    if (m->trainer_json && m->trainer_json[0]) {
        cJSON *t = cJSON_Parse(m->trainer_json);
        bool is_obj = cJSON_IsObject(t);
        cJSON_Delete(t);
        if (!is_obj)
            return dhf_err_set("%s: trainer_state must be a JSON object, got '%.80s'", path,
                               m->trainer_json);
    }
    char words[DHF_CKPT_RNG_WORDS * 24] = "";
    size_t wl = 0;
    for (int i = 0; i < m->rng.num_words; i++)
        wl += (size_t)snprintf(words + wl, sizeof words - wl, "%s%" PRIu64, i ? " " : "",
                               m->rng.words[i]);
    int rc = 0;
    rc |= set_meta(w, "dhf_schema", DHF_CKPT_SCHEMA);
    rc |= set_meta(w, "dhf_version", DHF_VERSION);
    rc |= set_meta_i64(w, "step", m->step);
    rc |= set_meta(w, "run_name", m->run_name);
    rc |= set_meta(w, "config", m->config_json && m->config_json[0] ? m->config_json : "{}");
    rc |= set_meta(w, "rng.algorithm", m->rng.algorithm);
    rc |= set_meta_u64(w, "rng.seed", m->rng.seed);
    rc |= set_meta_u64(w, "rng.counter", m->rng.counter);
    rc |= set_meta(w, "rng.state", words);
    if (m->has_best) {
        char v[40];
        snprintf(v, sizeof v, "%.17g", m->best_value);
        rc |= set_meta(w, "best.metric", m->best_metric);
        rc |= set_meta(w, "best.value", v);
        rc |= set_meta_i64(w, "best.step", m->best_step);
    }
    if (with_optim) {
        rc |= set_meta(w, "optim", "adamw");
        rc |= set_meta_i64(w, "optim.step", m->optim_step);
    }
    if (m->has_cache) {
        char *js = dhf_cache_identity_to_json(&m->cache);
        if (!js)
            return dhf_err_set("%s: cache identity: out of memory", path);
        rc |= set_meta(w, "cache_identity", js);
        free(js);
    }
    rc |= set_meta(w, "trainer_state",
                   m->trainer_json && m->trainer_json[0] ? m->trainer_json : "{}");
    return rc ? -1 : 0;
}

/* Moments must have the parameter's shape and dtype (AdamW state per element). */
static int check_like(const char *path, const char *name, const char *what, dhf_tensor p,
                      dhf_tensor t)
{
    int64_t sp[DHF_MAX_DIMS], st[DHF_MAX_DIMS];
    int np = 0, nt = 0;
    if (dhf_shape(p, sp, &np) != DHF_OK || dhf_shape(t, st, &nt) != DHF_OK)
        return dhf_err_set("%s: parameter '%s': %s", path, name, dhf_last_error());
    if (!same_shape(sp, np, st, nt) || dhf_get_dtype(p) != dhf_get_dtype(t)) {
        char a[256], b[256];
        dhf_format_shape(a, sizeof a, sp, np);
        dhf_format_shape(b, sizeof b, st, nt);
        return dhf_err_set("%s: parameter '%s': %s is %s %s, expected %s %s like the parameter",
                           path, name, what, b, dhf_dtype_name(dhf_get_dtype(t)), a,
                           dhf_dtype_name(dhf_get_dtype(p)));
    }
    return 0;
}

/* CRC-32 of a float32 tensor's little-endian bytes, as the file stores them. */
static int tensor_crc(dhf_tensor t, uint32_t *crc, const char *path, const char *name)
{
    if (dhf_get_dtype(t) != DHF_F32)
        return dhf_err_set("%s: tensor '%s': checkpoints hold float32 tensors", path, name);
    int64_t n = dhf_numel(t);
    float *buf = malloc((size_t)(n > 0 ? n : 1) * sizeof *buf);
    if (!buf)
        return dhf_err_set("out of memory");
    if (dhf_to_buffer(t, DHF_F32, buf, (size_t)n * sizeof *buf) != DHF_OK) {
        free(buf);
        return dhf_err_set("%s: tensor '%s': %s", path, name, dhf_last_error());
    }
    *crc = dhf_crc32_update(0, (const unsigned char *)buf, (size_t)n * sizeof *buf);
    free(buf);
    return 0;
}

/* metadata 'tensor_crc32': {"name": "xxxxxxxx", ...} over every tensor's data, so a
 * damaged checkpoint is refused by name instead of loading wrong numbers */
static int add_crcs(dhf_st_writer *w, const dhf_ckpt_entry *entries, int n, const char *path)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return dhf_err_set("out of memory");
    char name[NAME_CAP], hex[16];
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        const dhf_ckpt_entry *e = &entries[i];
        dhf_tensor ts[3] = {e->param, e->exp_avg, e->exp_avg_sq};
        const char *prefix[3] = {"", DHF_CKPT_EXP_AVG_PREFIX, DHF_CKPT_EXP_AVG_SQ_PREFIX};
        for (int k = 0; rc == 0 && k < 3; k++) {
            if (!ts[k])
                continue;
            uint32_t crc = 0;
            snprintf(name, sizeof name, "%s%s", prefix[k], e->name);
            rc = tensor_crc(ts[k], &crc, path, name);
            snprintf(hex, sizeof hex, "%08x", crc);
            if (rc == 0 && !cJSON_AddStringToObject(o, name, hex))
                rc = dhf_err_set("out of memory");
        }
    }
    char *text = rc == 0 ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (rc == 0)
        rc = text ? dhf_st_writer_set_metadata(w, "tensor_crc32", text) : dhf_err_set("out of memory");
    free(text);
    return rc;
}

/* Checks every tensor against 'tensor_crc32' when the file has it (older checkpoints
 * have not). */
static int verify_crcs(const dhf_st_file *f)
{
    const char *text = dhf_st_metadata_get(f, "tensor_crc32");
    if (!text)
        return 0;
    cJSON *o = cJSON_Parse(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return dhf_err_set("%s: __metadata__ 'tensor_crc32' is not a JSON object", dhf_st_path(f));
    }
    int rc = 0;
    for (int i = 0; rc == 0 && i < dhf_st_count(f); i++) {
        const dhf_st_info *t = dhf_st_at(f, i);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(o, t->name);
        if (!cJSON_IsString(want)) {
            rc = dhf_err_set("%s: tensor '%s' has no checksum in 'tensor_crc32'", dhf_st_path(f),
                             t->name);
            break;
        }
        char hex[16];
        snprintf(hex, sizeof hex, "%08x",
                 dhf_crc32_update(0, (const unsigned char *)t->data, (size_t)t->nbytes));
        if (strcmp(hex, want->valuestring) != 0)
            rc = dhf_err_set("%s: tensor '%s' is damaged (CRC-32 %s, recorded %s): the file "
                             "was changed or corrupted after it was written", dhf_st_path(f),
                             t->name, hex, want->valuestring);
    }
    cJSON_Delete(o);
    return rc;
}

int dhf_ckpt_save(const char *path, const dhf_ckpt_entry *entries, int n,
                  const dhf_ckpt_meta *meta)
{
    if (!path || !meta || (n > 0 && !entries) || n < 0)
        return dhf_err_set("dhf_ckpt_save: NULL path, metadata or entries");
    bool with_optim = false;
    for (int i = 0; i < n; i++) {
        const dhf_ckpt_entry *e = &entries[i];
        if (!e->name || !e->name[0] || !e->param)
            return dhf_err_set("%s: entry %d has no name or no parameter", path, i);
        if (strlen(e->name) + strlen(DHF_CKPT_EXP_AVG_SQ_PREFIX) >= NAME_CAP)
            return dhf_err_set("%s: parameter name '%.64s...' is too long", path, e->name);
        if (strncmp(e->name, "optim.", 6) == 0)
            return dhf_err_set("%s: parameter '%s': names starting with 'optim.' are reserved "
                               "for the optimiser state", path, e->name);
        if (!e->exp_avg != !e->exp_avg_sq)
            return dhf_err_set("%s: parameter '%s': exp_avg and exp_avg_sq must both be set "
                               "or both be NULL", path, e->name);
        if (e->exp_avg) {
            with_optim = true;
            if (check_like(path, e->name, "exp_avg", e->param, e->exp_avg) != 0 ||
                check_like(path, e->name, "exp_avg_sq", e->param, e->exp_avg_sq) != 0)
                return -1;
        }
    }
    dhf_st_writer *w = NULL;
    if (dhf_st_writer_new(&w) != 0)
        return -1;
    int rc = 0;
    char name[NAME_CAP];
    for (int i = 0; rc == 0 && i < n; i++) {
        const dhf_ckpt_entry *e = &entries[i];
        rc = dhf_st_writer_add_tensor(w, e->name, e->param);
        if (rc == 0 && e->exp_avg) {
            snprintf(name, sizeof name, "%s%s", DHF_CKPT_EXP_AVG_PREFIX, e->name);
            rc = dhf_st_writer_add_tensor(w, name, e->exp_avg);
            snprintf(name, sizeof name, "%s%s", DHF_CKPT_EXP_AVG_SQ_PREFIX, e->name);
            if (rc == 0)
                rc = dhf_st_writer_add_tensor(w, name, e->exp_avg_sq);
        }
    }
    if (rc == 0)
        rc = write_metadata(w, meta, with_optim, path);
    if (rc == 0)
        rc = add_crcs(w, entries, n, path);
    if (rc == 0)
        rc = dhf_st_writer_save(w, path);
    dhf_st_writer_free(w);
    if (rc != 0 && strstr(dhf_err_msg(), path) == NULL)
        dhf_err_wrap("%s", path);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Load                                                                      */
/* ------------------------------------------------------------------------ */

static const char *required_meta(const dhf_st_file *f, const char *key)
{
    const char *v = dhf_st_metadata_get(f, key);
    if (!v)
        dhf_err_set("%s: __metadata__ has no '%s' (checkpoint written incompletely or by "
                    "another program)", dhf_st_path(f), key);
    return v;
}

static int meta_i64(const dhf_st_file *f, const char *key, int64_t *out)
{
    const char *v = required_meta(f, key);
    if (!v)
        return -1;
    if (parse_i64(v, out) != 0)
        return dhf_err_set("%s: __metadata__ '%s': expected a decimal integer, got '%.64s'",
                           dhf_st_path(f), key, v);
    return 0;
}

static int meta_u64(const dhf_st_file *f, const char *key, uint64_t *out)
{
    const char *v = required_meta(f, key);
    if (!v)
        return -1;
    if (parse_u64(v, out) != 0)
        return dhf_err_set("%s: __metadata__ '%s': expected an unsigned decimal integer "
                           "(0..18446744073709551615), got '%.64s'", dhf_st_path(f), key, v);
    return 0;
}

static int meta_str(const dhf_st_file *f, const char *key, char *dst, size_t cap)
{
    const char *v = required_meta(f, key);
    if (!v)
        return -1;
    if (strlen(v) >= cap)
        return dhf_err_set("%s: __metadata__ '%s': longer than %zu characters", dhf_st_path(f),
                           key, cap - 1);
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int check_schema(const dhf_st_file *f)
{
    const char *path = dhf_st_path(f);
    const char *schema = dhf_st_metadata_get(f, "dhf_schema");
    if (!schema)
        return dhf_err_set("%s: not a dhf checkpoint: __metadata__ has no 'dhf_schema' "
                           "(expected '%s')", path, DHF_CKPT_SCHEMA);
    if (strcmp(schema, DHF_CKPT_SCHEMA) == 0)
        return 0;
    const char *by = dhf_st_metadata_get(f, "dhf_version");
    if (strncmp(schema, DHF_CKPT_SCHEMA_PREFIX, strlen(DHF_CKPT_SCHEMA_PREFIX)) == 0)
        return dhf_err_set("%s: unsupported checkpoint schema '%.64s' (written by dhf %.32s); "
                           "this dhf %s reads only '%s'", path, schema, by ? by : "?",
                           DHF_VERSION, DHF_CKPT_SCHEMA);
    return dhf_err_set("%s: unknown schema '%.64s' in __metadata__ 'dhf_schema' (expected '%s')",
                       path, schema, DHF_CKPT_SCHEMA);
}

static int parse_rng_words(const dhf_st_file *f, const char *text, dhf_ckpt_rng *rng)
{
    rng->num_words = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        char word[32];
        size_t len = strcspn(p, " ");
        if (rng->num_words == DHF_CKPT_RNG_WORDS || len >= sizeof word)
            return dhf_err_set("%s: __metadata__ 'rng.state': expected at most %d decimal "
                               "u64 words, got '%.128s'", dhf_st_path(f), DHF_CKPT_RNG_WORDS, text);
        memcpy(word, p, len);
        word[len] = '\0';
        if (parse_u64(word, &rng->words[rng->num_words]) != 0)
            return dhf_err_set("%s: __metadata__ 'rng.state': '%s' is not a decimal u64",
                               dhf_st_path(f), word);
        rng->num_words++;
        p += len;
    }
    return 0;
}

static int meta_json_object(const dhf_st_file *f, const char *key, const char *text)
{
    cJSON *j = cJSON_Parse(text);
    bool ok = cJSON_IsObject(j);
    cJSON_Delete(j);
    if (!ok)
        return dhf_err_set("%s: __metadata__ '%s': expected a JSON object, got '%.80s'",
                           dhf_st_path(f), key, text);
    return 0;
}

/* Fills *m (owned strings) from an open file whose schema was checked. */
static int meta_from_file(const dhf_st_file *f, dhf_ckpt_meta *m)
{
    const char *path = dhf_st_path(f);
    dhf_ckpt_meta_init(m);
    const char *v;
    if (meta_str(f, "dhf_schema", m->schema, sizeof m->schema) != 0 ||
        meta_i64(f, "step", &m->step) != 0 ||
        meta_str(f, "run_name", m->run_name, sizeof m->run_name) != 0 ||
        meta_str(f, "rng.algorithm", m->rng.algorithm, sizeof m->rng.algorithm) != 0 ||
        meta_u64(f, "rng.seed", &m->rng.seed) != 0 ||
        meta_u64(f, "rng.counter", &m->rng.counter) != 0 || !(v = required_meta(f, "rng.state")) ||
        parse_rng_words(f, v, &m->rng) != 0)
        goto fail;
    v = dhf_st_metadata_get(f, "dhf_version");
    snprintf(m->dhf_version, sizeof m->dhf_version, "%s", v ? v : "");

    if (!(v = required_meta(f, "config")) || meta_json_object(f, "config", v) != 0)
        goto fail;
    if (!(m->owned_[OWN_CONFIG] = dhf_strdup(v)))
        goto oom;
    m->config_json = m->owned_[OWN_CONFIG];

    v = dhf_st_metadata_get(f, "trainer_state");
    if (v && meta_json_object(f, "trainer_state", v) != 0)
        goto fail;
    if (!(m->owned_[OWN_TRAINER] = dhf_strdup(v ? v : "{}")))
        goto oom;
    m->trainer_json = m->owned_[OWN_TRAINER];

    if (dhf_st_metadata_get(f, "best.metric")) {
        m->has_best = true;
        if (meta_str(f, "best.metric", m->best_metric, sizeof m->best_metric) != 0 ||
            meta_i64(f, "best.step", &m->best_step) != 0 || !(v = required_meta(f, "best.value")))
            goto fail;
        char *end = NULL;
        m->best_value = strtod(v, &end);
        if (!v[0] || *end) {
            dhf_err_set("%s: __metadata__ 'best.value': expected a number, got '%.64s'", path, v);
            goto fail;
        }
    }
    if ((v = dhf_st_metadata_get(f, "optim"))) {
        if (strcmp(v, "adamw") != 0) {
            dhf_err_set("%s: __metadata__ 'optim': unknown optimiser '%.32s' (expected 'adamw')",
                        path, v);
            goto fail;
        }
        m->has_optim = true;
        if (meta_i64(f, "optim.step", &m->optim_step) != 0)
            goto fail;
    }
    if ((v = dhf_st_metadata_get(f, "cache_identity"))) {
        m->has_cache = true;
        if (dhf_cache_identity_from_json(path, v, &m->cache, &m->owned_[OWN_FEATURES]) != 0)
            goto fail;
    }
    return 0;
oom:
    dhf_err_set("%s: out of memory reading __metadata__", path);
fail:
    dhf_ckpt_meta_free(m);
    return -1;
}

int dhf_ckpt_read_meta(const char *path, dhf_ckpt_meta *meta)
{
    if (!path || !meta)
        return dhf_err_set("dhf_ckpt_read_meta: NULL argument");
    dhf_st_file *f = NULL;
    if (dhf_st_open(path, &f) != 0)
        return -1;
    int rc = check_schema(f);
    if (rc == 0)
        rc = verify_crcs(f);
    if (rc == 0)
        rc = meta_from_file(f, meta);
    dhf_st_close(f);
    return rc;
}

/* Checks tensor `name` against the handle t: present, same shape and dtype. */
static int check_stored(const dhf_st_file *f, const char *name, dhf_tensor t)
{
    const dhf_st_info *info;
    if (dhf_st_get(f, name, &info) != 0)
        return -1;
    int64_t shape[DHF_MAX_DIMS];
    int ndim = 0;
    if (dhf_shape(t, shape, &ndim) != DHF_OK)
        return dhf_err_set("%s: tensor '%s': %s", dhf_st_path(f), name, dhf_last_error());
    if (!same_shape(info->shape, info->ndim, shape, ndim)) {
        char want[256], got[256];
        dhf_format_shape(want, sizeof want, shape, ndim);
        dhf_format_shape(got, sizeof got, info->shape, info->ndim);
        return dhf_err_set("%s: tensor '%s': shape mismatch (expected %s as in the network, "
                           "got %s)", dhf_st_path(f), name, want, got);
    }
    dhf_dtype dt = dhf_get_dtype(t);
    if ((int)info->dtype != (int)dt)
        return dhf_err_set("%s: tensor '%s': dtype mismatch (expected %s, got %s)",
                           dhf_st_path(f), name, dhf_st_dtype_name((dhf_st_dtype)dt),
                           dhf_st_dtype_name(info->dtype));
    return 0;
}

/* Is `name` a parameter of the list, or an optimiser tensor of one? */
static bool known_name(const char *name, const dhf_ckpt_entry *entries, int n)
{
    const char *base = name;
    size_t la = strlen(DHF_CKPT_EXP_AVG_PREFIX), lq = strlen(DHF_CKPT_EXP_AVG_SQ_PREFIX);
    if (strncmp(name, DHF_CKPT_EXP_AVG_SQ_PREFIX, lq) == 0)
        base = name + lq;
    else if (strncmp(name, DHF_CKPT_EXP_AVG_PREFIX, la) == 0)
        base = name + la;
    for (int i = 0; i < n; i++)
        if (strcmp(entries[i].name, base) == 0)
            return true;
    return false;
}

static int copy_into(const dhf_st_file *f, const char *name, dhf_tensor dst)
{
    dhf_tensor src = NULL;
    if (dhf_st_load(f, name, &src) != 0)
        return -1;
    dhf_status st = dhf_copy_(dst, src);
    dhf_free(src);
    if (st != DHF_OK)
        return dhf_err_set("%s: tensor '%s': cannot copy into the network: %s", dhf_st_path(f),
                           name, dhf_last_error());
    return 0;
}

int dhf_ckpt_load(const char *path, const dhf_ckpt_entry *entries, int n, dhf_ckpt_meta *meta)
{
    if (!path || n < 0 || (n > 0 && !entries))
        return dhf_err_set("dhf_ckpt_load: NULL path or entries");
    dhf_st_file *f = NULL;
    if (dhf_st_open(path, &f) != 0)
        return -1;
    dhf_ckpt_meta m;
    int rc = check_schema(f);
    if (rc == 0)
        rc = verify_crcs(f);
    if (rc == 0)
        rc = meta_from_file(f, &m);
    if (rc != 0) {
        dhf_st_close(f);
        return -1;
    }
    char name[NAME_CAP];
    for (int i = 0; rc == 0 && i < n; i++) {
        const dhf_ckpt_entry *e = &entries[i];
        if (!e->name || !e->param || !e->exp_avg != !e->exp_avg_sq) {
            rc = dhf_err_set("%s: entry %d: needs a name, a parameter, and both moments or "
                             "neither", path, i);
            break;
        }
        if (strlen(e->name) + strlen(DHF_CKPT_EXP_AVG_SQ_PREFIX) >= NAME_CAP) {
            rc = dhf_err_set("%s: parameter name '%.64s...' is too long", path, e->name);
            break;
        }
        rc = check_stored(f, e->name, e->param);
        if (rc == 0 && e->exp_avg) {
            if (!m.has_optim) {
                rc = dhf_err_set("%s: holds no AdamW state (no 'optim' in __metadata__), but "
                                 "the optimiser state of '%s' was asked for", path, e->name);
                break;
            }
            snprintf(name, sizeof name, "%s%s", DHF_CKPT_EXP_AVG_PREFIX, e->name);
            rc = check_stored(f, name, e->exp_avg);
            snprintf(name, sizeof name, "%s%s", DHF_CKPT_EXP_AVG_SQ_PREFIX, e->name);
            if (rc == 0)
                rc = check_stored(f, name, e->exp_avg_sq);
        }
    }
    for (int i = 0; rc == 0 && i < dhf_st_count(f); i++) {
        const char *tn = dhf_st_at(f, i)->name;
        if (!known_name(tn, entries, n))
            rc = dhf_err_set("%s: tensor '%s' belongs to no parameter of the network (%d "
                             "parameters; a checkpoint of a different network?)", path, tn, n);
    }
    if (rc == 0) {
        bool prev = true;
        dhf_set_grad_enabled(false, &prev);
        for (int i = 0; rc == 0 && i < n; i++) {
            const dhf_ckpt_entry *e = &entries[i];
            rc = copy_into(f, e->name, e->param);
            if (rc == 0 && e->exp_avg) {
                snprintf(name, sizeof name, "%s%s", DHF_CKPT_EXP_AVG_PREFIX, e->name);
                rc = copy_into(f, name, e->exp_avg);
                snprintf(name, sizeof name, "%s%s", DHF_CKPT_EXP_AVG_SQ_PREFIX, e->name);
                if (rc == 0)
                    rc = copy_into(f, name, e->exp_avg_sq);
            }
        }
        dhf_set_grad_enabled(prev, NULL);
    }
    dhf_st_close(f);
    if (rc == 0 && meta)
        *meta = m;
    else
        dhf_ckpt_meta_free(&m);
    return rc;
}

int dhf_ckpt_meta_config(const dhf_ckpt_meta *meta, dhf_config *cfg)
{
    if (!meta || !cfg)
        return dhf_err_set("dhf_ckpt_meta_config: NULL argument");
    dhf_config c;
    dhf_config_defaults(&c);
    /* JSON is YAML's flow style, so the config loader reads it as it is. */
    if (meta->config_json &&
        dhf_config_load_string(&c, meta->config_json, "checkpoint __metadata__ 'config'") != 0)
        return -1;
    *cfg = c;
    return 0;
}
