/* z-base-32 and key text forms (byte equality with the JS packages: crypto_vectors.js). */
#include "check.h"
#include "crypto.h"
#include "keyid.h"

#include <string.h>

int main(void) {
  char out[80];
  uint8_t buf[64];
  hsp_z32_encode(out, (const uint8_t *)"hello", 5);
  CHECK_EQ_STR(out, "pb1sa5dx");
  static const uint8_t five[] = {0, 1, 2, 3, 4};
  hsp_z32_encode(out, five, 5);
  CHECK_EQ_STR(out, "yyyoryar");
  CHECK_EQ_INT(hsp_z32_decode(buf, "pb1sa5dx", 8), 5);
  CHECK(memcmp(buf, "hello", 5) == 0);
  CHECK_EQ_INT(hsp_z32_decode(buf, "pb1Sa5dx", 8), -1); /* lowercase only */
  CHECK_EQ_INT(hsp_z32_decode(buf, "pb1s\0a5dx", 8), -1);

  /* every length round-trips */
  for (size_t len = 0; len <= 40; len++) {
    uint8_t in[40];
    for (size_t i = 0; i < len; i++) in[i] = (uint8_t)(i * 37 + len);
    hsp_z32_encode(out, in, len);
    CHECK_EQ_INT(strlen(out), hsp_z32_encoded_len(len));
    CHECK_EQ_INT(hsp_z32_decode(buf, out, strlen(out)), len);
    CHECK(len == 0 || memcmp(buf, in, len) == 0);
  }

  uint8_t key[32], got[32];
  memset(key, 0xff, 32);
  hsp_crypto_key_encode(out, key);
  CHECK_EQ_STR(out, "999999999999999999999999999999999999999999999999999o");
  CHECK_EQ_INT(hsp_crypto_key_decode(got, out), 0);
  CHECK(memcmp(got, key, 32) == 0);
  CHECK_EQ_INT(hsp_crypto_key_decode(got, "pear://999999999999999999999999999999999999999999999999999o/x"), 0);
  CHECK_EQ_INT(hsp_crypto_key_decode(got, "FFffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"), 0);
  CHECK(memcmp(got, key, 32) == 0);
  CHECK_EQ_INT(hsp_crypto_key_decode(got, "999"), HSP_CRYPTO_EINVAL);
  CHECK_EQ_INT(hsp_crypto_key_decode(got, ""), HSP_CRYPTO_EINVAL);
  CHECK_EQ_INT(hsp_crypto_key_decode(got, NULL), HSP_CRYPTO_EINVAL);
  CHECK_EQ_INT(hsp_crypto_key_decode(got, "zzffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"), HSP_CRYPTO_EINVAL);
  return check_summary("keyid");
}
