/* st_tensor.h — the bridge between safetensors files (core/safetensors.h) and shim
 * tensors: load a stored tensor as a NEW CPU shim tensor, check its shape, and add
 * shim tensors to a writer. Errors: -1 with dhf_err_msg() naming file and tensor. */
#ifndef DHF_CORE_TORCH_ST_TENSOR_H
#define DHF_CORE_TORCH_ST_TENSOR_H

#include "core/safetensors.h"
#include "shim/torch_shim.h"

/* NEW contiguous CPU tensor holding a copy of tensor `name`. Floating dtypes
 * (F16, BF16, F64) become F32; integer and bool dtypes keep theirs (I64, I32, U8,
 * BOOL; BOOL bytes other than 0/1 are an error). *out is set only on success. */
int dhf_st_load(const dhf_st_file *f, const char *name, dhf_tensor *out);
/* As dhf_st_load, but the tensor must exist with exactly this shape; otherwise the
 * error names the file, the tensor, and the expected and actual shapes. */
int dhf_st_load_expect(const dhf_st_file *f, const char *name, const int64_t *shape,
                       int ndim, dhf_tensor *out);
/* Copies t (any dtype, any device, any layout) to a contiguous CPU buffer and adds
 * it to the writer under `name` with the matching safetensors dtype. */
int dhf_st_writer_add_tensor(dhf_st_writer *w, const char *name, dhf_tensor t);

#endif
