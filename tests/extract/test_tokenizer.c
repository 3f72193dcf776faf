/* test_tokenizer.c — the CLIP BPE tokenizer (extract/clip_tokenizer.h). Parity with
 * transformers 4.27's CLIPTokenizer on every case of the gen fixture
 * (refs/tokenizer_ref.safetensors: input_ids, attention_mask and the untruncated ids,
 * for both tokenizer folders, equal), read by name so any case file of that schema
 * works; and hand-computed edge cases on a tokenizer folder the test writes itself
 * (empty prompt, more than 77 tokens, exactly 75 and 76, characters outside the
 * merges and outside the vocabulary, special tokens in the text, the pad id from the
 * folder, accents and case).
 * Usage: test_tokenizer [GEN_FIXTURE_ROOT]
 * dhf-test: label=parity */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tmpdir_util.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/safetensors.h"
#include "extract/clip_tokenizer.h"

static char g_root[4096] = "../shared/fixtures/gen";

static const int64_t *i64(const dhf_st_file *f, const char *name, int64_t *n)
{
    const dhf_st_info *info = dhf_st_find(f, name);
    if (!info || info->dtype != DHF_ST_I64)
        fail_msg("missing int64 tensor %s", name);
    *n = info->numel;
    return info->data;
}

static void test_fixture_cases(void **state)
{
    (void)state;
    char ref_path[4200];
    snprintf(ref_path, sizeof ref_path, "%s/refs/tokenizer_ref.safetensors", g_root);
    if (!dhf_path_exists(ref_path))
        skip();
    dhf_st_file *ref = NULL;
    if (dhf_st_open(ref_path, &ref) != 0)
        fail_msg("%s", dhf_err_msg());
    const char *variants[2] = {"sd15", "sd2"};
    int cases = 0, failed = 0;
    for (int v = 0; v < 2; v++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/tokenizer/%s", g_root, variants[v]);
        dhf_clip_tokenizer *t = NULL;
        if (dhf_clip_tokenizer_load(dir, &t) != 0)
            fail_msg("%s", dhf_err_msg());
        int64_t n1;
        char key[64];
        snprintf(key, sizeof key, "meta/pad_id_%s", variants[v]);
        assert_int_equal(dhf_clip_tokenizer_pad(t), i64(ref, key, &n1)[0]);
        assert_int_equal(dhf_clip_tokenizer_bos(t), i64(ref, "meta/bos_id", &n1)[0]);
        assert_int_equal(dhf_clip_tokenizer_eos(t), i64(ref, "meta/eos_id", &n1)[0]);
        assert_int_equal(dhf_clip_tokenizer_max_length(t), i64(ref, "meta/max_length", &n1)[0]);
        for (int i = 0; i < dhf_st_count(ref); i++) {
            const dhf_st_info *info = dhf_st_at(ref, i);
            size_t nl = strlen(info->name);
            if (nl < 10 || strcmp(info->name + nl - 10, "/text_utf8") != 0)
                continue;
            char name[256], tn[300];
            snprintf(name, sizeof name, "%.*s", (int)(nl - 10), info->name);
            int64_t want_n = 0, mask_n = 0, full_n = 0, ids[77], mask[77];
            snprintf(tn, sizeof tn, "%s/%s/input_ids", name, variants[v]);
            const int64_t *want = i64(ref, tn, &want_n);
            snprintf(tn, sizeof tn, "%s/%s/attention_mask", name, variants[v]);
            const int64_t *want_mask = i64(ref, tn, &mask_n);
            snprintf(tn, sizeof tn, "%s/%s/ids_full", name, variants[v]);
            const int64_t *want_full = i64(ref, tn, &full_n);
            assert_int_equal(want_n, 77);
            if (dhf_clip_tokenize(t, info->data, (size_t)info->nbytes, ids, mask, NULL) != 0)
                fail_msg("%s: %s", name, dhf_err_msg());
            int64_t *full = NULL;
            size_t fn = 0;
            if (dhf_clip_tokenize_full(t, info->data, (size_t)info->nbytes, &full, &fn) != 0)
                fail_msg("%s: %s", name, dhf_err_msg());
            bool ok = memcmp(ids, want, sizeof ids) == 0 && memcmp(mask, want_mask, sizeof mask) == 0 &&
                      (int64_t)fn == full_n && memcmp(full, want_full, fn * sizeof *full) == 0;
            if (!ok) {
                failed++;
                print_message("FAIL %s (%s): %zu ids, reference %lld; first difference at", name,
                              variants[v], fn, (long long)full_n);
                for (size_t k = 0; k < fn && (int64_t)k < full_n; k++)
                    if (full[k] != want_full[k]) {
                        print_message(" %zu (%lld vs %lld)", k, (long long)full[k],
                                      (long long)want_full[k]);
                        break;
                    }
                print_message("\n");
            }
            free(full);
            cases++;
        }
        dhf_clip_tokenizer_free(t);
    }
    print_message("tokenizer: %d cases x folders checked, %d failed\n", cases, failed);
    dhf_st_close(ref);
    assert_true(cases > 0);
    assert_int_equal(failed, 0);
}

/* ---- a hand-made tokenizer folder ------------------------------------------------ */

static char *g_dir;

/* bytes_to_unicode order: bytes 33..126, 161..172, 174..255, then the rest as U+0100.. */
static void byte_symbol(int b, char *out)
{
    static int order[256];
    static int done;
    if (!done) {
        int n = 0;
        for (int x = 0; x < 256; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
                order[x] = 256 + n++;
            else
                order[x] = x;
        done = 1;
    }
    int cp = order[b];
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

/* ids: byte symbols of "abcdefghijklmnopqrstuvwxyz" and " " only (so other characters
 * are outside the vocabulary), then their </w> forms, then "ca", "cat</w>", specials */
static int setup(void **state)
{
    (void)state;
    g_dir = tmp_make_dir("tok");
    if (!g_dir)
        return -1;
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.json", g_dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{");
    int id = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int b = 'a'; b <= 'z'; b++) {
            char s[8];
            byte_symbol(b, s);
            fprintf(f, "\"%s%s\": %d, ", s, pass ? "</w>" : "", id++);
        }
    fprintf(f, "\"ca\": %d, \"cat</w>\": %d, \"<|startoftext|>\": 49406, \"<|endoftext|>\": 49407, "
               "\"!\": 900}", id, id + 1);
    fclose(f);
    snprintf(path, sizeof path, "%s/merges.txt", g_dir);
    f = fopen(path, "w");
    fprintf(f, "#version: 0.2\nc a\nca t</w>\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", g_dir);
    f = fopen(path, "w");
    fprintf(f, "{\"bos_token\": {\"content\": \"<|startoftext|>\"}, \"eos_token\": "
               "{\"content\": \"<|endoftext|>\"}, \"unk_token\": \"<|endoftext|>\", "
               "\"pad_token\": \"<|endoftext|>\", \"model_max_length\": 77}");
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dhf_remove_tree(g_dir);
    free(g_dir);
    return 0;
}

static dhf_clip_tokenizer *load(const char *pad)
{
    if (pad) {   /* the SD-2 layout: the pad token in special_tokens_map.json */
        char path[512];
        snprintf(path, sizeof path, "%s/special_tokens_map.json", g_dir);
        FILE *f = fopen(path, "w");
        fprintf(f, "{\"pad_token\": \"%s\"}", pad);
        fclose(f);
    }
    dhf_clip_tokenizer *t = NULL;
    if (dhf_clip_tokenizer_load(g_dir, &t) != 0)
        fail_msg("%s", dhf_err_msg());
    return t;
}

static void test_edge_cases(void **state)
{
    (void)state;
    dhf_clip_tokenizer *t = load(NULL);
    int64_t ids[77], mask[77];
    size_t n = 0;
    const int64_t A = 0, CAT = 53, AW = 26;   /* "a", "cat</w>", "a</w>" */
    /* the empty prompt (and whitespace only): BOS, EOS, 75 x pad (SD-1: EOS) */
    const char *empties[3] = {"", "   \t\n", "\xe2\x80\x8b"};   /* ZWSP is deleted */
    for (int e = 0; e < 3; e++) {
        assert_int_equal(dhf_clip_tokenize(t, empties[e], strlen(empties[e]), ids, mask, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(ids[0], 49406);
        assert_int_equal(ids[1], 49407);
        for (int i = 2; i < 77; i++)
            assert_int_equal(ids[i], 49407);
        assert_int_equal(mask[1], 1);
        assert_int_equal(mask[2], 0);
    }
    /* merges: "cat" is one token; case and accents go: "CÀT" too */
    const char *cats[2] = {"cat", "C\xc3\x80T"};
    for (int e = 0; e < 2; e++) {
        assert_int_equal(dhf_clip_tokenize(t, cats[e], strlen(cats[e]), ids, mask, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(ids[1], CAT);
        assert_int_equal(ids[2], 49407);
    }
    /* no merge: "ab" is 'a', 'b</w>' */
    assert_int_equal(dhf_clip_tokenize(t, "ab", 2, ids, NULL, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[1], A);
    assert_int_equal(ids[2], 26 + 1);
    /* characters outside the vocabulary: "€" is 3 bytes, none of them in this vocab:
     * 3 unknown tokens (unk = <|endoftext|>) */
    assert_int_equal(dhf_clip_tokenize(t, "\xe2\x82\xac", 3, ids, NULL, &n), 0);
    assert_int_equal(n, 3);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(ids[i], 49407);
    /* more than 75 tokens: the first 75, EOS at 76, no padding */
    char many[512] = "";
    for (int i = 0; i < 100; i++)
        strcat(many, "a ");
    assert_int_equal(dhf_clip_tokenize(t, many, strlen(many), ids, mask, &n), 0);
    assert_int_equal(n, 100);
    for (int i = 1; i <= 75; i++)
        assert_int_equal(ids[i], AW);
    assert_int_equal(ids[76], 49407);
    assert_int_equal(mask[76], 1);
    /* exactly 75: fills all 77; 76: the last one is dropped */
    for (int k = 75; k <= 76; k++) {
        many[0] = '\0';
        for (int i = 0; i < k; i++)
            strcat(many, i == k - 1 ? "cat " : "a ");
        assert_int_equal(dhf_clip_tokenize(t, many, strlen(many), ids, mask, &n), 0);
        assert_int_equal(n, (size_t)k);
        assert_int_equal(ids[75], k == 75 ? CAT : AW);
        assert_int_equal(ids[76], 49407);
    }
    /* special tokens inside the text stay whole; a look-alike is ordinary text */
    const char *sp = "a<|endoftext|>a";
    assert_int_equal(dhf_clip_tokenize(t, sp, strlen(sp), ids, NULL, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], AW);
    assert_int_equal(ids[2], 49407);
    assert_int_equal(ids[3], AW);
    /* invalid UTF-8 is an error, not a silent token */
    assert_int_equal(dhf_clip_tokenize(t, "\xff", 1, ids, NULL, &n), -1);
    assert_non_null(strstr(dhf_err_msg(), "UTF-8"));
    dhf_clip_tokenizer_free(t);

    /* the pad id comes from the folder: "!" (SD-2) is also a special token then */
    t = load("!");
    assert_int_equal(dhf_clip_tokenizer_pad(t), 900);
    assert_int_equal(dhf_clip_tokenize(t, "a!", 2, ids, NULL, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[1], AW);
    assert_int_equal(ids[2], 900);
    assert_int_equal(ids[4], 900);
    dhf_clip_tokenizer_free(t);
    char path[512];
    snprintf(path, sizeof path, "%s/special_tokens_map.json", g_dir);
    remove(path);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        snprintf(g_root, sizeof g_root, "%s", argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_cases),
        cmocka_unit_test_setup_teardown(test_edge_cases, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
