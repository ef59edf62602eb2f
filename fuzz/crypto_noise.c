// libs: hsp_crypto
/*
 * Noise handshake message parsing. The first input byte picks the role that reads the rest:
 *   0  IK responder reading message 1
 *   1  IK initiator reading message 2 (after writing its message 1)
 *   2  XX responder reading message 1, then writing message 2
 *   3  XX initiator reading message 2 (after message 1), then writing message 3
 *   4  XX responder reading message 3 (the input is split: byte 1 = length of message 1)
 * Keys are fixed (static seeds 01/02, ephemeral seeds 03/04, as in the protocol notes), so
 * seeds made from real messages reach past the AEAD checks.
 */
#include "crypto.h"
#include "noise.h"

#include <stdint.h>
#include <string.h>

static hsp_crypto_keypair_t kp(uint8_t b) {
  uint8_t seed[32];
  memset(seed, b, 32);
  hsp_crypto_keypair_t k;
  hsp_crypto_keypair_from_seed(&k, seed);
  return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  static hsp_crypto_keypair_t is, rs, ie, re;
  if (!ready) {
    if (hsp_crypto_init() != 0) return 0;
    is = kp(1), rs = kp(2), ie = kp(3), re = kp(4);
    ready = 1;
  }
  if (size < 1) return 0;
  uint8_t mode = data[0] % 5;
  data++;
  size--;
  uint8_t out[HSP_NOISE_MAX_MESSAGE], pay[HSP_NOISE_MAX_MESSAGE];
  size_t olen, plen;
  hsp_noise_t n;
  switch (mode) {
  case 0:
    hsp_noise_init_hyperdht(&n, &rs, NULL);
    hsp_noise_set_ephemeral(&n, &re);
    if (hsp_noise_read_message(&n, data, size, pay, sizeof pay, &plen) == 0)
      hsp_noise_write_message(&n, pay, plen < 1000 ? plen : 1000, out, sizeof out, &olen);
    break;
  case 1: {
    /* the noisePayload of the protocol notes' vector, so its message 2 is a valid seed */
    static const uint8_t payload_i[] = {0x01, 0x1a, 0x00, 0x01, 0x01, 0x0a, 0x00, 0x00,
                                        0x01, 0x49, 0xc2, 0x01, 0x00, 0x01, 0x00, 0x01};
    hsp_noise_init_hyperdht(&n, &is, rs.public_key);
    hsp_noise_set_ephemeral(&n, &ie);
    hsp_noise_write_message(&n, payload_i, sizeof payload_i, out, sizeof out, &olen);
    hsp_noise_read_message(&n, data, size, pay, sizeof pay, &plen);
    break;
  }
  case 2:
    hsp_noise_init(&n, HSP_NOISE_XX, false, &rs, NULL, NULL, 0);
    hsp_noise_set_ephemeral(&n, &re);
    if (hsp_noise_read_message(&n, data, size, pay, sizeof pay, &plen) == 0)
      hsp_noise_write_message(&n, NULL, 0, out, sizeof out, &olen);
    break;
  case 3:
    hsp_noise_init(&n, HSP_NOISE_XX, true, &is, NULL, NULL, 0);
    hsp_noise_set_ephemeral(&n, &ie);
    hsp_noise_write_message(&n, NULL, 0, out, sizeof out, &olen);
    if (hsp_noise_read_message(&n, data, size, pay, sizeof pay, &plen) == 0)
      hsp_noise_write_message(&n, NULL, 0, out, sizeof out, &olen);
    break;
  default: {
    if (size < 1) return 0;
    size_t l1 = data[0] < size - 1 ? data[0] : size - 1;
    hsp_noise_init(&n, HSP_NOISE_XX, false, &rs, NULL, NULL, 0);
    hsp_noise_set_ephemeral(&n, &re);
    if (hsp_noise_read_message(&n, data + 1, l1, pay, sizeof pay, &plen) == 0 &&
        hsp_noise_write_message(&n, NULL, 0, out, sizeof out, &olen) == 0)
      hsp_noise_read_message(&n, data + 1 + l1, size - 1 - l1, pay, sizeof pay, &plen);
    break;
  }
  }
  hsp_noise_wipe(&n);
  return 0;
}
