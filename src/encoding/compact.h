/*
 * compact-encoding, byte-for-byte compatible with the npm `compact-encoding` 3.x and
 * `compact-encoding-net` 1.x packages: the wire format of every HyperDHT message.
 *
 * A codec is three functions over one state: preencode (add the size to `end`), encode
 * (write at `start`, advancing it), decode (read at `start`, advancing it, never past `end`).
 * Integers are little-endian; IP bytes are in network order but ports are little-endian.
 *
 * Errors are sticky: the first failure (truncated input, value out of range, buffer too small)
 * sets `error` and every later call on the state becomes a no-op returning zero/NULL. Callers
 * encode or decode a whole message, then check `hsp_cenc_ok()` once.
 */
#ifndef HSP_ENCODING_COMPACT_H
#define HSP_ENCODING_COMPACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* JS numbers are doubles: the reference rejects integers above 2^53 - 1 on decode. */
#define HSP_CENC_MAX_SAFE_INTEGER 9007199254740991ULL
/* The reference refuses to decode arrays with more elements than this. */
#define HSP_CENC_MAX_ARRAY 0x100000u

enum hsp_cenc_error {
  HSP_CENC_OK = 0,
  HSP_CENC_ETRUNCATED = -1, /* input ended inside a value, or output buffer too small */
  HSP_CENC_ERANGE = -2,     /* value above 2^53-1, array too big, bad length */
  HSP_CENC_EINVAL = -3,     /* malformed value (e.g. an unparsable IP address) */
};

typedef struct hsp_cenc {
  uint8_t *buf;  /* NULL while preencoding */
  size_t start;
  size_t end;
  int error;
} hsp_cenc_t;

/* A view into a buffer that is owned elsewhere (decoded values point into the input). */
typedef struct hsp_bytes {
  const uint8_t *data;
  size_t len;
} hsp_bytes_t;

typedef struct hsp_ipv4_addr {
  uint8_t host[4]; /* network order */
  uint16_t port;
} hsp_ipv4_addr_t;

typedef struct hsp_ipv6_addr {
  uint8_t host[16]; /* network order */
  uint16_t port;
} hsp_ipv6_addr_t;

/* States. Decoding never writes to buf, so a const input may be passed through the cast. */
static inline hsp_cenc_t hsp_cenc_for_size(void) { return (hsp_cenc_t){NULL, 0, 0, 0}; }
static inline hsp_cenc_t hsp_cenc_for_encode(uint8_t *buf, size_t len) {
  return (hsp_cenc_t){buf, 0, len, 0};
}
static inline hsp_cenc_t hsp_cenc_for_decode(const uint8_t *buf, size_t len) {
  return (hsp_cenc_t){(uint8_t *)buf, 0, len, 0};
}
static inline bool hsp_cenc_ok(const hsp_cenc_t *s) { return s->error == 0; }
/* Bytes not yet consumed by decoding (or not yet written by encoding). */
static inline size_t hsp_cenc_remaining(const hsp_cenc_t *s) {
  return s->error ? 0 : s->end - s->start;
}
const char *hsp_cenc_strerror(int err);

/* uint: 1 byte up to 0xfc, else 0xfd+u16, 0xfe+u32, 0xff+u64 (max 2^53-1). */
void hsp_cenc_preencode_uint(hsp_cenc_t *s, uint64_t v);
void hsp_cenc_encode_uint(hsp_cenc_t *s, uint64_t v);
uint64_t hsp_cenc_decode_uint(hsp_cenc_t *s);

void hsp_cenc_preencode_uint8(hsp_cenc_t *s, uint8_t v);
void hsp_cenc_encode_uint8(hsp_cenc_t *s, uint8_t v);
uint8_t hsp_cenc_decode_uint8(hsp_cenc_t *s);
void hsp_cenc_preencode_uint16(hsp_cenc_t *s, uint16_t v);
void hsp_cenc_encode_uint16(hsp_cenc_t *s, uint16_t v);
uint16_t hsp_cenc_decode_uint16(hsp_cenc_t *s);
void hsp_cenc_preencode_uint24(hsp_cenc_t *s, uint32_t v);
void hsp_cenc_encode_uint24(hsp_cenc_t *s, uint32_t v);
uint32_t hsp_cenc_decode_uint24(hsp_cenc_t *s);
void hsp_cenc_preencode_uint32(hsp_cenc_t *s, uint32_t v);
void hsp_cenc_encode_uint32(hsp_cenc_t *s, uint32_t v);
uint32_t hsp_cenc_decode_uint32(hsp_cenc_t *s);
/* uint64 is 8 bytes LE; decoding a value above 2^53-1 is an error, as in the reference. */
void hsp_cenc_preencode_uint64(hsp_cenc_t *s, uint64_t v);
void hsp_cenc_encode_uint64(hsp_cenc_t *s, uint64_t v);
uint64_t hsp_cenc_decode_uint64(hsp_cenc_t *s);

/* int: zig-zag (0,-1,1,-2 -> 0,1,2,3) then uint; |v| limited to 2^52 by the uint range. */
void hsp_cenc_preencode_int(hsp_cenc_t *s, int64_t v);
void hsp_cenc_encode_int(hsp_cenc_t *s, int64_t v);
int64_t hsp_cenc_decode_int(hsp_cenc_t *s);

/* bool: 0x01 is true, every other byte decodes as false (reference behaviour). */
void hsp_cenc_preencode_bool(hsp_cenc_t *s, bool v);
void hsp_cenc_encode_bool(hsp_cenc_t *s, bool v);
bool hsp_cenc_decode_bool(hsp_cenc_t *s);

/* fixed(n): exactly n bytes, no prefix. Decoding returns a pointer into the input. */
void hsp_cenc_preencode_fixed(hsp_cenc_t *s, size_t n);
void hsp_cenc_encode_fixed(hsp_cenc_t *s, const uint8_t *bytes, size_t n);
const uint8_t *hsp_cenc_decode_fixed(hsp_cenc_t *s, size_t n);
#define HSP_CENC_FIXED32 32
#define HSP_CENC_FIXED64 64

/* buffer: uint length + bytes. Length 0 decodes as an empty view (data may be NULL):
 * the reference maps it to null, which callers treat as "absent". */
void hsp_cenc_preencode_buffer(hsp_cenc_t *s, const uint8_t *bytes, size_t len);
void hsp_cenc_encode_buffer(hsp_cenc_t *s, const uint8_t *bytes, size_t len);
hsp_bytes_t hsp_cenc_decode_buffer(hsp_cenc_t *s);

/* raw: bytes with no prefix; decoding consumes everything to the end of the state. */
void hsp_cenc_preencode_raw(hsp_cenc_t *s, size_t len);
void hsp_cenc_encode_raw(hsp_cenc_t *s, const uint8_t *bytes, size_t len);
hsp_bytes_t hsp_cenc_decode_raw(hsp_cenc_t *s);

/* string/utf8: uint byte length + bytes. Decoding returns a view that is not NUL-terminated
 * and, like the reference, does not judge the bytes: layers that need valid UTF-8 check it. */
void hsp_cenc_preencode_string(hsp_cenc_t *s, const char *str, size_t len);
void hsp_cenc_encode_string(hsp_cenc_t *s, const char *str, size_t len);
hsp_bytes_t hsp_cenc_decode_string(hsp_cenc_t *s);

/* Arrays are a uint count followed by the elements; the element codec is the caller's loop.
 * decode_array_length rejects counts above HSP_CENC_MAX_ARRAY and counts that could not
 * fit in the remaining input at `min_element_size` bytes each. */
static inline void hsp_cenc_preencode_array_length(hsp_cenc_t *s, size_t n) {
  hsp_cenc_preencode_uint(s, n);
}
static inline void hsp_cenc_encode_array_length(hsp_cenc_t *s, size_t n) {
  hsp_cenc_encode_uint(s, n);
}
size_t hsp_cenc_decode_array_length(hsp_cenc_t *s, size_t min_element_size);

/* ipv4 = 4 bytes; ipv4Address = ipv4 + uint16 port (6 bytes); ipv6Address = 16 + 2 bytes. */
#define HSP_CENC_IPV4_ADDR_SIZE 6
#define HSP_CENC_IPV6_ADDR_SIZE 18
void hsp_cenc_preencode_ipv4(hsp_cenc_t *s);
void hsp_cenc_encode_ipv4(hsp_cenc_t *s, const uint8_t host[4]);
void hsp_cenc_decode_ipv4(hsp_cenc_t *s, uint8_t host[4]);
void hsp_cenc_preencode_ipv4_addr(hsp_cenc_t *s);
void hsp_cenc_encode_ipv4_addr(hsp_cenc_t *s, const hsp_ipv4_addr_t *a);
hsp_ipv4_addr_t hsp_cenc_decode_ipv4_addr(hsp_cenc_t *s);
void hsp_cenc_preencode_ipv6_addr(hsp_cenc_t *s);
void hsp_cenc_encode_ipv6_addr(hsp_cenc_t *s, const hsp_ipv6_addr_t *a);
hsp_ipv6_addr_t hsp_cenc_decode_ipv6_addr(hsp_cenc_t *s);

/* Text forms, as the reference prints them: dotted quad; IPv6 as 8 lowercase hex groups
 * without zero compression. Parsing accepts standard forms (inet_pton). */
#define HSP_CENC_IP_STRLEN 46
int hsp_ipv4_parse(const char *text, uint8_t host[4]);
int hsp_ipv6_parse(const char *text, uint8_t host[16]);
void hsp_ipv4_format(const uint8_t host[4], char out[HSP_CENC_IP_STRLEN]);
void hsp_ipv6_format(const uint8_t host[16], char out[HSP_CENC_IP_STRLEN]);

#endif
