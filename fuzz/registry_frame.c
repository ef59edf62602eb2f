// libs: hsp_registry
/* Length-prefixed registry frames from the network (frame.h): whatever the bytes and
 * however they are split into reads, the framer must deliver the same messages (or fail
 * the same way) without crashing, and each delivered message must re-frame to the bytes
 * it came from. Byte 0 picks the limit, byte 1 the read sizes. */
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "registry.h"

typedef struct seen {
  uint8_t *bytes; /* every delivered message, re-framed, back to back */
  size_t len, cap;
} seen_t;

static int collect(void *ud, const uint8_t *msg, size_t len) {
  seen_t *s = ud;
  size_t n;
  uint8_t *f = hsp_reg_frame_encode(msg, len, &n);
  if (!f) abort();
  if (s->len + n > s->cap) {
    s->cap = (s->len + n) * 2;
    s->bytes = realloc(s->bytes, s->cap);
    if (!s->bytes) abort();
  }
  memcpy(s->bytes + s->len, f, n);
  s->len += n;
  free(f);
  return 0;
}

static int run(const uint8_t *data, size_t size, size_t max, size_t step, seen_t *s) {
  hsp_reg_framer_t f;
  hsp_reg_framer_init(&f, max);
  int err = 0;
  for (size_t off = 0; off < size && !err;) {
    size_t n = step && size - off > step ? step : size - off;
    err = hsp_reg_framer_push(&f, data + off, n, collect, s);
    off += n;
  }
  hsp_reg_framer_free(&f);
  return err;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t max = data[0] < 128 ? 64 : HSP_REG_FRAME_REQUEST_MAX;
  size_t step = data[1] % 17;
  data += 2, size -= 2;
  seen_t whole = {0}, pieces = {0};
  int e1 = run(data, size, max, 0, &whole);
  int e2 = run(data, size, max, step ? step : 1, &pieces);
  if (e1 != e2 || whole.len != pieces.len || (whole.len && memcmp(whole.bytes, pieces.bytes, whole.len)))
    abort();
  /* what was delivered is exactly a prefix of the input */
  if (whole.len > size || (whole.len && memcmp(whole.bytes, data, whole.len))) abort();
  free(whole.bytes);
  free(pieces.bytes);
  return 0;
}
