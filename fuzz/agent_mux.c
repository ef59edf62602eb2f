// libs: hsp_agent hsp_encoding
/*
 * Mux frame decoder fuzz target. The first byte picks the application's behaviour (accept
 * open requests, answer messages, close channels from callbacks, open channels of its own,
 * cork); the rest is a sequence of frames, each prefixed by a one-byte length, each copied to
 * its own allocation so ASan sees any read past a frame. Invariants: no crash or leak, the
 * callbacks only ever see channels in the state they announce, every frame the mux sends
 * starts with a decodable channel and type, and destroy releases everything.
 */
#include "compact.h"
#include "mux.h"

#include <stdlib.h>
#include <string.h>

static uint8_t mode;
static unsigned ops;

static int on_send(void *d, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  (void)d, (void)b;
  if (alen + blen == 0) abort();
  uint8_t *f = malloc(alen + blen);
  memcpy(f, a, alen);
  if (blen) memcpy(f + alen, b, blen);
  hsp_cenc_t s = hsp_cenc_for_decode(f, alen + blen);
  hsp_cenc_decode_uint(&s);
  hsp_cenc_decode_uint(&s);
  if (!hsp_cenc_ok(&s)) abort();
  free(f);
  return 0;
}
static void on_req(void *d, hsp_mux_t *m, const hsp_mux_open_request_t *r) {
  (void)d;
  if (!(mode & 1)) return;
  uint32_t ch;
  int rc = hsp_mux_open(m, r->protocol, r->protocol_len, r->id, r->id_len, r->id != NULL,
                        (const uint8_t *)"hs", 2, (mode & 16) != 0, NULL, &ch);
  if (rc == 0 && (mode & 32)) hsp_mux_close(m, ch);
}
static void on_open(void *d, hsp_mux_t *m, uint32_t ch, void *user, const uint8_t *hs,
                    size_t n) {
  (void)d, (void)user, (void)hs, (void)n;
  if (!hsp_mux_is_open(m, ch)) abort();
}
static void on_msg(void *d, hsp_mux_t *m, uint32_t ch, void *user, uint64_t type,
                   const uint8_t *p, size_t n) {
  (void)d, (void)user;
  if (!hsp_mux_is_open(m, ch)) abort();
  if ((mode & 2) && hsp_mux_send(m, ch, type, p, n) != 0) abort();
  if ((mode & 4) && ++ops % 3 == 0 && hsp_mux_close(m, ch) != 0) abort();
}
static void on_close(void *d, hsp_mux_t *m, uint32_t ch, void *user) {
  (void)d, (void)user;
  if (hsp_mux_is_open(m, ch)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  mode = data[0];
  ops = 0;
  data++, size--;
  hsp_mux_callbacks_t cb = {on_send, on_req, on_open, on_msg, on_close};
  hsp_mux_t *m = hsp_mux_new(&cb, NULL);
  if (!m) return 0;
  if (mode & 8) {
    /* Channels of our own waiting for the peer, so its opens can pair with them. */
    uint32_t ch;
    hsp_mux_open(m, (const uint8_t *)"a", 1, NULL, 0, false, NULL, 0, true, NULL, &ch);
    hsp_mux_open(m, (const uint8_t *)"b", 1, (const uint8_t *)"\x01", 1, true, NULL, 0, true,
                 NULL, &ch);
  }
  if (mode & 64) hsp_mux_cork(m);
  size_t pos = 0;
  while (pos < size) {
    size_t n = data[pos++];
    if (n > size - pos) n = size - pos;
    uint8_t *f = malloc(n ? n : 1);
    memcpy(f, data + pos, n);
    int rc = hsp_mux_recv(m, f, n);
    free(f);
    pos += n;
    if (rc < 0 && rc != HSP_MUX_EPROTO) abort();
    if (rc < 0) break; /* the session ends on a protocol error */
  }
  if (mode & 64) hsp_mux_uncork(m);
  hsp_mux_destroy(m);
  return 0;
}
