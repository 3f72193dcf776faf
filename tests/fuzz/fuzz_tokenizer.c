/* fuzz_tokenizer.c — the CLIP tokenizer (extract/clip_tokenizer.h) on arbitrary
 * bytes: the input's NUL-separated parts become vocab.json, merges.txt and the prompt;
 * when the folder loads, the prompt is tokenised (both calls). */
#include "fuzz_util.h"

#include "extract/clip_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t nv = 0, nm = 0, nt = 0;
    const uint8_t *v = fuzz_part(data, size, 0, &nv), *m = fuzz_part(data, size, 1, &nm);
    const uint8_t *t = fuzz_part(data, size, 2, &nt);
    fuzz_write("tok/vocab.json", v, nv);
    fuzz_write("tok/merges.txt", m, nm);
    static const char cfg[] = "{\"bos_token\": \"<|startoftext|>\", \"eos_token\": "
                              "\"<|endoftext|>\", \"pad_token\": \"!\", \"model_max_length\": 77}";
    fuzz_write("tok/tokenizer_config.json", (const uint8_t *)cfg, sizeof cfg - 1);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/tok", fuzz_dir());
    dhf_clip_tokenizer *tok = NULL;
    if (dhf_clip_tokenizer_load(dir, &tok) == 0) {
        int64_t ids[77], mask[77], *full = NULL;
        size_t n = 0;
        dhf_clip_tokenize(tok, (const char *)t, nt, ids, mask, NULL);
        if (dhf_clip_tokenize_full(tok, (const char *)t, nt, &full, &n) == 0)
            free(full);
        dhf_clip_tokenizer_free(tok);
    }
    return 0;
}
