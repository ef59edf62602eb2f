// libs: hsp_encoding
/*
 * Decodes the input as a script of compact-encoding values (each byte before a value picks its
 * codec), then checks the decoder's invariants: never reading past the end, sticky errors, and
 * re-encoding every decoded integer reproducing a value that decodes to itself.
 */
#include "compact.h"

#include <stdlib.h>

static void roundtrip_uint(uint64_t v) {
  uint8_t buf[16];
  hsp_cenc_t e = hsp_cenc_for_encode(buf, sizeof buf);
  hsp_cenc_encode_uint(&e, v);
  if (!hsp_cenc_ok(&e)) abort(); /* a decoded uint is always encodable */
  hsp_cenc_t d = hsp_cenc_for_decode(buf, e.start);
  if (hsp_cenc_decode_uint(&d) != v || !hsp_cenc_ok(&d)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hsp_cenc_t s = hsp_cenc_for_decode(data, size);
  while (hsp_cenc_remaining(&s) > 0) {
    uint8_t op = hsp_cenc_decode_uint8(&s);
    switch (op % 12) {
    case 0: {
      uint64_t v = hsp_cenc_decode_uint(&s);
      if (hsp_cenc_ok(&s)) roundtrip_uint(v);
      break;
    }
    case 1: hsp_cenc_decode_uint64(&s); break;
    case 2: hsp_cenc_decode_int(&s); break;
    case 3: {
      hsp_bytes_t b = hsp_cenc_decode_buffer(&s);
      if (hsp_cenc_ok(&s) && b.len && b.data + b.len > data + size) abort();
      break;
    }
    case 4: hsp_cenc_decode_string(&s); break;
    case 5: hsp_cenc_decode_fixed(&s, 32); break;
    case 6: hsp_cenc_decode_ipv4_addr(&s); break;
    case 7: hsp_cenc_decode_ipv6_addr(&s); break;
    case 8: {
      size_t n = hsp_cenc_decode_array_length(&s, HSP_CENC_IPV4_ADDR_SIZE);
      for (size_t i = 0; i < n && hsp_cenc_ok(&s); i++) hsp_cenc_decode_ipv4_addr(&s);
      break;
    }
    case 9: hsp_cenc_decode_uint24(&s); break;
    case 10: hsp_cenc_decode_bool(&s); break;
    default: hsp_cenc_decode_raw(&s);
    }
    if (s.start > s.end) abort();
    if (!hsp_cenc_ok(&s)) {
      /* Errors are sticky and leave nothing readable. */
      if (hsp_cenc_remaining(&s) != 0 || hsp_cenc_decode_uint32(&s) != 0) abort();
      break;
    }
  }
  return 0;
}
