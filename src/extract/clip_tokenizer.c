/* clip_tokenizer.c — CLIPTokenizer (transformers 4.27, slow, no ftfy) over
 * core/unicode.h: loading, the special-token split, BERT's BasicTokenizer, the CLIP
 * regex pre-split, byte-level BPE and the model input. */
#include "extract/clip_tokenizer.h"

#include <cjson/cJSON.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/hash.h"
#include "core/unicode.h"

/* ---- a string -> int hash map (open addressing) ------------------------------ */

typedef struct {
    char **keys;
    int64_t *vals;
    size_t cap, n;
} strmap;

static uint64_t str_hash(const char *s, size_t n)
{
    uint64_t h = DHF_FNV1A64_INIT;
    dhf_fnv1a64_update(&h, (const unsigned char *)s, n);
    return h;
}

static int strmap_init(strmap *m, size_t expected)
{
    m->cap = 16;
    while (m->cap < 2 * expected + 16)
        m->cap *= 2;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->vals = calloc(m->cap, sizeof *m->vals);
    m->n = 0;
    return m->keys && m->vals ? 0 : dhf_err_set("out of memory");
}

static void strmap_free(strmap *m)
{
    for (size_t i = 0; m->keys && i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* slot of key (len bytes), empty or holding it */
static size_t strmap_slot(const strmap *m, const char *key, size_t len)
{
    size_t i = (size_t)str_hash(key, len) & (m->cap - 1);
    while (m->keys[i] && !(strlen(m->keys[i]) == len && memcmp(m->keys[i], key, len) == 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int strmap_put(strmap *m, const char *key, int64_t v)
{
    size_t len = strlen(key), i = strmap_slot(m, key, len);
    if (m->keys[i]) {
        m->vals[i] = v;   /* a later duplicate wins, as in a python dict */
        return 0;
    }
    if (2 * (m->n + 1) > m->cap)
        return dhf_err_set("tokenizer table full");
    if (!(m->keys[i] = malloc(len + 1)))
        return dhf_err_set("out of memory");
    memcpy(m->keys[i], key, len + 1);
    m->vals[i] = v;
    m->n++;
    return 0;
}

static bool strmap_get(const strmap *m, const char *key, size_t len, int64_t *v)
{
    size_t i = strmap_slot(m, key, len);
    if (!m->keys[i])
        return false;
    *v = m->vals[i];
    return true;
}

/* ---- loading ---------------------------------------------------------------- */

#define MAX_SPECIAL 8

struct dhf_clip_tokenizer {
    strmap vocab;              /* token -> id */
    strmap ranks;              /* "left right" -> merge rank */
    char *special[MAX_SPECIAL];/* distinct special-token texts, longest first */
    dhf_ustr special_cp[MAX_SPECIAL];   /* the same as code points */
    int n_special;
    int64_t bos, eos, pad, unk;
    int max_length;
    uint32_t byte_char[256];   /* bytes_to_unicode */
};

void dhf_clip_tokenizer_free(dhf_clip_tokenizer *t)
{
    if (!t)
        return;
    strmap_free(&t->vocab);
    strmap_free(&t->ranks);
    for (int i = 0; i < t->n_special; i++) {
        free(t->special[i]);
        dhf_ustr_free(&t->special_cp[i]);
    }
    free(t);
}

int dhf_clip_tokenizer_max_length(const dhf_clip_tokenizer *t) { return t->max_length; }
int64_t dhf_clip_tokenizer_bos(const dhf_clip_tokenizer *t) { return t->bos; }
int64_t dhf_clip_tokenizer_eos(const dhf_clip_tokenizer *t) { return t->eos; }
int64_t dhf_clip_tokenizer_pad(const dhf_clip_tokenizer *t) { return t->pad; }

void dhf_clip_bytes_to_unicode(uint32_t out[256])
{
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        out[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
    }
}

static cJSON *read_json(const char *dir, const char *leaf, bool required)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, leaf);
    if (!dhf_path_exists(path)) {
        if (required)
            dhf_err_set("%s: missing", path);
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    if (dhf_read_file(path, &text, &len) != 0)
        return NULL;
    cJSON *o = cJSON_ParseWithLength(text, len);
    free(text);
    if (!o)
        dhf_err_set("%s: not valid JSON", path);
    return o;
}

/* a token entry: "text" or {"content": "text", ...} (an AddedToken) */
static const char *token_text(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsString(v))
        return v->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

static int load_vocab(dhf_clip_tokenizer *t, const char *dir)
{
    cJSON *v = read_json(dir, "vocab.json", true);
    if (!v)
        return -1;
    int rc = -1;
    if (!cJSON_IsObject(v)) {
        dhf_err_set("%s/vocab.json: expected an object of token: id", dir);
        goto done;
    }
    if (strmap_init(&t->vocab, (size_t)cJSON_GetArraySize(v)) != 0)
        goto done;
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble <= 4e9) ||
            e->valuedouble != (double)(int64_t)e->valuedouble) {
            dhf_err_set("%s/vocab.json: token '%s': expected an integer id in 0..4e9", dir,
                        e->string);
            goto done;
        }
        if (strmap_put(&t->vocab, e->string, (int64_t)e->valuedouble) != 0)
            goto done;
    }
    rc = 0;
done:
    cJSON_Delete(v);
    return rc;
}

/* merges.txt: a header line, then "left right" per line in rank order (the reference
 * reads lines 1 .. 48894 of the file). */
static int load_merges(dhf_clip_tokenizer *t, const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    char *text = NULL;
    size_t len = 0;
    if (dhf_read_file(path, &text, &len) != 0)
        return -1;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    int rc = -1;
    if (strmap_init(&t->ranks, lines + 1) != 0)
        goto done;
    /* text.strip().split('\n')[1:49152 - 256 - 2 + 1] */
    size_t a = 0, b = len;
    while (a < b && (text[a] == ' ' || text[a] == '\n' || text[a] == '\t' || text[a] == '\r'))
        a++;
    while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\n' || text[b - 1] == '\t' ||
                     text[b - 1] == '\r'))
        b--;
    text[b] = '\0';
    char *line = text + a;
    int64_t idx = 0, rank = 0;
    while (line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        size_t ll = strlen(line);
        while (ll > 0 && (line[ll - 1] == '\r' || line[ll - 1] == ' '))
            line[--ll] = '\0';
        /* an empty line still takes its rank, as in the reference's list */
        if (idx >= 1 && idx < 48895 && ll > 0) {
            char *sp = strchr(line, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                dhf_err_set("%s:%lld: expected 'left right'", path, (long long)idx + 1);
                goto done;
            }
            if (strmap_put(&t->ranks, line, rank) != 0)
                goto done;
        }
        if (idx >= 1)
            rank++;
        idx++;
        line = nl ? nl + 1 : NULL;
    }
    rc = 0;
done:
    free(text);
    return rc;
}

static int add_special(dhf_clip_tokenizer *t, const char *s)
{
    if (!s || !*s)
        return 0;
    for (int i = 0; i < t->n_special; i++)
        if (strcmp(t->special[i], s) == 0)
            return 0;
    if (t->n_special == MAX_SPECIAL)
        return dhf_err_set("tokenizer: too many special tokens");
    if (!(t->special[t->n_special] = malloc(strlen(s) + 1)))
        return dhf_err_set("out of memory");
    strcpy(t->special[t->n_special++], s);
    /* longest first, so a token that contains another is matched whole */
    for (int i = t->n_special - 1; i > 0 && strlen(t->special[i]) > strlen(t->special[i - 1]); i--) {
        char *x = t->special[i];
        t->special[i] = t->special[i - 1];
        t->special[i - 1] = x;
    }
    return 0;
}

static int token_id(const dhf_clip_tokenizer *t, const char *dir, const char *what,
                    const char *text, int64_t *id)
{
    if (!strmap_get(&t->vocab, text, strlen(text), id))
        return dhf_err_set("%s: the %s '%s' is not in vocab.json", dir, what, text);
    return 0;
}

int dhf_clip_tokenizer_load(const char *dir, dhf_clip_tokenizer **out)
{
    dhf_clip_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return dhf_err_set("out of memory");
    dhf_clip_bytes_to_unicode(t->byte_char);
    cJSON *cfg = NULL, *map = NULL;
    int rc = -1;
    if (load_vocab(t, dir) != 0 || load_merges(t, dir) != 0)
        goto done;
    cfg = read_json(dir, "tokenizer_config.json", true);
    if (!cfg)
        goto done;
    map = read_json(dir, "special_tokens_map.json", false);
    if (!map && dhf_err_msg()[0] && !strstr(dhf_err_msg(), "missing"))
        goto done;
    dhf_err_clear();
    const char *names[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    const char *texts[4];
    for (int i = 0; i < 4; i++) {
        const char *s = map ? token_text(map, names[i]) : NULL;   /* the map wins */
        texts[i] = s ? s : token_text(cfg, names[i]);
    }
    if (!texts[0] || !texts[1]) {
        dhf_err_set("%s: tokenizer_config.json / special_tokens_map.json name no %s", dir,
                    !texts[0] ? "bos_token" : "eos_token");
        goto done;
    }
    if (!texts[2])
        texts[2] = texts[1];
    if (!texts[3])
        texts[3] = texts[1];
    for (int i = 0; i < 4; i++)
        if (add_special(t, texts[i]) != 0)
            goto done;
    for (int i = 0; i < t->n_special; i++)
        if (dhf_utf8_decode(t->special[i], strlen(t->special[i]), &t->special_cp[i]) != 0) {
            dhf_err_wrap("%s: special token", dir);
            goto done;
        }
    if (token_id(t, dir, "bos_token", texts[0], &t->bos) != 0 ||
        token_id(t, dir, "eos_token", texts[1], &t->eos) != 0 ||
        token_id(t, dir, "unk_token", texts[2], &t->unk) != 0 ||
        token_id(t, dir, "pad_token", texts[3], &t->pad) != 0)
        goto done;
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(cfg, "model_max_length");
    t->max_length = cJSON_IsNumber(ml) && ml->valuedouble >= 2 && ml->valuedouble <= 4096
                        ? (int)ml->valuedouble
                        : 77;
    rc = 0;
done:
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    if (rc != 0) {
        dhf_clip_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

/* ---- BasicTokenizer (do_lower_case, strip accents, CJK, punctuation) -------- */

static bool is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool is_punct(uint32_t c)
{
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
           (c >= 123 && c <= 126) || dhf_uclass_of(c) == DHF_U_PUNCT;
}

/* One piece of text (no special tokens) through BasicTokenizer: the words joined with
 * single spaces, appended to out. */
static int basic_tokenize(const uint32_t *s, size_t n, dhf_ustr *out)
{
    dhf_ustr clean = {0}, word = {0}, low = {0}, nfd = {0};
    int rc = -1;
    /* _clean_text and _tokenize_chinese_chars */
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c == '\t' || c == '\n' || c == '\r' || c == ' ' || dhf_uclass_of(c) == DHF_U_SPACE) {
            if (dhf_ustr_push(&clean, ' ') != 0)
                goto done;
            continue;
        }
        if (c == 0 || c == 0xFFFD || dhf_uclass_of(c) == DHF_U_CONTROL)
            continue;
        if (is_cjk(c)) {
            if (dhf_ustr_push(&clean, ' ') || dhf_ustr_push(&clean, c) || dhf_ustr_push(&clean, ' '))
                goto done;
            continue;
        }
        if (dhf_ustr_push(&clean, c) != 0)
            goto done;
    }
    /* split on whitespace (str.split: the spaces and U+2028 / U+2029), then per word:
     * lower(), NFD without Mn, punctuation split; the words joined with spaces */
    size_t i = 0;
    bool first = out->n == 0;
    while (i < clean.n) {
        while (i < clean.n && (clean.cp[i] == ' ' || dhf_uclass_of(clean.cp[i]) == DHF_U_LINESEP))
            i++;
        size_t j = i;
        while (j < clean.n && !(clean.cp[j] == ' ' || dhf_uclass_of(clean.cp[j]) == DHF_U_LINESEP))
            j++;
        if (j == i)
            break;
        low.n = nfd.n = 0;
        if (dhf_ulower_str(clean.cp + i, j - i, &low) != 0 || dhf_unfd_str(low.cp, low.n, &nfd) != 0)
            goto done;
        bool in_word = false;
        for (size_t k = 0; k < nfd.n; k++) {
            uint32_t c = nfd.cp[k];
            if (dhf_uclass_of(c) == DHF_U_MARK_NONSPACING)
                continue;
            bool p = is_punct(c);
            if (p || !in_word) {
                if (!first && dhf_ustr_push(out, ' ') != 0)
                    goto done;
                first = false;
            }
            if (dhf_ustr_push(out, c) != 0)
                goto done;
            in_word = !p;
        }
        i = j;
    }
    rc = 0;
done:
    dhf_ustr_free(&clean);
    dhf_ustr_free(&word);
    dhf_ustr_free(&low);
    dhf_ustr_free(&nfd);
    return rc;
}

/* ---- BPE ---------------------------------------------------------------------- */

typedef struct {
    int64_t *ids;
    size_t n, cap;
} idvec;

static int ids_push(idvec *v, int64_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        int64_t *p = realloc(v->ids, cap * sizeof *p);
        if (!p)
            return dhf_err_set("out of memory");
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return 0;
}

#define MAX_SYM 1024

/* One regex piece (UTF-8 bytes) through byte-level BPE, its ids appended. */
static int bpe_piece(const dhf_clip_tokenizer *t, const char *bytes, size_t nb, idvec *out)
{
    if (nb == 0)
        return 0;
    if (nb > MAX_SYM)
        return dhf_err_set("tokenizer: a word of %zu bytes is too long", nb);
    /* symbols: the bytes as bytes_to_unicode characters, UTF-8 encoded, the last with
     * "</w>" */
    static __thread char sym[MAX_SYM][64];
    size_t n = nb;
    for (size_t i = 0; i < nb; i++) {
        int k = dhf_utf8_encode(t->byte_char[(unsigned char)bytes[i]], sym[i]);
        sym[i][k] = '\0';
    }
    strcat(sym[n - 1], "</w>");
    char key[160];
    while (n > 1) {
        int64_t best = -1;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            int len = snprintf(key, sizeof key, "%s %s", sym[i], sym[i + 1]);
            int64_t r;
            if (len < (int)sizeof key && strmap_get(&t->ranks, key, (size_t)len, &r) &&
                (best < 0 || r < best)) {
                best = r;
                bi = i;
            }
        }
        if (best < 0)
            break;
        /* merge every non-overlapping occurrence of that pair, left to right */
        char first[64], second[64];
        snprintf(first, sizeof first, "%s", sym[bi]);
        snprintf(second, sizeof second, "%s", sym[bi + 1]);
        size_t w = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && strcmp(sym[i], first) == 0 && strcmp(sym[i + 1], second) == 0) {
                size_t la = strlen(first), lb = strlen(second);
                if (la + lb >= sizeof sym[0])
                    return dhf_err_set("tokenizer: merged token too long");
                memcpy(sym[w], first, la);
                memcpy(sym[w] + la, second, lb + 1);
                w++;
                i += 2;
            } else {
                if (w != i)
                    strcpy(sym[w], sym[i]);
                w++;
                i++;
            }
        }
        n = w;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t id;
        if (!strmap_get(&t->vocab, sym[i], strlen(sym[i]), &id))
            id = t->unk;
        if (ids_push(out, id) != 0)
            return -1;
    }
    return 0;
}

/* CLIP's pre-split regex on the basic-tokenized text: runs of letters, single number
 * characters, runs of other non-space characters. */
static int regex_and_bpe(const dhf_clip_tokenizer *t, const dhf_ustr *s, idvec *out)
{
    char buf[MAX_SYM + 8];
    size_t i = 0;
    while (i < s->n) {
        uint32_t c = s->cp[i];
        if (c == ' ') {
            i++;
            continue;
        }
        dhf_uclass k = dhf_uclass_of(c);
        size_t j = i + 1;
        if (k == DHF_U_LETTER) {
            while (j < s->n && dhf_uclass_of(s->cp[j]) == DHF_U_LETTER)
                j++;
        } else if (k != DHF_U_NUMBER) {
            while (j < s->n && s->cp[j] != ' ' && dhf_uclass_of(s->cp[j]) != DHF_U_LETTER &&
                   dhf_uclass_of(s->cp[j]) != DHF_U_NUMBER)
                j++;
        }
        size_t nb = 0;
        for (size_t q = i; q < j; q++) {
            if (nb + 4 > MAX_SYM)
                return dhf_err_set("tokenizer: a word of more than %d bytes", MAX_SYM);
            nb += (size_t)dhf_utf8_encode(s->cp[q], buf + nb);
        }
        if (bpe_piece(t, buf, nb, out) != 0)
            return -1;
        i = j;
    }
    return 0;
}

/* ---- the whole call ---------------------------------------------------------- */

/* The tokens of text without BOS/EOS. */
static int tokens_of(const dhf_clip_tokenizer *t, const char *text, size_t len, idvec *out)
{
    dhf_ustr u = {0}, piece = {0};
    int rc = -1;
    if (dhf_utf8_decode(text, len, &u) != 0) {
        dhf_err_wrap("prompt");
        goto done;
    }
    /* special tokens first: cut the text at every exact occurrence, longest first */
    size_t start = 0;
    for (size_t i = 0; i <= u.n;) {
        int hit = -1;
        size_t hit_len = 0;
        for (int s = 0; i < u.n && s < t->n_special && hit < 0; s++) {
            const dhf_ustr *sp = &t->special_cp[s];
            if (sp->n > 0 && i + sp->n <= u.n &&
                memcmp(u.cp + i, sp->cp, sp->n * sizeof *sp->cp) == 0) {
                hit = s;
                hit_len = sp->n;
            }
        }
        if (hit < 0 && i < u.n) {
            i++;
            continue;
        }
        /* the text before it */
        piece.n = 0;
        if (i > start) {
            if (basic_tokenize(u.cp + start, i - start, &piece) != 0 ||
                regex_and_bpe(t, &piece, out) != 0)
                goto done;
        }
        if (hit < 0)
            break;
        int64_t id;
        if (!strmap_get(&t->vocab, t->special[hit], strlen(t->special[hit]), &id))
            id = t->unk;
        if (ids_push(out, id) != 0)
            goto done;
        i += hit_len;
        start = i;
    }
    rc = 0;
done:
    dhf_ustr_free(&u);
    dhf_ustr_free(&piece);
    return rc;
}

int dhf_clip_tokenize_full(const dhf_clip_tokenizer *t, const char *text, size_t len,
                           int64_t **ids, size_t *n)
{
    idvec v = {0};
    if (ids_push(&v, t->bos) != 0 || tokens_of(t, text, len, &v) != 0 || ids_push(&v, t->eos) != 0) {
        free(v.ids);
        return -1;
    }
    *ids = v.ids;
    *n = v.n;
    return 0;
}

int dhf_clip_tokenize(const dhf_clip_tokenizer *t, const char *text, size_t len, int64_t *ids,
                      int64_t *mask, size_t *n_tokens)
{
    idvec v = {0};
    if (tokens_of(t, text, len, &v) != 0) {
        free(v.ids);
        return -1;
    }
    size_t keep = v.n < (size_t)t->max_length - 2 ? v.n : (size_t)t->max_length - 2;
    ids[0] = t->bos;
    for (size_t i = 0; i < keep; i++)
        ids[1 + i] = v.ids[i];
    ids[1 + keep] = t->eos;
    for (size_t i = keep + 2; i < (size_t)t->max_length; i++)
        ids[i] = t->pad;
    if (mask)
        for (size_t i = 0; i < (size_t)t->max_length; i++)
            mask[i] = i < keep + 2;
    if (n_tokens)
        *n_tokens = v.n;
    free(v.ids);
    return 0;
}
