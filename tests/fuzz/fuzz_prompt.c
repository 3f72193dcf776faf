/* fuzz_prompt.c — prompts through the CLIP tokenizer (extract/clip_tokenizer.h) with a
 * fixed byte-level vocabulary and a few merges: arbitrary UTF-8 (and invalid bytes)
 * through the special-token split, the basic cleaning, lower-casing, NFD, the regex
 * pre-split and BPE. Every id must be a vocabulary id or a special one. */
#include "fuzz_util.h"

#include "core/unicode.h"
#include "extract/clip_tokenizer.h"

static dhf_clip_tokenizer *g_tok;

static void setup(void)
{
    /* bytes_to_unicode order: the printable bytes, then the rest from U+0100 */
    char *vocab = malloc(1 << 16);
    size_t k = 0;
    int n = 0, id = 0;
    uint32_t sym[256];
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        sym[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
    }
    k += (size_t)sprintf(vocab + k, "{");
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            char u[8];
            int l = dhf_utf8_encode(sym[b], u);
            u[l] = 0;
            if (u[0] == '"' || u[0] == '\\')
                k += (size_t)sprintf(vocab + k, "\"\\%s%s\": %d, ", u, pass ? "</w>" : "", id++);
            else
                k += (size_t)sprintf(vocab + k, "\"%s%s\": %d, ", u, pass ? "</w>" : "", id++);
        }
    k += (size_t)sprintf(vocab + k, "\"ca\": %d, \"cat</w>\": %d, \"th\": %d, \"the</w>\": %d, "
                         "\"<|startoftext|>\": 49406, \"<|endoftext|>\": 49407}", id, id + 1,
                         id + 2, id + 3);
    fuzz_write("p/vocab.json", (const uint8_t *)vocab, k);
    static const char merges[] = "#version: 0.2\nc a\nca t</w>\nt h\nth e</w>\n";
    fuzz_write("p/merges.txt", (const uint8_t *)merges, sizeof merges - 1);
    static const char cfg[] = "{\"bos_token\": \"<|startoftext|>\", \"eos_token\": "
                              "\"<|endoftext|>\", \"pad_token\": \"!\", \"model_max_length\": 77}";
    fuzz_write("p/tokenizer_config.json", (const uint8_t *)cfg, sizeof cfg - 1);
    free(vocab);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/p", fuzz_dir());
    if (dhf_clip_tokenizer_load(dir, &g_tok) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_tok)
        setup();
    int64_t ids[77], *full = NULL;
    size_t n = 0;
    if (dhf_clip_tokenize(g_tok, (const char *)data, size, ids, NULL, NULL) == 0) {
        if (ids[0] != 49406)
            abort();
        for (int i = 0; i < 77; i++)
            if (!((ids[i] >= 0 && ids[i] < 516) || ids[i] == 49406 || ids[i] == 49407))
                abort();
    }
    if (dhf_clip_tokenize_full(g_tok, (const char *)data, size, &full, &n) == 0)
        free(full);
    return 0;
}
