/* test_clip_parity.c — the CLIP text encoder against transformers 4.27.4
 * (clip_ref.safetensors): for every stored token sequence, last_hidden_state,
 * pooler_output and every hidden_states.i within max abs error 2e-5 of the float32
 * reference and of the float64 one (fixtures/clip/MANIFEST.md); the SD 1.x / SD 2.x
 * empty-prompt ids; a batched call equal to single calls; and a weights file without
 * the position_ids buffer (transformers >= 4.31) giving the same output.
 * Usage: test_clip_parity [TEXT_ENCODER_DIR [CLIP_REF [ATOL]]]
 * dhf-test: label=parity */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/torch/st_tensor.h"
#include "extract/clip_text.h"
#include "common/parity_util.h"
#include "common/tmpdir_util.h"

static char g_te_dir[4096], g_ref_path[4096];
static double g_atol = 2e-5;

static double max_abs_err(dhf_tensor cand, const dhf_st_file *ref, const char *name)
{
    const dhf_st_info *info = dhf_st_find(ref, name);
    if (!info)
        fail_msg("%s: missing '%s'", g_ref_path, name);
    if (info->numel != dhf_numel(cand))
        fail_msg("'%s': %lld values, candidate has %lld", name, (long long)info->numel,
                 (long long)dhf_numel(cand));
    size_t n = (size_t)info->numel;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    assert_int_equal(dhf_st_read_f32(ref, name, a, n), 0);
    assert_int_equal(dhf_to_buffer(cand, DHF_F32, b, n * sizeof *b), DHF_OK);
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = d;   /* NaN propagates */
    }
    free(a);
    free(b);
    return m;
}

static void read_ids(const dhf_st_file *ref, const char *seq, int64_t ids[77])
{
    char name[128];
    snprintf(name, sizeof name, "%s.input_ids", seq);
    const dhf_st_info *info = NULL;
    if (dhf_st_get(ref, name, &info) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(info->numel, 77);
    memcpy(ids, info->data, 77 * sizeof ids[0]);
}

/* Every sequence named in the file's metadata; returns the worst error seen. */
static void check_model(const char *te_dir, const char *label)
{
    dhf_clip_text *c = NULL;
    dhf_st_file *ref = NULL;
    if (dhf_clip_text_load(te_dir, NULL, &c) != 0)
        fail_msg("%s", dhf_err_msg());
    if (dhf_st_open(g_ref_path, &ref) != 0)
        fail_msg("%s", dhf_err_msg());
    const char *seqs = dhf_st_metadata_get(ref, "sequences");
    assert_non_null(seqs);
    int L = dhf_clip_text_config_of(c)->num_hidden_layers;
    char list[1024];
    snprintf(list, sizeof list, "%s", seqs);
    double worst = 0, worst64 = 0;
    int n_seq = 0, n_arrays = 0;
    assert_int_equal(dhf_inference_begin(), DHF_OK);
    for (char *save = NULL, *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        int64_t ids[77];
        read_ids(ref, s, ids);
        dhf_tensor last = NULL, pooled = NULL, hs[64] = {0};
        assert_true(L + 1 <= 64);
        if (dhf_clip_text_forward(c, ids, 1, 77, &last, &pooled, hs) != 0)
            fail_msg("%s: %s", s, dhf_err_msg());
        char name[160], name64[160];
        for (int k = 0; k < L + 3; k++) {
            dhf_tensor t;
            if (k == 0) {
                t = last;
                snprintf(name, sizeof name, "%s.last_hidden_state", s);
                snprintf(name64, sizeof name64, "%s.f64.last_hidden_state", s);
            } else if (k == 1) {
                t = pooled;
                snprintf(name, sizeof name, "%s.pooler_output", s);
                snprintf(name64, sizeof name64, "%s.f64.pooler_output", s);
            } else {
                t = hs[k - 2];
                snprintf(name, sizeof name, "%s.hidden_states.%d", s, k - 2);
                snprintf(name64, sizeof name64, "%s.f64.hidden_states.%d", s, k - 2);
            }
            double e = max_abs_err(t, ref, name), e64 = max_abs_err(t, ref, name64);
            if (!(e <= g_atol) || !(e64 <= g_atol))
                fail_msg("%s: %s: max abs err %.3g (f64 ref: %.3g) > %.3g", label, name, e, e64,
                         g_atol);
            worst = e > worst ? e : worst;
            worst64 = e64 > worst64 ? e64 : worst64;
            n_arrays++;
        }
        dhf_free(last);
        dhf_free(pooled);
        for (int k = 0; k <= L; k++)
            dhf_free(hs[k]);
        n_seq++;
    }
    assert_int_equal(dhf_inference_end(), DHF_OK);
    printf("%s: %d sequences, %d arrays: worst max|d| %.3g vs fp32 refs, %.3g vs fp64 refs "
           "(limit %.3g)\n", label, n_seq, n_arrays, worst, worst64, g_atol);
    assert_true(n_seq >= 1);
    dhf_st_close(ref);
    dhf_clip_text_free(c);
}

static void test_all_sequences(void **state)
{
    (void)state;
    check_model(g_te_dir, "text_encoder");
    assert_int_equal(dhf_live_tensors(), 0);
}

/* Empty prompts: BOS, EOS, then the tokenizer's pad (SD 1.x EOS, SD 2.x 0). */
static void test_empty_prompt_ids(void **state)
{
    (void)state;
    dhf_st_file *ref = NULL;
    if (dhf_st_open(g_ref_path, &ref) != 0)
        fail_msg("%s", dhf_err_msg());
    int64_t want[77], got[77];
    if (dhf_st_find(ref, "sd15_empty.input_ids")) {
        read_ids(ref, "sd15_empty", want);
        dhf_clip_empty_prompt_ids(DHF_CLIP_EOS, got, 77);
        assert_memory_equal(want, got, sizeof want);
    }
    if (dhf_st_find(ref, "sd2_empty.input_ids")) {
        read_ids(ref, "sd2_empty", want);
        dhf_clip_empty_prompt_ids(0, got, 77);
        assert_memory_equal(want, got, sizeof want);
    }
    dhf_st_close(ref);
}

/* Two sequences in one call equal the single calls (rows are independent; BLAS may
 * block a [2*77, H] product differently, so equal up to float32 rounding). */
static void test_batched_equals_single(void **state)
{
    (void)state;
    dhf_clip_text *c = NULL;
    if (dhf_clip_text_load(g_te_dir, NULL, &c) != 0)
        fail_msg("%s", dhf_err_msg());
    int64_t ids[2 * 77];
    dhf_clip_empty_prompt_ids(DHF_CLIP_EOS, ids, 77);
    dhf_clip_empty_prompt_ids(0, ids + 77, 77);
    ids[77 + 2] = 320;   /* a word after BOS, EOS */
    dhf_tensor both = NULL, one = NULL, two = NULL, row = NULL;
    assert_int_equal(dhf_inference_begin(), DHF_OK);
    assert_int_equal(dhf_clip_text_forward(c, ids, 2, 77, &both, NULL, NULL), 0);
    assert_int_equal(dhf_clip_text_forward(c, ids, 1, 77, &one, NULL, NULL), 0);
    assert_int_equal(dhf_clip_text_forward(c, ids + 77, 1, 77, &two, NULL, NULL), 0);
    assert_int_equal(dhf_inference_end(), DHF_OK);
    double d = -1;
    assert_int_equal(dhf_narrow(both, 0, 1, 1, &row), DHF_OK);
    assert_int_equal(dhf_max_abs_diff(row, two, &d), DHF_OK);
    printf("batched vs single: max|d| %.3g\n", d);
    assert_true(d < 1e-5);
    dhf_free(row);
    assert_int_equal(dhf_narrow(both, 0, 0, 1, &row), DHF_OK);
    assert_int_equal(dhf_max_abs_diff(row, one, &d), DHF_OK);
    assert_true(d < 1e-5);
    /* causal: positions 0-1 do not depend on the padding */
    dhf_tensor a = NULL, b = NULL;
    assert_int_equal(dhf_narrow(one, 1, 0, 2, &a), DHF_OK);
    assert_int_equal(dhf_narrow(two, 1, 0, 2, &b), DHF_OK);
    assert_int_equal(dhf_max_abs_diff(a, b, &d), DHF_OK);
    assert_true(d < 1e-5);
    /* out-of-vocabulary ids are an error, not a crash */
    int64_t bad[3] = {DHF_CLIP_BOS, 49408, DHF_CLIP_EOS};
    dhf_tensor none = NULL;
    assert_int_equal(dhf_clip_text_forward(c, bad, 1, 3, &none, NULL, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), "49408"));
    dhf_free(a);
    dhf_free(b);
    dhf_free(row);
    dhf_free(both);
    dhf_free(one);
    dhf_free(two);
    dhf_clip_text_free(c);
}

/* A copy of the weights without text_model.embeddings.position_ids loads and gives
 * the same outputs (transformers >= 4.31 files). Built in a temporary folder. */
static void test_without_position_ids(void **state)
{
    (void)state;
    char *dir = tmp_make_dir("clip");
    assert_non_null(dir);
    char src_w[4300], dst_w[4300], src_c[4300], dst_c[4300];
    snprintf(src_w, sizeof src_w, "%s/model.safetensors", g_te_dir);
    snprintf(dst_w, sizeof dst_w, "%s/model.safetensors", dir);
    snprintf(src_c, sizeof src_c, "%s/config.json", g_te_dir);
    snprintf(dst_c, sizeof dst_c, "%s/config.json", dir);
    dhf_st_file *f = NULL;
    dhf_st_writer *w = NULL;
    if (dhf_st_open(src_w, &f) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(dhf_st_writer_new(&w), 0);
    int dropped = 0;
    for (int i = 0; i < dhf_st_count(f); i++) {
        const dhf_st_info *t = dhf_st_at(f, i);
        if (strstr(t->name, "position_ids")) {
            dropped++;
            continue;
        }
        assert_int_equal(dhf_st_writer_add(w, t->name, t->dtype, t->shape, t->ndim, t->data), 0);
    }
    assert_int_equal(dhf_st_writer_save(w, dst_w), 0);
    dhf_st_writer_free(w);
    dhf_st_close(f);
    assert_int_equal(tmp_copy_file(src_c, dst_c), 0);
    printf("copy without position_ids (%d tensor dropped)\n", dropped);
    check_model(dir, "text_encoder without position_ids");
    tmp_remove_tree(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    const char *root = DHF_FIXTURES_ROOT;
    snprintf(g_te_dir, sizeof g_te_dir, "%s",
             argc > 1 ? argv[1] : DHF_FIXTURES_ROOT "/clip/sd15_tiny/text_encoder");
    snprintf(g_ref_path, sizeof g_ref_path, "%s",
             argc > 2 ? argv[2] : DHF_FIXTURES_ROOT "/clip/sd15_tiny/clip_ref.safetensors");
    if (argc > 3)
        g_atol = atof(argv[3]);
    if (argc <= 1 && !parity_path_exists(root)) {
        fprintf(stderr, "%s: %s is absent: skipping\n", argv[0], root);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_sequences),
        cmocka_unit_test(test_empty_prompt_ids),
        cmocka_unit_test(test_batched_equals_single),
        cmocka_unit_test(test_without_position_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
