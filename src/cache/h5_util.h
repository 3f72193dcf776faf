/* h5_util.h — the HDF5 plumbing the feature cache needs: turning the library's
 * error stack into a dhf error message, the float16 file type, string types and
 * typed attribute reads/writes (1-D/2-D numeric arrays, UTF-8 strings). All
 * functions return 0 / -1 with a message naming the attribute; callers add the
 * file name with dhf_err_wrap. */
#ifndef DHF_CACHE_H5_UTIL_H
#define DHF_CACHE_H5_UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Turns off HDF5's printing of error stacks to stderr (process-wide, idempotent):
 * dhf reports errors itself. */
void dhf_h5_quiet(void);
/* The innermost description on HDF5's error stack (or "unknown HDF5 error"),
 * copied into a static thread-local buffer; clears the stack. */
const char *dhf_h5_error(void);

/* IEEE binary16, little endian: the type h5py reads as '<f2'. Caller H5Tclose's. */
hid_t dhf_h5_half_type(void);
/* True when `t` is a 2-byte IEEE-layout float (sign 15, exponent 10..14, bias 15). */
int dhf_h5_is_half_type(hid_t t);
/* Fixed-length, NUL-padded UTF-8 string of n bytes. Caller H5Tclose's. */
hid_t dhf_h5_fixed_str_type(size_t n);

/* The largest string attribute read (a resolved config is a few KiB). */
#define DHF_H5_MAX_STR (16 << 20)

int dhf_h5_attr_write_str(hid_t obj, const char *name, const char *value);
/* *value: malloc'd, NUL-terminated. Strings are fixed-length (NUL-padded UTF-8) and at
 * most DHF_H5_MAX_STR bytes; a variable-length string attribute is refused. */
int dhf_h5_attr_read_str(hid_t obj, const char *name, char **value);
/* Shape [rows] (cols == 0) or [rows, cols]; rows*cols values. */
int dhf_h5_attr_write_i64(hid_t obj, const char *name, const int64_t *v, int rows, int cols);
int dhf_h5_attr_write_f64(hid_t obj, const char *name, const double *v, int rows);
/* Reads up to cap values (error if the attribute holds more); *n = count. */
int dhf_h5_attr_read_i64(hid_t obj, const char *name, int64_t *v, int cap, int *n);
int dhf_h5_attr_read_f64(hid_t obj, const char *name, double *v, int cap, int *n);
/* Array of variable-length strings; names[i] has room for `width` bytes. */
int dhf_h5_attr_write_str_array(hid_t obj, const char *name, const char *names, size_t width,
                                int count);
int dhf_h5_attr_read_str_array(hid_t obj, const char *name, char *names, size_t width,
                               int cap, int *count);

#endif
