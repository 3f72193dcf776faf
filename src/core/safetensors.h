/* safetensors.h — the safetensors container in pure C: a strict, mmap-backed reader
 * (every malformed input is an error naming the file and the tensor, never a crash)
 * and an atomic writer. Format: u64 little-endian header length N, N bytes of JSON
 * header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {string: string}}, then the data region (raw little-endian values,
 * offsets relative to its start). Loading into shim tensors is in core/torch/st_tensor.h.
 *
 * Errors: functions returning int give 0 on success, -1 on failure with the message in
 * dhf_err_msg() (core/error.h), shaped "<path>: tensor '<name>': <what> (expected X, got Y)"
 * or "<path>: header: <what>" for file-level problems. */
#ifndef DHF_CORE_SAFETENSORS_H
#define DHF_CORE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define DHF_ST_MAX_DIMS 8
/* Same cap as the reference implementation: a larger header is refused. */
#define DHF_ST_MAX_HEADER_BYTES 100000000ull

/* Same order as the shim's dhf_dtype, so a cast between the two is valid. */
typedef enum {
    DHF_ST_F32 = 0, DHF_ST_F16, DHF_ST_BF16, DHF_ST_F64, DHF_ST_I64, DHF_ST_I32,
    DHF_ST_U8, DHF_ST_BOOL
} dhf_st_dtype;
#define DHF_ST_NUM_DTYPES 8

/* One tensor of an open file. All pointers are owned by the file and live until
 * dhf_st_close. `data` points into the mapping and may be UNALIGNED for the dtype
 * (tensors are packed back to back): read it with memcpy or dhf_st_read_f32. */
typedef struct {
    const char *name;
    dhf_st_dtype dtype;
    int ndim;                          /* 0 for a scalar */
    int64_t shape[DHF_ST_MAX_DIMS];    /* entries >= ndim are 0 */
    uint64_t nbytes;                   /* == numel * dtype size */
    const void *data;                  /* nbytes bytes (not dereferenceable if 0) */
    int64_t numel;                     /* product of shape (1 for a scalar) */
    uint64_t offset;                   /* begin offset inside the data region */
} dhf_st_info;

typedef struct dhf_st_file dhf_st_file;   /* opaque, mmap-backed, read-only */

/* Opens, maps and fully validates `path`; *out is set only on success. */
int dhf_st_open(const char *path, dhf_st_file **out);
void dhf_st_close(dhf_st_file *f);                      /* NULL ok */
/* The same over a malloc'd buffer holding a whole safetensors file, owned from here on
 * (freed by dhf_st_close, also on failure); `label` names it in messages. */
int dhf_st_open_memory(const char *label, void *buf, size_t len, dhf_st_file **out);

const char *dhf_st_path(const dhf_st_file *f);
/* Tensors are indexed in name order (strcmp), 0 <= i < count. */
int dhf_st_count(const dhf_st_file *f);
const dhf_st_info *dhf_st_at(const dhf_st_file *f, int i);      /* NULL if out of range */
const dhf_st_info *dhf_st_find(const dhf_st_file *f, const char *name); /* NULL if absent */
/* Index of tensor `name` for dhf_st_at, or -1 if absent. */
int dhf_st_index(const dhf_st_file *f, const char *name);
/* Like dhf_st_find but a missing tensor is an error naming file and tensor. */
int dhf_st_get(const dhf_st_file *f, const char *name, const dhf_st_info **out);

/* "__metadata__" (string -> string), entries in key order. */
int dhf_st_metadata_count(const dhf_st_file *f);
const char *dhf_st_metadata_key(const dhf_st_file *f, int i);    /* NULL if out of range */
const char *dhf_st_metadata_value(const dhf_st_file *f, int i);  /* NULL if out of range */
const char *dhf_st_metadata_get(const dhf_st_file *f, const char *key); /* NULL if absent */

size_t dhf_st_dtype_size(dhf_st_dtype dt);        /* 0 for an invalid value */
const char *dhf_st_dtype_name(dhf_st_dtype dt);   /* "F32", "BF16", ... ; "?" if invalid */
/* Parses a safetensors dtype name ("F32", ...); -1 (with message) if unknown. */
int dhf_st_dtype_parse(const char *name, dhf_st_dtype *out);

/* Copies tensor `name` into dst as float32, converting F16/BF16/F64/I64/I32/U8/BOOL
 * (BOOL -> 0/1). `count` must equal the tensor's numel (error otherwise). */
int dhf_st_read_f32(const dhf_st_file *f, const char *name, float *dst, size_t count);
/* The same conversion on a raw little-endian buffer of n elements. */
void dhf_st_convert_f32(dhf_st_dtype dt, const void *src, float *dst, size_t n);

/* IEEE half / bfloat16 <-> float (round to nearest even on the way down). */
float dhf_st_f16_to_f32(uint16_t h);
float dhf_st_bf16_to_f32(uint16_t b);
uint16_t dhf_st_f32_to_f16(float f);
uint16_t dhf_st_f32_to_bf16(float f);

/* ---- writer --------------------------------------------------------------
 * Collects tensors and metadata, then writes the file atomically (temp + fsync +
 * rename): tensors sorted by name and packed in that order, header padded with
 * spaces to a multiple of 8 bytes, "__metadata__" first when any is set.
 * dhf_st_writer_add COPIES the data (the caller may free it right away);
 * dhf_st_writer_add_borrowed keeps the pointer, which must stay valid until
 * dhf_st_writer_save returns. Names must be unique and not "__metadata__". */
typedef struct dhf_st_writer dhf_st_writer;

int dhf_st_writer_new(dhf_st_writer **w);
void dhf_st_writer_free(dhf_st_writer *w);              /* NULL ok */
/* data: numel(shape) * dtype size bytes, little-endian, row-major (NULL ok if 0). */
int dhf_st_writer_add(dhf_st_writer *w, const char *name, dhf_st_dtype dt,
                      const int64_t *shape, int ndim, const void *data);
int dhf_st_writer_add_borrowed(dhf_st_writer *w, const char *name, dhf_st_dtype dt,
                               const int64_t *shape, int ndim, const void *data);
/* Takes ownership of `data`, a malloc'd buffer: the writer frees it (also when
 * this call fails). Saves a copy for callers that already made one. */
int dhf_st_writer_add_owned(dhf_st_writer *w, const char *name, dhf_st_dtype dt,
                            const int64_t *shape, int ndim, void *data);
/* Sets (or replaces) a metadata entry. */
int dhf_st_writer_set_metadata(dhf_st_writer *w, const char *key, const char *value);
int dhf_st_writer_count(const dhf_st_writer *w);
/* May be called more than once (e.g. to write the same tensors to two paths). */
int dhf_st_writer_save(dhf_st_writer *w, const char *path);

/* "[2, 4, 16, 24]" into buf (truncated to n bytes, always terminated). */
void dhf_format_shape(char *buf, size_t n, const int64_t *shape, int ndim);

#endif
