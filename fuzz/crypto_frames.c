// libs: hsp_crypto
/*
 * secret-stream frame parsing: a responder in handshake mode (fixed keys: initiator tx = 32 x
 * 0x11, hash = 64 x 0x22) fed the input in chunks, then the end of the transport; plus the
 * datagram opener. Input: byte 0 = chunk size - 1 (0 = one byte at a time), byte 1 bit 0 =
 * also try the rest as a datagram; then the transport bytes.
 */
#include "crypto.h"
#include "noise.h"
#include "secretstream.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int sink_write(void *user, const uint8_t *data, size_t len) {
  (void)user;
  (void)data;
  (void)len;
  return 0;
}

static int sink_message(void *user, uint8_t *msg, size_t len) {
  size_t *total = user;
  /* touch every byte so ASan sees out-of-bounds deliveries */
  uint8_t x = 0;
  for (size_t i = 0; i < len; i++) x ^= msg[i];
  *total += len + x;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    if (hsp_crypto_init() != 0) return 0;
    ready = 1;
  }
  if (size < 2) return 0;
  size_t chunk = (size_t)data[0] + 1;
  bool dgram = data[1] & 1;
  data += 2;
  size -= 2;

  hsp_noise_result_t hs;
  memset(&hs, 0, sizeof hs);
  memset(hs.rx, 0x11, 32);
  memset(hs.tx, 0x33, 32);
  memset(hs.hash, 0x22, 64);
  size_t total = 0;
  hsp_ss_config_t cfg = {.is_initiator = false, .handshake = &hs, .write = sink_write,
                         .on_message = sink_message, .user = &total, .max_frame = 1 << 20};
  hsp_ss_t ss;
  if (hsp_ss_init(&ss, &cfg) != 0 || hsp_ss_start(&ss, 0) != 0) abort();
  /* hsp_ss_recv decrypts in place: work on a copy */
  uint8_t *copy = malloc(size ? size : 1);
  memcpy(copy, data, size);
  int rc = 0;
  for (size_t off = 0; off < size && rc == 0; off += chunk)
    rc = hsp_ss_recv(&ss, copy + off, size - off < chunk ? size - off : chunk, 0);
  if (rc == 0) hsp_ss_recv_end(&ss);

  /* the copying entry point on the untouched input */
  hsp_ss_t ss2;
  size_t total2 = 0;
  cfg.user = &total2;
  if (hsp_ss_init(&ss2, &cfg) != 0 || hsp_ss_start(&ss2, 0) != 0) abort();
  rc = 0;
  for (size_t off = 0; off < size && rc == 0; off += chunk)
    rc = hsp_ss_recv_const(&ss2, data + off, size - off < chunk ? size - off : chunk, 0);
  hsp_ss_destroy(&ss2);

  if (dgram) {
    hsp_ss_dgram_t d;
    hsp_ss_dgram_init(&d, hs.hash, false, NULL);
    size_t plen;
    hsp_ss_dgram_open(&d, copy, size, &plen, data, size);
    hsp_ss_dgram_wipe(&d);
  }
  free(copy);
  hsp_ss_destroy(&ss);
  return 0;
}
