/* model_identity.h — what identifies the model behind a feature cache, in the form
 * the cache stores (and the trainer checks): the model folder's name (for people)
 * and "fnv1a64:<16 hex digits>", the UNet weights fingerprint of
 * dhf_sd_model_identity (below: header + first and last MiB of the weight
 * data, so two seeds of the same architecture differ). Not a cryptographic hash. */
#ifndef DHF_CACHE_MODEL_IDENTITY_H
#define DHF_CACHE_MODEL_IDENTITY_H

#include <stddef.h>

/* The UNet weights file of a diffusers folder (unet/diffusion_pytorch_model.safetensors
 * or its .fp16 variant: dhf_find_weights_file of core/fsutil.h). */
int dhf_model_unet_weights_path(const char *model_dir, char *out, size_t n);
/* name: the folder's last path component; hash: "fnv1a64:<16 hex digits>". */
int dhf_model_identity(const char *model_dir, char *name, size_t name_n, char *hash,
                       size_t hash_n);

/* "<basename>:<hex>" where hex is FNV-1a 64 over the UNet safetensors header (names,
 * dtypes, shapes, offsets) and the first and last MiB of its data region (so two
 * random-weight models of the same architecture differ), with "@<file>" appended when
 * the weights are not diffusion_pytorch_model.safetensors (an .fp16 variant or PyTorch
 * .bin, whose data alone is hashed). Reads ~2 MiB.
 * (dhf_model_identity below turns it into the cache's form.) */
int dhf_sd_model_identity(const char *dir, char *buf, size_t n);

#endif
