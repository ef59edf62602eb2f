#include "frame.h"

#include <stdlib.h>
#include <string.h>

#include "registry.h"

void hsp_reg_framer_init(hsp_reg_framer_t *f, size_t max) {
  memset(f, 0, sizeof *f);
  f->max = max;
}

void hsp_reg_framer_free(hsp_reg_framer_t *f) {
  free(f->buf);
  f->buf = NULL;
  f->len = f->cap = 0;
}

static uint32_t read_len(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int append(hsp_reg_framer_t *f, const uint8_t *data, size_t len) {
  if (f->len + len > f->cap) {
    size_t cap = f->cap ? f->cap : 256;
    while (cap < f->len + len) cap *= 2;
    uint8_t *p = realloc(f->buf, cap);
    if (!p) return HSP_REG_ENOMEM;
    f->buf = p;
    f->cap = cap;
  }
  memcpy(f->buf + f->len, data, len);
  f->len += len;
  return 0;
}

int hsp_reg_framer_push(hsp_reg_framer_t *f, const uint8_t *data, size_t len,
                        int (*cb)(void *ud, const uint8_t *msg, size_t len), void *ud) {
  /* Finish the carried-over frame first, taking only the bytes it needs. */
  while (f->len && len) {
    size_t want = HSP_REG_FRAME_HEADER;
    if (f->len >= HSP_REG_FRAME_HEADER) want += read_len(f->buf);
    size_t take = want - f->len < len ? want - f->len : len;
    int err = append(f, data, take);
    if (err) return err;
    data += take;
    len -= take;
    if (f->len < HSP_REG_FRAME_HEADER) continue; /* the input is used up */
    uint32_t n = read_len(f->buf);
    if (n > f->max) return HSP_REG_EINVAL;
    if (f->len == HSP_REG_FRAME_HEADER + (size_t)n) {
      f->len = 0;
      err = cb(ud, f->buf + HSP_REG_FRAME_HEADER, n);
      if (err) return err;
    }
  }
  /* Whole frames straight from the input, without copying. */
  while (len >= HSP_REG_FRAME_HEADER) {
    uint32_t n = read_len(data);
    if (n > f->max) return HSP_REG_EINVAL;
    if (len - HSP_REG_FRAME_HEADER < n) break;
    int err = cb(ud, data + HSP_REG_FRAME_HEADER, n);
    if (err) return err;
    data += HSP_REG_FRAME_HEADER + n;
    len -= HSP_REG_FRAME_HEADER + n;
  }
  return len ? append(f, data, len) : 0;
}

uint8_t *hsp_reg_frame_encode(const uint8_t *msg, size_t len, size_t *out_len) {
  if (len > UINT32_MAX) return NULL;
  uint8_t *p = malloc(len + HSP_REG_FRAME_HEADER);
  if (!p) return NULL;
  p[0] = (uint8_t)len;
  p[1] = (uint8_t)(len >> 8);
  p[2] = (uint8_t)(len >> 16);
  p[3] = (uint8_t)(len >> 24);
  if (len) memcpy(p + HSP_REG_FRAME_HEADER, msg, len);
  *out_len = len + HSP_REG_FRAME_HEADER;
  return p;
}
