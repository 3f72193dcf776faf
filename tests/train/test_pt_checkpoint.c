/* test_pt_checkpoint.c — dhf import / dhf export (train/pt_checkpoint.h):
 *  - a file in the exact layout torch.save gives the paper's checkpoints, written by
 *    tests/train/data/make_torch_save.py with Python's own pickle (skipped when there
 *    is no python3): every imported value checked against the formula it was written
 *    with, the detectron2 parameter order of the AdamW state, the config;
 *  - export -> import: every tensor and the config come back bit-identical;
 *  - broken files: a refused global, a wrong shape, a missing and an unknown key, a
 *    truncated zip, a file that is no zip: each a one-line error naming what is wrong.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tmpdir_util.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/safetensors.h"
#include "train/bottleneck.h"
#include "train/checkpoint.h"
#include "train/pt_checkpoint.h"

#define SCRIPT "tests/train/data/make_torch_save.py"

static char g_dir[4096];

static const char *tmp(const char *name)
{
    static char buf[16][4300];
    static int next;
    char *b = buf[next++ % 16];
    snprintf(b, sizeof buf[0], "%s/%s", g_dir, name);
    return b;
}

static bool have_python(void) { return system("python3 -c 'import pickle, zipfile' 2>/dev/null") == 0; }

/* runs the generator; false when python3 is missing */
static bool make(const char *out, const char *extra)
{
    if (!have_python())
        return false;
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "python3 %s '%s' 2 3 128 32,64 %s", SCRIPT, out, extra);
    assert_int_equal(system(cmd), 0);
    return true;
}

/* element k of the t-th tensor the generator wrote */
static float value(int t, int64_t k) { return (float)(((37 * k + 11 * t) % 201) - 100) / 128.0f; }

static void check_values(const dhf_st_file *st, const char *name, int t)
{
    const dhf_st_info *i = dhf_st_find(st, name);
    if (!i)
        fail_msg("imported checkpoint lacks '%s'", name);
    assert_int_equal(i->dtype, DHF_ST_F32);
    for (int64_t k = 0; k < i->numel; k++) {
        float got;
        memcpy(&got, (const char *)i->data + 4 * k, 4);
        if (got != value(t, k))
            fail_msg("%s[%lld] = %g, written %g", name, (long long)k, got, value(t, k));
    }
}

/* the generator's tensor numbering: per layer the 12 parameters in detectron2's order,
 * then mixing_weights, then per optimizer position (mixing_weights first) a step
 * scalar, exp_avg and exp_avg_sq */
static const int order[DHF_BNECK_NPARAMS] = {
    DHF_BN_SHORT_W, DHF_BN_SHORT_GN_W, DHF_BN_SHORT_GN_B, DHF_BN_CONV1_W, DHF_BN_CONV1_GN_W,
    DHF_BN_CONV1_GN_B, DHF_BN_CONV2_W, DHF_BN_CONV2_GN_W, DHF_BN_CONV2_GN_B, DHF_BN_CONV3_W,
    DHF_BN_CONV3_GN_W, DHF_BN_CONV3_GN_B };

static void test_import_authors_layout(void **state)
{
    (void)state;
    const char *pt = tmp("authors.pt"), *out = tmp("authors.safetensors"),
               *yaml = tmp("authors.yaml");
    if (!make(pt, "")) {
        printf("[ info ] no python3: the authors'-layout file cannot be made; skipped\n");
        skip();
    }
    dhf_pt_summary s;
    if (dhf_pt_import(pt, out, yaml, &s))
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(s.num_layers, 2);
    assert_int_equal(s.num_timesteps, 3);
    assert_int_equal(s.proj_dim, 128);
    assert_int_equal(s.channels[0], 32);
    assert_int_equal(s.channels[1], 64);
    assert_int_equal(s.step, 4000);
    assert_true(s.has_optim);
    assert_int_equal(s.optim_step, 4001);
    assert_non_null(strstr(s.unused_config_keys, "device"));
    assert_non_null(strstr(s.unused_config_keys, "batch_size"));
    dhf_st_file *st = NULL;
    if (dhf_st_open(out, &st))
        fail_msg("%s", dhf_err_msg());
    char name[256], mn[300], vn[300];
    int t = 0;
    for (int l = 0; l < 2; l++)
        for (int j = 0; j < DHF_BNECK_NPARAMS; j++, t++) {
            snprintf(name, sizeof name, "bottlenecks.%d.%s", l, dhf_bottleneck_param_names[order[j]]);
            check_values(st, name, t);
        }
    check_values(st, "mixing_weights", t++);   /* a view at offset 2 of its storage */
    for (int k = 0; k < 1 + 2 * DHF_BNECK_NPARAMS; k++) {
        if (k == 0)
            snprintf(name, sizeof name, "mixing_weights");
        else
            snprintf(name, sizeof name, "bottlenecks.%d.%s", (k - 1) / DHF_BNECK_NPARAMS,
                     dhf_bottleneck_param_names[order[(k - 1) % DHF_BNECK_NPARAMS]]);
        t++;                                    /* the step scalar */
        snprintf(mn, sizeof mn, "%s%s", DHF_CKPT_EXP_AVG_PREFIX, name);
        snprintf(vn, sizeof vn, "%s%s", DHF_CKPT_EXP_AVG_SQ_PREFIX, name);
        check_values(st, mn, t++);
        check_values(st, vn, t++);
    }
    dhf_st_close(st);
    /* the config: the paper's keys, flip_timesteps off (the stored order is the one
     * the network saw) */
    dhf_config c;
    dhf_config_defaults(&c);
    if (dhf_config_load_file(&c, yaml))
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(c.projection_dim, 128);
    assert_int_equal(c.save_timestep.n, 3);
    assert_int_equal(c.save_timestep.v[0], 49);
    assert_int_equal(c.save_timestep.v[2], 40);
    assert_int_equal(c.num_timesteps, 50);
    assert_int_equal(c.load_resolution, 224);
    assert_int_equal(c.output_resolution, 64);
    assert_string_equal(c.model_id, "runwayml/stable-diffusion-v1-5");
    assert_string_equal(c.device, "cpu");
    assert_int_equal(c.batch_size, 1);
    assert_false(c.flip_timesteps);
    dhf_ckpt_meta meta;
    assert_int_equal(dhf_ckpt_read_meta(out, &meta), 0);
    assert_int_equal(meta.step, 4000);
    assert_int_equal(meta.optim_step, 4001);
    assert_true(meta.has_optim);
    dhf_ckpt_meta_free(&meta);
}

/* export -> import: the same bytes for every tensor, the same config and steps */
static void test_export_import_round_trip(void **state)
{
    (void)state;
    const char *pt = tmp("rt_src.pt"), *a = tmp("rt_a.safetensors"), *b = tmp("rt_b.safetensors"),
               *exp = tmp("rt.pt");
    if (!make(pt, "")) {
        printf("[ info ] no python3: the source network cannot be made; skipped\n");
        skip();
    }
    dhf_pt_summary s;
    if (dhf_pt_import(pt, a, NULL, &s) || dhf_pt_export(a, exp, &s) ||
        dhf_pt_import(exp, b, NULL, &s))
        fail_msg("%s", dhf_err_msg());
    dhf_st_file *fa = NULL, *fb = NULL;
    assert_int_equal(dhf_st_open(a, &fa), 0);
    assert_int_equal(dhf_st_open(b, &fb), 0);
    assert_int_equal(dhf_st_count(fa), dhf_st_count(fb));
    for (int k = 0; k < dhf_st_count(fa); k++) {
        const dhf_st_info *x = dhf_st_at(fa, k), *y = dhf_st_find(fb, x->name);
        assert_non_null(y);
        assert_int_equal(x->nbytes, y->nbytes);
        assert_memory_equal(x->data, y->data, x->nbytes);
    }
    printf("[ info ] export -> import: %d tensors bit-identical\n", dhf_st_count(fa));
    const char *keys[] = { "step", "optim.step", "config" };
    for (int k = 0; k < 3; k++)
        assert_string_equal(dhf_st_metadata_get(fa, keys[k]), dhf_st_metadata_get(fb, keys[k]));
    dhf_st_close(fa);
    dhf_st_close(fb);
    /* the export read the way torch.load reads it (Python's pickle, globals resolved by
     * name, storages from the zip): the authors' key order, their AdamW groups */
    char cmd[4500], line[512] = "";
    snprintf(cmd, sizeof cmd, "python3 tests/train/data/read_torch_save.py '%s'", exp);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    if (!fgets(line, sizeof line, p))
        line[0] = '\0';
    assert_int_equal(pclose(p), 0);
    printf("[ info ] %s", line);
    assert_non_null(strstr(line, "OK keys=25 first=bottleneck_layers.0.0.shortcut.weight "
                                 "last=mixing_weights step=4000 groups=1,24"));
}

static void expect_error(const char *pt, const char *needle)
{
    dhf_pt_summary s;
    const char *out = tmp("bad.safetensors");
    unlink(out);
    assert_int_equal(dhf_pt_import(pt, out, NULL, &s), -1);
    const char *msg = dhf_err_msg();
    printf("[ info ] %s\n", msg);
    if (!strstr(msg, needle) || !strstr(msg, pt) || strchr(msg, '\n'))
        fail_msg("expected a one-line message naming %s and '%s', got: %s", pt, needle, msg);
    assert_false(dhf_path_exists(out));       /* nothing half-written */
}

static void test_broken_files(void **state)
{
    (void)state;
    /* no python needed for these */
    const char *nozip = tmp("nozip.pt");
    assert_int_equal(dhf_write_file_atomic(nozip, "\x80\x02}q\x00.", 7), 0);
    expect_error(nozip, "not a torch.save zip archive");
    expect_error(tmp("absent.pt"), "no such file");
    if (!have_python()) {
        printf("[ info ] no python3: the malformed torch.save files cannot be made; the "
               "rest is skipped\n");
        return;
    }
    const char *g = tmp("bad_global.pt"), *sh = tmp("bad_shape.pt"), *mi = tmp("bad_missing.pt"),
               *ex = tmp("bad_extra.pt");
    make(g, "--bad global");
    expect_error(g, "refused global 'types.SimpleNamespace'");
    make(sh, "--bad shape");
    expect_error(sh, "'bottleneck_layers.1.0.conv2.weight' has shape [32, 32, 1, 1], expected "
                     "[32, 32, 3, 3]");
    make(mi, "--bad missing");
    expect_error(mi, "missing 'bottleneck_layers.1.0.conv3.norm.bias'");
    make(ex, "--bad extra");
    expect_error(ex, "unexpected key 'logit_scale'");
    /* a truncated archive: cut the good file in half */
    const char *good = tmp("good.pt"), *cut = tmp("truncated.pt");
    make(good, "--no-optim");
    char *data = NULL;
    size_t n = 0;
    assert_int_equal(dhf_read_file(good, &data, &n), 0);
    assert_int_equal(dhf_write_file_atomic(cut, data, n / 2), 0);
    free(data);
    expect_error(cut, "not a torch.save zip archive");
}

static int setup(void **state)
{
    (void)state;
    char *d = tmp_make_dir("pt");
    if (!d)
        return -1;
    snprintf(g_dir, sizeof g_dir, "%s", d);
    free(d);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dhf_remove_tree(g_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_authors_layout),
        cmocka_unit_test(test_export_import_round_trip),
        cmocka_unit_test(test_broken_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
