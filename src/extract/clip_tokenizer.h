/* clip_tokenizer.h — the CLIP BPE tokenizer of a diffusers `tokenizer/` folder, as
 * transformers 4.27's slow CLIPTokenizer computes it without ftfy (the environment
 * the paper's code ran in): special tokens split off first, BERT's basic cleaning
 * (control and format characters deleted, Unicode spaces to spaces, CJK ideographs as
 * words, lower-casing, accents stripped by NFD, punctuation split), CLIP's regex
 * pre-split, byte-level BPE with `</w>`, then 77 ids with start/end tokens, truncation
 * and `max_length` padding with the folder's pad token (SD-1.x: <|endoftext|>, SD-2.x:
 * "!" = id 0). */
#ifndef DHF_EXTRACT_CLIP_TOKENIZER_H
#define DHF_EXTRACT_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct dhf_clip_tokenizer dhf_clip_tokenizer;

/* GPT-2's bytes_to_unicode: out[b] is the code point standing for byte b (printable
 * bytes themselves, the other 68 U+0100, U+0101, ... in byte order). */
void dhf_clip_bytes_to_unicode(uint32_t out[256]);

/* <dir>/vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json (the
 * latter wins where both name a token). Errors name the file and the field. */
int dhf_clip_tokenizer_load(const char *dir, dhf_clip_tokenizer **out);
void dhf_clip_tokenizer_free(dhf_clip_tokenizer *t);

int dhf_clip_tokenizer_max_length(const dhf_clip_tokenizer *t);   /* 77 */
int64_t dhf_clip_tokenizer_bos(const dhf_clip_tokenizer *t);
int64_t dhf_clip_tokenizer_eos(const dhf_clip_tokenizer *t);
int64_t dhf_clip_tokenizer_pad(const dhf_clip_tokenizer *t);

/* tokenizer(text).input_ids: BOS, every token, EOS (no truncation, no padding). *ids is
 * malloc'd. text is UTF-8 (invalid UTF-8 is an error). */
int dhf_clip_tokenize_full(const dhf_clip_tokenizer *t, const char *text, size_t len,
                           int64_t **ids, size_t *n);

/* What the paper's code feeds the text encoder (padding "max_length", truncation):
 * ids[max_length] = BOS, the first max_length - 2 tokens, EOS, pad...; mask 1 for
 * BOS..EOS, 0 for padding (mask may be NULL). Returns the number of tokens before
 * truncation (without BOS/EOS) in *n_tokens (may be NULL). */
int dhf_clip_tokenize(const dhf_clip_tokenizer *t, const char *text, size_t len, int64_t *ids,
                      int64_t *mask, size_t *n_tokens);

#endif
