/* test_checkpoint.c — the checkpoint format: save -> load is bit-exact for parameters
 * and AdamW moments (also for -0, subnormals, NaN payloads) and for every metadata
 * field; refused files (truncated, corrupt header, unknown schema, wrong shapes or
 * dtypes, foreign tensors, missing optimiser state, bad metadata values) give errors
 * that name the file and the tensor or key, and leave the target handles untouched.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/safetensors.h"
#include "shim/torch_shim.h"
#include "train/checkpoint.h"

#define NP 4   /* parameters in the toy network */

static char tmp_dir[64];
static char ckpt_path[128];
static long live_at_start;

static const char *const names[NP] = {
    "mixing_weights", "bottlenecks.0.conv1.weight", "bottlenecks.0.conv1.norm.bias",
    "bottlenecks.1.shortcut.weight",
};
static const int64_t shapes[NP][4] = {{6}, {4, 3, 1, 1}, {4}, {8, 2, 1, 1}};
static const int ndims[NP] = {1, 4, 1, 4};

typedef struct {
    dhf_tensor p[NP], m[NP], v[NP];
    dhf_ckpt_entry e[NP];
} net;

static int64_t numel_of(int i)
{
    int64_t n = 1;
    for (int d = 0; d < ndims[i]; d++)
        n *= shapes[i][d];
    return n;
}

/* Random values (seeded), or zeros; params are autograd leaves like the real ones. */
static void net_make(net *n, bool random, uint64_t seed)
{
    for (int i = 0; i < NP; i++) {
        dhf_device cpu = {DHF_CPU, 0};
        if (random) {
            assert_int_equal(dhf_randn(seed + 3 * i, DHF_F32, shapes[i], ndims[i], &n->p[i]), DHF_OK);
            assert_int_equal(dhf_randn(seed + 3 * i + 1, DHF_F32, shapes[i], ndims[i], &n->m[i]), DHF_OK);
            dhf_tensor r = NULL;
            assert_int_equal(dhf_rand(seed + 3 * i + 2, DHF_F32, shapes[i], ndims[i], &r), DHF_OK);
            n->v[i] = r;   /* second moments are >= 0 */
        } else {
            assert_int_equal(dhf_zeros(DHF_F32, cpu, shapes[i], ndims[i], &n->p[i]), DHF_OK);
            assert_int_equal(dhf_zeros(DHF_F32, cpu, shapes[i], ndims[i], &n->m[i]), DHF_OK);
            assert_int_equal(dhf_zeros(DHF_F32, cpu, shapes[i], ndims[i], &n->v[i]), DHF_OK);
        }
        assert_int_equal(dhf_set_requires_grad(n->p[i], true), DHF_OK);
        n->e[i] = (dhf_ckpt_entry){names[i], n->p[i], n->m[i], n->v[i]};
    }
}

static void net_free(net *n)
{
    for (int i = 0; i < NP; i++) {
        dhf_free(n->p[i]);
        dhf_free(n->m[i]);
        dhf_free(n->v[i]);
    }
    memset(n, 0, sizeof *n);
}

/* Bit patterns no arithmetic would produce by accident. */
static void put_special_values(net *n)
{
    const uint32_t bits[6] = {0x80000000u /* -0 */, 0x00000001u /* min subnormal */,
                              0x7f7fffffu /* FLT_MAX */, 0x7fc01234u /* NaN payload */,
                              0xff800000u /* -inf */, 0x3f800001u /* 1 + ulp */};
    float f[6];
    memcpy(f, bits, sizeof f);
    dhf_tensor t = NULL;
    assert_int_equal(dhf_from_buffer(f, DHF_F32, shapes[0], 1, &t), DHF_OK);
    bool prev;
    dhf_set_grad_enabled(false, &prev);
    assert_int_equal(dhf_copy_(n->m[0], t), DHF_OK);
    assert_int_equal(dhf_copy_(n->p[0], t), DHF_OK);
    dhf_set_grad_enabled(prev, NULL);
    dhf_free(t);
}

static void assert_same_bits(dhf_tensor a, dhf_tensor b, int64_t numel, const char *what)
{
    size_t nb = (size_t)numel * sizeof(float);
    uint32_t *x = malloc(nb), *y = malloc(nb);
    assert_int_equal(dhf_to_buffer(a, DHF_F32, x, nb), DHF_OK);
    assert_int_equal(dhf_to_buffer(b, DHF_F32, y, nb), DHF_OK);
    for (int64_t i = 0; i < numel; i++)
        if (x[i] != y[i])
            fail_msg("%s[%" PRId64 "]: 0x%08x != 0x%08x", what, i, x[i], y[i]);
    free(x);
    free(y);
}

static void assert_all_zero(dhf_tensor t, int64_t numel, const char *what)
{
    float *x = malloc((size_t)numel * sizeof *x);
    assert_int_equal(dhf_to_buffer(t, DHF_F32, x, (size_t)numel * sizeof *x), DHF_OK);
    for (int64_t i = 0; i < numel; i++)
        if (x[i] != 0.0f)
            fail_msg("%s[%" PRId64 "] = %g: a refused load changed the handle", what, i, x[i]);
    free(x);
}

static dhf_config g_cfg;
static char *g_cfg_json;

static void fill_meta(dhf_ckpt_meta *m)
{
    dhf_ckpt_meta_init(m);
    m->step = 1234;
    snprintf(m->run_name, sizeof m->run_name, "tiny-run \"quoted\" \xC3\xA9");
    m->config_json = g_cfg_json;
    snprintf(m->rng.algorithm, sizeof m->rng.algorithm, "xoshiro256**");
    m->rng.seed = UINT64_MAX;                     /* not representable as a double */
    m->rng.counter = 9007199254740993ull;         /* 2^53 + 1 */
    m->rng.num_words = 4;
    m->rng.words[0] = 0;
    m->rng.words[1] = 1;
    m->rng.words[2] = (1ull << 63) + 5;
    m->rng.words[3] = 12345678901234567890ull;
    m->has_best = true;
    snprintf(m->best_metric, sizeof m->best_metric, "pck_bbox");
    m->best_value = 0.1 + 0.2;                    /* 0.30000000000000004: needs 17 digits */
    m->best_step = 1000;
    m->has_cache = true;
    snprintf(m->cache.model_name, sizeof m->cache.model_name, "tiny-sd");
    snprintf(m->cache.model_hash, sizeof m->cache.model_hash, "abc123");
    m->cache.features_json = "{\"diffusion_mode\":\"inversion\",\"num_timesteps\":50}";
    m->cache.num_steps = 3;
    m->cache.save_timestep[0] = 49;
    m->cache.save_timestep[1] = 25;
    m->cache.save_timestep[2] = 0;
    m->cache.num_layers = 2;
    const int64_t chw[2][3] = {{3, 8, 8}, {2, 16, 16}};
    memcpy(m->cache.layer_chw, chw, sizeof chw);
    m->trainer_json = "{\"epoch\":0,\"position\":17}";
    m->optim_step = 1234;
}

static int setup(void **state)
{
    strcpy(tmp_dir, "/tmp/dhf_ckpt_XXXXXX");
    if (!mkdtemp(tmp_dir))
        return -1;
    snprintf(ckpt_path, sizeof ckpt_path, "%s/last.safetensors", tmp_dir);
    dhf_config_defaults(&g_cfg);
    snprintf(g_cfg.run_name, sizeof g_cfg.run_name, "tiny-run");
    g_cfg.lr = 3e-4;
    g_cfg.seed = 9223372036854775807LL;
    g_cfg.save_timestep.n = 3;
    g_cfg.save_timestep.v[0] = 49;
    g_cfg.save_timestep.v[1] = 25;
    g_cfg.save_timestep.v[2] = 0;
    snprintf(g_cfg.prompt, sizeof g_cfg.prompt, "a \"photo\" of a\tcat \\ \xC3\xA9");
    g_cfg_json = dhf_config_to_json(&g_cfg);
    live_at_start = dhf_live_tensors();
    return g_cfg_json ? 0 : -1;
}

static int teardown(void **state)
{
    free(g_cfg_json);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Saves the reference network (seed 7, special values) to ckpt_path. */
static void save_reference(net *src)
{
    net_make(src, true, 7);
    put_special_values(src);
    dhf_ckpt_meta m;
    fill_meta(&m);
    if (dhf_ckpt_save(ckpt_path, src->e, NP, &m) != 0)
        fail_msg("save: %s", dhf_err_msg());
}

static void test_round_trip_bit_exact(void **state)
{
    net src, dst;
    save_reference(&src);
    net_make(&dst, false, 0);
    dhf_ckpt_meta m;
    if (dhf_ckpt_load(ckpt_path, dst.e, NP, &m) != 0)
        fail_msg("load: %s", dhf_err_msg());
    for (int i = 0; i < NP; i++) {
        assert_same_bits(src.p[i], dst.p[i], numel_of(i), names[i]);
        assert_same_bits(src.m[i], dst.m[i], numel_of(i), "exp_avg");
        assert_same_bits(src.v[i], dst.v[i], numel_of(i), "exp_avg_sq");
        assert_true(dhf_requires_grad(dst.p[i]));   /* still a trainable leaf */
    }
    /* metadata, field by field */
    dhf_ckpt_meta want;
    fill_meta(&want);
    assert_string_equal(m.schema, DHF_CKPT_SCHEMA);
    assert_string_equal(m.dhf_version, DHF_VERSION);
    assert_int_equal(m.step, 1234);
    assert_string_equal(m.run_name, want.run_name);
    assert_string_equal(m.config_json, g_cfg_json);
    assert_string_equal(m.rng.algorithm, "xoshiro256**");
    assert_true(m.rng.seed == UINT64_MAX);
    assert_true(m.rng.counter == 9007199254740993ull);
    assert_int_equal(m.rng.num_words, 4);
    for (int i = 0; i < 4; i++)
        assert_true(m.rng.words[i] == want.rng.words[i]);
    assert_true(m.has_best);
    assert_string_equal(m.best_metric, "pck_bbox");
    assert_memory_equal(&m.best_value, &want.best_value, sizeof(double));
    assert_int_equal(m.best_step, 1000);
    assert_true(m.has_optim);
    assert_int_equal(m.optim_step, 1234);
    assert_true(m.has_cache);
    assert_string_equal(m.cache.model_name, "tiny-sd");
    assert_string_equal(m.cache.model_hash, "abc123");
    assert_int_equal(m.cache.num_steps, 3);
    assert_int_equal(m.cache.save_timestep[0], 49);
    assert_int_equal(m.cache.save_timestep[2], 0);
    assert_int_equal(m.cache.num_layers, 2);
    assert_int_equal(m.cache.layer_chw[1][0], 2);
    assert_int_equal(m.cache.layer_chw[1][2], 16);
    assert_int_equal(dhf_cache_identity_check(&want.cache, "checkpoint", &m.cache, "cache"), 0);
    assert_string_equal(m.trainer_json, want.trainer_json);
    /* the config comes back as the same resolved config */
    dhf_config back;
    if (dhf_ckpt_meta_config(&m, &back) != 0)
        fail_msg("meta_config: %s", dhf_err_msg());
    char *back_json = dhf_config_to_json(&back);
    assert_string_equal(back_json, g_cfg_json);
    assert_int_equal(back.seed, 9223372036854775807LL);
    assert_string_equal(back.prompt, g_cfg.prompt);
    free(back_json);
    dhf_ckpt_meta_free(&m);
    assert_null(m.config_json);

    /* read_meta gives the same metadata without the tensors */
    assert_int_equal(dhf_ckpt_read_meta(ckpt_path, &m), 0);
    assert_int_equal(m.step, 1234);
    assert_true(m.rng.seed == UINT64_MAX);
    dhf_ckpt_meta_free(&m);

    /* saving what was loaded gives the same bytes: the format is deterministic */
    char again[160];
    snprintf(again, sizeof again, "%s/again.safetensors", tmp_dir);
    fill_meta(&m);
    assert_int_equal(dhf_ckpt_save(again, dst.e, NP, &m), 0);
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    assert_int_equal(dhf_read_file(ckpt_path, &a, &la), 0);
    assert_int_equal(dhf_read_file(again, &b, &lb), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    remove(again);
    net_free(&src);
    net_free(&dst);
    assert_int_equal(dhf_live_tensors(), live_at_start);
}

static void test_save_is_atomic_and_overwrites(void **state)
{
    net src;
    save_reference(&src);
    net_free(&src);
    save_reference(&src);   /* the second save replaces the first */
    net_free(&src);
    DIR *d = opendir(tmp_dir);
    assert_non_null(d);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        files++;
        if (strstr(de->d_name, ".tmp"))
            fail_msg("temporary file left behind: %s", de->d_name);
    }
    closedir(d);
    assert_int_equal(files, 1);
}

/* Network-only load (eval): entries without moments read no optimiser state. */
static void test_load_network_only(void **state)
{
    net src, dst;
    save_reference(&src);
    net_make(&dst, false, 0);
    dhf_ckpt_entry e[NP];
    for (int i = 0; i < NP; i++)
        e[i] = (dhf_ckpt_entry){names[i], dst.p[i], NULL, NULL};
    if (dhf_ckpt_load(ckpt_path, e, NP, NULL) != 0)
        fail_msg("%s", dhf_err_msg());
    for (int i = 0; i < NP; i++) {
        assert_same_bits(src.p[i], dst.p[i], numel_of(i), names[i]);
        assert_all_zero(dst.m[i], numel_of(i), "exp_avg");
    }
    /* a file saved without moments cannot restore an optimiser */
    char path[160];
    snprintf(path, sizeof path, "%s/noopt.safetensors", tmp_dir);
    dhf_ckpt_meta m;
    fill_meta(&m);
    assert_int_equal(dhf_ckpt_save(path, e, NP, &m), 0);
    assert_int_equal(dhf_ckpt_read_meta(path, &m), 0);
    assert_false(m.has_optim);
    dhf_ckpt_meta_free(&m);
    assert_int_equal(dhf_ckpt_load(path, dst.e, NP, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), path));
    assert_non_null(strstr(dhf_err_msg(), "no AdamW state"));
    remove(path);
    net_free(&src);
    net_free(&dst);
    assert_int_equal(dhf_live_tensors(), live_at_start);
}

static void write_bytes(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void test_truncated_and_corrupt(void **state)
{
    net src, dst;
    save_reference(&src);
    net_make(&dst, false, 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(dhf_read_file(ckpt_path, &data, &len), 0);
    char path[160];
    snprintf(path, sizeof path, "%s/broken.safetensors", tmp_dir);

    /* cut inside the data region */
    write_bytes(path, data, len - 10);
    assert_int_equal(dhf_ckpt_load(path, dst.e, NP, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), path));
    /* cut inside the header */
    write_bytes(path, data, 40);
    assert_int_equal(dhf_ckpt_load(path, dst.e, NP, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), path));
    /* empty file */
    write_bytes(path, data, 0);
    assert_int_equal(dhf_ckpt_load(path, dst.e, NP, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), path));
    /* header JSON damaged */
    data[8] = '[';
    data[9] = '!';
    write_bytes(path, data, len);
    assert_int_equal(dhf_ckpt_load(path, dst.e, NP, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), path));
    assert_int_equal(dhf_ckpt_read_meta(path, &(dhf_ckpt_meta){0}), -1);
    /* missing file */
    assert_int_equal(dhf_ckpt_load("/nonexistent/ckpt.safetensors", dst.e, NP, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), "/nonexistent/ckpt.safetensors"));
    for (int i = 0; i < NP; i++)
        assert_all_zero(dst.p[i], numel_of(i), names[i]);
    free(data);
    remove(path);
    net_free(&src);
    net_free(&dst);
    assert_int_equal(dhf_live_tensors(), live_at_start);
}

static void test_shape_and_dtype_mismatch(void **state)
{
    net src, dst;
    save_reference(&src);
    net_make(&dst, false, 0);
    /* the network's conv1 has 5 output channels, the file's 4 */
    const int64_t wrong[4] = {5, 3, 1, 1};
    dhf_device cpu = {DHF_CPU, 0};
    dhf_tensor w5 = NULL;
    assert_int_equal(dhf_zeros(DHF_F32, cpu, wrong, 4, &w5), DHF_OK);
    dhf_ckpt_entry e[NP];
    memcpy(e, dst.e, sizeof e);
    e[1].param = w5;
    e[1].exp_avg = e[1].exp_avg_sq = NULL;
    assert_int_equal(dhf_ckpt_load(ckpt_path, e, NP, NULL), -1);
    const char *msg = dhf_err_msg();
    assert_non_null(strstr(msg, ckpt_path));
    assert_non_null(strstr(msg, "tensor 'bottlenecks.0.conv1.weight'"));
    assert_non_null(strstr(msg, "expected [5, 3, 1, 1]"));
    assert_non_null(strstr(msg, "got [4, 3, 1, 1]"));
    /* refused before anything was written: the first entry is still zero */
    assert_all_zero(dst.p[0], numel_of(0), names[0]);

    /* a moment with the wrong shape is named with its optim.* name */
    memcpy(e, dst.e, sizeof e);
    e[1].exp_avg_sq = w5;
    assert_int_equal(dhf_ckpt_load(ckpt_path, e, NP, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), "tensor 'optim.exp_avg_sq.bottlenecks.0.conv1.weight'"));

    /* same shape, other dtype */
    dhf_tensor d = NULL;
    assert_int_equal(dhf_zeros(DHF_F64, cpu, shapes[2], 1, &d), DHF_OK);
    memcpy(e, dst.e, sizeof e);
    e[2] = (dhf_ckpt_entry){names[2], d, NULL, NULL};
    assert_int_equal(dhf_ckpt_load(ckpt_path, e, NP, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), "tensor 'bottlenecks.0.conv1.norm.bias': dtype mismatch"));
    for (int i = 0; i < NP; i++)
        assert_all_zero(dst.p[i], numel_of(i), names[i]);

    /* saving moments that are not shaped like their parameter is refused */
    memcpy(e, src.e, sizeof e);
    e[1].exp_avg = w5;
    dhf_ckpt_meta m;
    fill_meta(&m);
    char path[160];
    snprintf(path, sizeof path, "%s/bad.safetensors", tmp_dir);
    assert_int_equal(dhf_ckpt_save(path, e, NP, &m), -1);
    assert_non_null(strstr(dhf_err_msg(), "'bottlenecks.0.conv1.weight'"));
    assert_false(dhf_path_exists(path));
    dhf_free(w5);
    dhf_free(d);
    net_free(&src);
    net_free(&dst);
    assert_int_equal(dhf_live_tensors(), live_at_start);
}

static void test_missing_and_foreign_tensors(void **state)
{
    net src, dst;
    save_reference(&src);
    net_make(&dst, false, 0);
    /* the network has a parameter the file lacks */
    dhf_device cpu = {DHF_CPU, 0};
    dhf_tensor extra = NULL;
    const int64_t s1[1] = {3};
    assert_int_equal(dhf_zeros(DHF_F32, cpu, s1, 1, &extra), DHF_OK);
    dhf_ckpt_entry e[NP + 1];
    memcpy(e, dst.e, sizeof dst.e);
    e[NP] = (dhf_ckpt_entry){"bottlenecks.2.conv1.weight", extra, NULL, NULL};
    assert_int_equal(dhf_ckpt_load(ckpt_path, e, NP + 1, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), ckpt_path));
    assert_non_null(strstr(dhf_err_msg(), "tensor 'bottlenecks.2.conv1.weight'"));
    /* the file has a parameter the network lacks (a bigger network's checkpoint) */
    assert_int_equal(dhf_ckpt_load(ckpt_path, dst.e, NP - 1, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), "tensor 'bottlenecks.1.shortcut.weight' belongs to no "
                                          "parameter"));
    for (int i = 0; i < NP; i++)
        assert_all_zero(dst.p[i], numel_of(i), names[i]);
    dhf_free(extra);
    net_free(&src);
    net_free(&dst);
    assert_int_equal(dhf_live_tensors(), live_at_start);
}

/* A raw safetensors file with the reference tensors and the given metadata. */
static void write_raw(const char *path, const char *const *kv, int nkv)
{
    const float x[6] = {1, 2, 3, 4, 5, 6};
    dhf_st_writer *w = NULL;
    assert_int_equal(dhf_st_writer_new(&w), 0);
    assert_int_equal(dhf_st_writer_add(w, "mixing_weights", DHF_ST_F32, shapes[0], 1, x), 0);
    for (int i = 0; i < nkv; i++)
        assert_int_equal(dhf_st_writer_set_metadata(w, kv[2 * i], kv[2 * i + 1]), 0);
    assert_int_equal(dhf_st_writer_save(w, path), 0);
    dhf_st_writer_free(w);
}

static void test_schema_and_metadata_checks(void **state)
{
    char path[160];
    snprintf(path, sizeof path, "%s/raw.safetensors", tmp_dir);
    dhf_ckpt_meta m;
    dhf_tensor p = NULL;
    dhf_device cpu = {DHF_CPU, 0};
    assert_int_equal(dhf_zeros(DHF_F32, cpu, shapes[0], 1, &p), DHF_OK);
    dhf_ckpt_entry e = {"mixing_weights", p, NULL, NULL};

    /* a newer schema */
    const char *newer[] = {"dhf_schema", "dhf-checkpoint-2", "dhf_version", "9.0.0"};
    write_raw(path, newer, 2);
    assert_int_equal(dhf_ckpt_load(path, &e, 1, NULL), -1);
    const char *msg = dhf_err_msg();
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "unsupported checkpoint schema 'dhf-checkpoint-2'"));
    assert_non_null(strstr(msg, "9.0.0"));
    assert_non_null(strstr(msg, "'" DHF_CKPT_SCHEMA "'"));
    assert_int_equal(dhf_ckpt_read_meta(path, &m), -1);
    assert_non_null(strstr(dhf_err_msg(), "dhf-checkpoint-2"));
    /* something else entirely */
    const char *other[] = {"dhf_schema", "pytorch-lightning"};
    write_raw(path, other, 1);
    assert_int_equal(dhf_ckpt_load(path, &e, 1, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), "unknown schema 'pytorch-lightning'"));
    /* no schema: a plain safetensors file (e.g. a fixture) */
    write_raw(path, NULL, 0);
    assert_int_equal(dhf_ckpt_load(path, &e, 1, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), "not a dhf checkpoint"));
    assert_all_zero(p, 6, "mixing_weights");

    /* right schema, broken values: each error names its key */
    const char *base[] = {"dhf_schema", DHF_CKPT_SCHEMA, "step", "12", "run_name", "r",
                          "config", "{}", "rng.algorithm", "splitmix64", "rng.seed", "1",
                          "rng.counter", "2", "rng.state", ""};
    write_raw(path, base, 8);
    assert_int_equal(dhf_ckpt_load(path, &e, 1, &m), 0);   /* the minimal valid file */
    assert_int_equal(m.step, 12);
    assert_false(m.has_best);
    assert_false(m.has_cache);
    assert_int_equal(m.best_step, -1);
    assert_string_equal(m.trainer_json, "{}");
    dhf_ckpt_meta_free(&m);
    struct { int slot; const char *value; const char *expect; } cases[] = {
        {3, "12x", "'step': expected a decimal integer, got '12x'"},
        {3, "", "'step'"},
        {11, "-1", "'rng.seed': expected an unsigned decimal integer"},
        {11, "18446744073709551616", "'rng.seed'"},   /* 2^64 overflows */
        {13, "1e3", "'rng.counter'"},
        {15, "1 2 3 4 5", "'rng.state': expected at most 4"},
        {15, "7 x", "'rng.state': 'x' is not a decimal u64"},
        {7, "[1, 2]", "'config': expected a JSON object"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *kv[16];
        memcpy(kv, base, sizeof kv);
        kv[cases[c].slot] = cases[c].value;
        write_raw(path, kv, 8);
        assert_int_equal(dhf_ckpt_read_meta(path, &m), -1);
        if (!strstr(dhf_err_msg(), cases[c].expect) || !strstr(dhf_err_msg(), path))
            fail_msg("case %zu: message '%s' lacks '%s'", c, dhf_err_msg(), cases[c].expect);
    }
    /* a required key missing */
    write_raw(path, base, 7);   /* no rng.state */
    assert_int_equal(dhf_ckpt_read_meta(path, &m), -1);
    assert_non_null(strstr(dhf_err_msg(), "has no 'rng.state'"));
    remove(path);
    dhf_free(p);
    assert_int_equal(dhf_live_tensors(), live_at_start);
}

static void test_cache_identity(void **state)
{
    dhf_ckpt_meta a, b;
    fill_meta(&a);
    fill_meta(&b);
    assert_int_equal(dhf_cache_identity_check(&a.cache, "checkpoint x", &b.cache, "cache y"), 0);
    /* key order inside the features JSON does not matter */
    b.cache.features_json = "{\"num_timesteps\":50, \"diffusion_mode\":\"inversion\"}";
    assert_int_equal(dhf_cache_identity_check(&a.cache, "checkpoint x", &b.cache, "cache y"), 0);

    b.cache.save_timestep[1] = 20;
    assert_int_equal(dhf_cache_identity_check(&a.cache, "checkpoint x", &b.cache, "cache y"), -1);
    const char *msg = dhf_err_msg();
    assert_non_null(strstr(msg, "cache y does not match checkpoint x"));
    assert_non_null(strstr(msg, "save_timestep[1] differs: 25 vs 20 (checkpoint x vs cache y)"));
    /* both descriptions, each on its own line */
    assert_non_null(strstr(msg, "\n  checkpoint x: model tiny-sd (hash abc123), save_timestep "
                                "[49, 25, 0], layers [3x8x8, 2x16x16]"));
    assert_non_null(strstr(msg, "\n  cache y: model tiny-sd (hash abc123), save_timestep "
                                "[49, 20, 0]"));
    fill_meta(&b);
    snprintf(b.cache.model_hash, sizeof b.cache.model_hash, "fff");
    assert_int_equal(dhf_cache_identity_check(&a.cache, "A", &b.cache, "B"), -1);
    assert_non_null(strstr(dhf_err_msg(), "different model: tiny-sd (hash abc123) vs tiny-sd "
                                          "(hash fff)"));
    fill_meta(&b);
    b.cache.layer_chw[0][1] = 4;
    assert_int_equal(dhf_cache_identity_check(&a.cache, "A", &b.cache, "B"), -1);
    assert_non_null(strstr(dhf_err_msg(), "layer 0 shape differs: 3x8x8 vs 3x4x8"));
    /* generation features through an inversion-trained network (the paper's use): the
     * mode, prompts and guidance may differ, nothing else */
    fill_meta(&b);
    b.cache.features_json = "{\"diffusion_mode\":\"generation\",\"num_timesteps\":50,"
                            "\"prompt\":\"\",\"guidance_scale\":7.5,\"negative_prompt\":\"ugly\"}";
    assert_int_equal(dhf_cache_identity_check(&a.cache, "A", &b.cache, "B"), 0);
    b.cache.features_json = "{\"diffusion_mode\":\"generation\",\"num_timesteps\":40}";
    assert_int_equal(dhf_cache_identity_check(&a.cache, "A", &b.cache, "B"), -1);
    assert_non_null(strstr(dhf_err_msg(), "different feature settings"));
    /* two inversion caches still may not differ in their prompt */
    a.cache.features_json = "{\"diffusion_mode\":\"inversion\",\"num_timesteps\":50,\"prompt\":\"\"}";
    b.cache.features_json = "{\"diffusion_mode\":\"inversion\",\"num_timesteps\":50,\"prompt\":\"a cat\"}";
    assert_int_equal(dhf_cache_identity_check(&a.cache, "A", &b.cache, "B"), -1);
    fill_meta(&a);

    /* from a cache layout */
    dhf_cache_layout l;
    dhf_cache_layout_init(&l);
    l.num_layers = 2;
    l.layer_chw[0][0] = 3, l.layer_chw[0][1] = 8, l.layer_chw[0][2] = 8;
    l.layer_chw[1][0] = 2, l.layer_chw[1][1] = 16, l.layer_chw[1][2] = 16;
    l.num_steps = 3;
    l.save_label[0] = 49, l.save_label[1] = 25, l.save_label[2] = 0;
    snprintf(l.model_name, sizeof l.model_name, "tiny-sd");
    snprintf(l.model_hash, sizeof l.model_hash, "abc123");
    l.identity_json = "{\"diffusion_mode\":\"inversion\",\"num_timesteps\":50}";
    dhf_cache_identity id;
    assert_int_equal(dhf_cache_identity_from_layout(&l, &id), 0);
    assert_int_equal(dhf_cache_identity_check(&a.cache, "A", &id, "B"), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_bit_exact),
        cmocka_unit_test(test_save_is_atomic_and_overwrites),
        cmocka_unit_test(test_load_network_only),
        cmocka_unit_test(test_truncated_and_corrupt),
        cmocka_unit_test(test_shape_and_dtype_mismatch),
        cmocka_unit_test(test_missing_and_foreign_tensors),
        cmocka_unit_test(test_schema_and_metadata_checks),
        cmocka_unit_test(test_cache_identity),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
