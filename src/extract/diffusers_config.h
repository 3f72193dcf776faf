/* diffusers_config.h — reading the config.json of each component of a diffusers
 * model folder (UNet2DConditionModel, AutoencoderKL, transformers CLIPTextModel)
 * and the tokenizer's pad token. Every field the networks use is read here, with
 * diffusers' own defaults when a key is absent; a value dhf does not implement
 * (an unknown block type, another activation, class embeddings, ...) is an error
 * naming the key and the file. Keys that do not change the computation are ignored. */
#ifndef DHF_EXTRACT_DIFFUSERS_CONFIG_H
#define DHF_EXTRACT_DIFFUSERS_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define DHF_UNET_MAX_BLOCKS 8

typedef struct {
    char path[4096];                 /* the config.json read (for messages) */
    int in_channels, out_channels;
    int n_blocks;                    /* len(block_out_channels) = #down = #up blocks */
    int block_out_channels[DHF_UNET_MAX_BLOCKS];
    bool down_cross_attn[DHF_UNET_MAX_BLOCKS];   /* CrossAttnDownBlock2D vs DownBlock2D */
    bool up_cross_attn[DHF_UNET_MAX_BLOCKS];     /* CrossAttnUpBlock2D vs UpBlock2D */
    int layers_per_block;
    int norm_num_groups;
    double norm_eps;
    int cross_attention_dim;
    /* Attention heads (diffusers v0.14: attention_head_dim IS the number of heads;
     * newer configs may give num_attention_heads instead). Per down block i; the mid
     * block uses the last entry; up block i uses the reversed list's entry i. */
    int heads[DHF_UNET_MAX_BLOCKS];
    int transformer_layers[DHF_UNET_MAX_BLOCKS]; /* transformer_layers_per_block */
    bool use_linear_projection;
    bool upcast_attention;           /* no effect in float32 */
    bool flip_sin_to_cos;
    double freq_shift;
    bool center_input_sample;
    int conv_in_kernel, conv_out_kernel;
    int downsample_padding;
    double mid_block_scale_factor;
} dhf_unet_config;

typedef struct {
    char path[4096];
    int in_channels;
    int latent_channels;
    int n_blocks;
    int block_out_channels[DHF_UNET_MAX_BLOCKS];
    int layers_per_block;
    int norm_num_groups;
    double scaling_factor;           /* 0.18215 when absent (SD 1.x/2.x) */
    bool use_quant_conv;             /* default true */
    bool mid_block_add_attention;    /* default true */
} dhf_vae_config;

typedef enum { DHF_ACT_QUICK_GELU = 0, DHF_ACT_GELU } dhf_clip_act;

typedef struct {
    char path[4096];
    int vocab_size;
    int hidden_size;
    int intermediate_size;
    int num_attention_heads;
    int num_hidden_layers;
    int max_position_embeddings;
    dhf_clip_act hidden_act;         /* "quick_gelu" (SD 1.x) or "gelu" (SD 2.x) */
    double layer_norm_eps;
} dhf_clip_config;

int dhf_unet_config_load(const char *path, dhf_unet_config *c);
int dhf_vae_config_load(const char *path, dhf_vae_config *c);
int dhf_clip_config_load(const char *path, dhf_clip_config *c);

/* Parses config JSON text (`origin` names it in messages; used by the loaders above
 * and by tests that build broken configs in memory). */
int dhf_unet_config_parse(const char *json, const char *origin, dhf_unet_config *c);
int dhf_vae_config_parse(const char *json, const char *origin, dhf_vae_config *c);
int dhf_clip_config_parse(const char *json, const char *origin, dhf_clip_config *c);

/* The pad token id of a CLIP tokenizer folder (`<model>/tokenizer`): "pad_token"
 * from special_tokens_map.json, else tokenizer_config.json (a string or
 * {"content": ...}); the id comes from vocab.json when present, otherwise from the
 * CLIP BPE vocabulary's fixed ids ("<|endoftext|>" 49407, "<|startoftext|>" 49406,
 * "!" 0). SD 1.x pads with "<|endoftext|>", SD 2.x with "!". Error when neither
 * file names a pad token or its id is unknown. */
int dhf_tokenizer_pad_id(const char *tokenizer_dir, int64_t *pad_id);

#endif
