/* test_config.c — the config module: defaults, files, nested and dotted keys,
 * --set overrides, every kind of bad input (with file:line:column and the key
 * path in the message), validation, write->load round trips, JSON, and that
 * docs/CONFIG.md and configs/default.yaml match the key table.
 * Also a generator: `test_config --write-docs docs/CONFIG.md` and
 * `test_config --write-default-config configs/default.yaml`.
 * dhf-test: label=unit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/error.h"
#include "core/fsutil.h"

/* ---- helpers ------------------------------------------------------------ */

static char tmp_path[64];   /* the last temp file written; messages name it */

/* Writes `text` to a fresh temp file, loads it over *c and removes the file. */
static int load_yaml(dhf_config *c, const char *text)
{
    strcpy(tmp_path, "/tmp/dhf_test_config_XXXXXX");
    int fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    dhf_err_clear();
    int rc = dhf_config_load_file(c, tmp_path);
    unlink(tmp_path);
    return rc;
}

/* "<tmp file>:line:col:" — the prefix a message about the last file must have. */
static const char *at(int line, int col)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "%s:%d:%d:", tmp_path, line, col);
    return buf;
}

static void expect_err_impl(int rc, const char *const *needles, const char *file, int line)
{
    if (rc != -1)
        fail_msg("%s:%d: expected rc -1, got %d", file, line, rc);
    for (; *needles; needles++)
        if (!strstr(dhf_err_msg(), *needles))
            fail_msg("%s:%d: message \"%s\" lacks \"%s\"", file, line, dhf_err_msg(), *needles);
}
/* rc is evaluated first: the needles may name the file that call wrote. */
#define EXPECT_ERR(rc, ...)                                                            \
    do {                                                                               \
        int rc_ = (rc);                                                                \
        expect_err_impl(rc_, (const char *const[]){__VA_ARGS__, NULL}, __FILE__, __LINE__); \
    } while (0)

static void expect_ok_impl(int rc, const char *file, int line)
{
    if (rc != 0)
        fail_msg("%s:%d: expected success, got: %s", file, line, dhf_err_msg());
}
#define EXPECT_OK(rc) expect_ok_impl((rc), __FILE__, __LINE__)

/* NULL when equal, else the first key path that differs. */
static const char *config_diff(const dhf_config *a, const dhf_config *b)
{
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++) {
        const char *pa = (const char *)a + k->offset, *pb = (const char *)b + k->offset;
        bool same = true;
        switch (k->type) {
        case DHF_CFG_T_BOOL: same = *(const bool *)pa == *(const bool *)pb; break;
        case DHF_CFG_T_INT: same = *(const int *)pa == *(const int *)pb; break;
        case DHF_CFG_T_INT64: same = *(const int64_t *)pa == *(const int64_t *)pb; break;
        case DHF_CFG_T_DOUBLE: same = *(const double *)pa == *(const double *)pb; break;
        case DHF_CFG_T_STRING:
        case DHF_CFG_T_ENUM: same = strcmp(pa, pb) == 0; break;
        case DHF_CFG_T_INT_LIST: {
            const dhf_int_list *la = (const void *)pa, *lb = (const void *)pb;
            same = la->n == lb->n;
            for (int i = 0; same && i < la->n; i++)
                same = la->v[i] == lb->v[i];
            break;
        }
        case DHF_CFG_T_DOUBLE_LIST: {
            const dhf_double_list *la = (const void *)pa, *lb = (const void *)pb;
            same = la->n == lb->n;
            for (int i = 0; same && i < la->n; i++)
                same = la->v[i] == lb->v[i];
            break;
        }
        }
        if (!same)
            return k->path;
    }
    return NULL;
}

#define EXPECT_SAME(a, b)                                                    \
    do {                                                                     \
        const char *d_ = config_diff((a), (b));                              \
        if (d_)                                                              \
            fail_msg("configs differ at key '%s'", d_);                      \
    } while (0)

static dhf_config *new_defaults(void)
{
    dhf_config *c = malloc(sizeof *c);
    assert_non_null(c);
    dhf_config_defaults(c);
    return c;
}

static char *yaml_text(const dhf_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    EXPECT_OK(dhf_config_write_yaml(c, f));
    fclose(f);
    return buf;
}

/* ---- schema ------------------------------------------------------------- */

static size_t type_align(dhf_cfg_type t)
{
    switch (t) {
    case DHF_CFG_T_BOOL: return _Alignof(bool);
    case DHF_CFG_T_INT: return _Alignof(int);
    case DHF_CFG_T_INT64: return _Alignof(int64_t);
    case DHF_CFG_T_DOUBLE: return _Alignof(double);
    case DHF_CFG_T_STRING:
    case DHF_CFG_T_ENUM: return 1;
    case DHF_CFG_T_INT_LIST: return _Alignof(dhf_int_list);
    case DHF_CFG_T_DOUBLE_LIST: return _Alignof(dhf_double_list);
    }
    return 1;
}

/* Rows are in struct order and tile the struct up to alignment padding, so a
 * field without a row (or a row with the wrong field) shows up here. */
static void test_table_covers_struct(void **state)
{
    (void)state;
    size_t end = 0;
    int n = 0;
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++, n++) {
        size_t a = type_align(k->type);
        size_t expect = (end + a - 1) / a * a;
        if (k->offset != expect)
            fail_msg("key '%s' at offset %zu, expected %zu: a field without a row before it?",
                     k->path, k->offset, expect);
        end = k->offset + k->size;
        assert_non_null(k->doc);
        assert_true(strlen(k->doc) > 10);
        assert_non_null(k->section);
        assert_non_null(k->def);
        if (k->type == DHF_CFG_T_ENUM)
            assert_non_null(k->choices);
        for (const dhf_cfg_key *j = dhf_config_keys; j < k; j++)
            assert_string_not_equal(j->path, k->path);
        assert_ptr_equal(dhf_config_find_key(k->path), k);
    }
    assert_int_equal((sizeof(dhf_config) - end) < _Alignof(dhf_config), 1);
    assert_true(n > 0);
    assert_null(dhf_config_find_key("eval"));
    assert_null(dhf_config_find_key("alphas"));
    assert_int_equal(dhf_config_find_key("eval.alphas")->type, DHF_CFG_T_DOUBLE_LIST);
}

/* ---- defaults and loading ------------------------------------------------ */

static void test_defaults_are_the_papers(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    assert_string_equal(c->run_name, "");
    assert_string_equal(c->output_dir, "checkpoints");
    assert_int_equal(c->seed, 0);
    assert_int_equal(c->threads, 0);
    assert_string_equal(c->device, "cpu");
    assert_string_equal(c->model_id, "");
    assert_string_equal(c->diffusion_mode, "inversion");
    assert_int_equal(c->num_timesteps, 50);
    static const int64_t ts[] = {49, 45, 40, 35, 30, 25, 20, 15, 10, 5, 0};
    assert_int_equal(c->save_timestep.n, 11);
    for (int i = 0; i < 11; i++)
        assert_int_equal(c->save_timestep.v[i], ts[i]);
    assert_string_equal(c->prompt, "");
    assert_string_equal(c->negative_prompt, "");
    assert_true(c->guidance_scale == -1.0);
    assert_string_equal(c->prompt_embeds, "");
    assert_int_equal(c->diffusion_resolution, 512);
    assert_string_equal(c->vae_latent, "sample");
    assert_string_equal(c->dtype, "float32");
    assert_string_equal(c->cache_path, "data/features.h5");
    assert_string_equal(c->cache_dtype, "float16");
    assert_int_equal(c->cache_compression, 0);
    assert_false(c->flip_timesteps);
    assert_int_equal(c->projection_dim, 384);
    assert_int_equal(c->output_resolution, 64);
    assert_int_equal(c->load_resolution, 224);
    assert_int_equal(c->batch_size, 1);
    assert_true(c->lr == 1e-3);
    assert_true(c->weight_decay == 0.0);
    assert_int_equal(c->max_epochs, 1);
    assert_int_equal(c->max_steps_per_epoch, 5000);
    assert_int_equal(c->val_every_n_steps, 1000);
    assert_true(c->pck_threshold == 0.1);
    assert_string_equal(c->aggregation_order, "fast");
    assert_string_equal(c->aggregation_kernels, "auto");
    assert_string_equal(c->extract_kernels, "onednn");
    assert_string_equal(c->aggregation_conv_algorithm, "auto");
    assert_string_equal(c->aggregation_conv1x1, "auto");
    assert_string_equal(c->mixed_precision, "auto");
    assert_string_equal(c->checkpoint_metric, "pck_bbox");
    assert_string_equal(c->dataset, "spair");
    assert_string_equal(c->data_root, "data/SPair-71k");
    assert_string_equal(c->train_path, "");
    assert_string_equal(c->val_path, "");
    assert_string_equal(c->test_path, "");
    assert_string_equal(c->split, "test");
    assert_int_equal(c->pairs_per_category, 0);
    assert_int_equal(c->subset_seed, 0);
    assert_int_equal(c->val_pairs_per_category, 20);
    assert_int_equal(c->alphas.n, 4);
    assert_true(c->alphas.v[0] == 0.01 && c->alphas.v[1] == 0.05);
    assert_true(c->alphas.v[2] == 0.1 && c->alphas.v[3] == 0.15);
    assert_string_equal(c->resize, "stretch");
    assert_string_equal(c->matcher, "argmax");
    assert_true(c->softmax_temperature == 0.04);
    assert_int_equal(c->window_radius, 5);
    assert_true(c->dump_predictions);
    EXPECT_OK(dhf_config_validate(c));
    free(c);
}

static void test_empty_and_comment_only_files_change_nothing(void **state)
{
    (void)state;
    dhf_config *c = new_defaults(), *d = new_defaults();
    EXPECT_OK(load_yaml(c, ""));
    EXPECT_OK(load_yaml(c, "# just a comment\n\n"));
    EXPECT_OK(load_yaml(c, "---\n...\n"));
    EXPECT_OK(load_yaml(c, "~\n"));
    EXPECT_OK(load_yaml(c, "eval:\n"));
    EXPECT_SAME(c, d);
    free(c);
    free(d);
}

static void test_file_overrides_only_its_keys(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    EXPECT_OK(load_yaml(c,
                        "# a training config\n"
                        "lr: 0.0005\n"
                        "batch_size: 8\n"
                        "save_timestep: [25, 0]\n"
                        "diffusion_mode: generation\n"
                        "prompt: a photo of a cat\n"
                        "seed: -12\n"
                        "weight_decay: 1e-2\n"
                        "guidance_scale: 7\n"
                        "flip_timesteps: yes\n"
                        "eval:\n"
                        "  alphas:\n"
                        "    - 0.1\n"
                        "    - 0.2\n"
                        "  dump_predictions: off\n"));
    assert_true(c->lr == 0.0005);
    assert_int_equal(c->batch_size, 8);
    assert_int_equal(c->save_timestep.n, 2);
    assert_int_equal(c->save_timestep.v[0], 25);
    assert_int_equal(c->save_timestep.v[1], 0);
    assert_int_equal(c->save_timestep.v[2], 0);   /* the old tail is cleared */
    assert_string_equal(c->diffusion_mode, "generation");
    assert_string_equal(c->prompt, "a photo of a cat");
    assert_int_equal(c->seed, -12);
    assert_true(c->weight_decay == 0.01);
    assert_true(c->guidance_scale == 7.0);   /* an integer is a fine number */
    assert_true(c->flip_timesteps);
    assert_int_equal(c->alphas.n, 2);
    assert_true(c->alphas.v[0] == 0.1 && c->alphas.v[1] == 0.2);
    assert_false(c->dump_predictions);
    /* untouched keys keep their defaults */
    assert_int_equal(c->num_timesteps, 50);
    assert_int_equal(c->projection_dim, 384);
    assert_string_equal(c->matcher, "argmax");

    /* a second file applies on top of the first */
    EXPECT_OK(load_yaml(c, "batch_size: 2\nlr: &v 0.25\nweight_decay: *v\n"));
    assert_int_equal(c->batch_size, 2);
    assert_true(c->lr == 0.25 && c->weight_decay == 0.25);
    assert_true(c->flip_timesteps);
    free(c);
}

static void test_booleans_and_nulls(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    static const struct { const char *text; bool value; } cases[] = {
        {"true", true}, {"false", false}, {"yes", true}, {"no", false}, {"on", true},
        {"off", false}, {"True", true}, {"NO", false}, {"Off", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "flip_timesteps: %s\n", cases[i].text);
        c->flip_timesteps = !cases[i].value;
        EXPECT_OK(load_yaml(c, text));
        assert_int_equal(c->flip_timesteps, cases[i].value);
    }
    strcpy(c->prompt, "x");
    strcpy(c->negative_prompt, "x");
    strcpy(c->run_name, "x");
    EXPECT_OK(load_yaml(c, "prompt: null\nnegative_prompt: ~\nrun_name:\n"));
    assert_string_equal(c->prompt, "");
    assert_string_equal(c->negative_prompt, "");
    assert_string_equal(c->run_name, "");
    /* quoted: the words themselves */
    EXPECT_OK(load_yaml(c, "prompt: 'null'\nrun_name: \"yes\"\n"));
    assert_string_equal(c->prompt, "null");
    assert_string_equal(c->run_name, "yes");
    free(c);
}

static void test_nested_dotted_and_set_are_the_same(void **state)
{
    (void)state;
    dhf_config *a = new_defaults(), *b = new_defaults(), *s = new_defaults();
    EXPECT_OK(load_yaml(a, "eval: {alphas: [0.1], matcher: soft_argmax}\n"));
    EXPECT_OK(load_yaml(b, "eval.alphas: [0.1]\neval.matcher: soft_argmax\n"));
    EXPECT_OK(dhf_config_set(s, "eval.alphas=[0.1]"));
    EXPECT_OK(dhf_config_set(s, "eval.matcher=soft_argmax"));
    assert_int_equal(a->alphas.n, 1);
    assert_true(a->alphas.v[0] == 0.1);
    assert_string_equal(a->matcher, "soft_argmax");
    EXPECT_SAME(a, b);
    EXPECT_SAME(a, s);
    free(a);
    free(b);
    free(s);
}

static void test_set_overrides(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    EXPECT_OK(dhf_config_set(c, "lr=0.01"));
    assert_true(c->lr == 0.01);
    EXPECT_OK(dhf_config_set(c, " batch_size = 4"));
    assert_int_equal(c->batch_size, 4);
    EXPECT_OK(dhf_config_set(c, "save_timestep=[10, 5,0]"));
    assert_int_equal(c->save_timestep.n, 3);
    assert_int_equal(c->save_timestep.v[0], 10);
    assert_int_equal(c->save_timestep.v[2], 0);
    EXPECT_OK(dhf_config_set(c, "eval.window_radius=3"));
    assert_int_equal(c->window_radius, 3);
    EXPECT_OK(dhf_config_set(c, "eval={resize: pad, softmax_temperature: 0.5}"));
    assert_string_equal(c->resize, "pad");
    assert_true(c->softmax_temperature == 0.5);
    EXPECT_OK(dhf_config_set(c, "prompt='a: b'"));
    assert_string_equal(c->prompt, "a: b");
    EXPECT_OK(dhf_config_set(c, "prompt=a photo of a cat"));
    assert_string_equal(c->prompt, "a photo of a cat");
    EXPECT_OK(dhf_config_set(c, "prompt="));
    assert_string_equal(c->prompt, "");
    EXPECT_OK(dhf_config_set(c, "run_name='42'"));
    assert_string_equal(c->run_name, "42");
    EXPECT_OK(dhf_config_set(c, "device=cuda:1"));
    assert_string_equal(c->device, "cuda:1");
    EXPECT_OK(dhf_config_set(c, "model_id=/models/sd-1.5=final"));   /* first '=' splits */
    assert_string_equal(c->model_id, "/models/sd-1.5=final");
    EXPECT_OK(dhf_config_set(c, "flip_timesteps=on"));
    assert_true(c->flip_timesteps);
    EXPECT_OK(dhf_config_set(c, "seed=9223372036854775807"));
    assert_true(c->seed == INT64_MAX);
    free(c);
}

/* ---- bad input ----------------------------------------------------------- */

static void test_unknown_keys_suggest_the_closest(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    EXPECT_ERR(load_yaml(c, "lrr: 0.1\n"), at(1, 1), "unknown key 'lrr'", "did you mean 'lr'?");
    EXPECT_ERR(load_yaml(c, "lr: 0.1\nsave_timesteps: [1]\n"), at(2, 1),
               "unknown key 'save_timesteps'", "did you mean 'save_timestep'?");
    EXPECT_ERR(load_yaml(c, "eval:\n  alpha: [0.1]\n"), at(2, 3), "unknown key 'eval.alpha'",
               "did you mean 'eval.alphas'?");
    EXPECT_ERR(load_yaml(c, "alphas: [0.1]\n"), at(1, 1), "did you mean 'eval.alphas'?");
    EXPECT_ERR(load_yaml(c, "eval:\n  lr: 0.1\n"), at(2, 3), "unknown key 'eval.lr'",
               "did you mean 'lr'?");
    EXPECT_ERR(load_yaml(c, "BATCH_SIZE: 2\n"), "did you mean 'batch_size'?");
    EXPECT_ERR(load_yaml(c, "eval:\n  window: 3\n"), at(2, 3), "unknown key 'eval.window'",
               "did you mean 'eval.window_radius'?");
    EXPECT_ERR(load_yaml(c, "learning_rate: 0.1\n"), at(1, 1), "unknown key 'learning_rate'");
    assert_null(strstr(dhf_err_msg(), "did you mean"));
    EXPECT_ERR(load_yaml(c, "[a, b]: 1\n"), at(1, 1), "expected a key name, got list");
    free(c);
}

static void test_wrong_types(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    EXPECT_ERR(load_yaml(c, "lr: abc\n"), at(1, 5), "key 'lr'",
               "expected a number, got string 'abc'");
    EXPECT_ERR(load_yaml(c, "batch_size: \"4\"\n"), at(1, 13), "key 'batch_size'",
               "expected an integer, got string '4'");
    EXPECT_ERR(load_yaml(c, "batch_size: 1.5\n"), at(1, 13), "key 'batch_size'",
               "expected an integer, got 1.5");
    EXPECT_ERR(load_yaml(c, "batch_size: 2.0\n"), at(1, 13), "expected an integer, got 2.0");
    EXPECT_ERR(load_yaml(c, "threads: 1e3\n"), at(1, 10), "expected an integer, got 1e3");
    EXPECT_ERR(load_yaml(c, "lr: [0.1]\n"), at(1, 5), "key 'lr'", "expected a number, got list");
    EXPECT_ERR(load_yaml(c, "prompt: [a, b]\n"), at(1, 9), "key 'prompt'",
               "expected a string, got list");
    EXPECT_ERR(load_yaml(c, "eval:\n  alphas: {a: 1}\n"), at(2, 11), "key 'eval.alphas'",
               "expected a list of numbers, got mapping");
    EXPECT_ERR(load_yaml(c, "save_timestep: 5\n"), at(1, 16), "key 'save_timestep'",
               "expected a list of integers, got 5");
    EXPECT_ERR(load_yaml(c, "save_timestep: [49, x, 0]\n"), at(1, 21), "key 'save_timestep[1]'",
               "expected an integer, got string 'x'");
    EXPECT_ERR(load_yaml(c, "save_timestep: [49, [1]]\n"), at(1, 21), "key 'save_timestep[1]'",
               "got list");
    EXPECT_ERR(load_yaml(c, "flip_timesteps: maybe\n"), at(1, 17), "key 'flip_timesteps'",
               "expected a boolean");
    EXPECT_ERR(load_yaml(c, "flip_timesteps: 1\n"), at(1, 17), "expected a boolean");
    EXPECT_ERR(load_yaml(c, "lr:\n"), "key 'lr'", "expected a number, got null");
    EXPECT_ERR(load_yaml(c, "eval: 3\n"), at(1, 7), "key 'eval'",
               "expected a mapping of eval.* keys, got 3");
    EXPECT_ERR(load_yaml(c, "lr: .inf\n"), at(1, 5), "expected a number, got string '.inf'");
    EXPECT_ERR(load_yaml(c, "lr: 1e999\n"), at(1, 5), "expected a finite number");
    EXPECT_ERR(load_yaml(c, "seed: 99999999999999999999\n"), at(1, 7),
               "expected a 64-bit integer");
    EXPECT_ERR(load_yaml(c, "lr: !!float 1\n"), at(1, 5), "tags are not supported (got !!float)");
    free(c);
}

static void test_out_of_range(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    EXPECT_ERR(load_yaml(c, "num_timesteps: 0\n"), at(1, 16), "key 'num_timesteps'",
               "expected 1..1000, got 0");
    EXPECT_ERR(load_yaml(c, "num_timesteps: 1001\n"), "expected 1..1000, got 1001");
    EXPECT_ERR(load_yaml(c, "lr: 0\n"), at(1, 5), "key 'lr'", "expected (0, 1], got 0");
    EXPECT_ERR(load_yaml(c, "lr: 1.5\n"), "expected (0, 1], got 1.5");
    EXPECT_ERR(load_yaml(c, "cache_compression: 10\n"), "expected 0..9, got 10");
    EXPECT_ERR(load_yaml(c, "guidance_scale: -2\n"), "expected -1..100, got -2");
    EXPECT_ERR(load_yaml(c, "batch_size: 99999999999\n"), "expected 1..1024, got 99999999999");
    EXPECT_ERR(load_yaml(c, "max_steps_per_epoch: 3000000000\n"),
               "expected a 32-bit integer, got 3000000000");
    EXPECT_ERR(load_yaml(c, "pairs_per_category: -1\n"), "expected >= 0, got -1");
    EXPECT_ERR(load_yaml(c, "eval:\n  softmax_temperature: 0\n"), at(2, 24),
               "key 'eval.softmax_temperature'", "expected > 0, got 0");
    EXPECT_ERR(load_yaml(c, "eval:\n  alphas: [0.1, 0]\n"), at(2, 17), "key 'eval.alphas[1]'",
               "expected (0, 1], got 0");
    EXPECT_ERR(load_yaml(c, "save_timestep: [1000]\n"), "expected 0..999, got 1000");
    /* the edges are allowed */
    EXPECT_OK(load_yaml(c, "num_timesteps: 1000\nlr: 1\ncache_compression: 9\n"
                           "guidance_scale: -1\nweight_decay: 0\n"));
    free(c);
}

static void test_bad_choices(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    EXPECT_ERR(load_yaml(c, "diffusion_mode: invert\n"), at(1, 17), "key 'diffusion_mode'",
               "expected one of inversion|generation, got string 'invert'");
    EXPECT_ERR(load_yaml(c, "eval:\n  matcher: softargmax\n"), at(2, 12), "key 'eval.matcher'",
               "argmax|soft_argmax|window_soft_argmax");
    EXPECT_ERR(load_yaml(c, "split: ~\n"), "key 'split'",
               "expected one of trn|val|test, got an empty value");
    EXPECT_ERR(load_yaml(c, "dtype: Float32\n"), "float32|float16|bfloat16");
    EXPECT_ERR(load_yaml(c, "extract_kernels: mkl\n"), "onednn|libtorch");
    EXPECT_ERR(load_yaml(c, "split: [test]\n"), "expected one of trn|val|test, got list");
    free(c);
}

static void test_too_long(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    char *text = malloc(2048);
    assert_non_null(text);
    strcpy(text, "prompt: ");
    memset(text + 8, 'a', 1024);
    strcpy(text + 8 + 1024, "\n");
    EXPECT_ERR(load_yaml(c, text), at(1, 9), "key 'prompt'",
               "expected a string of at most 1023 bytes, got 1024 bytes");
    strcpy(text + 8 + 1023, "\n");   /* 1023 bytes fit */
    EXPECT_OK(load_yaml(c, text));
    assert_int_equal(strlen(c->prompt), 1023);

    strcpy(text, "device: ");
    memset(text + 8, 'x', 64);
    strcpy(text + 8 + 64, "\n");
    EXPECT_ERR(load_yaml(c, text), "key 'device'", "at most 63 bytes, got 64 bytes");

    /* lists: 64 items fit, 65 do not */
    strcpy(text, "eval.alphas: [0.5");
    for (int i = 1; i < 64; i++)
        strcat(text, ", 0.5");
    strcat(text, "]\n");
    EXPECT_OK(load_yaml(c, text));
    assert_int_equal(c->alphas.n, 64);
    strcpy(text + strlen(text) - 2, ", 0.5]\n");
    EXPECT_ERR(load_yaml(c, text), at(1, 14), "key 'eval.alphas'",
               "expected at most 64 items, got 65");
    free(text);
    free(c);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    EXPECT_ERR(load_yaml(c, "lr: 0.1\nbatch_size: 2\nlr: 0.2\n"), at(3, 1), "key 'lr'",
               "duplicate key (first set at line 1, column 1)");
    EXPECT_ERR(load_yaml(c, "eval.alphas: [0.1]\neval:\n  alphas: [0.2]\n"), at(3, 3),
               "key 'eval.alphas'", "duplicate key (first set at line 1, column 1)");
    EXPECT_ERR(load_yaml(c, "eval:\n  resize: pad\neval:\n  matcher: argmax\n"), at(3, 1),
               "key 'eval'", "duplicate key");
    EXPECT_ERR(load_yaml(c, "{lr: 0.1, lr: 0.2}\n"), at(1, 11), "key 'lr'", "duplicate key");
    /* the same key in two files (or a file and --set) is an override, not a duplicate */
    EXPECT_OK(load_yaml(c, "lr: 0.1\n"));
    EXPECT_OK(load_yaml(c, "lr: 0.2\n"));
    free(c);
}

static void test_yaml_syntax_errors(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    EXPECT_ERR(load_yaml(c, "lr: 0.1\nprompt: a: b\n"), at(2, 10), "YAML syntax error",
               "mapping values are not allowed");
    EXPECT_ERR(load_yaml(c, "lr: 0.1\n\tbatch_size: 2\n"), at(2, 1), "YAML syntax error",
               "tab character");
    EXPECT_ERR(load_yaml(c, "eval:\n  alphas: [0.1, 0.2\nlr: 0.1\n"), tmp_path,
               "YAML syntax error", "flow sequence");
    EXPECT_ERR(load_yaml(c, "lr: *nowhere\n"), at(1, 5), "undefined alias");
    EXPECT_ERR(load_yaml(c, "lr: \"\xff\"\n"), tmp_path, "invalid text at byte");
    free(c);
}

static void test_top_level_must_be_one_mapping(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    EXPECT_ERR(load_yaml(c, "- 1\n- 2\n"), at(1, 1),
               "expected a mapping of config keys at the top level, got list");
    EXPECT_ERR(load_yaml(c, "just a string\n"), at(1, 1), "got string 'just a string'");
    EXPECT_ERR(load_yaml(c, "lr: 0.01\n---\nlr: 0.2\n"), at(3, 1),
               "expected one YAML document, found a second one");
    free(c);
}

static void test_failed_load_changes_nothing(void **state)
{
    (void)state;
    dhf_config *c = new_defaults(), *d = new_defaults();
    EXPECT_ERR(load_yaml(c, "batch_size: 8\nprompt: cat\nlr: 5\n"), at(3, 5), "key 'lr'");
    EXPECT_SAME(c, d);
    EXPECT_ERR(dhf_config_set(c, "eval={resize: pad, matcher: bad}"), "key 'eval.matcher'");
    EXPECT_SAME(c, d);
    free(c);
    free(d);
}

static void test_missing_file_and_string_origin(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    EXPECT_ERR(dhf_config_load_file(c, "/nonexistent/dhf/x.yaml"), "/nonexistent/dhf/x.yaml");
    EXPECT_ERR(dhf_config_load_string(c, "lr: 0.1\nlr: x\n", "inline"), "inline:2:1:",
               "duplicate key");
    EXPECT_ERR(dhf_config_load_string(c, "lr: x\n", NULL), "<string>:1:5: key 'lr'");
    EXPECT_OK(dhf_config_load_string(c, "lr: 0.125\n", "inline"));
    assert_true(c->lr == 0.125);
    free(c);
}

static void test_set_errors(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    EXPECT_ERR(dhf_config_set(c, "lrr=1"), "--set lrr=1: unknown key 'lrr'; did you mean 'lr'?");
    EXPECT_ERR(dhf_config_set(c, "lr"), "--set lr: expected KEY=VALUE");
    EXPECT_ERR(dhf_config_set(c, "=3"), "--set =3: expected KEY=VALUE");
    EXPECT_ERR(dhf_config_set(c, "lr=[1"), "--set lr=[1: key 'lr': YAML syntax error");
    EXPECT_ERR(dhf_config_set(c, "lr=abc"), "--set lr=abc: key 'lr': expected a number, got "
                                            "string 'abc'");
    EXPECT_ERR(dhf_config_set(c, "num_timesteps=0"),
               "--set num_timesteps=0: key 'num_timesteps': expected 1..1000, got 0");
    EXPECT_ERR(dhf_config_set(c, "batch_size=1.5"), "key 'batch_size'", "got 1.5");
    EXPECT_ERR(dhf_config_set(c, "eval=3"), "--set eval=3: key 'eval': expected a mapping");
    EXPECT_ERR(dhf_config_set(c, "eval.alphas={a: 1}"), "key 'eval.alphas'",
               "expected a list of numbers, got mapping");
    EXPECT_ERR(dhf_config_set(c, "eval={resize: pad, resize: stretch}"), "key 'eval.resize'",
               "duplicate key");
    EXPECT_ERR(dhf_config_set(c, "prompt=a: b"), "key 'prompt'", "expected a string, got mapping");
    EXPECT_ERR(dhf_config_set(c, "lr=1\n---\n2"), "expected one YAML document");
    free(c);
}

static void test_validate_cross_key_rules(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    EXPECT_OK(dhf_config_set(c, "save_timestep=[50]"));
    EXPECT_ERR(dhf_config_validate(c), "key 'save_timestep'", "label 50 is outside 0..49");

    dhf_config_defaults(c);
    EXPECT_OK(dhf_config_set(c, "num_timesteps=10"));
    EXPECT_ERR(dhf_config_validate(c), "key 'save_timestep'", "label 49 is outside 0..9");
    EXPECT_OK(dhf_config_set(c, "save_timestep=[9, 0]"));
    EXPECT_OK(dhf_config_validate(c));

    EXPECT_OK(dhf_config_set(c, "save_timestep=[5, 3, 5]"));
    EXPECT_ERR(dhf_config_validate(c), "key 'save_timestep'", "label 5 appears twice");
    EXPECT_OK(dhf_config_set(c, "save_timestep=[]"));
    EXPECT_ERR(dhf_config_validate(c), "key 'save_timestep'", "at least one");

    dhf_config_defaults(c);
    EXPECT_OK(dhf_config_set(c, "diffusion_resolution=500"));
    EXPECT_ERR(dhf_config_validate(c), "key 'diffusion_resolution'", "multiple of 8, got 500");

    dhf_config_defaults(c);
    EXPECT_OK(dhf_config_set(c, "projection_dim=386"));
    EXPECT_ERR(dhf_config_validate(c), "key 'projection_dim'", "multiple of 4, got 386");

    dhf_config_defaults(c);
    EXPECT_OK(dhf_config_set(c, "eval.alphas=[]"));
    EXPECT_ERR(dhf_config_validate(c), "key 'eval.alphas'", "at least one");

    /* values set in code bypass the loader; validate re-checks them */
    dhf_config_defaults(c);
    c->alphas.v[2] = 0.0;
    EXPECT_ERR(dhf_config_validate(c), "key 'eval.alphas[2]'", "expected (0, 1]");
    dhf_config_defaults(c);
    strcpy(c->matcher, "nearest");
    EXPECT_ERR(dhf_config_validate(c), "key 'eval.matcher'", "expected one of");
    dhf_config_defaults(c);
    c->lr = 0.0;
    EXPECT_ERR(dhf_config_validate(c), "key 'lr'", "expected (0, 1], got 0");
    dhf_config_defaults(c);
    c->batch_size = 0;
    EXPECT_ERR(dhf_config_validate(c), "key 'batch_size'", "expected 1..1024, got 0");
    free(c);
}

/* ---- output -------------------------------------------------------------- */

/* Fills every key with a non-default value, strings that need quoting included. */
static void fill_unusual(dhf_config *c)
{
    dhf_config_defaults(c);
    strcpy(c->run_name, "yes");
    strcpy(c->output_dir, "123");
    c->seed = INT64_MIN;
    c->threads = 3;
    strcpy(c->device, "cuda:0");
    strcpy(c->model_id, "null");
    strcpy(c->diffusion_mode, "generation");
    c->num_timesteps = 1000;
    c->save_timestep.n = 3;
    c->save_timestep.v[0] = 999;
    c->save_timestep.v[1] = 0;
    c->save_timestep.v[2] = 17;
    strcpy(c->prompt, "a photo: of a \"cat\" # not a comment, 'quotes' and \\ backslash");
    strcpy(c->negative_prompt, "line1\nline2\ttab\x01" "ctl");
    c->guidance_scale = 7.5;
    strcpy(c->prompt_embeds, " leading and trailing spaces ");
    c->diffusion_resolution = 768;
    strcpy(c->vae_latent, "mean");
    strcpy(c->dtype, "float16");
    strcpy(c->cache_path, "");
    strcpy(c->cache_dtype, "float32");
    c->cache_compression = 4;
    c->flip_timesteps = true;
    c->projection_dim = 128;
    c->output_resolution = 32;
    c->load_resolution = 512;
    c->batch_size = 16;
    c->lr = 1.0 / 3.0;
    c->weight_decay = 1e-7;
    c->max_epochs = 7;
    c->max_steps_per_epoch = 123;
    c->val_every_n_steps = 45;
    c->checkpoint_every_n_steps = 0;
    c->pck_threshold = 0.1 + 0.2;
    strcpy(c->aggregation_order, "straightforward");
    strcpy(c->aggregation_kernels, "libtorch");
    strcpy(c->extract_kernels, "libtorch");
    strcpy(c->aggregation_conv_algorithm, "direct");
    strcpy(c->aggregation_conv1x1, "onednn");
    strcpy(c->mixed_precision, "bf16");
    strcpy(c->image_resize, "torch");
    c->recompute_layers = 3;
    strcpy(c->checkpoint_metric, "pck_img");
    strcpy(c->dataset, "cub");
    strcpy(c->data_root, "donn\xc3\xa9" "es/SPair-71k");
    strcpy(c->train_path, "~");
    strcpy(c->val_path, "- dash");
    strcpy(c->test_path, "[not, a, list]");
    strcpy(c->split, "val");
    c->pairs_per_category = 9;
    c->subset_seed = INT64_MAX;
    c->val_pairs_per_category = 0;
    strcpy(c->image_list, "lists/my images #1.txt");
    c->alphas.n = 3;
    c->alphas.v[0] = 0.01;
    c->alphas.v[1] = 1.0 / 7.0;
    c->alphas.v[2] = 1.0;
    strcpy(c->resize, "pad");
    strcpy(c->matcher, "window_soft_argmax");
    c->softmax_temperature = 1e-5;
    c->window_radius = 0;
    c->dump_predictions = false;
    strcpy(c->vit_dino_model, "models/dino folder");
    strcpy(c->vit_dino_weights, "w/dino.pth");
    c->vit_dino_layer = 11;
    c->vit_dino_stride = 8;
    c->vit_dino_load_size = 448;
    strcpy(c->vit_dinov2_model, "dinov2_vits14");
    strcpy(c->vit_dinov2_weights, "w/dinov2.safetensors");
    c->vit_dinov2_layer = 0;
    c->vit_dinov2_load_size = 224;
    c->vit_dinov2_final_norm = true;
    strcpy(c->t1_model_sd21, "models/sd-2-1 base");
    strcpy(c->t1_cub_root, "");
    c->t1_cub_pairs_per_category = 0;
    strcpy(c->t1_test_pairs, "full");
    strcpy(c->t1_out_dir, "out: table");
    strcpy(c->t1_checkpoint, "last");
    c->t1_bootstrap = 1;
    c->t1_bootstrap_seed = -5;
    c->t1_approx_points = 0.5;
}

static void test_round_trip_write_then_load(void **state)
{
    (void)state;
    dhf_config *c = malloc(sizeof *c), *back = malloc(sizeof *back), *def = new_defaults();
    assert_non_null(c);
    assert_non_null(back);
    fill_unusual(c);
    EXPECT_OK(dhf_config_validate(c));
    const char *d = config_diff(c, def);
    assert_non_null(d);
    /* every key differs from its default, so the round trip below covers all keys */
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++) {
        dhf_config *one = new_defaults();
        memcpy((char *)one + k->offset, (char *)c + k->offset, k->size);
        if (!config_diff(one, def))
            fail_msg("fill_unusual leaves '%s' at its default", k->path);
        free(one);
    }

    char *text = yaml_text(c);
    dhf_config_defaults(back);
    EXPECT_OK(dhf_config_load_string(back, text, "written"));
    EXPECT_SAME(back, c);
    /* from an all-zero struct too: the output names every key */
    memset(back, 0, sizeof *back);
    EXPECT_OK(dhf_config_load_string(back, text, "written"));
    EXPECT_SAME(back, c);
    /* sections, docs as comments, eval nested */
    assert_non_null(strstr(text, "# ---- Evaluation ----\neval:\n"));
    assert_non_null(strstr(text, "\n  matcher: window_soft_argmax\n"));
    assert_non_null(strstr(text, "\n  # PCK thresholds"));
    assert_non_null(strstr(text, "\nrun_name: \"yes\"\n"));
    assert_non_null(strstr(text, "\ndevice: \"cuda:0\"\n"));
    assert_non_null(strstr(text, "\nsave_timestep: [999, 0, 17]\n"));
    free(text);

    /* defaults round trip as well */
    text = yaml_text(def);
    memset(back, 0, sizeof *back);
    EXPECT_OK(dhf_config_load_string(back, text, "written"));
    EXPECT_SAME(back, def);
    assert_non_null(strstr(text, "\nlr: 0.001\n"));
    assert_non_null(strstr(text, "\nsave_timestep: [49, 45, 40, 35, 30, 25, 20, 15, 10, 5, 0]\n"));
    free(text);
    free(c);
    free(back);
    free(def);
}

static void test_write_resolved_into_run_dir(void **state)
{
    (void)state;
    char dir[64] = "/tmp/dhf_test_config_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char run[128], file[192];
    snprintf(run, sizeof run, "%s/run1", dir);   /* created by write_resolved */
    snprintf(file, sizeof file, "%s/config.resolved.yaml", run);
    dhf_config *c = malloc(sizeof *c), *back = new_defaults();
    assert_non_null(c);
    fill_unusual(c);
    EXPECT_OK(dhf_config_write_resolved(c, run));
    EXPECT_OK(dhf_config_load_file(back, file));
    EXPECT_SAME(back, c);
    /* save_yaml overwrites in place */
    dhf_config_defaults(c);
    EXPECT_OK(dhf_config_save_yaml(c, file));
    EXPECT_OK(dhf_config_load_file(back, file));
    EXPECT_SAME(back, c);
    EXPECT_ERR(dhf_config_save_yaml(c, "/nonexistent/dhf/config.yaml"), "/nonexistent/dhf");
    unlink(file);
    rmdir(run);
    rmdir(dir);
    free(c);
    free(back);
}

static const cJSON *json_at(const cJSON *root, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *node = root;
    for (char *part = strtok(buf, "."); part && node; part = strtok(NULL, "."))
        node = cJSON_GetObjectItemCaseSensitive(node, part);
    return node;
}

static void test_json_has_every_key(void **state)
{
    (void)state;
    dhf_config *c = new_defaults();
    c->seed = INT64_MAX;
    strcpy(c->prompt, "say \"hi\"");
    char *json = dhf_config_to_json(c);
    assert_non_null(json);
    assert_null(strchr(json, '\n'));   /* compact */
    assert_non_null(strstr(json, "\"seed\":9223372036854775807"));
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++)
        if (!json_at(root, k->path))
            fail_msg("JSON lacks key '%s': %s", k->path, json);
    assert_true(cJSON_IsObject(json_at(root, "eval")));
    assert_null(cJSON_GetObjectItemCaseSensitive(root, "eval.alphas"));
    const cJSON *alphas = json_at(root, "eval.alphas");
    assert_int_equal(cJSON_GetArraySize(alphas), 4);
    assert_true(cJSON_GetArrayItem(alphas, 1)->valuedouble == 0.05);
    assert_true(json_at(root, "lr")->valuedouble == 0.001);
    assert_int_equal(json_at(root, "num_timesteps")->valueint, 50);
    assert_int_equal(cJSON_GetArraySize(json_at(root, "save_timestep")), 11);
    assert_int_equal(cJSON_GetArrayItem(json_at(root, "save_timestep"), 0)->valueint, 49);
    assert_string_equal(json_at(root, "prompt")->valuestring, "say \"hi\"");
    assert_string_equal(json_at(root, "eval.matcher")->valuestring, "argmax");
    assert_true(cJSON_IsFalse(json_at(root, "flip_timesteps")));
    assert_true(cJSON_IsTrue(json_at(root, "eval.dump_predictions")));
    cJSON_Delete(root);
    free(json);
    free(c);
}

/* ---- files in the repository -------------------------------------------- */

static char *read_repo_file(const char *path)
{
    char *text = NULL;
    size_t len;
    if (dhf_read_file(path, &text, &len) != 0)
        fail_msg("cannot read %s (tests run from the repository root): %s", path, dhf_err_msg());
    return text;
}

static void test_docs_file_matches_the_table(void **state)
{
    (void)state;
    const char *path = "docs/CONFIG.md";
    char *doc = read_repo_file(path);
    char needle[128];
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++) {
        snprintf(needle, sizeof needle, "| `%s` |", k->path);
        if (!strstr(doc, needle))
            fail_msg("%s does not document key '%s'", path, k->path);
    }
    char *gen = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&gen, &len);
    assert_non_null(f);
    EXPECT_OK(dhf_config_write_docs(f));
    fclose(f);
    if (strcmp(doc, gen) != 0)
        fail_msg("%s is out of date with the key table; regenerate it with "
                 "./build/test_config --write-docs %s", path, path);
    free(gen);
    free(doc);
}

static void test_default_yaml_file_is_the_defaults(void **state)
{
    (void)state;
    const char *path = "configs/default.yaml";
    dhf_config *c = malloc(sizeof *c), *def = new_defaults();
    assert_non_null(c);
    memset(c, 0, sizeof *c);   /* so a key missing from the file shows */
    if (dhf_config_load_file(c, path) != 0)
        fail_msg("%s: %s", path, dhf_err_msg());
    const char *d = config_diff(c, def);
    if (d)
        fail_msg("%s: key '%s' is missing or not the default; regenerate with "
                 "./build/test_config --write-default-config %s", path, d, path);
    free(c);
    free(def);
}

/* ---- generator mode and main -------------------------------------------- */

static int write_generated(const char *what, const char *path)
{
    dhf_atomic_file af;
    if (dhf_atomic_open(&af, path) != 0) {
        fprintf(stderr, "%s\n", dhf_err_msg());
        return 1;
    }
    int rc;
    if (strcmp(what, "--write-docs") == 0) {
        rc = dhf_config_write_docs(af.fp);
    } else {
        dhf_config *c = new_defaults();
        fputs("# configs/default.yaml: the paper's defaults (Luo et al., NeurIPS 2023), every key\n"
              "# with its description. Copy it, keep the keys you change, delete the rest.\n"
              "# Generated by ./build/test_config --write-default-config configs/default.yaml\n",
              af.fp);
        rc = dhf_config_write_yaml(c, af.fp);
        free(c);
    }
    if (rc != 0 || dhf_atomic_commit(&af) != 0) {
        dhf_atomic_abort(&af);
        fprintf(stderr, "%s\n", dhf_err_msg());
        return 1;
    }
    printf("wrote %s\n", path);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && (strcmp(argv[1], "--write-docs") == 0 ||
                      strcmp(argv[1], "--write-default-config") == 0))
        return write_generated(argv[1], argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_covers_struct),
        cmocka_unit_test(test_defaults_are_the_papers),
        cmocka_unit_test(test_empty_and_comment_only_files_change_nothing),
        cmocka_unit_test(test_file_overrides_only_its_keys),
        cmocka_unit_test(test_booleans_and_nulls),
        cmocka_unit_test(test_nested_dotted_and_set_are_the_same),
        cmocka_unit_test(test_set_overrides),
        cmocka_unit_test(test_unknown_keys_suggest_the_closest),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_bad_choices),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_yaml_syntax_errors),
        cmocka_unit_test(test_top_level_must_be_one_mapping),
        cmocka_unit_test(test_failed_load_changes_nothing),
        cmocka_unit_test(test_missing_file_and_string_origin),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_validate_cross_key_rules),
        cmocka_unit_test(test_round_trip_write_then_load),
        cmocka_unit_test(test_write_resolved_into_run_dir),
        cmocka_unit_test(test_json_has_every_key),
        cmocka_unit_test(test_docs_file_matches_the_table),
        cmocka_unit_test(test_default_yaml_file_is_the_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
