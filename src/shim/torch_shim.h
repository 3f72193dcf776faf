/* torch_shim.h — the C API over libtorch: opaque tensor handles, status codes,
 * scopes for temporaries, the ops dhf needs, autograd and AdamW.
 *
 * Rules (see docs/DESIGN.md, "The shim"):
 *  - Every function that can fail returns dhf_status; on failure a thread-local
 *    message is set, read with dhf_last_error(). No C++ exception crosses into C.
 *  - Handles: functions with an `out` parameter write a NEW handle there (the
 *    caller owns it: free with dhf_free, or let the enclosing scope free it).
 *    Functions marked BORROWED return a handle owned by someone else; never free
 *    those. `out` is only written on success.
 *  - Scopes: while a scope is open (dhf_scope_begin), every NEW handle created on
 *    this thread is registered in the innermost scope and freed when that scope
 *    ends, unless it was moved out with dhf_keep (to the parent scope, or to the
 *    caller when there is none). dhf_free on a scoped handle is allowed.
 *  - Ops with a trailing underscore work in place on their first argument.
 *  - Only APIs present in both libtorch 1.13 and 2.x are used.
 */
#ifndef DHF_TORCH_SHIM_H
#define DHF_TORCH_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dhf_tensor_s *dhf_tensor;

typedef enum {
    DHF_OK = 0,
    DHF_ERR_TORCH = 1,   /* libtorch raised (shape mismatch, bad dtype, ...) */
    DHF_ERR_ARG = 2,     /* invalid argument detected by the shim (NULL, range) */
    DHF_ERR_OOM = 3,     /* allocation failed */
    DHF_ERR_STATE = 4    /* misuse: unbalanced scope, no grad, ... */
} dhf_status;

typedef enum {
    DHF_F32 = 0, DHF_F16, DHF_BF16, DHF_F64, DHF_I64, DHF_I32, DHF_U8, DHF_BOOL
} dhf_dtype;

typedef enum { DHF_CPU = 0, DHF_CUDA = 1 } dhf_device_type;
typedef struct { dhf_device_type type; int index; } dhf_device;

#define DHF_MAX_DIMS 8

/* ---- errors, lifetime, runtime ------------------------------------------ */
const char *dhf_last_error(void);            /* thread-local; never NULL */
void dhf_clear_error(void);
void dhf_free(dhf_tensor t);                 /* the one free function; NULL ok */
long dhf_live_tensors(void);                 /* handles alive, all threads */
size_t dhf_dtype_size(dhf_dtype dt);
const char *dhf_dtype_name(dhf_dtype dt);    /* "f32", "f16", ... */

void dhf_scope_begin(void);
dhf_status dhf_scope_end(void);              /* DHF_ERR_STATE if none open */
int dhf_scope_depth(void);
dhf_status dhf_keep(dhf_tensor t);           /* move t out of the innermost scope */

/* Intra-op threads for libtorch (n <= 0: number of cores). The BLAS library's own
 * thread pool is set by dhf_set_blas_threads (see there). */
dhf_status dhf_set_num_threads(int n);
int dhf_get_num_threads(void);
/* Threads of the BLAS library libtorch calls (OpenBLAS's pthread pool runs beside
 * torch's and spins against it when both use every core). n <= 0: the default
 * policy, DHF_BLAS_THREADS from the environment if set, else 1 thread while
 * libtorch runs more than one. Returns DHF_OK and does nothing when the loaded
 * BLAS has no thread control. *applied receives the count set (0 = untouched). */
dhf_status dhf_set_blas_threads(int n, int *applied);
/* Caching CPU allocator: freed blocks of 256 KiB or more are kept in exact-size
 * free lists (sizes rounded up to 64 KiB) and reused instead of going back to the
 * OS, so a loop that allocates the same big temporaries every iteration stops
 * page-faulting them in again. Disabling releases the cache and restores the
 * allocator that was active before. Affects tensors allocated afterwards. */
dhf_status dhf_cpu_caching_allocator(bool enable);
/* Gives every freed CPU block back to the system now: the caching allocator's kept
 * blocks (when it is on) and glibc's free heap pages (malloc_trim). For a caller that
 * has just released memory it will not need again (weights replaced by a packed copy),
 * so the footprint drops instead of staying cached. */
dhf_status dhf_cpu_allocator_trim(void);
/* Bytes in live blocks, bytes cached (free, kept), peak of in_use + cached. */
void dhf_cpu_allocator_stats(size_t *in_use, size_t *cached, size_t *peak);
const char *dhf_torch_version(void);         /* e.g. "1.13.1" */
bool dhf_cuda_available(void);
int dhf_cuda_device_count(void);
/* BLAS / parallel backend description from at::show_config (static string). */
const char *dhf_torch_config(void);
dhf_status dhf_manual_seed(uint64_t seed);   /* global torch generator */
dhf_status dhf_device_parse(const char *s, dhf_device *out); /* "cpu", "cuda", "cuda:1" */
dhf_status dhf_cuda_synchronize(void);

/* ---- creation and C buffers --------------------------------------------- */
/* New tensor copying `data` (contiguous, row-major, of dtype dt). */
dhf_status dhf_from_buffer(const void *data, dhf_dtype dt, const int64_t *shape,
                           int ndim, dhf_tensor *out);
/* New tensor viewing external memory without copying; `data` must outlive it. */
dhf_status dhf_from_blob(void *data, dhf_dtype dt, const int64_t *shape, int ndim,
                         dhf_tensor *out);
dhf_status dhf_empty(dhf_dtype dt, dhf_device dev, const int64_t *shape, int ndim,
                     dhf_tensor *out);
dhf_status dhf_zeros(dhf_dtype dt, dhf_device dev, const int64_t *shape, int ndim,
                     dhf_tensor *out);
dhf_status dhf_ones(dhf_dtype dt, dhf_device dev, const int64_t *shape, int ndim,
                    dhf_tensor *out);
dhf_status dhf_full(double value, dhf_dtype dt, dhf_device dev, const int64_t *shape,
                    int ndim, dhf_tensor *out);
dhf_status dhf_scalar_tensor(double value, dhf_dtype dt, dhf_tensor *out);
/* [start, end) with step, like torch.arange. */
dhf_status dhf_arange(double start, double end, double step, dhf_dtype dt,
                      dhf_tensor *out);
/* Seeded draws with a private generator (do not touch the global one). */
dhf_status dhf_randn(uint64_t seed, dhf_dtype dt, const int64_t *shape, int ndim,
                     dhf_tensor *out);
dhf_status dhf_rand(uint64_t seed, dhf_dtype dt, const int64_t *shape, int ndim,
                    dhf_tensor *out);
dhf_status dhf_normal_(dhf_tensor t, double mean, double std, uint64_t seed);
dhf_status dhf_uniform_(dhf_tensor t, double lo, double hi, uint64_t seed);
/* Copy the tensor's values (converted to dt, moved to CPU, made contiguous)
 * into buf, which holds `nbytes` bytes; error if it does not fit exactly. */
dhf_status dhf_to_buffer(dhf_tensor t, dhf_dtype dt, void *buf, size_t nbytes);
/* BORROWED pointer to the data of a contiguous CPU tensor (NULL otherwise). */
void *dhf_data_ptr(dhf_tensor t);
/* The first element of a CPU strided tensor, contiguous or a view (with dhf_strides);
 * NULL otherwise. */
void *dhf_strided_data_ptr(dhf_tensor t);
double dhf_item(dhf_tensor t);               /* first element as double; NAN on error */
dhf_status dhf_item_checked(dhf_tensor t, double *value);

/* ---- metadata ------------------------------------------------------------ */
int dhf_ndim(dhf_tensor t);
int64_t dhf_size(dhf_tensor t, int dim);     /* negative dim counts from the end */
int64_t dhf_numel(dhf_tensor t);
dhf_status dhf_shape(dhf_tensor t, int64_t *shape, int *ndim); /* shape[DHF_MAX_DIMS] */
/* element strides, strides[DHF_MAX_DIMS]; with dhf_data_ptr, how a view lies in memory */
dhf_status dhf_strides(dhf_tensor t, int64_t *strides, int *ndim);
dhf_dtype dhf_get_dtype(dhf_tensor t);
dhf_device dhf_get_device(dhf_tensor t);
bool dhf_is_contiguous(dhf_tensor t);
/* "[2, 4, 16, 24] f32 cpu" into buf. */
void dhf_describe(dhf_tensor t, char *buf, size_t n);

/* ---- conversion, copies -------------------------------------------------- */
dhf_status dhf_to(dhf_tensor t, dhf_dtype dt, dhf_device dev, dhf_tensor *out);
dhf_status dhf_to_dtype(dhf_tensor t, dhf_dtype dt, dhf_tensor *out);
dhf_status dhf_clone(dhf_tensor t, dhf_tensor *out);
dhf_status dhf_contiguous(dhf_tensor t, dhf_tensor *out);
dhf_status dhf_detach(dhf_tensor t, dhf_tensor *out);
dhf_status dhf_copy_(dhf_tensor dst, dhf_tensor src);  /* broadcasting copy */
dhf_status dhf_fill_(dhf_tensor t, double value);
dhf_status dhf_zero_(dhf_tensor t);
/* Make dst refer to src's storage (handle re-pointing; dst's old tensor released). */
dhf_status dhf_set_(dhf_tensor dst, dhf_tensor src);
/* Resize t in place to `shape` (storage reused when large enough: buffer reuse). */
dhf_status dhf_resize_(dhf_tensor t, const int64_t *shape, int ndim);

/* ---- shape ops (results may be views) ------------------------------------ */
dhf_status dhf_reshape(dhf_tensor t, const int64_t *shape, int ndim, dhf_tensor *out);
dhf_status dhf_view(dhf_tensor t, const int64_t *shape, int ndim, dhf_tensor *out);
dhf_status dhf_permute(dhf_tensor t, const int64_t *dims, int ndim, dhf_tensor *out);
dhf_status dhf_transpose(dhf_tensor t, int d0, int d1, dhf_tensor *out);
dhf_status dhf_narrow(dhf_tensor t, int dim, int64_t start, int64_t length,
                      dhf_tensor *out);
dhf_status dhf_select(dhf_tensor t, int dim, int64_t index, dhf_tensor *out);
dhf_status dhf_unsqueeze(dhf_tensor t, int dim, dhf_tensor *out);
dhf_status dhf_squeeze_dim(dhf_tensor t, int dim, dhf_tensor *out);
dhf_status dhf_flatten(dhf_tensor t, int start_dim, int end_dim, dhf_tensor *out);
dhf_status dhf_expand(dhf_tensor t, const int64_t *shape, int ndim, dhf_tensor *out);
dhf_status dhf_cat(const dhf_tensor *ts, int n, int dim, dhf_tensor *out);
dhf_status dhf_stack(const dhf_tensor *ts, int n, int dim, dhf_tensor *out);
/* outs[0..chunks-1]: NEW handles (may be fewer than `chunks`: *n_out says). */
dhf_status dhf_chunk(dhf_tensor t, int chunks, int dim, dhf_tensor *outs, int *n_out);
dhf_status dhf_split(dhf_tensor t, int64_t split_size, int dim, dhf_tensor *outs,
                     int max_out, int *n_out);
/* Constant pad; pads as torch.nn.functional.pad: (left, right, top, bottom, ...). */
dhf_status dhf_pad(dhf_tensor t, const int64_t *pads, int npads, double value,
                   dhf_tensor *out);
dhf_status dhf_index_select(dhf_tensor t, int dim, dhf_tensor index, dhf_tensor *out);
dhf_status dhf_gather(dhf_tensor t, int dim, dhf_tensor index, dhf_tensor *out);
dhf_status dhf_repeat_interleave(dhf_tensor t, int64_t repeats, int dim, dhf_tensor *out);

/* ---- elementwise --------------------------------------------------------- */
dhf_status dhf_add(dhf_tensor a, dhf_tensor b, dhf_tensor *out);
dhf_status dhf_sub(dhf_tensor a, dhf_tensor b, dhf_tensor *out);
dhf_status dhf_mul(dhf_tensor a, dhf_tensor b, dhf_tensor *out);
dhf_status dhf_div(dhf_tensor a, dhf_tensor b, dhf_tensor *out);
/* a + alpha * b */
dhf_status dhf_add_scaled(dhf_tensor a, dhf_tensor b, double alpha, dhf_tensor *out);
dhf_status dhf_add_(dhf_tensor a, dhf_tensor b);
dhf_status dhf_add_scaled_(dhf_tensor a, dhf_tensor b, double alpha);
dhf_status dhf_mul_(dhf_tensor a, dhf_tensor b);
dhf_status dhf_div_(dhf_tensor a, dhf_tensor b);
dhf_status dhf_add_scalar(dhf_tensor a, double s, dhf_tensor *out);
dhf_status dhf_mul_scalar(dhf_tensor a, double s, dhf_tensor *out);
dhf_status dhf_div_scalar(dhf_tensor a, double s, dhf_tensor *out);
dhf_status dhf_pow_scalar(dhf_tensor a, double e, dhf_tensor *out);
dhf_status dhf_add_scalar_(dhf_tensor a, double s);
dhf_status dhf_mul_scalar_(dhf_tensor a, double s);
dhf_status dhf_clamp(dhf_tensor a, double lo, double hi, dhf_tensor *out);
dhf_status dhf_neg(dhf_tensor a, dhf_tensor *out);
dhf_status dhf_sqrt(dhf_tensor a, dhf_tensor *out);
dhf_status dhf_rsqrt(dhf_tensor a, dhf_tensor *out);
dhf_status dhf_exp(dhf_tensor a, dhf_tensor *out);
dhf_status dhf_log(dhf_tensor a, dhf_tensor *out);
dhf_status dhf_abs(dhf_tensor a, dhf_tensor *out);
dhf_status dhf_sin(dhf_tensor a, dhf_tensor *out);
dhf_status dhf_cos(dhf_tensor a, dhf_tensor *out);
dhf_status dhf_isfinite_all(dhf_tensor a, bool *all_finite);

/* ---- activations --------------------------------------------------------- */
dhf_status dhf_relu(dhf_tensor a, dhf_tensor *out);
dhf_status dhf_relu_(dhf_tensor a);
dhf_status dhf_silu(dhf_tensor a, dhf_tensor *out);
dhf_status dhf_silu_(dhf_tensor a);
dhf_status dhf_sigmoid(dhf_tensor a, dhf_tensor *out);
dhf_status dhf_gelu(dhf_tensor a, dhf_tensor *out);        /* exact (erf) */
dhf_status dhf_gelu_tanh(dhf_tensor a, dhf_tensor *out);   /* tanh approximation */
dhf_status dhf_quick_gelu(dhf_tensor a, dhf_tensor *out);  /* x * sigmoid(1.702 x) */
dhf_status dhf_softmax(dhf_tensor a, int dim, dhf_tensor *out);
dhf_status dhf_softmax_(dhf_tensor a, int dim);             /* in place, no autograd */
dhf_status dhf_log_softmax(dhf_tensor a, int dim, dhf_tensor *out);

/* ---- reductions ---------------------------------------------------------- */
dhf_status dhf_sum(dhf_tensor a, dhf_tensor *out);                 /* all -> scalar */
dhf_status dhf_mean(dhf_tensor a, dhf_tensor *out);
dhf_status dhf_sum_dim(dhf_tensor a, int dim, bool keepdim, dhf_tensor *out);
dhf_status dhf_mean_dim(dhf_tensor a, int dim, bool keepdim, dhf_tensor *out);
/* values and indices, both NEW; either pointer may be NULL if not wanted. */
dhf_status dhf_max_dim(dhf_tensor a, int dim, bool keepdim, dhf_tensor *values,
                       dhf_tensor *indices);
dhf_status dhf_argmax(dhf_tensor a, int dim, bool keepdim, dhf_tensor *out);
dhf_status dhf_max_all(dhf_tensor a, double *value);
dhf_status dhf_max_abs_diff(dhf_tensor a, dhf_tensor b, double *value);
dhf_status dhf_norm_dim(dhf_tensor a, int dim, bool keepdim, dhf_tensor *out);
/* x / ||x||_2 along dim (no eps, as the paper's loss); eps > 0 clamps the norm. */
dhf_status dhf_l2_normalize(dhf_tensor a, int dim, double eps, dhf_tensor *out);

/* ---- linear algebra ------------------------------------------------------ */
dhf_status dhf_matmul(dhf_tensor a, dhf_tensor b, dhf_tensor *out);
dhf_status dhf_bmm(dhf_tensor a, dhf_tensor b, dhf_tensor *out);
/* beta * c + alpha * (a @ b), batched. */
dhf_status dhf_baddbmm(dhf_tensor c, dhf_tensor a, dhf_tensor b, double beta,
                       double alpha, dhf_tensor *out);
/* out = a @ b written into an existing tensor (buffer reuse). */
dhf_status dhf_bmm_out(dhf_tensor out, dhf_tensor a, dhf_tensor b);
dhf_status dhf_matmul_out(dhf_tensor out, dhf_tensor a, dhf_tensor b);
/* x @ w^T + b (b may be NULL). */
dhf_status dhf_linear(dhf_tensor x, dhf_tensor w, dhf_tensor b, dhf_tensor *out);

/* ---- neural-network ops -------------------------------------------------- */
/* NCHW; w [O, I/groups, kH, kW]; b may be NULL. */
dhf_status dhf_conv2d(dhf_tensor x, dhf_tensor w, dhf_tensor b, int stride_h,
                      int stride_w, int pad_h, int pad_w, int groups, dhf_tensor *out);
dhf_status dhf_group_norm(dhf_tensor x, int groups, dhf_tensor w, dhf_tensor b,
                          double eps, dhf_tensor *out);
/* Normalises over the last dimension (size of w). w/b may be NULL. */
dhf_status dhf_layer_norm(dhf_tensor x, dhf_tensor w, dhf_tensor b, double eps,
                          dhf_tensor *out);
typedef enum { DHF_INTERP_BILINEAR = 0, DHF_INTERP_NEAREST = 1 } dhf_interp_mode;
/* NCHW resize to out_h x out_w. bilinear: align_corners as given, no antialias;
 * nearest: torch's legacy 'nearest' (align_corners ignored). */
dhf_status dhf_interpolate(dhf_tensor x, int64_t out_h, int64_t out_w,
                           dhf_interp_mode mode, bool align_corners, dhf_tensor *out);
/* Mean over the batch of -log_softmax(logits)[target]; logits [N, C], target [N] i64. */
dhf_status dhf_cross_entropy(dhf_tensor logits, dhf_tensor target, dhf_tensor *out);
dhf_status dhf_embedding(dhf_tensor weight, dhf_tensor ids, dhf_tensor *out);
/* Upper triangle above the diagonal set to -inf (causal mask) for [.., T, T]. */
dhf_status dhf_causal_mask_(dhf_tensor scores);

/* ---- autograd ------------------------------------------------------------ */
dhf_status dhf_set_requires_grad(dhf_tensor t, bool requires_grad);
bool dhf_requires_grad(dhf_tensor t);
dhf_status dhf_backward(dhf_tensor loss);               /* scalar loss */
/* NEW handle to t's .grad, or *out = NULL if it has none (still DHF_OK). */
dhf_status dhf_grad(dhf_tensor t, dhf_tensor *out);
dhf_status dhf_zero_grad(dhf_tensor t);                 /* grad = zeros (or none) */
dhf_status dhf_clear_grad(dhf_tensor t);                /* grad = undefined */
/* NEW handle to t's .grad, first set to zeros shaped like t if it has none: for
 * code that writes gradients itself (the oneDNN training path). */
dhf_status dhf_grad_buffer(dhf_tensor t, dhf_tensor *out);
/* Sets grad mode (thread-local); writes the previous mode to *prev if non-NULL. */
dhf_status dhf_set_grad_enabled(bool enabled, bool *prev);
bool dhf_is_grad_enabled(void);
/* Inference-mode region (c10::InferenceMode); regions nest. */
dhf_status dhf_inference_begin(void);
dhf_status dhf_inference_end(void);

/* ---- AdamW ---------------------------------------------------------------- */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
} dhf_adamw_hparams;
/* The defaults of torch.optim.AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, wd 1e-2). */
dhf_adamw_hparams dhf_adamw_defaults(void);
/* One AdamW step on n parameters, exactly as torch.optim.AdamW (single-tensor path,
 * amsgrad false, maximize false): decoupled decay, bias correction with the
 * 1-based `step` (the step count AFTER incrementing). exp_avg / exp_avg_sq are
 * plain tensors shaped like the params (state lives with the caller, so a
 * checkpoint saves it). Params without a grad are skipped. Runs without autograd. */
dhf_status dhf_adamw_step(dhf_tensor *params, dhf_tensor *exp_avg,
                          dhf_tensor *exp_avg_sq, int n, int64_t step,
                          const dhf_adamw_hparams *hp);

/* ---- PyTorch .pt archives (the zip container torch.save writes) ---------- */
/* The pickle inside is read by core/pickle.h (libtorch's unpickler cannot read a
 * state_dict's OrderedDict); libtorch reads and writes the container. */
typedef struct dhf_pt_archive_s dhf_pt_archive;
/* Opens a torch.save zip (any top folder name). A non-zip file: DHF_ERR_TORCH with
 * libtorch's message. */
dhf_status dhf_pt_open(const char *path, dhf_pt_archive **out);
/* Record `name` relative to the top folder ("data.pkl", "data/0"): *data malloc'd
 * (free()), *size bytes. */
dhf_status dhf_pt_read(dhf_pt_archive *a, const char *name, void **data, size_t *size);
void dhf_pt_close(dhf_pt_archive *a);                 /* NULL ok */
/* Writes a torch.save zip at path (top folder "archive", a "version" record added):
 * record i is names[i] with sizes[i] bytes of data[i]. The caller renames it into
 * place (atomic writes). */
dhf_status dhf_pt_write(const char *path, const char *const *names, const void *const *data,
                        const size_t *sizes, int n);

#ifdef __cplusplus
}
#endif
#endif /* DHF_TORCH_SHIM_H */
