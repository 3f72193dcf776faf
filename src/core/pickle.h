/* pickle.h — the restricted pickle of PyTorch checkpoints: a reader that accepts only
 * what torch.save writes for a checkpoint (dicts and OrderedDicts, lists, tuples,
 * numbers, strings, booleans, None, tensors rebuilt from storages) and refuses every
 * other global by name, and a writer of the same subset in the form Python's torch.save
 * (pickle protocol 2) emits. Nothing is ever called or imported: a global is a name
 * looked up in a fixed table.
 *
 * Why not libtorch's own unpickler: libtorch 1.13's torch::pickle_load turns
 * `collections.OrderedDict` into None ("OrderedDicts only appear in tensor
 * deserialization"), so the OrderedDict of every state_dict() fails with "Expected
 * GenericDict but got None", and it has no SETITEM opcode (a one-entry dict). The zip
 * container around the pickle is read and written by libtorch (shim: dhf_pt_*).
 *
 * A tensor in the tree is a reference to a storage record: its key (the archive's
 * data/<key>), dtype, offset, size and stride, as _rebuild_tensor_v2 takes them. */
#ifndef DHF_CORE_PICKLE_H
#define DHF_CORE_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DHF_PV_MAX_DIMS 8

typedef enum {
    DHF_PV_NONE, DHF_PV_BOOL, DHF_PV_INT, DHF_PV_FLOAT, DHF_PV_STR, DHF_PV_LIST,
    DHF_PV_TUPLE, DHF_PV_DICT, DHF_PV_TENSOR,
    DHF_PV_GLOBAL_, DHF_PV_STORAGE_   /* only while parsing: never in a loaded tree */
} dhf_pv_type;

/* Storage dtypes torch.save names (torch.FloatStorage, ...). */
typedef enum {
    DHF_PV_F32, DHF_PV_F64, DHF_PV_F16, DHF_PV_BF16, DHF_PV_I64, DHF_PV_I32, DHF_PV_I16,
    DHF_PV_I8, DHF_PV_U8, DHF_PV_BOOL_T
} dhf_pv_dtype;

typedef struct dhf_pv dhf_pv;
struct dhf_pv {
    dhf_pv_type type;
    bool ordered;             /* a dict that was a collections.OrderedDict */
    int64_t i;                /* INT, BOOL */
    double f;                 /* FLOAT */
    char *s;                  /* STR (NUL-terminated; may hold NULs: see len) */
    size_t len;               /* STR bytes; LIST/TUPLE/DICT entries */
    dhf_pv **items;           /* LIST/TUPLE items; DICT keys */
    dhf_pv **values;          /* DICT values */
    size_t cap;
    /* TENSOR */
    char storage_key[64];
    dhf_pv_dtype dtype;
    int64_t storage_numel;    /* elements of the storage record */
    int64_t offset;           /* storage offset, in elements */
    int ndim;
    int64_t size[DHF_PV_MAX_DIMS], stride[DHF_PV_MAX_DIMS];
    int refs;                 /* the memo may share a value: freed at refs == 0 */
};

/* Parses a pickle (protocol 2..5) under the restrictions above. `what` names the
 * input in messages ("FILE.pt: data.pkl"). *out NEW (dhf_pv_free it). Errors: -1 with
 * "WHAT: at byte N: ..." naming a refused global as module.name. */
int dhf_pickle_load(const void *data, size_t size, const char *what, dhf_pv **out);
void dhf_pv_free(dhf_pv *v);                           /* NULL ok */

/* A tensor's elements in row-major order, copied out of its storage record's bytes
 * (the view's offset and strides applied; the bounds were checked when it was read)
 * into dst (numel * element bytes, the tensor's own dtype). */
void dhf_pv_gather(const dhf_pv *t, const void *storage, void *dst);
int64_t dhf_pv_numel(const dhf_pv *t);

/* Lookups (NULL when absent or of another type). Keys compare as strings. */
const dhf_pv *dhf_pv_get(const dhf_pv *dict, const char *key);
size_t dhf_dtype_bytes_pv(dhf_pv_dtype dt);
/* The safetensors dtype (core/safetensors.h's dhf_st_dtype) of a storage dtype and
 * back; -1 where safetensors has none (int16, int8). */
int dhf_pv_dtype_to_st(dhf_pv_dtype dt, int *st_dtype);
int dhf_pv_dtype_from_st(int st_dtype, dhf_pv_dtype *dt);
const char *dhf_pv_dtype_name(dhf_pv_dtype dt);       /* "float32", ... */
const char *dhf_pv_type_name(dhf_pv_type t);          /* "dict", "tensor", ... */

/* ---- building (the writer's input; every value NEW, containers own their items) ---- */
dhf_pv *dhf_pv_none(void);
dhf_pv *dhf_pv_bool(bool b);
dhf_pv *dhf_pv_int(int64_t i);
dhf_pv *dhf_pv_float(double f);
dhf_pv *dhf_pv_str(const char *s);
dhf_pv *dhf_pv_list(void);
dhf_pv *dhf_pv_tuple(void);
dhf_pv *dhf_pv_dict(bool ordered);
/* a contiguous tensor over the whole storage record `key` */
dhf_pv *dhf_pv_tensor(const char *key, dhf_pv_dtype dt, const int64_t *size, int ndim);
/* append to a list/tuple; set in a dict (takes ownership of item / key and value;
 * both freed on failure). 0 or -1 (out of memory, wrong container). */
int dhf_pv_append(dhf_pv *seq, dhf_pv *item);
int dhf_pv_set(dhf_pv *dict, dhf_pv *key, dhf_pv *value);

/* Protocol-2 pickle of v as Python's torch.save writes it (dicts, OrderedDicts with
 * collections.OrderedDict, tensors as torch._utils._rebuild_tensor_v2 over persistent
 * ('storage', torch.<T>Storage, key, 'cpu', numel) ids). *data malloc'd. */
int dhf_pickle_dump(const dhf_pv *v, void **data, size_t *size);

#endif
