// libs: hsp_agent hsp_encoding
/*
 * Session fuzz target: frames from a hostile peer into a proxy-side and a service-side
 * session. The first byte picks the application's behaviour (open tunnels, accept, refuse,
 * consume, write, end, close from callbacks); the rest is a sequence of frames, each
 * prefixed by a one-byte length and copied to its own allocation. Invariants: no crash or
 * leak; a tunnel never receives more DATA than the window it granted; frees close every
 * tunnel.
 */
#include "session.h"

#include <stdlib.h>
#include <string.h>

static uint8_t mode;
static size_t held[1024]; /* per local channel id: bytes received and not consumed */
static int tag;

static int on_send(void *d, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  (void)d, (void)a, (void)b;
  if (alen + blen == 0 || alen + blen > 65536) abort(); /* one secret-stream message */
  return 0;
}

static void *on_accept(void *d, hsp_sess_t *s, uint32_t ch) {
  (void)d;
  if (mode & 1) return NULL;
  if (mode & 2) {
    hsp_sess_refuse(s, ch, HSP_SESS_CODE_REFUSED);
    return &tag;
  }
  hsp_sess_ready(s, ch);
  return &tag;
}

static void on_ready(void *d, hsp_sess_t *s, uint32_t ch, void *user) {
  (void)d, (void)user;
  static const uint8_t hello[100000];
  if (mode & 4) hsp_sess_write(s, ch, hello, sizeof hello);
}

static void on_data(void *d, hsp_sess_t *s, uint32_t ch, void *user, const uint8_t *p, size_t n) {
  (void)d, (void)user, (void)p;
  size_t *h = ch < 1024 ? &held[ch] : NULL;
  if (h) {
    *h += n;
    if (*h > HSP_SESS_DEFAULT_WINDOW) abort(); /* beyond the window we granted */
  }
  if (mode & 8) {
    hsp_sess_consumed(s, ch, n);
    if (h) *h -= n;
  }
  if (mode & 16) {
    hsp_sess_close(s, ch);
    if (h) *h = 0;
  }
}

static void on_end(void *d, hsp_sess_t *s, uint32_t ch, void *user) {
  (void)d, (void)user;
  if (mode & 32) hsp_sess_end(s, ch);
}

static void on_writable(void *d, hsp_sess_t *s, uint32_t ch, void *user) {
  (void)d, (void)user;
  static const uint8_t more[5000];
  hsp_sess_write(s, ch, more, sizeof more);
}

static void on_close(void *d, hsp_sess_t *s, uint32_t ch, void *user, int err) {
  (void)d, (void)s, (void)user, (void)err;
  if (ch < 1024) held[ch] = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  mode = data[0];
  hsp_sess_callbacks_t cb = {on_send, on_accept, on_ready, on_data, on_end, on_writable, on_close, NULL};
  hsp_sess_t *s = hsp_sess_new(NULL, &cb, NULL, 0);
  if (!s) return 0;
  memset(held, 0, sizeof held);
  if (mode & 64) {
    uint32_t ch;
    for (int i = 0; i < 3; i++)
      if (hsp_sess_open(s, &tag, &ch) == 0 && ch < 1024) held[ch] = 0;
  }
  size_t off = 1;
  uint64_t now = 0;
  while (off < size) {
    size_t len = data[off++];
    if (len > size - off) len = size - off;
    uint8_t *f = malloc(len ? len : 1);
    memcpy(f, data + off, len);
    off += len;
    int rc = hsp_sess_recv(s, f, len, now += 10);
    free(f);
    if (rc < 0) break;
    hsp_sess_tick(s, now);
  }
  hsp_sess_free(s);
  return 0;
}
