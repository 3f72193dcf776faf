/* pt_weights.h — PyTorch `.bin` model weights (torch.save of a state_dict, as
 * diffusers' diffusion_pytorch_model.bin and transformers' pytorch_model.bin are
 * written) opened as a safetensors file in memory, so the model loaders read them
 * through the very code that reads safetensors. The pickle is read under
 * core/pickle.h's allow-list; the zip container through the shim. */
#ifndef DHF_EXTRACT_PT_WEIGHTS_H
#define DHF_EXTRACT_PT_WEIGHTS_H

#include "core/safetensors.h"

/* Every tensor of the state dict in `path` (float32/16, bfloat16, float64, int64,
 * int32, uint8, bool), its name and shape, gathered into one in-memory safetensors
 * file. Errors name the file and the entry. */
int dhf_pt_weights_open(const char *path, dhf_st_file **out);

#endif
