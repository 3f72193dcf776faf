/* clip_text.h — transformers' CLIPTextModel (v4.27 semantics) built from its
 * config.json: token + position embeddings, pre-LN encoder layers with a causal
 * mask and no padding mask, quick_gelu (SD 1.x) or exact gelu (SD 2.x), final
 * LayerNorm -> last_hidden_state, SD's UNet conditioning. Weight files with or
 * without the `position_ids` buffer are accepted. No BPE tokenizer: the empty
 * prompt and explicit token ids. */
#ifndef DHF_EXTRACT_CLIP_TEXT_H
#define DHF_EXTRACT_CLIP_TEXT_H

#include <stdint.h>

#include "extract/diffusers_config.h"
#include "extract/sd_params.h"
#include "extract/unet.h"
#include "shim/torch_shim.h"

#define DHF_CLIP_BOS 49406   /* <|startoftext|> */
#define DHF_CLIP_EOS 49407   /* <|endoftext|> */

typedef struct dhf_clip_text dhf_clip_text;

/* `<dir>/config.json` + `model.safetensors` (or .fp16). */
int dhf_clip_text_load(const char *dir, const dhf_model_placement *placement,
                       dhf_clip_text **out);
int dhf_clip_text_build(const dhf_clip_config *cfg, dhf_params *p, dhf_clip_text **out);
void dhf_clip_text_free(dhf_clip_text *c);
const dhf_clip_config *dhf_clip_text_config_of(const dhf_clip_text *c);

/* ids: B rows of T token ids (T <= max_position_embeddings), row-major.
 * last_hidden: NEW [B, T, hidden]. pooled (may be NULL): NEW [B, hidden], the row of
 * the first maximal id (transformers' argmax rule: the first EOS). hidden_states (may
 * be NULL): num_hidden_layers + 1 NEW [B, T, hidden] (embeddings, then each layer's
 * output before the final LayerNorm). Runs in inference mode. */
int dhf_clip_text_forward(const dhf_clip_text *c, const int64_t *ids, int B, int T,
                          dhf_tensor *last_hidden, dhf_tensor *pooled,
                          dhf_tensor *hidden_states);

/* The empty prompt: [BOS, EOS, pad, pad, ...] (n ids, n >= 2). */
void dhf_clip_empty_prompt_ids(int64_t pad_id, int64_t *ids, int n);

#endif
