/*
 * fl_safetensors.h — models in and out as safetensors, the Hugging Face tensor
 * file format, so that a model made in PyTorch can be trained by Covey and the
 * result used back in PyTorch.
 *
 * Format (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * u64 N, then N bytes of UTF-8 JSON (the header, possibly padded with trailing
 * spaces), then the data buffer. The header maps each tensor name to
 * {"dtype", "shape", "data_offsets": [begin, end]} (byte offsets into the data
 * buffer) and may hold "__metadata__", an object of string values. Data is
 * little-endian and the tensors cover the data buffer exactly, without holes or
 * overlaps.
 *
 * Covey holds float32 tensors only (fl_params_t), so only dtype "F32" with 1 to
 * FL_NDIM_MAX non-zero dimensions is accepted; anything else is refused with a
 * detail naming the tensor and what was found. Files are never trusted: every
 * length, offset and shape is checked, and overflow-checked, before it is used
 * and before anything is allocated from it.
 *
 * Errors: FL_EFORMAT for a malformed file or one that does not match the
 * expected layout, FL_ERANGE for sizes beyond the caps (header over
 * FL_SAFETENSORS_HEADER_MAX, more than FL_SAFETENSORS_TENSORS_MAX tensors,
 * shapes that overflow or exceed FL_PARAMS_MAX_ELEMS),
 * FL_EINVAL for arguments that cannot be encoded; the file variants add the
 * errors of fl_read_file / fl_write_file_atomic. fl_errmsg() names the tensor
 * (and, for the file variants, the path).
 */
#ifndef FL_SAFETENSORS_H
#define FL_SAFETENSORS_H

#include "fl_params.h"

/* Largest accepted JSON header (the reference implementation's cap is 100 MB). */
#define FL_SAFETENSORS_HEADER_MAX ((size_t)100 << 20)
/* Most tensors accepted in one file: far above any model Covey trains, and it bounds
 * the work a hostile header can cause (building a layout costs O(tensors^2)). */
#define FL_SAFETENSORS_TENSORS_MAX 16384
/* Largest file fl_safetensors_load / _load_new will read. */
#define FL_SAFETENSORS_FILE_MAX ((size_t)16 << 30)

/*
 * Encode `p` as a safetensors image: F32 tensors in layout order with
 * contiguous data_offsets, the header compact JSON ("__metadata__" first when
 * given, then the tensors in layout order, each {"dtype","shape","data_offsets"})
 * padded with spaces to a multiple of 8 bytes, as the reference writer does.
 * `meta` is NULL or a NULL-terminated array of key, value string pairs stored
 * under "__metadata__" (an empty array writes no "__metadata__").
 * Fails with FL_EINVAL for a metadata key without a value, a duplicate
 * metadata key, a tensor named "__metadata__", or a name or string that is not
 * valid UTF-8; FL_ERANGE for more than FL_SAFETENSORS_TENSORS_MAX tensors or a
 * header over FL_SAFETENSORS_HEADER_MAX; FL_ENOMEM when the image cannot be
 * allocated. On success the caller owns *buf_p (free()) of *len_p bytes; on
 * failure *buf_p and *len_p are untouched.
 */
int fl_safetensors_encode(const fl_params_t *p, const char *const *meta, uint8_t **buf_p,
                          size_t *len_p) FL_MUST_CHECK;

/*
 * Decode a safetensors image into the existing layout `into`: the file's tensor
 * names must equal the layout's names (in any order in the file), each with
 * dtype F32 and exactly the layout's shape. Errors name the tensor and the
 * expected vs found shape or dtype, or the missing / unexpected tensor. The
 * whole file is validated before anything is copied, so on failure `into` is
 * unchanged. `buf` is borrowed. Values are not checked for NaN/Inf (see
 * fl_params_check_finite).
 */
int fl_safetensors_decode(const uint8_t *buf, size_t len, fl_params_t *into) FL_MUST_CHECK;

/*
 * Decode a safetensors image into a new set whose layout comes from the file,
 * tensors ordered by data offset (a "{}" header gives an empty set). Caller
 * owns *out (fl_params_destroy); on failure *out is untouched.
 */
int fl_safetensors_decode_new(const uint8_t *buf, size_t len, fl_params_t **out) FL_MUST_CHECK;

/*
 * The "__metadata__" of a safetensors image, after the whole image has been
 * validated as fl_safetensors_decode_new would: a NULL-terminated array of
 * key, value pairs in file order (an empty array when there is none). Caller
 * owns *meta_p and frees it with fl_safetensors_meta_free(); on failure
 * *meta_p is untouched.
 */
int fl_safetensors_meta(const uint8_t *buf, size_t len, char ***meta_p) FL_MUST_CHECK;

/* Free an array from fl_safetensors_meta() and null *meta_p; accepts NULL. */
void fl_safetensors_meta_free(char ***meta_p);

/*
 * File variants. Save encodes as fl_safetensors_encode and writes atomically
 * (fl_write_file_atomic, mode 0644). Load reads the whole file with
 * fl_read_file, refusing files over FL_SAFETENSORS_FILE_MAX, then decodes as
 * fl_safetensors_decode / _decode_new, with the same ownership and
 * no-partial-output rules. Error details name the path.
 */
int fl_safetensors_save(const char *path, const fl_params_t *p, const char *const *meta)
    FL_MUST_CHECK;
int fl_safetensors_load(const char *path, fl_params_t *into) FL_MUST_CHECK;
int fl_safetensors_load_new(const char *path, fl_params_t **out) FL_MUST_CHECK;

#endif
